//! The writer: a task that writes each batch (dead letters, then points
//! through the one ingest path), retrying with backoff while the store is
//! unreachable, and acknowledges it to the consumer.

use std::collections::BTreeMap;
use std::sync::mpsc as sync_mpsc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::live::Services;
use crate::model::Point;
use crate::store::DeadLetter;

use super::health::Health;
use super::{BatchId, WRITE_RETRY_MAX, WRITE_RETRY_MIN};

/// A batch of messages on its way to the store.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) id: BatchId,
    pub(super) points: Vec<Point>,
    pub(super) dead: Vec<DeadLetter>,
    /// Points rejected by reason, counted once the dead letters are written.
    pub(super) rejected: BTreeMap<&'static str, u64>,
    pub(super) messages: usize,
    /// Weight against `max_in_flight_points`.
    pub(super) units: usize,
}

impl Batch {
    pub(super) fn new(id: BatchId) -> Self {
        Self {
            id,
            points: Vec::new(),
            dead: Vec::new(),
            rejected: BTreeMap::new(),
            messages: 0,
            units: 0,
        }
    }
}

/// The writer's report that a batch is durably written.
#[derive(Debug)]
pub(super) struct Ack {
    pub(super) batch: BatchId,
    pub(super) units: usize,
}

/// Writes batches in order: dead letters, then points, each idempotent, so
/// a batch retried after a partial failure is written exactly once. A batch
/// is retried until written, or until shutdown, when its messages are left
/// for the next consumer to take again.
pub(super) async fn write_batches(
    ctx: Services,
    name: String,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    acks: sync_mpsc::Sender<Ack>,
    health: mpsc::UnboundedSender<Health>,
    shutdown: CancellationToken,
) {
    while let Some(batch) = batches.recv().await {
        let mut backoff = Backoff::new(WRITE_RETRY_MIN, WRITE_RETRY_MAX);
        let mut failures = 0u32;
        let started = Instant::now();
        loop {
            match write_batch(&ctx, &name, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    // The ingest path counted and logged a failed points
                    // write; dead letters are written here.
                    if failures == 0 {
                        tracing::warn!(connector = %name, error = %e, points = batch.points.len(), "writing a kafka batch failed; consumption pauses until the store is back");
                    }
                    failures += 1;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
        if failures > 0 {
            tracing::info!(connector = %name, failures, "kafka batch written after the store came back");
        }
        tracing::debug!(
            connector = %name,
            points = batch.points.len(),
            dead_letters = batch.dead.len(),
            ms = started.elapsed().as_millis() as u64,
            queued = batches.len(),
            "kafka batch written"
        );
        for (reason, n) in &batch.rejected {
            ctx.rejected(&name, reason, *n);
        }
        if let Some(first) = batch.dead.first() {
            tracing::warn!(
                connector = %name,
                dead_letters = batch.dead.len(),
                topic = %first.topic,
                partition = first.partition,
                offset = first.offset,
                error = %first.error,
                "kafka messages dead-lettered (GET /api/v1/dead-letters lists them)"
            );
        }
        let _ = health.send(Health::Written(batch.points.len() as u64));
        let ack = Ack {
            batch: batch.id,
            units: batch.units,
        };
        if acks.send(ack).is_err() {
            return;
        }
    }
}

/// Writes a batch's dead letters, then its points through the one ingest
/// path (which counts them and records the connector's success).
pub(super) async fn write_batch(
    ctx: &Services,
    name: &str,
    batch: &Batch,
) -> Result<(), crate::store::StoreError> {
    if !batch.dead.is_empty() {
        ctx.store.write_dead_letters(&batch.dead).await?;
    }
    ctx.ingest(name, &batch.points).await?;
    Ok(())
}
