//! The consumer side's state: the open batch, offsets, backpressure,
//! assignment and revocation, and the waits for the writer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc as sync_mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::connector::KafkaSource;
use crate::live::Services;
use crate::store::DeadLetter;

use super::consumer::{partition_label, Shared};
use super::writer::{Ack, Batch};
use super::{
    Decoder, TopicPartition, Tracker, DEAD_LETTER_BYTES_PER_POINT, MAX_POLL, PAUSE_AFTER,
    REVOKE_DRAIN,
};

/// The consumer side's state.
pub(super) struct Pipeline {
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
    pub(super) fn new(
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

    /// Whether the partition is assigned to this consumer now.
    pub(super) fn is_assigned(&self, tp: &TopicPartition) -> bool {
        self.assigned.contains(tp)
    }

    /// Between polls: flushes a batch that is due, applies backpressure,
    /// and returns how long the next poll may block (until the open batch
    /// is due). The clock is read only while a batch is open.
    pub(super) fn housekeeping(&mut self, consumer: &BaseConsumer<Shared>) -> Duration {
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
    pub(super) fn accept(&mut self, message: &BorrowedMessage<'_>) {
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
    pub(super) fn flush(&mut self) {
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
    pub(super) fn take_acks(&mut self, consumer: &BaseConsumer<Shared>) {
        let mut any = false;
        while let Ok(ack) = self.acks.try_recv() {
            self.finish(ack);
            any = true;
        }
        if any {
            self.store_offsets(consumer);
        }
    }

    pub(super) fn finish(&mut self, ack: Ack) {
        self.in_flight = self.in_flight.saturating_sub(ack.units);
        for (tp, next) in self.tracker.finished(ack.batch) {
            if self.assigned.contains(&tp) {
                self.stored.insert(tp, next);
            }
        }
    }

    /// Hands the finished offsets to librdkafka, which commits them.
    pub(super) fn store_offsets(&mut self, consumer: &BaseConsumer<Shared>) {
        if self.stored.is_empty() {
            return;
        }
        let tpl = self.offsets(None);
        if let Err(e) = consumer.store_offsets(&tpl) {
            tracing::debug!(connector = %self.name, error = %e, "storing kafka offsets failed");
        }
    }

    /// The stored offsets, of `only` these partitions when given.
    pub(super) fn offsets(&self, only: Option<&[TopicPartition]>) -> TopicPartitionList {
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
    pub(super) fn commit(
        &mut self,
        consumer: &BaseConsumer<Shared>,
        only: Option<&[TopicPartition]>,
    ) {
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
    pub(super) fn apply_backpressure(&mut self, consumer: &BaseConsumer<Shared>) {
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

    pub(super) fn set_paused(&mut self, consumer: &BaseConsumer<Shared>, pause: bool) {
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

    pub(super) fn assignment_list(
        &self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in partitions {
            tpl.add_partition(topic, *partition);
        }
        tpl
    }

    pub(super) fn assign(
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
    pub(super) fn revoke(
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
    pub(super) fn drain(&mut self, consumer: &BaseConsumer<Shared>, limit: Duration) {
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
    pub(super) fn wait_for_acks(
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
