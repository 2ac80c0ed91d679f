//! The `kafka` connector against a real Kafka-protocol broker: librdkafka's
//! mock cluster, or the broker at `OKRD_TEST_KAFKA_BROKERS` (see
//! `common/kafka.rs`).
//!
//! - malformed messages mixed in: exactly the valid points stored, once
//!   each; every bad message dead-lettered; offsets committed past both;
//! - the real binary killed mid-stream (no commit) and restarted: every
//!   point exactly once, and what was not committed consumed again;
//! - the store (a real PostgreSQL) unreachable for a while: consumption
//!   pauses, nothing is lost, and the consumer lag shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::http;
use crate::common::kafka::{unique, Kafka};
use crate::common::server::{signal, Server};
use crate::common::wait::eventually;
use okrd::clock::SystemClock;
use okrd::config::connector::{KafkaSource, OffsetReset};
use okrd::config::{Config, ServiceConfig};
use okrd::live::{Live, Services};
use okrd::metrics::Metrics;
use okrd::store::{DeadLetterQuery, Store};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_790_812_800; // 2026-10-01T00:00:00Z
const WAIT: Duration = Duration::from_secs(60);

/// What a set of produced messages should leave behind.
#[derive(Debug, Default)]
struct Expected {
    points: i64,
    value_sum: f64,
    /// Message index to its reject reason.
    dead: BTreeMap<usize, &'static str>,
    /// Points rejected by reason (an array counts each item).
    rejected: BTreeMap<&'static str, u64>,
}

/// `n` messages from index `from`: mostly valid points (one per message, or
/// an array of three), every tenth one bad in one of several ways. Every
/// point is a series and ts of its own, so stored == distinct.
fn messages(from: usize, n: usize, with_bad: bool) -> (Vec<Vec<u8>>, Expected) {
    let mut e = Expected::default();
    let point = |i: usize, j: usize| {
        json!({"metric": "kafka_test", "labels": {"i": i.to_string(), "j": j.to_string()},
               "ts": T0 + i as i64, "value": (i * 10 + j) as f64})
    };
    let mut out = Vec::with_capacity(n);
    for i in from..from + n {
        let payload = match i % 10 {
            7 if with_bad => {
                let (p, reason, items) = match (i / 10) % 6 {
                    0 => (b"{not json".to_vec(), "invalid_json", 1),
                    1 => (
                        json!({"metric": "kafka_test", "ts": T0, "value": "NaN"})
                            .to_string()
                            .into_bytes(),
                        "invalid_value",
                        1,
                    ),
                    2 => (
                        json!({"metric": "kafka_test", "ts": "yesterday", "value": 1})
                            .to_string()
                            .into_bytes(),
                        "invalid_ts",
                        1,
                    ),
                    3 => (b"42".to_vec(), "invalid_shape", 1),
                    4 => (
                        json!({"metric": "kafka_test", "ts": T0, "value": 1, "unit": "%"})
                            .to_string()
                            .into_bytes(),
                        "invalid_shape",
                        1,
                    ),
                    // One bad item rejects the whole message.
                    _ => (
                        json!([point(i, 0), {"metric": "kafka_test", "ts": T0}])
                            .to_string()
                            .into_bytes(),
                        "invalid_value",
                        2,
                    ),
                };
                e.dead.insert(i, reason);
                *e.rejected.entry(reason).or_default() += items;
                p
            }
            3 => {
                let items: Vec<Value> = (0..3).map(|j| point(i, j)).collect();
                e.points += 3;
                e.value_sum += (0..3).map(|j| (i * 10 + j) as f64).sum::<f64>();
                Value::Array(items).to_string().into_bytes()
            }
            _ => {
                e.points += 1;
                e.value_sum += (i * 10) as f64;
                point(i, 0).to_string().into_bytes()
            }
        };
        out.push(payload);
    }
    (out, e)
}

/// Counts the stored points and sums their values, on a connection of its
/// own.
async fn stored(url: &str) -> (i64, f64) {
    let sql = "SELECT count(*), coalesce(sum(value), 0.0) FROM points";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let r: (i64, f64) = sqlx::query_as(sql).fetch_one(&mut c).await.unwrap();
        let _ = c.close().await;
        r
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let r: (i64, f64) = sqlx::query_as(sql).fetch_one(&mut c).await.unwrap();
        let _ = c.close().await;
        r
    }
}

fn services(store: Arc<dyn Store>) -> Services {
    let config = Config::new(ServiceConfig::default(), vec![], vec![]);
    Services::new(
        Arc::new(Live::new(config)),
        store,
        Arc::new(Metrics::new()),
        Arc::new(SystemClock),
    )
}

fn source(kafka: &Kafka, topic: &str, group: &str, batch: usize, in_flight: usize) -> KafkaSource {
    KafkaSource {
        brokers: kafka.brokers().to_string(),
        topics: vec![topic.to_string()],
        group: group.to_string(),
        mapping: None,
        auto_offset_reset: OffsetReset::Earliest,
        properties: [
            ("statistics.interval.ms", "200"),
            // A member that left unannounced is noticed sooner.
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into(),
        batch_max_points: batch,
        batch_max_wait: Duration::from_millis(50),
        max_in_flight_points: in_flight,
    }
}

/// The last offset + 1 of each partition among `delivered`.
fn ends(delivered: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for (p, o) in delivered {
        let e = out.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    out
}

/// N messages with malformed ones mixed in: exactly the valid points are
/// stored, each once; every bad message is dead-lettered with its payload,
/// topic, partition, offset and reason, and counted; and the committed
/// offsets are past all of them.
async fn malformed_messages_are_dead_lettered(url: String) {
    let kafka = Kafka::start();
    let topic = kafka.topic(3).await;
    let (payloads, expected) = messages(0, 2000, true);
    let delivered = kafka.produce(&topic, 3, &payloads).await;
    let store = okrd::store::open(&url).await.unwrap();
    let ctx = services(store.clone());
    let group = unique("okrd-group");
    let running = Running::start(&ctx, source(&kafka, &topic, &group, 300, 3000));

    let query = DeadLetterQuery {
        connector: Some("events".into()),
        before_id: None,
        limit: 1000,
    };
    eventually(WAIT, "every valid point and every dead letter", || {
        let (url, store, query, expected) = (&url, &store, &query, &expected);
        async move {
            let (n, _) = stored(url).await;
            let dead = store.dead_letters(query).await.unwrap().len();
            (n == expected.points && dead == expected.dead.len()).then_some(())
        }
    })
    .await;
    running.stop().await;

    let (n, sum) = stored(&url).await;
    assert_eq!(n, expected.points, "exactly the valid points");
    assert_eq!(sum, expected.value_sum, "with their values");
    let letters = store.dead_letters(&query).await.unwrap();
    let got: BTreeSet<(i32, i64, String)> = letters
        .iter()
        .map(|l| (l.letter.partition, l.letter.offset, l.letter.reason.clone()))
        .collect();
    let want: BTreeSet<(i32, i64, String)> = expected
        .dead
        .iter()
        .map(|(i, r)| (delivered[*i].0, delivered[*i].1, r.to_string()))
        .collect();
    assert_eq!(
        got, want,
        "every bad message dead-lettered, once, with its reason"
    );
    for l in &letters {
        let i = delivered
            .iter()
            .position(|d| *d == (l.letter.partition, l.letter.offset))
            .unwrap();
        assert_eq!(l.letter.payload, payloads[i], "the raw payload");
        assert_eq!(l.letter.topic, topic);
        assert!(!l.letter.error.is_empty());
    }
    let m = &ctx.metrics;
    assert_eq!(
        m.points_ingested.with_label_values(&["events"]).get(),
        expected.points as u64
    );
    for (reason, n) in &expected.rejected {
        assert_eq!(
            m.points_rejected
                .with_label_values(&["events", reason])
                .get(),
            *n,
            "okrd_points_rejected_total{{reason={reason:?}}}"
        );
    }
    assert_eq!(
        kafka.committed(&group, &topic, 3),
        ends(&delivered),
        "offsets committed past the valid and the dead-lettered messages"
    );
}

mod sqlite {
    #[tokio::test]
    async fn malformed_messages_are_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/okrd.db", dir.path().display());
        super::malformed_messages_are_dead_lettered(url).await;
    }
}

mod postgres {
    use crate::common::pg;

    #[tokio::test]
    async fn malformed_messages_are_dead_lettered() {
        if pg::skip() {
            return;
        }
        let db = pg::fresh_database().await;
        super::malformed_messages_are_dead_lettered(db.url().to_string()).await;
    }

    #[tokio::test]
    async fn an_unreachable_store_pauses_consumption_and_loses_nothing() {
        if pg::skip() {
            return;
        }
        let db = pg::fresh_database().await;
        super::an_unreachable_store_pauses_consumption_and_loses_nothing(db).await;
    }
}

/// The sum of `okrd_kafka_consumer_lag` over the connector's partitions,
/// once every partition has one.
fn lag(metrics: &Metrics, topic: &str, partitions: i32) -> Option<i64> {
    let g = &metrics.kafka_consumer_lag;
    let mut sum = 0;
    let text = metrics.render(&Default::default());
    for p in 0..partitions {
        let label = format!("{topic}/{p}");
        if !text.contains(&format!("partition=\"{label}\"")) {
            return None;
        }
        sum += g.with_label_values(&["events", &label]).get();
    }
    Some(sum)
}

/// Cuts the test database off (refusing connections, dropping the open
/// ones), or lets it back: a real outage of the store.
async fn outage(db: &crate::common::pg::TestDatabase, down: bool) {
    let mut admin = sqlx::PgConnection::connect(&crate::common::pg::admin_url())
        .await
        .unwrap();
    let allow = !down;
    sqlx::query(&format!(
        "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS {allow}",
        db.name()
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    if down {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(db.name())
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let _ = admin.close().await;
}

/// A running in-process connector.
struct Running {
    task: tokio::task::JoinHandle<()>,
    _stop: tokio_util::sync::DropGuard,
    shutdown: CancellationToken,
}

impl Running {
    fn start(ctx: &Services, source: KafkaSource) -> Running {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(okrd::connectors::kafka::run(
            ctx.clone(),
            "events".into(),
            source,
            shutdown.clone(),
        ));
        Running {
            task,
            // A failing assertion stops the consumer too (else the runtime
            // would wait for its thread forever).
            _stop: shutdown.clone().drop_guard(),
            shutdown,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

/// The store goes away twice. The first time, consumption pauses (the lag
/// grows) and resumes by itself when it is back. The second time, the
/// connector is stopped during the outage: it commits nothing past what
/// it wrote, so a new consumer in the group finds every message. Nothing
/// is lost, nothing is stored twice.
async fn an_unreachable_store_pauses_consumption_and_loses_nothing(
    db: crate::common::pg::TestDatabase,
) {
    let url = db.url().to_string();
    let kafka = Kafka::start();
    let topic = kafka.topic(2).await;
    let (first, e1) = messages(0, 1000, false);
    let (second, e2) = messages(1000, 3000, false);
    let (third, e3) = messages(4000, 1000, false);
    let mut delivered = kafka.produce(&topic, 2, &first).await;
    let store = okrd::store::open(&url).await.unwrap();
    let ctx = services(store.clone());
    let group = unique("okrd-group");
    let src = source(&kafka, &topic, &group, 100, 300);
    let running = Running::start(&ctx, src.clone());
    eventually(WAIT, "the first messages stored", || async {
        (stored(&url).await.0 == e1.points).then_some(())
    })
    .await;
    let errors = || {
        ctx.metrics
            .connector_errors
            .with_label_values(&["events", "store"])
            .get()
    };

    // Paused while the store is down: the messages past the in-flight bound
    // are not even taken, the lag shows them, and the writes are retried.
    outage(&db, true).await;
    delivered.extend(kafka.produce(&topic, 2, &second).await);
    eventually(WAIT, "writes to fail while the store is down", || async {
        (errors() >= 3).then_some(())
    })
    .await;
    eventually(WAIT, "the lag to show the unwritten messages", || async {
        lag(&ctx.metrics, &topic, 2)
            .filter(|l| *l > 2000)
            .map(|_| ())
    })
    .await;
    let in_flight = ctx.metrics.kafka_in_flight.with_label_values(&["events"]);
    eventually(
        WAIT,
        "consumption to pause at the in-flight bound",
        || async { (in_flight.get() >= 300).then_some(()) },
    )
    .await;
    assert!(
        in_flight.get() <= 600,
        "in flight stays near its bound (300), not all 3,000 messages: {}",
        in_flight.get()
    );
    // ... and resumed by itself once it is back.
    outage(&db, false).await;
    let want = e1.points + e2.points;
    eventually(WAIT, "every point once the store is back", || async {
        (stored(&url).await.0 == want).then_some(())
    })
    .await;
    eventually(WAIT, "the lag to fall to zero", || async {
        (lag(&ctx.metrics, &topic, 2) == Some(0)).then_some(())
    })
    .await;

    // Stopped while the store is down: its offsets stay where its writes
    // stopped, so the next consumer of the group takes the rest.
    outage(&db, true).await;
    let written = delivered.clone();
    delivered.extend(kafka.produce(&topic, 2, &third).await);
    let before = errors();
    eventually(WAIT, "writes to fail again", || async {
        (errors() > before).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(
        kafka.committed(&group, &topic, 2),
        ends(&written),
        "nothing committed past the last written message"
    );
    outage(&db, false).await;
    let running = Running::start(&ctx, src);
    let want = want + e3.points;
    eventually(WAIT, "every point after the restart", || async {
        (stored(&url).await.0 == want).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(
        stored(&url).await,
        (want, e1.value_sum + e2.value_sum + e3.value_sum),
        "every point once"
    );
    assert_eq!(kafka.committed(&group, &topic, 2), ends(&delivered));
}

/// The service config and a kafka connector file for the real binary.
fn serve_config(dir: &std::path::Path, kafka: &Kafka, topic: &str, group: &str) -> String {
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    // No periodic commit: only a graceful stop commits, so a killed
    // instance leaves its progress uncommitted.
    std::fs::write(
        connectors.join("events.yaml"),
        format!(
            "name: events\ntype: kafka\nbrokers: \"{}\"\ntopics: [{topic}]\ngroup: {group}\nbatch_max_points: 200\nbatch_max_wait: 50ms\nproperties:\n  auto.commit.interval.ms: \"600000\"\n  session.timeout.ms: \"6000\"\n  heartbeat.interval.ms: \"500\"\n  statistics.interval.ms: \"200\"\n",
            kafka.brokers()
        ),
    )
    .unwrap();
    format!(
        "http:\n  listen: 127.0.0.1:0\npaths:\n  connectors: {}\n",
        connectors.display()
    )
}

/// One series of the server's /metrics.
async fn metric(server: &Server, series: &str) -> Option<f64> {
    let text = http::try_get_text(&server.url("/metrics")).await?;
    http::metric(&text, series)
}

/// The real binary: stopped gracefully (commits), then killed mid-stream
/// (commits nothing), then restarted: every point is stored exactly once,
/// and the restarted instance consumes again exactly what the killed one
/// had not committed.
#[tokio::test]
async fn a_killed_consumer_restarts_and_every_point_is_stored_exactly_once() {
    let kafka = Kafka::start();
    let topic = kafka.topic(2).await;
    let group = unique("okrd-group");
    let conf = tempfile::tempdir().unwrap();
    let service = serve_config(conf.path(), &kafka, &topic, &group);
    let (a, ea) = messages(0, 1000, true);
    let (b, eb) = messages(1000, 5000, false);
    let (c, ec) = messages(6000, 1000, false);
    let mut delivered = kafka.produce(&topic, 2, &a).await;

    let mut server = Server::start(&service, &[], None, &[]);
    let url = server.database_url.clone();
    eventually(WAIT, "the first messages stored", || async {
        (stored(&url).await.0 == ea.points).then_some(())
    })
    .await;
    // The API lists the dead letters.
    let body =
        http::get_json(&server.url("/api/v1/dead-letters?connector=events&limit=1000")).await;
    let letters = body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), ea.dead.len(), "{body}");
    let first = &letters[0];
    for field in [
        "topic",
        "partition",
        "offset",
        "reason",
        "error",
        "payload",
        "received_at",
    ] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    assert_eq!(first["topic"], topic.as_str());
    assert!(server.terminate(), "a graceful stop:\n{}", server.log());
    assert_eq!(
        kafka.committed(&group, &topic, 2),
        ends(&delivered),
        "a graceful stop commits"
    );

    // Killed mid-stream: whatever it wrote of `b`, it committed none of it.
    delivered.extend(kafka.produce(&topic, 2, &b).await);
    let mut server = server.restart(&[]);
    eventually(WAIT, "the killed instance to store some points", || async {
        (stored(&url).await.0 > ea.points).then_some(())
    })
    .await;
    signal(server.pid(), "KILL");
    server.wait_exit();

    delivered.extend(kafka.produce(&topic, 2, &c).await);
    let server = server.restart(&[]);
    let want = ea.points + eb.points + ec.points;
    eventually(WAIT, "every point after the restart", || async {
        (stored(&url).await.0 == want).then_some(())
    })
    .await;
    assert_eq!(
        stored(&url).await,
        (want, ea.value_sum + eb.value_sum + ec.value_sum),
        "every point exactly once"
    );
    let ingested = eventually(WAIT, "the ingest counter", || async {
        metric(&server, "okrd_points_ingested_total{connector=\"events\"}")
            .await
            .filter(|n| *n >= (eb.points + ec.points) as f64)
    })
    .await;
    assert_eq!(
        ingested,
        (eb.points + ec.points) as f64,
        "the restart consumes again all of what was not committed, and nothing committed"
    );
    for p in 0..2 {
        let lag =
            format!("okrd_kafka_consumer_lag{{connector=\"events\",partition=\"{topic}/{p}\"}}");
        eventually(WAIT, "the lag to fall to zero", || async {
            (metric(&server, &lag).await == Some(0.0)).then_some(())
        })
        .await;
    }
}

/// Kafka over TLS: librdkafka's mock broker behind stunnel, advertising
/// the TLS port, so every connection is TLS. The real binary consumes
/// through `security.protocol: SSL` with `ssl.ca.location`; the connectors
/// that cannot connect show librdkafka's own error in
/// `GET /api/v1/connectors/{name}` and in the log, with their name: a CA
/// that did not sign the broker's certificate, a property librdkafka does
/// not know, and SASL_SSL with SCRAM-SHA-512 (compiled in; the mock broker
/// implements no SASL, so its handshake fails).
#[tokio::test]
async fn kafka_over_tls_and_librdkafka_errors_in_the_api() {
    let certs = crate::common::tls::certs();
    let kafka = Kafka::start_tls(&certs);
    let topic = kafka.topic(2).await;
    let conf = tempfile::tempdir().unwrap();
    let connectors = conf.path().join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    let ca = certs.ca.display().to_string();
    let other_ca = certs.other_ca.display().to_string();
    let connector = |name: &str, properties: &str| {
        format!(
            "- name: {name}\n  type: kafka\n  brokers: \"{}\"\n  topics: [{topic}]\n  group: {name}\n  batch_max_wait: 50ms\n  properties: {{ {properties} }}\n",
            kafka.brokers()
        )
    };
    std::fs::write(
        connectors.join("events.yaml"),
        [
            connector("tls", &format!("security.protocol: SSL, ssl.ca.location: \"{ca}\"")),
            connector("wrong-ca", &format!("security.protocol: SSL, ssl.ca.location: \"{other_ca}\"")),
            connector("typo", "security.protocol: SSL, no.such.property: \"1\""),
            connector(
                "scram",
                &format!("security.protocol: SASL_SSL, sasl.mechanism: SCRAM-SHA-512, sasl.username: okrd, sasl.password: scram-pw, ssl.ca.location: \"{ca}\""),
            ),
        ]
        .concat(),
    )
    .unwrap();
    let service = format!(
        "http:\n  listen: 127.0.0.1:0\npaths:\n  connectors: {}\n",
        connectors.display()
    );
    let (payloads, expected) = messages(0, 500, false);
    kafka.produce(&topic, 2, &payloads).await;
    let server = Server::start(&service, &[], None, &[]);
    let url = server.database_url.clone();
    eventually(WAIT, "every point over TLS", || async {
        (stored(&url).await.0 == expected.points).then_some(())
    })
    .await;
    assert_eq!(stored(&url).await, (expected.points, expected.value_sum));

    let api = |name: &str| {
        let url = server.url(&format!("/api/v1/connectors/{name}"));
        async move {
            let c = http::try_get_json(&url).await?;
            c["last_error"].is_string().then_some(c)
        }
    };
    for (name, words) in [
        ("wrong-ca", "certificate verify failed"),
        ("typo", "No such configuration property"),
        ("scram", "SASL"),
    ] {
        let c = eventually(WAIT, name, || api(name)).await;
        let error = c["last_error"].as_str().unwrap();
        assert!(error.contains(words), "{name}: {error}");
        assert!(!error.contains("scram-pw"), "{error}");
        let log = server.log();
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("connector={name}")) && l.contains(words)),
            "{name}: no log line with its name and {words:?}"
        );
    }
    // The consuming connector's health: its points, and no error.
    let c = eventually(WAIT, "the tls connector's health", || async {
        let c = http::try_get_json(&server.url("/api/v1/connectors/tls")).await?;
        (c["points_ingested"] == expected.points).then_some(c)
    })
    .await;
    assert!(c["last_error"].is_null(), "{c}");
    assert!(c["last_success"].is_string(), "{c}");
}
