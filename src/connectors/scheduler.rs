//! Runs the pull connectors (`http`, `prometheus`, `sql`) on their
//! schedules, and every connector registered over the API.
//!
//! - Each connector has its own task, so a failing or slow one never delays
//!   another. A task runs one tick at a time: runs never overlap.
//! - Missed ticks (a run longer than the interval, a paused or stopped
//!   process) are not piled up: the next run is for the latest tick due,
//!   at once, and the ticks before it are skipped.
//! - Each run is bounded by the connector's timeout (a warning at start says
//!   when it is longer than the interval).
//! - Each tick runs on one instance only, however many share the database:
//!   a run starts only after [`ConnectorStore::claim_tick`] moved the
//!   connector's last tick forward, which one instance alone can do, and
//!   which a lease blocks while another instance's run is in progress. A
//!   connector's tick times are the same on every instance (`@every`
//!   intervals are aligned to the Unix epoch), so they contend for the same
//!   ticks. A new connector (no tick run yet) runs at once, for the latest
//!   tick, and then on schedule.
//! - A run's points go through the one ingest path (`Services::ingest`);
//!   its outcome goes to the run state (shown by `GET /api/v1/connectors`)
//!   and to the health metrics.
//!
//! [`ConnectorStore::claim_tick`]: crate::store::ConnectorStore::claim_tick

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::connector::ConnectorKind;
use crate::config::types::{format_duration, Schedule};
use crate::config::{self, Connector};
use crate::model::Timestamp;
use crate::store::RunOutcome;

use super::guard::Guard;
use super::pull::{Pull, PullError, Run};
use super::runner;
use super::Runner;
use crate::live::Services;

/// How often the store is asked for connectors registered over the API
/// (by this instance or another).
pub const API_POLL: Duration = Duration::from_secs(1);

/// What a lease adds to the run's timeout, for writing its points.
const LEASE_GRACE: Duration = Duration::from_secs(60);

/// At most this many rejected items of one run are logged one by one.
const LOGGED_REJECTS: usize = 5;

/// The file name API-registered connectors' errors carry.
pub const API_SOURCE: &str = "body";

/// The latest tick of `schedule` at or before `at`.
pub fn latest_tick(schedule: &Schedule, at: Timestamp) -> Option<Timestamp> {
    match schedule {
        Schedule::Every(d) => {
            let step = i64::try_from(d.as_micros()).ok()?.max(1);
            let t = at.timestamp_micros();
            Utc.timestamp_micros(t - t.rem_euclid(step)).single()
        }
        Schedule::Cron(s) => s
            .after(&(at + TimeDelta::microseconds(1)))
            .next_back()
            .filter(|t| *t <= at),
    }
}

/// The first tick of `schedule` after `at`.
pub fn next_tick(schedule: &Schedule, at: Timestamp) -> Option<Timestamp> {
    match schedule {
        Schedule::Every(d) => {
            let step = TimeDelta::from_std(*d).ok()?;
            latest_tick(schedule, at).map(|t| t + step)
        }
        Schedule::Cron(s) => s.after(&at).next(),
    }
}

/// The tick to run now, if any: the latest tick at or before `now`, when it
/// is later than `last`, the last tick run. However many ticks were missed,
/// this is one run.
pub fn due(schedule: &Schedule, last: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    latest_tick(schedule, now).filter(|t| last.is_none_or(|last| *t > last))
}

/// The shortest gap between the schedule's next few ticks after `at`.
pub fn interval(schedule: &Schedule, at: Timestamp) -> Option<Duration> {
    match schedule {
        Schedule::Every(d) => Some(*d),
        Schedule::Cron(s) => {
            let ticks: Vec<_> = s.after(&at).take(10).collect();
            ticks
                .windows(2)
                .filter_map(|w| (w[1] - w[0]).to_std().ok())
                .min()
        }
    }
}

/// A schedule as text: `@every 5m`, or the cron expression in its
/// normalized 6-field form.
pub fn schedule_text(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Every(d) => format!("@every {}", format_duration(*d)),
        Schedule::Cron(s) => s.source().to_string(),
    }
}

/// This process's name in run leases: its pid and start time.
fn instance_id(started: Timestamp) -> String {
    let nanos = started.timestamp_nanos_opt().unwrap_or_default();
    format!("{}-{}", std::process::id(), nanos)
}

struct Running {
    connector: Connector,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs every pull connector of the config and every connector registered
/// over the API until `shutdown`, starting, stopping and restarting only
/// those that a reload or a registration changed. A YAML connector shadows
/// an API connector of the same name.
pub async fn run(ctx: Services, shutdown: CancellationToken) {
    let instance: Arc<str> = instance_id(ctx.clock.now()).into();
    let mut configs = ctx.live.watch_config();
    let mut api = ApiConnectors::default();
    let mut running: HashMap<String, Running> = HashMap::new();
    loop {
        let yaml = configs.borrow_and_update().connectors.clone();
        api.refresh(&ctx).await;
        // A connector from a file is trusted (reviewed in Git); one
        // registered over the API connects only where the guard allows.
        let mut wanted: HashMap<String, (Connector, Option<Guard>)> = yaml
            .iter()
            .filter(|c| super::is_scheduled(&c.kind))
            .map(|c| (c.name.clone(), (c.clone(), None)))
            .collect();
        let registered: Vec<Connector> = api.valid().cloned().collect();
        let guard = Guard::new(configs.borrow().service.connector_destinations.clone());
        for c in registered {
            if yaml.iter().any(|y| y.name == c.name) {
                api.warn_shadowed(&c.name);
            } else {
                wanted.insert(c.name.clone(), (c, Some(guard.clone())));
            }
        }
        running.retain(|name, r| {
            let keep = wanted.get(name).map(|(c, _)| c) == Some(&r.connector);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        for (name, (c, guard)) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let stop = shutdown.child_token();
            let task = if super::is_scheduled(&c.kind) {
                tokio::spawn(run_connector(
                    ctx.clone(),
                    c.clone(),
                    guard,
                    instance.clone(),
                    stop.clone(),
                ))
            } else {
                // A streaming or demo connector registered over the API runs
                // like one from a file, once its brokers pass the guard.
                tokio::spawn(run_stream(ctx.clone(), c.clone(), guard, stop.clone()))
            };
            running.insert(
                name,
                Running {
                    connector: c,
                    stop,
                    task,
                },
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = configs.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(API_POLL) => {}
        }
    }
    for r in running.values() {
        r.stop.cancel();
    }
    for (_, r) in running {
        let _ = r.task.await;
    }
}

/// The connectors registered over the API, each definition validated once
/// (a definition that this instance cannot load, say for a missing
/// environment variable, is logged once and skipped).
#[derive(Default)]
struct ApiConnectors {
    loaded: HashMap<String, (String, Option<Connector>)>,
    shadowed: std::collections::HashSet<String>,
    store_failing: bool,
}

impl ApiConnectors {
    async fn refresh(&mut self, ctx: &Services) {
        let stored = match ctx.store.api_connectors().await {
            Ok(list) => {
                self.store_failing = false;
                list
            }
            Err(e) => {
                // Keep running what runs; say so once per outage.
                if !self.store_failing {
                    tracing::warn!(error = %e, "cannot read the connectors registered over the API");
                }
                self.store_failing = true;
                return;
            }
        };
        let env = config::process_env();
        let allowed = ctx.live.config().service.connector_env.clone();
        self.loaded
            .retain(|name, _| stored.iter().any(|s| &s.name == name));
        for s in stored {
            if self
                .loaded
                .get(&s.name)
                .is_some_and(|(d, _)| *d == s.definition)
            {
                continue;
            }
            let connector = match config::load_connector_text(
                &s.definition,
                API_SOURCE,
                &env,
                Some(&allowed),
            ) {
                Ok(c) => Some(c),
                Err(diagnostics) => {
                    for d in &diagnostics {
                        tracing::error!(connector = %s.name, "{d}");
                    }
                    tracing::error!(connector = %s.name, "this API-registered connector is invalid here and does not run");
                    None
                }
            };
            self.loaded.insert(s.name, (s.definition, connector));
        }
    }

    fn valid(&self) -> impl Iterator<Item = &Connector> {
        self.loaded.values().filter_map(|(_, c)| c.as_ref())
    }

    fn warn_shadowed(&mut self, name: &str) {
        if self.shadowed.insert(name.to_string()) {
            tracing::warn!(
                connector = name,
                "a connector file defines this name too: the file's definition runs, the API's does not"
            );
        }
    }
}

/// Runs a streaming connector registered over the API: its Kafka brokers
/// are checked against the guard first (librdkafka resolves and connects
/// by itself after that).
async fn run_stream(ctx: Services, c: Connector, guard: Option<Guard>, stop: CancellationToken) {
    if let (Some(guard), ConnectorKind::Kafka(k)) = (&guard, &c.kind) {
        for broker in k.brokers.split(',').map(str::trim) {
            let (host, port) = match broker.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().unwrap_or(9092)),
                None => (broker, 9092),
            };
            if let Err(why) = guard.resolve(host, port).await {
                let error = PullError::Unreachable {
                    target: broker.to_string(),
                    message: why,
                };
                fail(&ctx, &c.name, &error);
                return;
            }
        }
    }
    runner::run_all(ctx, vec![c], stop).await;
}

/// Runs one pull connector on its schedule until `stop`; `guard` bounds
/// where one registered over the API may connect.
pub async fn run_connector(
    ctx: Services,
    c: Connector,
    guard: Option<Guard>,
    instance: Arc<str>,
    stop: CancellationToken,
) {
    let (Some(schedule), Runner::Scheduled(mut puller)) =
        (c.schedule.clone(), super::runner_for(&c, guard))
    else {
        return;
    };
    let name = c.name.as_str();
    if let Some(every) = interval(&schedule, ctx.clock.now()) {
        if c.timeout > every {
            tracing::warn!(
                connector = name,
                timeout = %format_duration(c.timeout),
                interval = %format_duration(every),
                "the timeout is longer than the schedule's interval: a slow run makes the next ticks collapse into one catch-up run"
            );
        }
    }
    ctx.metrics.points_ingested.with_label_values(&[name]);
    let mut last = match ctx.store.connector_state(name).await {
        Ok(Some(state)) => {
            if let Some(t) = state.last_success_at {
                ctx.metrics
                    .connector_last_success
                    .with_label_values(&[name])
                    .set(seconds(t));
            }
            state.last_tick
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(connector = name, error = %e, "cannot read the connector's state; the claim of each tick still keeps runs single");
            None
        }
    };
    tracing::info!(connector = name, r#type = c.kind.type_name(), schedule = %schedule_text(&schedule), "connector scheduled");
    loop {
        let now = ctx.clock.now();
        if let Some(tick) = due(&schedule, last, now) {
            last = Some(tick);
            if stop.is_cancelled() {
                return;
            }
            run_tick(&ctx, &c, puller.as_mut(), tick, &instance, &stop).await;
            continue;
        }
        let Some(next) = next_tick(&schedule, now) else {
            tracing::warn!(connector = name, "the schedule has no future tick");
            stop.cancelled().await;
            return;
        };
        let wait = (next - now)
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn seconds(t: Timestamp) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// Claims and runs one tick: pull, write, record.
async fn run_tick(
    ctx: &Services,
    c: &Connector,
    puller: &mut dyn Pull,
    tick: Timestamp,
    instance: &str,
    stop: &CancellationToken,
) {
    let name = c.name.as_str();
    let started = ctx.clock.now();
    let lease = TimeDelta::from_std(c.timeout + LEASE_GRACE).unwrap_or(TimeDelta::MAX);
    let lease_until = started.checked_add_signed(lease).unwrap_or(started);
    match ctx
        .store
        .claim_tick(name, tick, instance, started, lease_until)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(connector = name, tick = %tick.to_rfc3339(), "tick claimed by another instance, or a run is still in progress there");
            return;
        }
        Err(e) => {
            fail(ctx, name, &PullError::Store(e.to_string()));
            return;
        }
    }
    tracing::debug!(connector = name, tick = %tick.to_rfc3339(), "run started");
    let watermark = match ctx.store.connector_state(name).await {
        Ok(state) => state.and_then(|s| s.watermark),
        Err(e) => {
            let error = PullError::Store(e.to_string());
            finish(ctx, name, instance, 0, None, Some(fail(ctx, name, &error))).await;
            return;
        }
    };
    let run = Run {
        tick,
        watermark,
        timeout: c.timeout,
        deadline: tokio::time::Instant::now() + c.timeout,
    };
    let pulled = tokio::select! {
        _ = stop.cancelled() => {
            let error = "interrupted: the connector was stopped during its run".to_string();
            finish(ctx, name, instance, 0, None, Some(error)).await;
            return;
        }
        r = tokio::time::timeout(c.timeout, puller.pull(&run)) => match r {
            Ok(r) => r,
            Err(_) => Err(PullError::Timeout { target: puller.target().to_string(), after: c.timeout }),
        },
    };
    let pulled = match pulled {
        Ok(p) => p,
        Err(e) => {
            finish(ctx, name, instance, 0, None, Some(fail(ctx, name, &e))).await;
            return;
        }
    };
    for (i, r) in pulled.rejected.iter().enumerate() {
        ctx.rejected(name, r.reason.as_str(), 1);
        if i < LOGGED_REJECTS {
            tracing::warn!(
                connector = name,
                target = puller.target(),
                reason = r.reason.as_str(),
                "rejected: {}",
                r.message
            );
        }
    }
    if pulled.rejected.len() > LOGGED_REJECTS {
        tracing::warn!(
            connector = name,
            rejected = pulled.rejected.len(),
            "more rejected items; see okrd_points_rejected_total"
        );
    }
    let points = &pulled.points;
    if let Err(e) = ctx.ingest(name, points).await {
        // Counted and logged by the ingest path; recorded as the run's error.
        let error = PullError::Store(e.to_string());
        let text = crate::secrets::redact(&format!("connector {name}: {error}"));
        finish(ctx, name, instance, 0, None, Some(text)).await;
        return;
    }
    let n = points.len() as u64;
    let watermark = points.iter().map(|p| p.ts).max();
    tracing::debug!(
        connector = name,
        points = n,
        rejected = pulled.rejected.len(),
        "run finished"
    );
    finish(ctx, name, instance, n, watermark, None).await;
}

/// Counts and logs a failed run; returns the error as recorded.
fn fail(ctx: &Services, name: &str, error: &PullError) -> String {
    ctx.metrics
        .connector_errors
        .with_label_values(&[name, error.reason()])
        .inc();
    let text = crate::secrets::redact(&format!("connector {name}: {error}"));
    tracing::warn!(connector = name, reason = error.reason(), "{text}");
    text
}

async fn finish(
    ctx: &Services,
    name: &str,
    instance: &str,
    points: u64,
    watermark: Option<Timestamp>,
    error: Option<String>,
) {
    let outcome = RunOutcome {
        finished_at: ctx.clock.now(),
        points,
        watermark,
        error,
    };
    if let Err(e) = ctx.store.finish_run(name, instance, &outcome).await {
        // The lease expires on its own; the next tick runs then.
        tracing::warn!(connector = name, error = %e, "cannot record the run's outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn every(secs: u64) -> Schedule {
        Schedule::Every(Duration::from_secs(secs))
    }

    #[test]
    fn every_ticks_are_aligned_to_the_epoch_so_instances_agree() {
        let s = every(300);
        assert_eq!(
            latest_tick(&s, t("2026-11-22T12:07:30Z")),
            Some(t("2026-11-22T12:05:00Z"))
        );
        assert_eq!(
            next_tick(&s, t("2026-11-22T12:07:30Z")),
            Some(t("2026-11-22T12:10:00Z"))
        );
        assert_eq!(
            latest_tick(&s, t("2026-11-22T12:10:00Z")),
            Some(t("2026-11-22T12:10:00Z")),
            "a tick is due at its own instant"
        );
    }

    #[test]
    fn cron_ticks_latest_and_next() {
        let s: Schedule = "0 3 * * *".parse().unwrap();
        assert_eq!(
            latest_tick(&s, t("2026-11-22T09:00:00Z")),
            Some(t("2026-11-22T03:00:00Z"))
        );
        assert_eq!(
            latest_tick(&s, t("2026-11-22T03:00:00Z")),
            Some(t("2026-11-22T03:00:00Z"))
        );
        assert_eq!(
            latest_tick(&s, t("2026-11-22T02:59:59.999Z")),
            Some(t("2026-11-21T03:00:00Z"))
        );
        assert_eq!(
            next_tick(&s, t("2026-11-22T03:00:00Z")),
            Some(t("2026-11-23T03:00:00Z"))
        );
        let secs: Schedule = "*/10 * * * * *".parse().unwrap();
        assert_eq!(
            latest_tick(&secs, t("2026-11-22T09:00:25.5Z")),
            Some(t("2026-11-22T09:00:20Z"))
        );
        assert_eq!(
            interval(&secs, t("2026-11-22T09:00:00Z")),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn missed_ticks_collapse_into_one_catch_up_run() {
        let s = every(60);
        // Down from 12:00:30 to 12:07:10: seven ticks missed, one run due,
        // for the latest of them.
        let last = Some(t("2026-11-22T12:00:00Z"));
        let now = t("2026-11-22T12:07:10Z");
        assert_eq!(due(&s, last, now), Some(t("2026-11-22T12:07:00Z")));
        // After that run, nothing is due until the next tick.
        let last = due(&s, last, now);
        assert_eq!(due(&s, last, t("2026-11-22T12:07:59Z")), None);
        assert_eq!(
            due(&s, last, t("2026-11-22T12:08:00Z")),
            Some(t("2026-11-22T12:08:00Z"))
        );
        // A daily job whose 03:00 run was missed runs once when okrd starts
        // at 09:00, and a new connector runs at once.
        let daily: Schedule = "0 3 * * *".parse().unwrap();
        let yesterday = Some(t("2026-11-21T03:00:00Z"));
        assert_eq!(
            due(&daily, yesterday, t("2026-11-22T09:00:00Z")),
            Some(t("2026-11-22T03:00:00Z"))
        );
        assert_eq!(
            due(&daily, None, t("2026-11-22T09:00:00Z")),
            Some(t("2026-11-22T03:00:00Z"))
        );
        let today = Some(t("2026-11-22T03:00:00Z"));
        assert_eq!(due(&daily, today, t("2026-11-22T09:00:00Z")), None);
    }
}
