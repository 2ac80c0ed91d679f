//! `type: http` against the fixture server: pointers, broken bodies, 5xx
//! retried, 4xx not, timeouts retried; and a YAML deployment whose good,
//! broken and failing connectors show their health in /metrics and the API.

use std::time::Duration;

use chrono::Utc;
use okrd::connectors::pull::{PullError, Pulled, Run};
use okrd::connectors::{runner_for, Runner};
use serde_json::json;

use super::fixture::Fixture;
use super::{connector, get_text, kr_value, metric, objective, Deployment};
use crate::common::wait::eventually;

fn doc() -> serde_json::Value {
    json!({"data": [
        {"date": "2026-11-20T00:00:00Z", "rate": 0.41, "plan": "free"},
        {"date": "2026-11-20T00:00:00Z", "rate": "0.55", "plan": "pro"},
        {"date": "2026-11-20T00:00:00Z", "rate": "n/a", "plan": "team"},
    ]})
}

fn http_yaml(name: &str, url: &str, timeout: &str) -> String {
    format!(
        "name: {name}\ntype: http\nschedule: \"@every 1s\"\ntimeout: {timeout}\nrequest:\n  url: {url}\n  headers: {{ Authorization: \"Bearer ${{FIXTURE_TOKEN:-t0ken}}\" }}\nextract:\n  items: /data\n  metric: activation_rate\n  ts: /date\n  value: /rate\n  labels: {{ plan: /plan }}\n"
    )
}

/// Runs one connector definition once, in process.
async fn pull_once(yaml: &str) -> Result<Pulled, PullError> {
    pull_once_with(yaml, &Default::default()).await
}

async fn pull_once_with(yaml: &str, env: &okrd::config::Env) -> Result<Pulled, PullError> {
    let c = okrd::config::load_connector_text(yaml, "test.yaml", env, None)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let Runner::Scheduled(mut p) = runner_for(&c, None) else {
        panic!("a pull connector is scheduled")
    };
    let run = Run {
        tick: Utc::now(),
        watermark: None,
        timeout: c.timeout,
        deadline: tokio::time::Instant::now() + c.timeout,
    };
    tokio::time::timeout(c.timeout, p.pull(&run))
        .await
        .unwrap_or_else(|_| {
            Err(PullError::Timeout {
                target: p.target().into(),
                after: c.timeout,
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_items_become_points_and_bad_items_are_rejected() {
    let f = Fixture::start().await;
    *f.seen.json.lock().unwrap() = doc();
    let got = pull_once(&http_yaml("a", &f.url("/json"), "5s"))
        .await
        .unwrap();
    let mut points: Vec<_> = got
        .points
        .iter()
        .map(|p| (p.series.to_string(), p.value))
        .collect();
    points.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        points,
        [
            ("activation_rate{plan=\"free\"}".to_string(), 0.41),
            ("activation_rate{plan=\"pro\"}".to_string(), 0.55)
        ]
    );
    assert_eq!(got.rejected.len(), 1);
    assert_eq!(got.rejected[0].reason.as_str(), "invalid_value");
    assert!(
        got.rejected[0].message.contains("item 2"),
        "{:?}",
        got.rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_sends_the_body_and_headers_with_variables_from_the_environment() {
    let f = Fixture::start().await;
    let yaml = format!(
        "name: p\ntype: http\nschedule: \"@every 1m\"\nrequest:\n  method: POST\n  url: {}\n  headers: {{ Authorization: \"Bearer ${{API_TOKEN}}\" }}\n  body: '{{\"x\": ${{X}}}}'\nextract:\n  metric: posted\n  value: /value\n  labels: {{ auth: /auth, type: /type }}\n",
        f.url("/echo")
    );
    let env = [("API_TOKEN", "abc"), ("X", "7.5")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let got = pull_once_with(&yaml, &env).await.unwrap();
    assert_eq!(got.points.len(), 1);
    let p = &got.points[0];
    assert_eq!(p.value, 7.5);
    assert_eq!(p.series.labels["auth"], "Bearer abc");
    assert_eq!(p.series.labels["type"], "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_body_or_a_pointer_that_fails_is_an_error_naming_url_and_pointer() {
    let f = Fixture::start().await;
    let url = f.url("/broken");
    let e = pull_once(&http_yaml("b", &url, "5s")).await.unwrap_err();
    assert_eq!(e.reason(), "bad_response");
    let text = e.to_string();
    assert!(text.contains(&url) && text.contains("not JSON"), "{text}");
    assert_eq!(f.hits("/broken"), 1, "a bad body is not retried");

    *f.seen.json.lock().unwrap() = json!({"rows": []});
    let e = pull_once(&http_yaml("b", &f.url("/json"), "5s"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&f.url("/json"))
            && text.contains("extract.items pointer \"/data\" matches nothing"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_timeouts_are_retried_client_errors_are_not() {
    let f = Fixture::start().await;
    *f.seen.json.lock().unwrap() = doc();
    // Two 503s, then the answer: three attempts, one run, success.
    let got = pull_once(&http_yaml("c", &f.url("/flaky/2"), "10s")).await;
    assert_eq!(got.unwrap().points.len(), 2);
    assert_eq!(f.hits("/flaky/2"), 3);

    // Always 500: the first attempt and three retries, then the 5xx.
    let e = pull_once(&http_yaml("c", &f.url("/always500"), "20s"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "http_status");
    // The status, content type and length; never the upstream's body.
    assert!(e.to_string().contains("HTTP 500 (text/plain"), "{e}");
    assert!(!e.to_string().contains("database is down"), "{e}");
    assert_eq!(f.hits("/always500"), 4);

    // 404 is the request's fault: no retry.
    let e = pull_once(&http_yaml("c", &f.url("/missing"), "10s"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), "http_status");
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert_eq!(f.hits("/missing"), 1);

    // The first request hangs past its share of the timeout (3s / 3); the
    // retry gets the answer.
    let got = pull_once(&http_yaml("c", &f.url("/hang-once"), "3s")).await;
    assert_eq!(got.unwrap().points.len(), 2);
    assert_eq!(f.hits("/hang-once"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_connectors_ingest_on_schedule_and_report_their_health() {
    let f = Fixture::start().await;
    let now = Utc::now();
    let ts = (now - chrono::TimeDelta::hours(1)).to_rfc3339();
    *f.seen.json.lock().unwrap() = json!({"data": [
        {"date": ts, "rate": 0.6, "plan": "free"},
        {"date": ts, "rate": null, "plan": "pro"},
    ]});
    let d = Deployment::new();
    d.connector_file("good", &http_yaml("good", &f.url("/json"), "5s"));
    d.connector_file(
        "bad",
        &format!(
            "- {}\n- {}",
            http_yaml("broken", &f.url("/broken"), "5s").replace('\n', "\n  "),
            http_yaml("down", &f.url("/always500"), "2s").replace('\n', "\n  ")
        ),
    );
    let server = d.start(
        None,
        &[objective("act", "activation_rate", "{ plan: free }", now)],
        None,
        &[],
    );

    // The good connector's points are scored.
    let v = eventually(
        Duration::from_secs(30),
        "the KR scored from pulled data",
        || kr_value(&server, "act"),
    )
    .await;
    assert_eq!(v, 0.6);

    let text = eventually(Duration::from_secs(30), "health metrics", || async {
        let text = get_text(&server.url("/metrics")).await;
        let ready = metric(
            &text,
            "okrd_connector_errors_total{connector=\"broken\",reason=\"bad_response\"}",
        )
        .is_some()
            && metric(
                &text,
                "okrd_connector_errors_total{connector=\"down\",reason=\"http_status\"}",
            )
            .is_some()
            && metric(
                &text,
                "okrd_points_rejected_total{connector=\"good\",reason=\"invalid_value\"}",
            )
            .is_some();
        ready.then_some(text)
    })
    .await;
    assert!(metric(&text, "okrd_points_ingested_total{connector=\"good\"}").unwrap() >= 1.0);
    let last = metric(
        &text,
        "okrd_connector_last_success_timestamp_seconds{connector=\"good\"}",
    )
    .unwrap();
    assert!(
        (last - Utc::now().timestamp() as f64).abs() < 300.0,
        "{last}"
    );
    assert_eq!(
        metric(
            &text,
            "okrd_connector_last_success_timestamp_seconds{connector=\"down\"}"
        ),
        None,
        "a connector that never succeeded has no last success"
    );
    assert_eq!(
        metric(&text, "okrd_points_ingested_total{connector=\"down\"}"),
        Some(0.0)
    );

    let good = connector(&server, "good").await.unwrap();
    assert_eq!(good["origin"], "yaml");
    assert_eq!(good["type"], "http");
    assert_eq!(good["schedule"], "@every 1s");
    assert!(good["last_success"].is_string() && good["last_run"].is_string());
    assert!(good["points_ingested"].as_u64().unwrap() >= 1);
    assert!(good["file"].as_str().unwrap().ends_with("good.yaml:1"));
    let broken = connector(&server, "broken").await.unwrap();
    let error = broken["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("connector broken: ")
            && error.contains(&f.url("/broken"))
            && error.contains("not JSON"),
        "{error}"
    );
    assert!(broken["last_success"].is_null());
    let down = connector(&server, "down").await.unwrap();
    assert!(
        down["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{down}"
    );
    // The failing connectors never stopped the good one from running.
    let runs = f.hits("/json");
    eventually(
        Duration::from_secs(30),
        "more runs of the good connector",
        || async { (f.hits("/json") > runs).then_some(()) },
    )
    .await;
}

/// `http` and `prometheus` connectors over HTTPS with a private CA (the
/// fixture server behind stunnel): with `ca_file` the pulls work; without
/// it the certificate is refused, in words, and nothing is pulled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sources_with_a_private_ca_file() {
    let f = Fixture::start().await;
    *f.seen.json.lock().unwrap() = doc();
    let certs = crate::common::tls::certs();
    let port: u16 = f.base.rsplit(':').next().unwrap().parse().unwrap();
    let tls = crate::common::tls::Stunnel::start(&certs, port);
    let base = format!("https://localhost:{}", tls.port);
    let ca = format!("ca_file: {}\n", certs.ca.display());

    let url = format!("{base}/json");
    let got = pull_once(&(http_yaml("a", &url, "5s") + &ca))
        .await
        .unwrap();
    assert_eq!(got.points.len(), 2, "{got:?}");
    let e = pull_once(&http_yaml("b", &url, "1s")).await.unwrap_err();
    assert!(e.to_string().contains("not signed by a trusted CA"), "{e}");
    assert_eq!(
        f.hits("/json"),
        1,
        "only the pull that trusted the CA got through"
    );

    let prometheus = |name: &str| {
        format!("name: {name}\ntype: prometheus\nschedule: \"@every 1s\"\ntimeout: 1s\nurl: {base}\nquery: up\nmetric: up\n")
    };
    let got = pull_once(&(prometheus("p") + &ca)).await.unwrap();
    assert_eq!(got.points.len(), 1, "{got:?}");
    assert_eq!(
        got.points[0].series.labels.get("job").map(String::as_str),
        Some("fixture")
    );
    let e = pull_once(&prometheus("q")).await.unwrap_err();
    assert!(e.to_string().contains("not signed by a trusted CA"), "{e}");
}
