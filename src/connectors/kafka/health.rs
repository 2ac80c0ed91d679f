//! The connector's health in its row of `connector_state`, which
//! `GET /api/v1/connectors` shows: librdkafka's own errors (a bad property,
//! a failed TLS or SASL handshake, a broker that cannot be reached) as they
//! happen, each distinct one at most every [`WARN_EVERY`], and the points
//! written at most every [`HEALTH_EVERY`]. The consumer thread, librdkafka's
//! own threads (its log callback) and the writer report through a channel;
//! one task writes the store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use tokio::sync::mpsc;

use super::WARN_EVERY;
use crate::live::Services;
use crate::store::RunOutcome;

/// How often the points written are added to the connector's health.
pub(super) const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// What the consumer and the writer report.
#[derive(Debug)]
pub(super) enum Health {
    /// A batch of this many points is written.
    Written(u64),
    /// librdkafka reported an error (logged already).
    Failed(String),
}

/// A librdkafka error as a message: its own words, without a configuration
/// value (which may be a password).
pub(super) fn error_text(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, key, _) => format!("invalid property {key}: {desc}"),
        other => other.to_string(),
    }
}

/// Records what `events` report until every sender is gone.
pub(super) async fn record(
    ctx: Services,
    name: String,
    mut events: mpsc::UnboundedReceiver<Health>,
) {
    let mut points = 0u64;
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut recorded: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let event = match flush_at {
            Some(at) => tokio::select! {
                e = events.recv() => e,
                _ = tokio::time::sleep_until(at) => {
                    write(&ctx, &name, std::mem::take(&mut points), None).await;
                    flush_at = None;
                    continue;
                }
            },
            None => events.recv().await,
        };
        match event {
            None => {
                if points > 0 {
                    write(&ctx, &name, points, None).await;
                }
                return;
            }
            Some(Health::Written(n)) => {
                points += n;
                flush_at.get_or_insert_with(|| tokio::time::Instant::now() + HEALTH_EVERY);
            }
            Some(Health::Failed(error)) => {
                let now = Instant::now();
                if recorded.get(&error).is_none_or(|t| now - *t > WARN_EVERY) {
                    recorded.insert(error.clone(), now);
                    write(&ctx, &name, std::mem::take(&mut points), Some(error)).await;
                }
            }
        }
    }
}

async fn write(ctx: &Services, name: &str, points: u64, error: Option<String>) {
    let outcome = RunOutcome {
        finished_at: ctx.clock.now(),
        points,
        watermark: None,
        error: error.map(|e| crate::secrets::redact(&e)),
    };
    if let Err(e) = ctx.store.record_stream_health(name, &outcome).await {
        tracing::debug!(connector = %name, error = %e, "recording the kafka connector's health failed");
    }
}
