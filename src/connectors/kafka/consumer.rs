//! The consumer thread and its librdkafka context: the poll loop, and the
//! callbacks (logs, errors, statistics, rebalances, commits) that reach the
//! pipeline.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::live::Services;

use super::health::{error_text, Health};
use super::pipeline::Pipeline;
use super::{TopicPartition, MAX_POLL, SHUTDOWN_DRAIN, WARN_EVERY};

/// The consumer thread: polls until shutdown, then writes what it took,
/// stores and commits its offsets, and closes the consumer.
pub(super) fn consume(config: ClientConfig, shared: Shared, topics: &[String]) -> KafkaResult<()> {
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
                let text = error_text(&e);
                let now = Instant::now();
                if warned.get(&text).is_none_or(|t| now - *t > WARN_EVERY) {
                    tracing::warn!(connector = %name, error = %text, "kafka consumer error");
                    consumer.context().report(text.clone());
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
        let _ = consumer
            .context()
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
pub(super) struct Shared {
    name: String,
    ctx: Services,
    /// librdkafka's errors go to the connector's health (also from its
    /// own threads, which call `log`).
    health: mpsc::UnboundedSender<Health>,
    shutdown: CancellationToken,
    pipe: Mutex<Pipeline>,
}

impl Shared {
    pub(super) fn new(
        name: &str,
        ctx: &Services,
        health: mpsc::UnboundedSender<Health>,
        shutdown: &CancellationToken,
        pipe: Pipeline,
    ) -> Shared {
        Shared {
            name: name.to_string(),
            ctx: ctx.clone(),
            health,
            shutdown: shutdown.clone(),
            pipe: Mutex::new(pipe),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pipeline> {
        self.pipe.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the connector's health of an error.
    fn report(&self, error: String) {
        let _ = self.health.send(Health::Failed(error));
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
                tracing::error!(connector = %name, facility = fac, "librdkafka: {message}");
                self.report(format!("librdkafka: {message}"));
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
                if !pipe.is_assigned(&tp) {
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
