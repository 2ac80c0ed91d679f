//! Alerts end to end: the guardrail scenario driven through time with an
//! injected clock (on SQLite and PostgreSQL), deliveries to a local webhook
//! and Slack receiver, a local SMTP server and the real Alertmanager, and
//! retries with backoff.

use crate::common::http;
use crate::common::wait::{eventually, holds_for};
use crate::common::{both_stores, Backend};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use okrd::alerts::{outbox, Engine};
use okrd::clock::FixedClock;
use okrd::config::{self, Config};
use okrd::live::{Live, Services};
use okrd::metrics::Metrics;
use okrd::model::{Point, SeriesKey, Timestamp};
use okrd::scorer;
use okrd::store::{self, AlertKey, AlertState, DeliveryStatus, Store};
use serde_json::{json, Value};

/// 2026-11-02T00:00:00Z, inside the test objective's period.
fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap()
}

fn minutes(m: i64) -> Timestamp {
    t0() + TimeDelta::minutes(m)
}

/// A deployment in a temp dir: one KR (activation 0.30 → 0.50) guarded by
/// `tickets` (lower is better, 10%, W = 10m), a team notified through
/// `notifiers` (YAML flow maps), repeats every hour.
fn deployment(notifiers: &[(&str, String)]) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("objectives")).unwrap();
    let names: Vec<&str> = notifiers.iter().map(|(n, _)| *n).collect();
    let mut yaml = format!(
        "paths:\n  objectives: {0}/objectives\n  connectors: {0}/connectors\nalerts:\n  repeat_interval: 1h\n  max_attempts: 3\nteams:\n  growth:\n    notify: [{1}]\nnotifiers:\n",
        dir.path().display(),
        names.join(", ")
    );
    for (name, body) in notifiers {
        yaml.push_str(&format!("  {name}: {body}\n"));
    }
    if notifiers.is_empty() {
        yaml.push_str("  {}\n");
    }
    std::fs::write(dir.path().join("okrd.yaml"), yaml).unwrap();
    std::fs::write(
        dir.path().join("objectives/growth.yaml"),
        "id: growth\nobjective: Grow without hurting support\nteam: growth\nperiod: 2026-Q4\nkey_results:\n  - id: activation\n    title: Raise activation from 30% to 50%\n    metric: activation_rate\n    baseline: 0.30\n    target: 0.50\n    stale_after: 30m\n    counter_metrics:\n      - { metric: tickets, better: lower, tolerance: 10%, window: 10m }\n",
    )
    .unwrap();
    let config = config::load(Some(&dir.path().join("okrd.yaml")), &BTreeMap::new())
        .unwrap_or_else(|d| {
            panic!(
                "{}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    (dir, config)
}

async fn write(store: &dyn Store, metric: &str, at: Timestamp, value: f64) {
    let p = Point {
        series: Arc::new(SeriesKey::new(metric, Default::default())),
        ts: at,
        value,
    };
    store.write_points(&[p], &store::no_progress).await.unwrap();
}

/// Scores at `now` and evaluates alerts, as the scorer does after a recompute.
async fn evaluate(store: &dyn Store, config: &Config, now: Timestamp) -> usize {
    let card = scorer::score_all(store, config, now, scorer::margins(config))
        .await
        .unwrap();
    Engine.evaluate(store, config, &card, now).await.unwrap()
}

fn counter_key() -> AlertKey {
    AlertKey {
        objective: "growth".into(),
        key_result: "activation".into(),
        subject: "tickets".into(),
    }
}

fn stale_key() -> AlertKey {
    AlertKey {
        objective: "growth".into(),
        key_result: "activation".into(),
        subject: String::new(),
    }
}

async fn events(store: &dyn Store, key: &AlertKey) -> Vec<String> {
    store
        .deliveries(key)
        .await
        .unwrap()
        .iter()
        .map(|d| format!("{}#{}", d.event, d.episode))
        .collect()
}

both_stores!(
    guardrail_fires_repeats_and_resolves,
    stale_data_fires_and_resolves,
    a_transition_is_decided_once,
    a_transition_from_an_older_view_is_refused
);

/// Points every minute: the KR rises from minute 0 to 30, then holds;
/// tickets sit at 2.0, climb 0.15 a minute from minute 10 to 20, then
/// drop back to 2.0.
async fn guardrail_fires_repeats_and_resolves(backend: Backend) {
    let store = backend.open().await;
    let (_dir, config) = deployment(&[(
        "hook",
        "{ type: webhook, url: \"http://127.0.0.1:9/\" }".into(),
    )]);
    let store = store.as_ref();
    let mut fired_at = None;
    let mut resolved_at = None;
    for m in 0..=150 {
        let now = minutes(m);
        let kr = 0.30 + 0.004 * m.min(30) as f64;
        let tickets = match m {
            10..=20 => 2.0 + 0.15 * (m - 10) as f64,
            _ => 2.0,
        };
        write(store, "activation_rate", now, kr).await;
        write(store, "tickets", now, tickets).await;
        evaluate(store, &config, now).await;
        let firing = store
            .alerts(now)
            .await
            .unwrap()
            .iter()
            .any(|a| a.key == counter_key() && a.state == AlertState::Firing);
        if firing && fired_at.is_none() {
            fired_at = Some(m);
        }
        if !firing && fired_at.is_some() && resolved_at.is_none() {
            resolved_at = Some(m);
        }
    }
    // Tickets exceed 2.2 (10% over the 2.0 of ten minutes before) at minute
    // 12 (2.3), while the KR's score has risen by 0.2 over the window.
    assert_eq!(fired_at, Some(12));
    // Captured reference 2.0: firing until tickets are back within 10% of it,
    // which they are when they drop to 2.0 at minute 21.
    assert_eq!(resolved_at, Some(21));
    assert_eq!(
        events(store, &counter_key()).await,
        ["firing#1", "resolved#1"]
    );
    // The KR stopped moving at minute 30: no new episode after that.
    let alert = store.alerts(minutes(150)).await.unwrap();
    assert!(
        alert.iter().all(|a| a.state != AlertState::Firing),
        "{alert:?}"
    );

    // A degradation while the KR holds (minutes 160-180) does not fire.
    // From minute 200 the KR moves and tickets climb again: it fires, and
    // repeats every hour while tickets stay high.
    for m in 151..=300 {
        let now = minutes(m);
        let kr = 0.42
            + if m >= 200 {
                0.003 * (m - 200).min(40) as f64
            } else {
                0.0
            };
        let tickets = match m {
            160..=180 => 3.0,
            200.. => 2.0 + 0.15 * (m - 200).min(10) as f64,
            _ => 2.0,
        };
        write(store, "activation_rate", now, kr).await;
        write(store, "tickets", now, tickets).await;
        evaluate(store, &config, now).await;
    }
    let list = events(store, &counter_key()).await;
    assert_eq!(
        list,
        ["firing#1", "resolved#1", "firing#2", "repeat#2"],
        "{list:?}"
    );
    let deliveries = store.deliveries(&counter_key()).await.unwrap();
    let second = &deliveries[2];
    assert_eq!(
        second.created_at,
        minutes(202),
        "tickets 2.3 against 2.0 ten minutes before"
    );
    assert_eq!(
        deliveries[3].created_at,
        minutes(262),
        "repeated an hour later"
    );
    let payload: Value = serde_json::from_str(&second.payload).unwrap();
    assert_eq!(payload["version"], "okrd.alert.v1");
    assert_eq!(payload["counter_metric"]["metric"], "tickets");
    assert_eq!(payload["counter_metric"]["reference"], 2.0);
    let repeat: Value = serde_json::from_str(&deliveries[3].payload).unwrap();
    assert_eq!(repeat["counter_metric"]["value"], 3.5);
}

async fn stale_data_fires_and_resolves(backend: Backend) {
    let store = backend.open().await;
    let (_dir, config) = deployment(&[(
        "hook",
        "{ type: webhook, url: \"http://127.0.0.1:9/\" }".into(),
    )]);
    let store = store.as_ref();
    // No data at all: no_data, but never had data, so no alert.
    evaluate(store, &config, minutes(0)).await;
    assert!(events(store, &stale_key()).await.is_empty());
    write(store, "activation_rate", minutes(1), 0.35).await;
    evaluate(store, &config, minutes(2)).await;
    assert!(events(store, &stale_key()).await.is_empty());
    // stale_after is 30m: at minute 40 the newest point is 39 minutes old.
    evaluate(store, &config, minutes(40)).await;
    assert_eq!(events(store, &stale_key()).await, ["firing#1"]);
    evaluate(store, &config, minutes(41)).await;
    assert_eq!(
        events(store, &stale_key()).await,
        ["firing#1"],
        "not re-sent before the repeat interval"
    );
    write(store, "activation_rate", minutes(42), 0.36).await;
    evaluate(store, &config, minutes(43)).await;
    assert_eq!(
        events(store, &stale_key()).await,
        ["firing#1", "resolved#1"]
    );
    let alerts = store.alerts(minutes(43)).await.unwrap();
    let stale = alerts.iter().find(|a| a.key == stale_key()).unwrap();
    assert_eq!(
        (stale.kind.as_str(), stale.state.as_str()),
        ("stale_data", "resolved")
    );
}

/// Two evaluators deciding the same transition (two instances, or a retry
/// after a crash): one firing, one set of deliveries.
async fn a_transition_is_decided_once(backend: Backend) {
    let store = backend.open().await;
    let (_dir, config) = deployment(&[
        (
            "hook",
            "{ type: webhook, url: \"http://127.0.0.1:9/\" }".into(),
        ),
        (
            "chat",
            "{ type: slack, url: \"http://127.0.0.1:9/\" }".into(),
        ),
    ]);
    write_scenario(store.as_ref(), minutes).await;
    let (a, b) = tokio::join!(
        evaluate(store.as_ref(), &config, minutes(13)),
        evaluate(store.as_ref(), &config, minutes(13))
    );
    assert_eq!(a + b, 1, "exactly one evaluator applies the transition");
    let deliveries = store.deliveries(&counter_key()).await.unwrap();
    let mut notifiers: Vec<&str> = deliveries.iter().map(|d| d.notifier.as_str()).collect();
    notifiers.sort_unstable();
    assert_eq!(notifiers, ["chat", "hook"], "one delivery per notifier");
}

/// An instance whose scorecard holds fewer changes (an older view) than
/// the one the alert last moved on must not undo that: its firing or
/// resolution is refused, while one from the same or a newer view applies.
async fn a_transition_from_an_older_view_is_refused(backend: Backend) {
    let store = backend.open().await;
    let (_dir, config) = deployment(&[(
        "hook",
        "{ type: webhook, url: \"http://127.0.0.1:9/\" }".into(),
    )]);
    let store = store.as_ref();
    let at_view = |now: Timestamp, view: i64| {
        let config = &config;
        async move {
            let mut card = scorer::score_all(store, config, now, scorer::margins(config))
                .await
                .unwrap();
            card.view = view;
            Engine.evaluate(store, config, &card, now).await.unwrap()
        }
    };
    for m in 0..=13 {
        write(
            store,
            "activation_rate",
            minutes(m),
            0.30 + 0.004 * m as f64,
        )
        .await;
        let tickets = if m >= 10 {
            2.0 + 0.1 * (m - 10) as f64
        } else {
            2.0
        };
        write(store, "tickets", minutes(m), tickets).await;
    }
    assert_eq!(at_view(minutes(13), 10).await, 1, "fires at view 10");
    // Tickets recover.
    for m in 14..=16 {
        write(store, "activation_rate", minutes(m), 0.352).await;
        write(store, "tickets", minutes(m), 2.0).await;
    }
    assert_eq!(
        at_view(minutes(16), 9).await,
        0,
        "an older view cannot resolve"
    );
    assert_eq!(events(store, &counter_key()).await, ["firing#1"]);
    assert_eq!(at_view(minutes(16), 10).await, 1, "the same view resolves");
    assert_eq!(
        events(store, &counter_key()).await,
        ["firing#1", "resolved#1"]
    );
}

// ---------------------------------------------------------------------------
// Deliveries

/// A local HTTP receiver recording each request's path and JSON body;
/// answers with `statuses` in turn (then 200).
pub(crate) async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    receiver_at(0, statuses).await
}

/// [`receiver`] on `port` (0: any free port).
async fn receiver_at(port: u16, statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    type Seen = Arc<Mutex<Vec<(String, Value)>>>;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let replies = Arc::new(Mutex::new(statuses));
    let app = axum::Router::new()
        .route(
            "/{*path}",
            axum::routing::post(
                |State((seen, replies)): State<(Seen, Arc<Mutex<Vec<u16>>>)>,
                 Path(path): Path<String>,
                 body: String| async move {
                    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
                    seen.lock().unwrap().push((path, json));
                    let mut r = replies.lock().unwrap();
                    let code = if r.is_empty() { 200 } else { r.remove(0) };
                    StatusCode::from_u16(code).unwrap()
                },
            ),
        )
        .with_state((seen.clone(), replies));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// The counter scenario's points, minute 0 to 13 at `at(minute)`:
/// activation climbs 0.004 a minute, tickets stay at 2 until minute 10 and
/// then climb 5% a minute.
async fn write_scenario(store: &dyn Store, at: impl Fn(i64) -> Timestamp) {
    for m in 0..=13 {
        write(store, "activation_rate", at(m), 0.30 + 0.004 * m as f64).await;
        let tickets = if m >= 10 {
            2.0 + 0.1 * (m - 10) as f64
        } else {
            2.0
        };
        write(store, "tickets", at(m), tickets).await;
    }
}

/// Drives the counter scenario to its firing at minute 13.
async fn fire(store: &dyn Store, config: &Config) {
    write_scenario(store, minutes).await;
    assert_eq!(evaluate(store, config, minutes(13)).await, 1);
}

/// Services over a temp SQLite store with a clock stopped at minute 13.
async fn services(config: Config) -> (tempfile::TempDir, Services, Arc<FixedClock>) {
    let dir = tempfile::tempdir().unwrap();
    let store = okrd::store::open(&format!("sqlite://{}/okrd.db", dir.path().display()))
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(minutes(13)));
    let s = Services::new(
        Arc::new(Live::new(config)),
        store,
        Arc::new(Metrics::new()),
        clock.clone(),
    );
    (dir, s, clock)
}

/// The quickstart's notifier: nothing leaves okrd, and the delivery is
/// done at once (no retries against receivers that do not exist).
#[tokio::test]
async fn the_log_notifier_delivers_at_once() {
    let (_d, config) = deployment(&[("log", "{ type: log }".to_string())]);
    let (_dir, s, _clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 0);
    let sent = s.store.deliveries(&counter_key()).await.unwrap();
    let got: Vec<(&str, &str, i64)> = sent
        .iter()
        .map(|d| (d.notifier.as_str(), d.status.as_str(), d.attempts))
        .collect();
    assert_eq!(got, [("log", "sent", 1)]);
}

#[tokio::test]
async fn webhook_and_slack_receive_the_facts() {
    let (base, seen) = receiver(vec![]).await;
    let (_d, config) = deployment(&[
        (
            "hook",
            format!("{{ type: webhook, url: \"{base}/hook\", headers: {{ X-Team: growth }} }}"),
        ),
        ("chat", format!("{{ type: slack, url: \"{base}/slack\" }}")),
    ]);
    let (_dir, s, _clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 2);
    let seen = seen.lock().unwrap().clone();
    let hook = &seen.iter().find(|(p, _)| p == "hook").unwrap().1;
    assert_eq!(hook["version"], "okrd.alert.v1");
    assert_eq!(hook["event"], "firing");
    assert_eq!(hook["team"], "growth");
    assert_eq!(hook["objective"]["id"], "growth");
    assert_eq!(hook["key_result"]["id"], "activation");
    assert!((hook["key_result"]["value"].as_f64().unwrap() - 0.352).abs() < 1e-9);
    assert!(
        (hook["key_result"]["score_delta"].as_f64().unwrap() - 0.2).abs() < 1e-9,
        "{hook}"
    );
    assert_eq!(hook["counter_metric"]["reference"], 2.0);
    assert!((hook["counter_metric"]["delta"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    assert!(hook["links"]["api"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/key-results/growth/activation"));
    assert!(
        hook["id"].as_i64().is_some(),
        "the delivery id, for idempotent receivers"
    );
    let slack = &seen.iter().find(|(p, _)| p == "slack").unwrap().1;
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains("counter metric degraded") && text.contains("team growth"),
        "{text}"
    );
    assert!(slack["blocks"].to_string().contains("tickets"), "{slack}");
    // Nothing left to send.
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 0);
    let sent = s.store.deliveries(&counter_key()).await.unwrap();
    assert!(sent
        .iter()
        .all(|d| d.status == DeliveryStatus::Sent && d.attempts == 1));
}

#[tokio::test]
async fn failed_deliveries_retry_with_backoff_then_fail_with_their_reason() {
    // 500, 500, then 200: delivered on the third attempt.
    let (base, seen) = receiver(vec![500, 500]).await;
    let (_d, config) =
        deployment(&[("hook", format!("{{ type: webhook, url: \"{base}/hook\" }}"))]);
    let (_dir, s, clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    let d = &s.store.deliveries(&counter_key()).await.unwrap()[0];
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 1));
    assert!(
        d.last_error.as_deref().unwrap().contains("HTTP 500"),
        "{d:?}"
    );
    // Not due until the backoff has passed (2 s ± 25%).
    clock.set(minutes(13) + TimeDelta::milliseconds(1400));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 0);
    clock.set(minutes(13) + TimeDelta::seconds(3));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    clock.set(minutes(14));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    let d = &s.store.deliveries(&counter_key()).await.unwrap()[0];
    assert_eq!((d.status.as_str(), d.attempts), ("sent", 3));
    assert_eq!(seen.lock().unwrap().len(), 3);

    // A 404 is not worth retrying: failed at once, with its reason.
    let (base, _seen) = receiver(vec![404]).await;
    let (_d2, config) =
        deployment(&[("hook", format!("{{ type: webhook, url: \"{base}/gone\" }}"))]);
    let (_dir2, s, _clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    outbox::deliver_due(&s, &senders).await.unwrap();
    let d = &s.store.deliveries(&counter_key()).await.unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert!(d.last_error.as_deref().unwrap().contains("404"), "{d:?}");
    let metrics = s.metrics.render(&Default::default());
    assert!(
        metrics.contains(r#"okrd_notifications_total{notifier="hook",outcome="failed"} 1"#),
        "{metrics}"
    );
}

/// A minimal SMTP server: accepts one message and returns its DATA.
pub(crate) async fn smtp_sink() -> (u16, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    write.write_all(b"250 OK queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line.split_whitespace().next().unwrap_or("").to_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 sink\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 OK\r\n",
            };
            write.write_all(reply).await.unwrap();
        }
        let _ = tx.send(data);
    });
    (port, rx)
}

#[tokio::test]
async fn email_arrives_as_plain_text_and_html() {
    let (port, message) = smtp_sink().await;
    let (_d, config) = deployment(&[(
        "mail",
        format!("{{ type: email, to: [growth@example.com], smtp: \"smtp://127.0.0.1:{port}\", from: okrd@example.com }}"),
    )]);
    let (_dir, s, _clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    let data = tokio::time::timeout(Duration::from_secs(10), message)
        .await
        .unwrap()
        .unwrap();
    assert!(
        data.contains("Subject: [okrd FIRING] growth/activation"),
        "{data}"
    );
    assert!(data.contains("To: growth@example.com"), "{data}");
    assert!(
        data.contains("Content-Type: text/plain") && data.contains("Content-Type: text/html"),
        "{data}"
    );
    assert!(data.contains("tickets"), "{data}");
    let d = &s.store.deliveries(&counter_key()).await.unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Sent);
}

/// The real Alertmanager on a free port, sending what it receives, firing
/// and resolved, on to the webhook at `forward` within about a second.
pub(crate) async fn alertmanager(forward: &str) -> crate::common::process::Daemon {
    use crate::common::process::{free_port, which, Daemon};
    let bin = which(&["prometheus-alertmanager", "alertmanager"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("am.yml"),
        format!(
            "route:\n  receiver: forward\n  group_by: [alertname, objective, key_result]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: forward\n    webhook_configs:\n      - url: {forward}/am\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}/am.yml", dir.path().display()),
        format!("--storage.path={}/data", dir.path().display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    let am = Daemon::spawn(bin, &args, port, dir);
    let ready = format!("{}/-/ready", am.url);
    eventually(
        Duration::from_secs(10),
        "Alertmanager to be ready",
        || async { (http::try_get(&ready).await?.status == 200).then_some(()) },
    )
    .await;
    am
}

pub(crate) async fn am_alerts(url: &str) -> Vec<Value> {
    let v = http::get_json(&format!("{url}/api/v2/alerts")).await;
    v.as_array().unwrap().clone()
}

/// The status and alerts' states of each notification Alertmanager sent
/// to the forward receiver, in order.
fn forwarded(seen: &Mutex<Vec<(String, Value)>>) -> Vec<(String, Vec<String>)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(_, n)| {
            let states = n["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    assert_eq!(a["labels"]["alertname"], "KeyResultCounterMetricDegraded");
                    a["status"].as_str().unwrap().to_string()
                })
                .collect();
            (n["status"].as_str().unwrap().to_string(), states)
        })
        .collect()
}

#[tokio::test]
async fn alertmanager_receives_the_alert_and_its_resolution() {
    let (forward, seen) = receiver(vec![]).await;
    let am = alertmanager(&forward).await;
    let (_d, config) = deployment(&[(
        "am",
        format!("{{ type: alertmanager, urls: [\"{}\"] }}", am.url),
    )]);
    let (_dir, s, clock) = services(config.clone()).await;
    // Real time, as Alertmanager judges startsAt/endsAt against its own clock.
    let now = Utc::now();
    clock.set(now);
    write_scenario(s.store.as_ref(), |m| now - TimeDelta::minutes(13 - m)).await;
    let objectives = with_period_around(&config, now);
    let config = config.with_objectives(objectives);
    s.live.set_config(config.clone());
    assert_eq!(evaluate(s.store.as_ref(), &config, now).await, 1);
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);

    let alerts = am_alerts(&am.url).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "KeyResultCounterMetricDegraded");
    assert_eq!(labels["objective"], "growth");
    assert_eq!(labels["key_result"], "activation");
    assert_eq!(labels["counter_metric"], "tickets");
    assert_eq!(labels["team"], "growth");
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert_eq!(alerts[0]["annotations"]["counter_metric_reference"], "2");
    assert!(alerts[0]["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/api/v1/key-results/growth/activation"));

    // Alertmanager routes it on: one firing notification.
    let firing = || ("firing".to_string(), vec!["firing".to_string()]);
    eventually(
        Duration::from_secs(10),
        "Alertmanager's firing notification",
        || async { (!seen.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(forwarded(&seen), [firing()]);

    // Tickets recover: the resolution is sent with endsAt = now (real time:
    // Alertmanager keeps an alert active until its endsAt).
    let later = Utc::now();
    write(s.store.as_ref(), "tickets", later, 2.0).await;
    write(s.store.as_ref(), "activation_rate", later, 0.36).await;
    clock.set(later);
    assert_eq!(evaluate(s.store.as_ref(), &config, later).await, 1);
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    // Alertmanager takes it as resolved: it routes the resolution on, and
    // no longer lists the alert as active.
    eventually(
        Duration::from_secs(10),
        "Alertmanager's resolved notification",
        || async { (seen.lock().unwrap().len() == 2).then_some(()) },
    )
    .await;
    let resolved = ("resolved".to_string(), vec!["resolved".to_string()]);
    assert_eq!(forwarded(&seen), [firing(), resolved]);
    assert_eq!(am_alerts(&am.url).await, Vec::<Value>::new());
}

/// The objectives with their period moved to contain `now`.
fn with_period_around(config: &Config, now: Timestamp) -> Vec<okrd::config::Objective> {
    config
        .objectives
        .iter()
        .cloned()
        .map(|mut o| {
            o.period.start = now - TimeDelta::days(30);
            o.period.end = now + TimeDelta::days(30);
            o
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The real binary: a decided transition survives a kill and is delivered once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_decided_before_a_kill_is_sent_once_after_restart() {
    use crate::common::server::Server;
    let port = crate::common::process::free_port(); // the receiver's port: nothing listens yet
    let now = Utc::now();
    let service = format!(
        "http:\n  listen: 127.0.0.1:0\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: {{ type: webhook, url: \"http://127.0.0.1:{port}/hook\" }}\n"
    );
    let objective = format!(
        "id: growth\nobjective: Grow without hurting support\nteam: growth\nperiod: {{ start: {}, end: {} }}\nkey_results:\n  - id: activation\n    title: Raise activation from 30% to 50%\n    metric: activation_rate\n    baseline: 0.30\n    target: 0.50\n    counter_metrics:\n      - {{ metric: tickets, better: lower, tolerance: 10%, window: 2m }}\n",
        (now - TimeDelta::days(10)).format("%Y-%m-%d"),
        (now + TimeDelta::days(10)).format("%Y-%m-%d")
    );
    let server = Server::start(&service, &[("growth.yaml", objective)], None, &[]);
    let at = |secs: i64| (now - TimeDelta::seconds(secs)).to_rfc3339();
    let body = serde_json::json!({"points": [
        {"metric": "activation_rate", "ts": at(100), "value": 0.30},
        {"metric": "activation_rate", "ts": at(0), "value": 0.40},
        {"metric": "tickets", "ts": at(110), "value": 2.0},
        {"metric": "tickets", "ts": at(50), "value": 2.5},
        {"metric": "tickets", "ts": at(0), "value": 3.0},
    ]});
    http::push(&server, body["points"].clone(), None)
        .await
        .assert_ok();

    // Decided, and the first attempt failed: nothing listens at the receiver.
    let alerts_url = server.url("/api/v1/alerts");
    eventually(
        Duration::from_secs(15),
        "a firing alert with a failed attempt",
        || async {
            let v = http::try_get_json(&alerts_url).await?;
            let a = v["alerts"].as_array()?.first()?.clone();
            let d = a["deliveries"].as_array()?.first()?.clone();
            (a["state"] == "firing" && d["status"] == "pending" && d["attempts"].as_i64()? >= 1)
                .then_some(())
        },
    )
    .await;

    // Killed without a chance to clean up, then the receiver comes up.
    let mut server = server;
    let pid = server.pid();
    std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .unwrap();
    server.wait_exit();
    let (base, seen) = receiver_at(port, vec![]).await;
    assert!(base.ends_with(&port.to_string()));

    let server = server.restart(&[]);
    eventually(
        Duration::from_secs(60),
        "the delivery after the restart",
        || async { (!seen.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    // Give a duplicate every chance to arrive.
    holds_for(Duration::from_secs(3), "exactly one delivery", || async {
        seen.lock().unwrap().len() == 1
    })
    .await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(got[0].1["event"], "firing");
    assert_eq!(got[0].1["counter_metric"]["metric"], "tickets");
    let v = http::get_json(&server.url("/api/v1/alerts")).await;
    let deliveries = v["alerts"][0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "one transition, one delivery: {v}");
    assert_eq!(deliveries[0]["status"], "sent");
    assert_eq!(v["alerts"][0]["episode"], 1);
}

/// The local SMTP relay of `tests/fixtures/smtp_server.py` (Debian's
/// `python3-aiosmtpd`): STARTTLS or smtps with the test certificate, AUTH
/// required (user `okrd`, password `relay-pw`).
struct Relay {
    child: std::process::Child,
    port: u16,
    messages: std::sync::mpsc::Receiver<Value>,
}

impl Relay {
    fn start(mode: &str, certs: &crate::common::tls::Certs) -> Relay {
        use std::io::BufRead;
        let python = std::path::Path::new("/usr/bin/python3");
        let has_aiosmtpd = std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has_aiosmtpd,
            "Debian's python3-aiosmtpd is not installed: scripts/test installs it (through scripts/install-test-deps.sh)"
        );
        let port = crate::common::process::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smtp_server.py");
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg(mode)
            .arg(port.to_string())
            .arg(&certs.cert)
            .arg(&certs.key)
            .args(["okrd", "relay-pw"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
        let (tx, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).unwrap());
            }
        });
        Relay {
            child,
            port,
            messages,
        }
    }

    fn message(&self) -> Option<Value> {
        self.messages.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// Whether no message came: asked once a send has returned, when the
    /// relay would already have printed one it accepted.
    fn received_nothing(&self) -> bool {
        self.messages.recv_timeout(Duration::from_secs(1)).is_err()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_notifier(smtp: &str, ca: &std::path::Path) -> String {
    format!(
        "{{ type: email, to: [growth@example.com], smtp: \"{smtp}\", from: okrd@example.com, username: okrd, password: relay-pw, ca_file: \"{}\" }}",
        ca.display()
    )
}

/// The one delivery of the counter-metric alert through `notifier`.
async fn deliver_through(notifier: String) -> okrd::store::Delivery {
    let (_d, config) = deployment(&[("mail", notifier)]);
    let (_dir, s, _clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 1);
    s.store.deliveries(&counter_key()).await.unwrap().remove(0)
}

/// `smtp://` upgrades with STARTTLS (the relay requires it before AUTH and
/// mail), logs in, and checks the relay's certificate against `ca_file`.
#[tokio::test]
async fn email_through_a_starttls_relay_with_login() {
    let certs = crate::common::tls::certs();
    let relay = Relay::start("starttls", &certs);
    let smtp = format!("smtp://localhost:{}", relay.port);
    let d = deliver_through(email_notifier(&smtp, &certs.ca)).await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{d:?}");
    let m = relay.message().expect("the relay received the message");
    assert_eq!(m["tls"], true);
    assert_eq!(m["login"], "okrd");
    assert!(
        m["data"]
            .as_str()
            .unwrap()
            .contains("Subject: [okrd FIRING] growth/activation"),
        "{m}"
    );
}

/// `smtps://` is TLS from the first byte; a relay whose certificate the
/// `ca_file` did not sign is refused, in words, and gets nothing.
#[tokio::test]
async fn email_over_smtps_and_an_untrusted_relay_refused() {
    let certs = crate::common::tls::certs();
    let relay = Relay::start("smtps", &certs);
    let smtp = format!("smtps://localhost:{}", relay.port);
    let d = deliver_through(email_notifier(&smtp, &certs.ca)).await;
    assert_eq!(d.status, DeliveryStatus::Sent, "{d:?}");
    let m = relay.message().expect("the relay received the message");
    assert_eq!(
        (m["tls"].clone(), m["login"].clone()),
        (json!(true), json!("okrd"))
    );

    let d = deliver_through(email_notifier(&smtp, &certs.other_ca)).await;
    assert_ne!(d.status, DeliveryStatus::Sent);
    let error = d.last_error.unwrap();
    assert!(error.contains("not signed by a trusted CA"), "{error}");
    assert!(!error.contains("relay-pw"), "{error}");
    assert!(relay.received_nothing(), "nothing reached the relay");
}

/// `?tls=required` refuses to send to a relay that offers no STARTTLS: no
/// message (and no password) goes out in clear.
#[tokio::test]
async fn email_with_tls_required_refuses_a_relay_without_tls() {
    let (port, data) = smtp_sink().await;
    let certs = crate::common::tls::certs();
    let smtp = format!("smtp://127.0.0.1:{port}?tls=required");
    let d = deliver_through(email_notifier(&smtp, &certs.ca)).await;
    assert_ne!(d.status, DeliveryStatus::Sent);
    let error = d.last_error.unwrap();
    assert!(error.to_lowercase().contains("starttls"), "{error}");
    let data = tokio::time::timeout(Duration::from_secs(10), data)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data, "", "no DATA was sent");
}

/// A webhook over HTTPS with a private CA: delivered with `ca_file`, and
/// refused (the certificate is not trusted) without it.
#[tokio::test]
async fn webhook_over_https_with_a_private_ca() {
    let (base, seen) = receiver(vec![]).await;
    let backend: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let certs = crate::common::tls::certs();
    let tls = crate::common::tls::Stunnel::start(&certs, backend);
    let url = format!("https://localhost:{}", tls.port);
    let (_d, config) = deployment(&[
        (
            "private",
            format!(
                "{{ type: webhook, url: \"{url}/private\", ca_file: \"{}\" }}",
                certs.ca.display()
            ),
        ),
        (
            "public",
            format!("{{ type: webhook, url: \"{url}/public\" }}"),
        ),
    ]);
    let (_dir, s, _clock) = services(config.clone()).await;
    fire(s.store.as_ref(), &config).await;
    let senders = okrd::alerts::notifiers::Senders::new(Duration::from_secs(60));
    assert_eq!(outbox::deliver_due(&s, &senders).await.unwrap(), 2);
    let deliveries = s.store.deliveries(&counter_key()).await.unwrap();
    let by = |n: &str| deliveries.iter().find(|d| d.notifier == n).unwrap();
    assert_eq!(
        by("private").status,
        DeliveryStatus::Sent,
        "{:?}",
        by("private")
    );
    let public = by("public");
    assert_ne!(public.status, DeliveryStatus::Sent);
    let error = public.last_error.as_deref().unwrap();
    assert!(error.contains("not signed by a trusted CA"), "{error}");
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(paths, ["private"]);
}
