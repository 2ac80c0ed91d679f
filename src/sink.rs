//! The one ingest path. Every source (`POST /api/v1/points`, the
//! scheduler's pull connectors, the Kafka consumer, the demo connector)
//! hands its points to [`Services::ingest`], which writes them (one batched,
//! idempotent transaction), counts them, records the source's last success
//! and marks their metrics dirty for the scorer. A failed write is counted
//! under reason `store` and returned to the caller, which decides whether to
//! retry.
//!
//! Each event emits its counter and its log line together, from one type,
//! so that their labels cannot drift (after vector's `internal_events`).

use crate::live::Services;
use crate::metrics::Metrics;
use crate::model::{Point, Timestamp};
use crate::store::{no_progress, StoreError};

/// The `reason` of `okrd_connector_errors_total` for a failed write.
pub const STORE_REASON: &str = "store";

/// Points a source got written.
struct Ingested<'a> {
    source: &'a str,
    points: usize,
    at: Timestamp,
}

impl Ingested<'_> {
    fn emit(&self, m: &Metrics) {
        m.points_ingested
            .with_label_values(&[self.source])
            .inc_by(self.points as u64);
        m.connector_last_success
            .with_label_values(&[self.source])
            .set(self.at.timestamp_micros() as f64 / 1e6);
        tracing::debug!(source = self.source, points = self.points, "points written");
    }
}

/// A write that the store refused or could not take.
struct WriteFailed<'a> {
    source: &'a str,
    points: usize,
    error: &'a StoreError,
}

impl WriteFailed<'_> {
    fn emit(&self, m: &Metrics) {
        m.connector_errors
            .with_label_values(&[self.source, STORE_REASON])
            .inc();
        tracing::warn!(source = self.source, points = self.points, error = %self.error, "writing points failed");
    }
}

/// Items a source could not read as points.
struct Rejected<'a> {
    source: &'a str,
    reason: &'a str,
    count: u64,
}

impl Rejected<'_> {
    fn emit(&self, m: &Metrics) {
        m.points_rejected
            .with_label_values(&[self.source, self.reason])
            .inc_by(self.count);
        tracing::debug!(
            source = self.source,
            reason = self.reason,
            count = self.count,
            "points rejected"
        );
    }
}

impl Services {
    /// Writes `source`'s points, then counts them, records the source's
    /// success and marks their metrics dirty. No points is a success too
    /// (a pull that found nothing new). Returns how many were stored.
    pub async fn ingest(&self, source: &str, points: &[Point]) -> Result<usize, StoreError> {
        let stored = if points.is_empty() {
            0
        } else {
            match self.store.write_points(points, &no_progress).await {
                Ok(n) => n,
                Err(error) => {
                    WriteFailed {
                        source,
                        points: points.len(),
                        error: &error,
                    }
                    .emit(&self.metrics);
                    return Err(error);
                }
            }
        };
        Ingested {
            source,
            points: points.len(),
            at: self.clock.now(),
        }
        .emit(&self.metrics);
        self.live.points_written(points);
        Ok(stored)
    }

    /// Counts `count` items of `source` rejected for `reason`.
    pub fn rejected(&self, source: &str, reason: &str, count: u64) {
        Rejected {
            source,
            reason,
            count,
        }
        .emit(&self.metrics);
    }
}
