//! The `kafka` connector (SPEC §3): consumes topics in a consumer group and
//! writes each message's points, at least once, with nothing lost.
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

mod decode;
mod offsets;

pub use decode::{Decoder, Rejection, INVALID_JSON};
pub use offsets::{BatchId, TopicPartition, Tracker};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc as sync_mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::connector::{KafkaSource, OffsetReset};
use crate::live::Services;
use crate::model::Point;
use crate::store::DeadLetter;

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
    let mut backoff = Backoff::new(RESTART_MIN, RESTART_MAX);
    loop {
        let started = Instant::now();
        match run_consumer(&ctx, &name, &source, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                ctx.metrics
                    .connector_errors
                    .with_label_values(&[&name, "kafka"])
                    .inc();
                tracing::error!(connector = %name, error = %e, retry_in = ?backoff.peek(), "kafka consumer failed");
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
) -> KafkaResult<()> {
    let (batches_tx, batches_rx) = mpsc::unbounded_channel();
    let (acks_tx, acks_rx) = sync_mpsc::channel();
    let writer = tokio::spawn(write_batches(
        ctx.clone(),
        name.to_string(),
        batches_rx,
        acks_tx,
        shutdown.clone(),
    ));
    let shared = Shared {
        name: name.to_string(),
        ctx: ctx.clone(),
        shutdown: shutdown.clone(),
        pipe: Mutex::new(Pipeline::new(
            name, source, ctx, batches_tx, acks_rx, shutdown,
        )),
    };
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

/// A batch of messages on its way to the store.
#[derive(Debug)]
struct Batch {
    id: BatchId,
    points: Vec<Point>,
    dead: Vec<DeadLetter>,
    /// Points rejected by reason, counted once the dead letters are written.
    rejected: BTreeMap<&'static str, u64>,
    messages: usize,
    /// Weight against `max_in_flight_points`.
    units: usize,
}

impl Batch {
    fn new(id: BatchId) -> Self {
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
struct Ack {
    batch: BatchId,
    units: usize,
}

/// Writes batches in order: dead letters, then points, each idempotent, so
/// a batch retried after a partial failure is written exactly once. A batch
/// is retried until written, or until shutdown, when its messages are left
/// for the next consumer to take again.
async fn write_batches(
    ctx: Services,
    name: String,
    mut batches: mpsc::UnboundedReceiver<Batch>,
    acks: sync_mpsc::Sender<Ack>,
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
async fn write_batch(
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

/// The consumer thread: polls until shutdown, then writes what it took,
/// stores and commits its offsets, and closes the consumer.
fn consume(config: ClientConfig, shared: Shared, topics: &[String]) -> KafkaResult<()> {
    let shutdown = shared.shutdown.clone();
    let name = shared.name.clone();
    let consumer: BaseConsumer<Shared> = config.create_with_context(shared)?;
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(connector = %name, topics = ?topics, "kafka consumer started");
    let mut warned: BTreeMap<String, Instant> = BTreeMap::new();
    let mut timeout = MAX_POLL;
    while !shutdown.is_cancelled() {
        let polled = consumer.poll(timeout);
        // One lock per message: librdkafka's callbacks (which take it too)
        // run only inside `poll`.
        let mut pipe = consumer.context().lock();
        match polled {
            Some(Ok(message)) => pipe.accept(&message),
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                return Err(KafkaError::MessageConsumptionFatal(code));
            }
            Some(Err(e)) => {
                let text = e.to_string();
                let now = Instant::now();
                if warned.get(&text).is_none_or(|t| now - *t > WARN_EVERY) {
                    tracing::warn!(connector = %name, error = %text, "kafka consumer error");
                    warned.insert(text, now);
                }
            }
            None => {}
        }
        pipe.take_acks(&consumer);
        timeout = pipe.housekeeping(&consumer);
    }
    {
        let mut pipe = consumer.context().lock();
        pipe.drain(&consumer, SHUTDOWN_DRAIN);
        pipe.commit(&consumer, None);
        let _ = pipe
            .ctx
            .metrics
            .kafka_in_flight
            .remove_label_values(&[&name]);
    }
    tracing::info!(connector = %name, "kafka consumer stopped");
    // Dropping closes the consumer: it leaves the group, and the revocation
    // that brings finds nothing left to wait for.
    drop(consumer);
    Ok(())
}

/// The consumer's context: the pipeline, reachable from the poll loop and
/// from librdkafka's callbacks (which run inside `poll`, on the same
/// thread, never while the loop holds the lock).
struct Shared {
    name: String,
    ctx: Services,
    shutdown: CancellationToken,
    pipe: Mutex<Pipeline>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pipeline> {
        self.pipe.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for Shared {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let name = &self.name;
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(connector = %name, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(connector = %name, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(connector = %name, facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(connector = %name, facility = fac, "librdkafka: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Also returned by `poll`, where it is logged (rate-limited).
        tracing::debug!(connector = %self.name, error = %error, reason, "librdkafka error");
    }

    fn stats(&self, stats: Statistics) {
        // Only the assigned partitions: the statistics also list the
        // subscribed topics' other partitions, with no lag.
        let Ok(pipe) = self.pipe.try_lock() else {
            return;
        };
        let lag = &self.ctx.metrics.kafka_consumer_lag;
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                let tp = (topic.clone(), *partition);
                if !pipe.assigned.contains(&tp) {
                    continue;
                }
                let value = if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag
                };
                if value >= 0 {
                    lag.with_label_values(&[&self.name, &partition_label(&tp)])
                        .set(value);
                }
            }
        }
    }
}

/// The `partition` label of `okrd_kafka_consumer_lag`: `topic/partition`,
/// since a connector may consume several topics.
pub fn partition_label(tp: &TopicPartition) -> String {
    format!("{}/{}", tp.0, tp.1)
}

impl ConsumerContext for Shared {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<TopicPartition> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            self.lock().revoke(consumer, &revoked, &self.shutdown);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned: Vec<TopicPartition> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(connector = %self.name, partitions = ?assigned, "kafka partitions assigned");
                self.lock().assign(consumer, assigned, tpl);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(connector = %self.name, error = %e, "kafka rebalance failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(connector = %self.name, error = %e, "committing kafka offsets failed; they are committed again with the next ones");
        }
    }
}

/// The consumer side's state.
struct Pipeline {
    name: String,
    ctx: Services,
    max_points: usize,
    max_wait: Duration,
    max_in_flight: usize,
    decoder: Decoder,
    tracker: Tracker,
    batch: Batch,
    /// When the open batch got its first message.
    opened: Option<Instant>,
    to_writer: Option<mpsc::UnboundedSender<Batch>>,
    acks: sync_mpsc::Receiver<Ack>,
    shutdown: CancellationToken,
    /// Units taken and not yet written.
    in_flight: usize,
    /// `okrd_kafka_in_flight_points` of this connector.
    in_flight_gauge: prometheus::IntGauge,
    paused: bool,
    assigned: BTreeSet<TopicPartition>,
    /// Offsets stored since the last explicit commit.
    stored: BTreeMap<TopicPartition, i64>,
    /// The partition of the previous message: messages come in runs per
    /// partition, so its key is rarely built anew.
    last_tp: TopicPartition,
}

impl Pipeline {
    fn new(
        name: &str,
        source: &KafkaSource,
        ctx: &Services,
        to_writer: mpsc::UnboundedSender<Batch>,
        acks: sync_mpsc::Receiver<Ack>,
        shutdown: &CancellationToken,
    ) -> Self {
        Self {
            name: name.to_string(),
            ctx: ctx.clone(),
            max_points: source.batch_max_points.max(1),
            max_wait: source.batch_max_wait,
            max_in_flight: source.max_in_flight_points.max(source.batch_max_points),
            decoder: Decoder::new(source.mapping.clone()),
            tracker: Tracker::default(),
            batch: Batch::new(0),
            opened: None,
            to_writer: Some(to_writer),
            acks,
            shutdown: shutdown.clone(),
            in_flight: 0,
            in_flight_gauge: ctx.metrics.kafka_in_flight.with_label_values(&[name]),
            paused: false,
            assigned: BTreeSet::new(),
            stored: BTreeMap::new(),
            last_tp: (String::new(), -1),
        }
    }

    /// Between polls: flushes a batch that is due, applies backpressure,
    /// and returns how long the next poll may block (until the open batch
    /// is due). The clock is read only while a batch is open.
    fn housekeeping(&mut self, consumer: &BaseConsumer<Shared>) -> Duration {
        let mut timeout = MAX_POLL;
        if let Some(opened) = self.opened {
            let left = (opened + self.max_wait).saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.flush();
            } else {
                timeout = left.min(MAX_POLL);
            }
        }
        self.apply_backpressure(consumer);
        self.in_flight_gauge.set(self.in_flight as i64);
        timeout
    }

    /// Takes one message into the open batch.
    fn accept(&mut self, message: &BorrowedMessage<'_>) {
        if self.last_tp.1 != message.partition() || self.last_tp.0 != message.topic() {
            self.last_tp = (message.topic().to_string(), message.partition());
        }
        let payload = message.payload();
        let units = match self.decoder.decode(payload, &mut self.batch.points) {
            Ok(n) => n.max(1),
            Err(rejection) => {
                let (kept, size) = DeadLetter::cut_payload(payload.unwrap_or_default());
                let units = 1 + kept.len() / DEAD_LETTER_BYTES_PER_POINT;
                *self.batch.rejected.entry(rejection.reason).or_default() += rejection.items as u64;
                self.batch.dead.push(DeadLetter {
                    connector: self.name.clone(),
                    topic: self.last_tp.0.clone(),
                    partition: self.last_tp.1,
                    offset: message.offset(),
                    reason: rejection.reason.to_string(),
                    error: rejection.message,
                    payload: kept,
                    payload_size: size,
                    received_at: self.ctx.clock.now(),
                });
                units
            }
        };
        self.tracker
            .received(&self.last_tp, message.offset(), self.batch.id);
        self.batch.messages += 1;
        self.batch.units += units;
        self.in_flight += units;
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
        }
        if self.batch.points.len() >= self.max_points || self.batch.units >= self.max_points {
            self.flush();
        }
    }

    /// Hands the open batch to the writer.
    fn flush(&mut self) {
        if self.batch.messages == 0 {
            return;
        }
        let next = Batch::new(self.batch.id + 1);
        let batch = std::mem::replace(&mut self.batch, next);
        self.opened = None;
        if let Some(tx) = &self.to_writer {
            // A writer that is gone leaves the batch's offsets unstored:
            // its messages are consumed again.
            let _ = tx.send(batch);
        }
    }

    /// Takes the writer's acknowledgements and stores the offsets they
    /// complete.
    fn take_acks(&mut self, consumer: &BaseConsumer<Shared>) {
        let mut any = false;
        while let Ok(ack) = self.acks.try_recv() {
            self.finish(ack);
            any = true;
        }
        if any {
            self.store_offsets(consumer);
        }
    }

    fn finish(&mut self, ack: Ack) {
        self.in_flight = self.in_flight.saturating_sub(ack.units);
        for (tp, next) in self.tracker.finished(ack.batch) {
            if self.assigned.contains(&tp) {
                self.stored.insert(tp, next);
            }
        }
    }

    /// Hands the finished offsets to librdkafka, which commits them.
    fn store_offsets(&mut self, consumer: &BaseConsumer<Shared>) {
        if self.stored.is_empty() {
            return;
        }
        let tpl = self.offsets(None);
        if let Err(e) = consumer.store_offsets(&tpl) {
            tracing::debug!(connector = %self.name, error = %e, "storing kafka offsets failed");
        }
    }

    /// The stored offsets, of `only` these partitions when given.
    fn offsets(&self, only: Option<&[TopicPartition]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &self.stored {
            if only.is_none_or(|o| o.iter().any(|(t, p)| t == topic && p == partition)) {
                // Only an invalid partition number can fail here.
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
        }
        tpl
    }

    /// Commits the stored offsets (of `only` these partitions) and waits for
    /// the broker's answer.
    fn commit(&mut self, consumer: &BaseConsumer<Shared>, only: Option<&[TopicPartition]>) {
        let tpl = self.offsets(only);
        if tpl.count() == 0 {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                tracing::debug!(connector = %self.name, offsets = ?self.stored, "kafka offsets committed")
            }
            Err(e) => {
                tracing::warn!(connector = %self.name, error = %e, "committing kafka offsets failed")
            }
        }
    }

    /// Backpressure. At `max_in_flight`, first waits (not polling) for the
    /// writer to catch up: that keeps librdkafka's prefetched messages,
    /// which pausing would drop and fetch again. If the writer stays behind
    /// for [`PAUSE_AFTER`] (the store is slow or down), pauses the assigned
    /// partitions, so polling goes on (the group keeps its member) without
    /// taking messages; resumes them once half of it is written.
    fn apply_backpressure(&mut self, consumer: &BaseConsumer<Shared>) {
        if self.paused {
            if self.in_flight <= self.max_in_flight / 2 {
                self.set_paused(consumer, false);
            }
            return;
        }
        if self.in_flight < self.max_in_flight {
            return;
        }
        // What was taken must reach the writer before waiting for it.
        self.flush();
        let deadline = Instant::now() + PAUSE_AFTER;
        self.wait_for_acks(
            deadline,
            |p| p.in_flight < p.max_in_flight,
            |p| p.shutdown.is_cancelled(),
        );
        self.store_offsets(consumer);
        tracing::debug!(connector = %self.name, waited_ms = (PAUSE_AFTER - deadline.saturating_duration_since(Instant::now())).as_millis() as u64, "kafka consumer waited for the writer");
        if self.in_flight >= self.max_in_flight {
            self.set_paused(consumer, true);
        }
    }

    fn set_paused(&mut self, consumer: &BaseConsumer<Shared>, pause: bool) {
        let tpl = self.assignment_list(&self.assigned);
        let result = if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        match result {
            Ok(()) => {
                self.paused = pause;
                tracing::info!(
                    connector = %self.name,
                    in_flight = self.in_flight,
                    "{}",
                    if pause {
                        "kafka consumption paused: the store is not keeping up"
                    } else {
                        "kafka consumption resumed"
                    }
                );
            }
            Err(e) => {
                tracing::warn!(connector = %self.name, error = %e, "pausing or resuming kafka partitions failed")
            }
        }
    }

    fn assignment_list(&self, partitions: &BTreeSet<TopicPartition>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        tpl
    }

    fn assign(
        &mut self,
        consumer: &BaseConsumer<Shared>,
        partitions: Vec<TopicPartition>,
        tpl: &TopicPartitionList,
    ) {
        self.assigned.extend(partitions);
        if self.paused {
            if let Err(e) = consumer.pause(tpl) {
                tracing::warn!(connector = %self.name, error = %e, "pausing newly assigned kafka partitions failed");
            }
        }
    }

    /// Before partitions go: writes what was taken of them (waiting up to
    /// [`REVOKE_DRAIN`]), commits their finished offsets, and forgets them.
    fn revoke(
        &mut self,
        consumer: &BaseConsumer<Shared>,
        revoked: &[TopicPartition],
        shutdown: &CancellationToken,
    ) {
        self.flush();
        let written = self.wait_for_acks(
            Instant::now() + REVOKE_DRAIN,
            |p| !revoked.iter().any(|tp| p.tracker.is_pending(tp)),
            |p| shutdown.is_cancelled() && p.to_writer.is_none(),
        );
        if !written {
            tracing::warn!(connector = %self.name, "kafka partitions revoked before their messages were written; their next owner consumes them again");
        }
        self.store_offsets(consumer);
        if !consumer.assignment_lost() {
            self.commit(consumer, Some(revoked));
        }
        let lag = &self.ctx.metrics.kafka_consumer_lag;
        for tp in revoked {
            self.tracker.forget(tp);
            self.stored.remove(tp);
            self.assigned.remove(tp);
            let _ = lag.remove_label_values(&[&self.name, &partition_label(tp)]);
        }
        tracing::info!(connector = %self.name, partitions = ?revoked, "kafka partitions revoked");
    }

    /// At shutdown: hands the open batch to the writer, closes its queue,
    /// and takes its acknowledgements until it is done (or `limit` passes).
    fn drain(&mut self, consumer: &BaseConsumer<Shared>, limit: Duration) {
        self.flush();
        self.to_writer = None;
        if !self.wait_for_acks(Instant::now() + limit, |p| p.tracker.is_idle(), |_| false) {
            tracing::warn!(connector = %self.name, "kafka shutdown: batches still unwritten; they are consumed again at the next start");
        }
        self.store_offsets(consumer);
    }

    /// Takes the writer's acknowledgements until `done`, `deadline`, `stop`
    /// or the writer's end; whether `done` holds then. The one wait for
    /// the writer (backpressure, revocation, shutdown).
    fn wait_for_acks(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Self) -> bool,
        stop: impl Fn(&Self) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stop(self) {
                return false;
            }
            match self.acks.recv_timeout(left.min(MAX_POLL)) {
                Ok(ack) => self.finish(ack),
                Err(sync_mpsc::RecvTimeoutError::Timeout) => {}
                Err(sync_mpsc::RecvTimeoutError::Disconnected) => return done(self),
            }
        }
    }
}
