//! A Kafka-protocol broker for tests: librdkafka's mock cluster (the real
//! protocol over local TCP, in this process), or the broker at
//! `OKRD_TEST_KAFKA_BROKERS` when set, so the same tests run against a
//! real Kafka too. Every test gets topics and groups of its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// The variable naming a real broker's bootstrap servers.
pub const BROKERS_VAR: &str = "OKRD_TEST_KAFKA_BROKERS";

/// A broker to test against.
pub struct Kafka {
    // Kept alive for the test's duration; dropping it stops the brokers.
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
    tls: Option<TlsBroker>,
    brokers: String,
    producer: FutureProducer,
}

/// A mock broker behind TLS: the client that owns the mock cluster, and
/// stunnel in front of it.
struct TlsBroker {
    owner: FutureProducer,
    _stunnel: super::tls::Stunnel,
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Kafka {
    /// The broker at `OKRD_TEST_KAFKA_BROKERS`, or a new mock cluster.
    pub fn start() -> Kafka {
        let (mock, brokers) = match std::env::var(BROKERS_VAR) {
            Ok(b) if !b.trim().is_empty() => (None, b),
            _ => {
                let mock = MockCluster::new(1).expect("start librdkafka's mock cluster");
                let brokers = mock.bootstrap_servers();
                (Some(mock), brokers)
            }
        };
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "5")
            .create()
            .expect("create producer");
        Kafka {
            _mock: mock,
            tls: None,
            brokers,
            producer,
        }
    }

    /// A mock cluster of one broker reached over TLS only: stunnel (with
    /// `certs`) in front of it, and the broker advertising stunnel's port
    /// as `localhost`, so every connection, bootstrap or not, is TLS. The
    /// test producer speaks TLS too.
    pub fn start_tls(certs: &super::tls::Certs) -> Kafka {
        let owner: FutureProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()
            .expect("start librdkafka's mock cluster");
        let bootstrap = owner
            .client()
            .mock_cluster()
            .expect("a mock cluster")
            .bootstrap_servers();
        let plain_port: u16 = bootstrap
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the mock broker's port");
        let stunnel = super::tls::Stunnel::start(certs, plain_port);
        let host = std::ffi::CString::new("localhost").unwrap();
        // SAFETY: the cluster belongs to `owner`, alive for this call and
        // kept for the test's duration; the host is copied.
        unsafe {
            let cluster = rdkafka_sys::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            assert!(!cluster.is_null());
            rdkafka_sys::rd_kafka_mock_broker_set_host_port(
                cluster,
                1,
                host.as_ptr(),
                i32::from(stunnel.port),
            );
        }
        let brokers = format!("localhost:{}", stunnel.port);
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", certs.ca.to_str().unwrap())
            .set("linger.ms", "5")
            .create()
            .expect("create producer");
        Kafka {
            _mock: None,
            tls: Some(TlsBroker {
                owner,
                _stunnel: stunnel,
            }),
            brokers,
            producer,
        }
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Creates a topic of `partitions` partitions with a unique name.
    pub async fn topic(&self, partitions: i32) -> String {
        let name = unique("okrd-test");
        if let Some(tls) = &self.tls {
            tls.owner
                .client()
                .mock_cluster()
                .expect("a mock cluster")
                .create_topic(&name, partitions, 1)
                .expect("create mock topic");
            return name;
        }
        match &self._mock {
            Some(mock) => mock
                .create_topic(&name, partitions, 1)
                .expect("create mock topic"),
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .create()
                    .expect("create admin client");
                let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
                let results = admin
                    .create_topics([&topic], &AdminOptions::new())
                    .await
                    .expect("create topic");
                for r in results {
                    r.expect("create topic");
                }
            }
        }
        name
    }

    /// Produces `payloads` to `topic`, message i to partition
    /// `i % partitions`, and returns each message's (partition, offset).
    pub async fn produce(
        &self,
        topic: &str,
        partitions: i32,
        payloads: &[Vec<u8>],
    ) -> Vec<(i32, i64)> {
        let mut pending = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            let partition = i as i32 % partitions;
            loop {
                let record = FutureRecord::<(), _>::to(topic)
                    .payload(p)
                    .partition(partition);
                match self.producer.send_result(record) {
                    Ok(f) => {
                        pending.push(f);
                        break;
                    }
                    // The local queue is full: let it drain.
                    Err((_, _)) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }
        let mut out = Vec::with_capacity(pending.len());
        for f in pending {
            let d = f
                .await
                .expect("delivery report")
                .unwrap_or_else(|(e, _)| panic!("produce failed: {e}"));
            out.push((d.partition, d.offset));
        }
        out
    }

    /// The offsets `group` committed for `topic`'s partitions (-1: none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .create()
            .expect("create consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("fetch committed offsets");
        got.elements()
            .iter()
            .map(|e| {
                let o = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                };
                (e.partition(), o)
            })
            .collect()
    }
}
