//! The ingest phases: HTTP push from concurrent clients, and a Kafka topic
//! consumed by a `kafka` connector; both into an `okrd serve` child.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use serde::Serialize;

use super::child::Child;
use super::dataset::Dataset;

/// An ingest rate.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Points stored.
    pub points: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Points per second.
    pub points_per_s: f64,
}

impl Rate {
    fn new(points: usize, seconds: f64) -> Self {
        Rate {
            points,
            seconds,
            points_per_s: points as f64 / seconds,
        }
    }
}

/// Sends `bodies` to `POST /api/v1/points` from `clients` concurrent
/// clients, each taking the next body as soon as its previous one is
/// stored.
pub async fn http_push(
    child: &Child,
    bodies: Arc<Vec<String>>,
    points: usize,
    clients: usize,
) -> anyhow::Result<Rate> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}/api/v1/points", child.base);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        let client = reqwest::Client::new();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!(
                        "push answered {}: {}",
                        response.status(),
                        response.text().await?
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Rate::new(points, started.elapsed().as_secs_f64()))
}

/// A Kafka-protocol broker: `--kafka-brokers`, or librdkafka's mock
/// cluster in this process (the real protocol over local TCP).
pub struct Broker {
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
    /// Bootstrap servers.
    pub brokers: String,
}

impl Broker {
    /// The broker at `external`, or a new mock cluster.
    pub fn start(external: Option<&str>) -> anyhow::Result<Broker> {
        Ok(match external {
            Some(b) => Broker {
                _mock: None,
                brokers: b.to_string(),
            },
            None => {
                let mock = MockCluster::new(1).context("starting librdkafka's mock cluster")?;
                let brokers = mock.bootstrap_servers();
                Broker {
                    _mock: Some(mock),
                    brokers,
                }
            }
        })
    }

    /// Whether this is the mock cluster.
    pub fn is_mock(&self) -> bool {
        self._mock.is_some()
    }

    /// Creates `topic` with `partitions` partitions and fills it with
    /// `dataset`, `per_message` points per message, each series in one
    /// partition; returns once every message is acknowledged.
    pub async fn fill(
        &self,
        topic: &str,
        partitions: i32,
        dataset: &Dataset,
        per_message: usize,
    ) -> anyhow::Result<()> {
        match &self._mock {
            Some(mock) => mock.create_topic(topic, partitions, 1)?,
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .create()?;
                let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
                for r in admin.create_topics([&new], &AdminOptions::new()).await? {
                    r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
                }
            }
        }
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "100")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .create()?;
        let mut payload = String::new();
        let mut k = 0;
        while k < dataset.points {
            let end = (k + per_message).min(dataset.points);
            payload.clear();
            if per_message == 1 {
                dataset.write_json(k, &mut payload);
            } else {
                payload.push('[');
                for j in k..end {
                    if j > k {
                        payload.push(',');
                    }
                    dataset.write_json(j, &mut payload);
                }
                payload.push(']');
            }
            let partition = (dataset.series_of(k) % partitions as usize) as i32;
            loop {
                let record = BaseRecord::<(), _>::to(topic)
                    .payload(payload.as_str())
                    .partition(partition);
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, _))
                        if e.rdkafka_error_code()
                            == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                    {
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => bail!("producing to {topic}: {e}"),
                }
            }
            producer.poll(Duration::ZERO);
            k = end;
        }
        producer.flush(Duration::from_secs(300))?;
        // Every message must still be there: a broker's retention (the mock
        // cluster keeps about 5 MB or 100,000 messages a partition) would
        // silently shrink the data set.
        let mut kept = 0;
        for partition in 0..partitions {
            let (low, high) =
                producer
                    .client()
                    .fetch_watermarks(topic, partition, Duration::from_secs(30))?;
            if low != 0 {
                bail!("{topic}/{partition} dropped its first {low} messages (retention); use more partitions");
            }
            kept += high;
        }
        let messages = dataset.points.div_ceil(per_message) as i64;
        if kept != messages {
            bail!("{topic} holds {kept} messages of {messages} produced");
        }
        Ok(())
    }
}

/// Writes a `kafka` connector named `name` for `topic` into the child's
/// connectors directory (before the child starts).
pub fn kafka_connector(
    dir: &std::path::Path,
    name: &str,
    brokers: &str,
    topic: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("connectors"))?;
    std::fs::write(
        dir.join("connectors").join("bench.yaml"),
        format!(
            "- name: {name}\n  type: kafka\n  brokers: \"{brokers}\"\n  topics: [{topic}]\n  \
             group: {topic}\n  auto_offset_reset: earliest\n"
        ),
    )?;
    Ok(())
}

/// Waits until the child's connector `name` has stored `points` points;
/// the clock starts at its first stored batch, since joining a consumer
/// group (a rebalance delay of seconds) is not ingest.
pub async fn kafka_drain(children: &[&Child], name: &str, points: usize) -> anyhow::Result<Rate> {
    let labels = [("connector", name)];
    let stored = || async {
        let mut sum = 0.0;
        for child in children {
            sum += child.sample("okrd_points_ingested_total", &labels).await?;
        }
        anyhow::Ok(sum as usize)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let (first_at, first) = loop {
        let got = stored().await?;
        if got > 0 {
            break (Instant::now(), got);
        }
        if Instant::now() > deadline {
            bail!("the kafka connector stored nothing in 120s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let got = stored().await?;
        if got >= points {
            break;
        }
        if Instant::now() > deadline {
            bail!("the kafka connector stored {got} of {points} points in 600s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Rate::new(points - first, first_at.elapsed().as_secs_f64()))
}
