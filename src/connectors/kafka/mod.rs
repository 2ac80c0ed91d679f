//! The `kafka` connector (SPEC §3): consumes topics in a consumer group and
//! writes each message's points, at least once, with nothing lost.
//!
//! Files: `consumer.rs` (the thread and librdkafka's callbacks),
//! `pipeline.rs` (the consumer side's state), `writer.rs` (the writer task),
//! `decode.rs` (messages to points), `offsets.rs` (what may be committed),
//! `health.rs` (librdkafka's errors and the points written, in the
//! connector's health that `GET /api/v1/connectors` shows).
//!
//! Two parts, joined by channels:
//! - the consumer, on a thread of its own (librdkafka's poll loop is
//!   blocking): decodes messages into batches, flushed at
//!   `batch_max_points` points or `batch_max_wait` after a batch's first
//!   message; bad messages go into the batch as dead letters;
//! - the writer, a task: writes each batch's dead letters, then its points,
//!   retrying with backoff while the store is unreachable, and reports the
//!   batch finished.
//!
//! Offsets: librdkafka commits only offsets okrd stored, and okrd stores a
//! partition's offset only past messages whose batch and every batch before
//! it are written ([`offsets::Tracker`]). Stored offsets are also committed
//! when partitions are revoked (after waiting a while for their batches)
//! and at shutdown (after writing what was taken). A crash loses nothing:
//! what was not committed is consumed again, and writing it again changes
//! nothing, as points and dead letters are idempotent.
//!
//! Backpressure: at `max_in_flight_points` taken but unwritten, the
//! consumer stops taking messages: it waits for the writer, and if the
//! writer stays behind (the store is slow or unreachable) it pauses the
//! assigned partitions, and resumes them below half of it; so an
//! unreachable store pauses consumption until it is back.

mod consumer;
mod decode;
mod health;
mod offsets;
mod pipeline;
mod writer;

pub use consumer::partition_label;
pub use decode::{Decoder, Rejection, INVALID_JSON};
pub use offsets::{BatchId, TopicPartition, Tracker};

use consumer::{consume, Shared};
use health::{error_text, Health};
use pipeline::Pipeline;
use writer::write_batches;

use std::sync::mpsc as sync_mpsc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::connector::{KafkaSource, OffsetReset};
use crate::live::Services;

/// How long a revocation waits for the revoked partitions' batches to be
/// written before committing what is; the rest is consumed again by the
/// partitions' next owner.
const REVOKE_DRAIN: Duration = Duration::from_secs(15);

/// How long the consumer waits for a writer that is behind before pausing
/// its partitions.
const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// How long shutdown waits for the batches taken to be written.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(30);

/// The longest a poll blocks: acknowledgements and shutdown are looked at
/// between polls.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Retry delays of a failed batch write.
const WRITE_RETRY_MIN: Duration = Duration::from_millis(100);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Restart delays of a consumer that failed.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// How often librdkafka reports statistics (the consumer lag), unless the
/// connector's `properties` say otherwise.
const STATS_INTERVAL_MS: &str = "5000";

/// See [`client_config`].
const FETCH_QUEUE_BACKOFF_MS: &str = "20";

/// A dead letter's weight against `max_in_flight_points`: one point per
/// this many payload bytes kept, so held payloads stay bounded too.
const DEAD_LETTER_BYTES_PER_POINT: usize = 256;

/// The same consumer warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Runs the connector `name` until `shutdown`. A consumer that fails is
/// restarted after a growing delay; a store that fails pauses consumption.
pub async fn run(ctx: Services, name: String, source: KafkaSource, shutdown: CancellationToken) {
    let (health_tx, health_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(health::record(ctx.clone(), name.clone(), health_rx));
    consume_until_shutdown(&ctx, &name, &source, &shutdown, health_tx).await;
    let _ = recorder.await;
}

async fn consume_until_shutdown(
    ctx: &Services,
    name: &str,
    source: &KafkaSource,
    shutdown: &CancellationToken,
    health: mpsc::UnboundedSender<Health>,
) {
    let mut backoff = Backoff::new(RESTART_MIN, RESTART_MAX);
    loop {
        let started = Instant::now();
        match run_consumer(ctx, name, source, shutdown, &health).await {
            Ok(()) => return,
            Err(e) => {
                ctx.metrics
                    .connector_errors
                    .with_label_values(&[name, "kafka"])
                    .inc();
                let text = error_text(&e);
                tracing::error!(connector = %name, error = %text, retry_in = ?backoff.peek(), "kafka consumer failed");
                let _ = health.send(Health::Failed(text));
            }
        }
        if started.elapsed() > RESTART_MAX {
            backoff.reset();
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One consumer's life: until shutdown (Ok) or a fatal consumer error.
async fn run_consumer(
    ctx: &Services,
    name: &str,
    source: &KafkaSource,
    shutdown: &CancellationToken,
    health: &mpsc::UnboundedSender<Health>,
) -> KafkaResult<()> {
    let (batches_tx, batches_rx) = mpsc::unbounded_channel();
    let (acks_tx, acks_rx) = sync_mpsc::channel();
    let writer = tokio::spawn(write_batches(
        ctx.clone(),
        name.to_string(),
        batches_rx,
        acks_tx,
        health.clone(),
        shutdown.clone(),
    ));
    let pipe = Pipeline::new(name, source, ctx, batches_tx, acks_rx, shutdown);
    let shared = Shared::new(name, ctx, health.clone(), shutdown, pipe);
    let config = client_config(source);
    let topics = source.topics.clone();
    // librdkafka's poll loop blocks: it gets a thread of its own.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("kafka-{name}").chars().take(15).collect())
        .spawn(move || {
            let _ = done_tx.send(consume(config, shared, &topics));
        });
    let consumed = match thread {
        Ok(_) => done_rx.await,
        Err(e) => {
            tracing::error!(connector = %name, error = %e, "cannot start the kafka consumer thread");
            Ok(Err(KafkaError::Canceled))
        }
    };
    // The writer ends once the consumer's sender is gone and its queue is
    // written (or at shutdown, when the store fails).
    let _ = writer.await;
    match consumed {
        Ok(result) => result,
        Err(_) => {
            tracing::error!(connector = %name, "kafka consumer thread panicked");
            Err(KafkaError::Canceled)
        }
    }
}

/// The librdkafka configuration of a connector.
pub fn client_config(source: &KafkaSource) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &source.brokers)
        .set("group.id", &source.group)
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", STATS_INTERVAL_MS)
        // librdkafka waits this long to fetch again once its local queue is
        // over its thresholds; its default (1 s) caps a busy consumer far
        // below what it can take. okrd bounds what it holds itself.
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        .set(
            "auto.offset.reset",
            match source.auto_offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
            },
        );
    for (k, v) in &source.properties {
        c.set(k, v);
    }
    // librdkafka commits (periodically, on revocation and on close) only
    // the offsets okrd stores, once their points are written.
    c.set("enable.auto.offset.store", "false");
    c
}
