//! Instances agree (SPEC §6), with real processes: two `okrd serve` on one
//! PostgreSQL database, and `okrd ingest` beside a serving instance.
//!
//! - a point pushed to A is in B's API and /metrics within 1 s, also after
//!   B lost its database connection for a few seconds and got it back;
//! - points `okrd ingest` writes reach a serving instance's scores within
//!   1 s (SQLite);
//! - a guardrail case with both instances evaluating it: exactly one firing
//!   and one resolved delivery per notifier, and nothing after;
//! - a restart on a store of 2,000 KRs × 30 days of hourly points serves
//!   scores (and `/readyz`) before their history is built, says so per KR,
//!   and then completes it.

use std::time::{Duration, Instant};

use crate::common::hook;
use crate::common::http;
use crate::common::pg;
use crate::common::proxy::Proxy;
use crate::common::server::{objective_yaml, Server};
use crate::common::wait::{eventually, holds_for};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::{json, Value};

/// How soon every instance must score a point another process wrote.
const AGREE_WITHIN: Duration = Duration::from_secs(1);

/// The service config: a webhook notifier at `hook`.
fn service(hook: &str) -> String {
    format!(
        "http:\n  listen: 127.0.0.1:0\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: {{ type: webhook, url: \"{hook}\" }}\n"
    )
}

async fn push(server: &Server, points: Value) {
    http::push(server, points, None).await.assert_ok();
}

/// The growth KR's value in the server's API, and in its /metrics; `None`
/// while the server does not answer.
async fn values(server: &Server) -> Option<(Option<f64>, Option<f64>)> {
    let list = http::try_get_json(&server.url("/api/v1/key-results")).await?;
    let api = http::key_result(&list, "growth")?["value"].as_f64();
    let text = http::try_get_text(&server.url("/metrics")).await?;
    let series = r#"okrd_key_result_value{key_result="kr",objective="growth"}"#;
    Some((api, http::metric(&text, series)))
}

/// Waits until `server` shows `value` in its API and /metrics; returns how
/// long that took.
async fn seen(server: &Server, value: f64, what: &str) -> Duration {
    let start = Instant::now();
    eventually(Duration::from_secs(10), what, || async {
        (values(server).await? == (Some(value), Some(value))).then_some(())
    })
    .await;
    start.elapsed()
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// `url` with its host and port replaced by `addr`'s.
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    u.set_host(Some(&addr.ip().to_string())).unwrap();
    u.set_port(Some(addr.port())).unwrap();
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_pushed_to_one_instance_is_in_the_others_scores_within_a_second() {
    if pg::skip() {
        return;
    }
    let db = pg::fresh_database().await;
    // B reaches the database through a proxy the test can cut.
    let target = reqwest::Url::parse(db.url()).unwrap();
    let proxy = Proxy::start(&format!(
        "{}:{}",
        target.host_str().unwrap(),
        target.port().unwrap_or(5432)
    ))
    .await;
    let objectives = [(
        "growth.yaml",
        objective_yaml("growth", "activation_rate", Utc::now()),
    )];
    let service = service("http://127.0.0.1:9/hook");
    let a = Server::start(&service, &objectives, Some(db.url()), &[]);
    let b = Server::start(&service, &objectives, Some(&via(db.url(), proxy.addr)), &[]);
    for s in [&a, &b] {
        eventually(Duration::from_secs(10), "the first scorecard", || async {
            values(s).await.map(|_| ())
        })
        .await;
    }

    push(
        &a,
        json!([{"metric": "activation_rate", "ts": Utc::now().to_rfc3339(), "value": 0.41}]),
    )
    .await;
    let took = seen(&b, 0.41, "A's point in B").await;
    println!("a point pushed to A was in B's API and /metrics after {took:?}");
    assert!(took <= AGREE_WITHIN, "B took {took:?}");

    // B loses its database for a few seconds, then gets it back.
    // Meanwhile it answers from the last scorecard it published.
    proxy.set_cut(true);
    let unchanged = || async { values(&b).await == Some((Some(0.41), Some(0.41))) };
    holds_for(
        Duration::from_secs(3),
        "B's scores while cut off",
        unchanged,
    )
    .await;
    // Written while B is cut off: B must read it once it is back.
    push(
        &a,
        json!([{"metric": "activation_rate", "ts": Utc::now().to_rfc3339(), "value": 0.43}]),
    )
    .await;
    holds_for(
        Duration::from_secs(2),
        "B's scores while cut off",
        unchanged,
    )
    .await;
    proxy.set_cut(false);
    seen(&b, 0.43, "the point written while B was cut off").await;
    push(
        &a,
        json!([{"metric": "activation_rate", "ts": Utc::now().to_rfc3339(), "value": 0.45}]),
    )
    .await;
    let took = seen(&b, 0.45, "A's point in B after the outage").await;
    println!("after the outage: in B after {took:?}");
    assert!(took <= AGREE_WITHIN, "B took {took:?} after its outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_ingested_beside_a_serving_instance_reach_its_scores_within_a_second() {
    let objectives = [(
        "growth.yaml",
        objective_yaml("growth", "activation_rate", Utc::now()),
    )];
    let server = Server::start(&service("http://127.0.0.1:9/hook"), &objectives, None, &[]);
    eventually(Duration::from_secs(10), "the first scorecard", || async {
        values(&server).await.map(|_| ())
    })
    .await;
    let csv = server.file("points.csv");
    std::fs::write(
        &csv,
        format!(
            "metric,ts,value\nactivation_rate,{},0.37\n",
            now().to_rfc3339()
        ),
    )
    .unwrap();
    server.ingest("points.csv");
    let took = seen(&server, 0.37, "the ingested point").await;
    println!("a point `okrd ingest` wrote was scored after {took:?}");
    assert!(took <= AGREE_WITHIN, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_one_firing_and_one_resolved_per_notifier() {
    if pg::skip() {
        return;
    }
    let db = pg::fresh_database().await;
    let (url, seen) = hook::receiver().await;
    let objectives = [(
        "growth.yaml",
        objective_yaml("growth", "activation_rate", Utc::now()),
    )];
    let service = service(&url);
    let a = Server::start(&service, &objectives, Some(db.url()), &[]);
    let b = Server::start(&service, &objectives, Some(db.url()), &[]);
    for s in [&a, &b] {
        eventually(Duration::from_secs(10), "the first scorecard", || async {
            values(s).await.map(|_| ())
        })
        .await;
    }
    let t = now();
    let at = |d: TimeDelta| (t - d).to_rfc3339();
    // The KR moves (no data a week ago, 0.45 now) while tickets climb 50%
    // over the week (W = 7d, tolerance 5%).
    push(
        &a,
        json!([
            {"metric": "tickets", "ts": at(TimeDelta::days(8)), "value": 2.0},
            {"metric": "tickets", "ts": at(TimeDelta::days(3)), "value": 2.0},
            {"metric": "tickets", "ts": at(TimeDelta::minutes(1)), "value": 3.0},
            {"metric": "activation_rate", "ts": at(TimeDelta::minutes(1)), "value": 0.45},
        ]),
    )
    .await;
    eventually(Duration::from_secs(20), "the firing delivery", || async {
        (seen.lock().unwrap().len() == 1).then_some(())
    })
    .await;
    // Both instances evaluate the firing alert for several intervals, and
    // neither sends it again.
    holds_for(Duration::from_secs(3), "one firing delivery", || async {
        hook::events(&seen) == ["firing"]
    })
    .await;
    // Tickets recover, written through B this time.
    push(
        &b,
        json!([{"metric": "tickets", "ts": t.to_rfc3339(), "value": 2.0}]),
    )
    .await;
    eventually(Duration::from_secs(20), "the resolved delivery", || async {
        (seen.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    // Proven for 5 s (five intervals on each instance): nothing more.
    holds_for(
        Duration::from_secs(5),
        "one firing, one resolved",
        || async { hook::events(&seen) == ["firing", "resolved"] },
    )
    .await;
}

/// 2,000 KRs over one metric each, 30 days of hourly points (720 each).
const KRS: usize = 2_000;
const HOURS: i64 = 720;

fn many_objectives(now: DateTime<Utc>) -> Vec<(String, String)> {
    let start = (now - TimeDelta::days(31)).format("%Y-%m-%d");
    let end = (now + TimeDelta::days(30)).format("%Y-%m-%d");
    (0..KRS / 10)
        .map(|o| {
            let mut yaml = format!(
                "id: o{o}\nobjective: Objective {o}\nteam: growth\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n"
            );
            for k in 0..10 {
                yaml.push_str(&format!(
                    "  - id: k{k}\n    title: KR {k}\n    metric: m_{o}_{k}\n    baseline: 0\n    target: 1000\n"
                ));
            }
            (format!("o{o}.yaml"), yaml)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_large_store_serves_scores_before_history_is_built() {
    let now = Utc::now();
    let objectives = many_objectives(now);
    let refs: Vec<(&str, String)> = objectives
        .iter()
        .map(|(n, y)| (n.as_str(), y.clone()))
        .collect();
    let service = service("http://127.0.0.1:9/hook");
    let server = Server::start(&service, &refs[..1], None, &[]);
    // The points, by `okrd ingest` (one file, one transaction).
    let mut csv = String::from("metric,ts,value\n");
    for o in 0..KRS / 10 {
        for k in 0..10 {
            for h in 0..HOURS {
                let ts = (now - TimeDelta::hours(HOURS - h)).trunc_subsecs(0);
                csv.push_str(&format!("m_{o}_{k},{},{}\n", ts.to_rfc3339(), h));
            }
        }
    }
    std::fs::write(server.file("points.csv"), csv).unwrap();
    let mut server = server;
    server.stop();
    server.ingest("points.csv");
    for (name, yaml) in &objectives {
        std::fs::write(server.file("config/objectives").join(name), yaml).unwrap();
    }
    let server = server.restart(&[]);
    let started = Instant::now();
    let list = eventually(Duration::from_secs(60), "the first scorecard", || async {
        if http::try_get(&server.url("/readyz")).await?.status != 200 {
            return None;
        }
        http::try_get_json(&server.url("/api/v1/key-results")).await
    })
    .await;
    let first = started.elapsed();
    let krs = list["key_results"].as_array().unwrap();
    assert_eq!(krs.len(), KRS);
    // Every KR scored from its newest point, 719 of 1000.
    assert!(
        krs.iter().all(|k| k["value"] == json!(719.0)),
        "{}",
        krs.iter().find(|k| k["value"] != json!(719.0)).unwrap()
    );
    let building = krs
        .iter()
        .filter(|k| k["history_status"] == "building")
        .count();
    println!("first scorecard after {first:?}, {building} of {KRS} KRs still building history");
    assert!(
        building > 0,
        "the scores were served before history was built"
    );
    // The history completes in the background.
    eventually(Duration::from_secs(120), "every KR's history", || async {
        let l = http::try_get_json(&server.url("/api/v1/key-results")).await?;
        l["key_results"]
            .as_array()?
            .iter()
            .all(|k| k["history_status"] == "complete")
            .then_some(())
    })
    .await;
    println!("full history after {:?}", started.elapsed());
    // A KR's history: one row per hourly change in the period (the
    // period started 31 days ago, so every point is in it).
    let d = http::get_json(&server.url("/api/v1/key-results/o7/k3")).await;
    assert_eq!(d["history_status"], "complete");
    assert_eq!(
        d["history"].as_array().unwrap().len(),
        HOURS as usize,
        "{}",
        d["history"].as_array().unwrap().len()
    );
}
