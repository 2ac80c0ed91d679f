//! Runs the config's streaming and demo connectors (`kafka`, `synthetic`)
//! and restarts them on reload; the pull types run in `scheduler`.
//!
//! A connector never writes SQL: it produces points, the store writes them,
//! and the live state is told so the scorer recomputes.

use std::time::Duration;

use chrono::SubsecRound;
use tokio_util::sync::CancellationToken;

use crate::config::connector::Connector;
use crate::config::types::Schedule;
use crate::ingest::Interner;
use crate::live::Services;
use crate::model::{Point, Timestamp};

use super::{runner_for, synthetic, Runner};

/// Step of the synthetic connector's backfill of the period so far.
const BACKFILL_STEP: Duration = Duration::from_secs(3600);

/// Runs `connectors` until `generation` is cancelled (at shutdown, or when
/// a reload replaces the connector set).
pub async fn run_all(ctx: Services, connectors: Vec<Connector>, generation: CancellationToken) {
    let mut tasks = tokio::task::JoinSet::new();
    for c in connectors {
        // Pull connectors run on their schedules in `scheduler`.
        if let Runner::Streaming(task) = runner_for(&c, None) {
            tasks.spawn(task(ctx.clone(), generation.clone()));
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Sleeps until the schedule's next tick after `now`; false on shutdown.
async fn wait_tick(schedule: &Schedule, now: Timestamp, shutdown: &CancellationToken) -> bool {
    let wait = match schedule {
        Schedule::Every(d) => *d,
        Schedule::Cron(s) => s
            .after(&now)
            .next()
            .and_then(|next| (next - now).to_std().ok())
            .unwrap_or(Duration::from_secs(60)),
    };
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// The demo's points, through the one ingest path; a failed write is
/// counted and logged there, and the next tick writes again.
async fn write(ctx: &Services, name: &str, points: &[Point]) {
    let _ = ctx.ingest(name, points).await;
}

/// The demo connector: backfills the objectives' periods so far at an
/// hourly step (idempotent: the same instants give the same points), then
/// writes the scenario's current point on every tick.
pub(super) async fn run_synthetic(ctx: Services, c: Connector, shutdown: CancellationToken) {
    let schedule = c
        .schedule
        .clone()
        .unwrap_or(Schedule::Every(Duration::from_secs(15)));
    let mut interner = Interner::default();
    let now = ctx.clock.now();
    let start = ctx
        .live
        .config()
        .objectives
        .iter()
        .map(|o| o.period.at(now).start)
        .min();
    if let Some(start) = start.filter(|s| *s < now) {
        let points = synthetic::backfill(start, now, BACKFILL_STEP, &mut interner);
        tracing::info!(connector = %c.name, points = points.len(), "synthetic backfill");
        write(&ctx, &c.name, &points).await;
    }
    loop {
        let now = ctx.clock.now();
        // Whole seconds: live demo points land on tidy timestamps.
        let t = now.trunc_subsecs(0);
        write(&ctx, &c.name, &synthetic::points_at(t, &mut interner)).await;
        if !wait_tick(&schedule, now, &shutdown).await {
            return;
        }
    }
}
