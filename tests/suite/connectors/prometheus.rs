//! `type: prometheus` against the real Prometheus (Debian's `prometheus`,
//! installed by scripts/install-test-deps.sh), started here on a free port
//! and scraping the fixture's exporter every second.

use crate::common::process::{spawn_prometheus, Daemon};
use std::time::Duration;

use chrono::Utc;
use okrd::connectors::pull::{PullError, Pulled, Run};
use okrd::connectors::{runner_for, Runner};
use serde_json::{json, Value};

use super::fixture::Fixture;
use super::{connector, kr_value, objective, register, Deployment, TOKEN};
use crate::common::http;
use crate::common::wait::eventually;

/// Starts Prometheus scraping `exporter` (host:port) and waits until its
/// first samples are queryable.
async fn start_prometheus(exporter: &str) -> Daemon {
    let p = spawn_prometheus("app", exporter);
    let url = format!("{}/api/v1/query", p.url);
    eventually(
        Duration::from_secs(90),
        "Prometheus to scrape the exporter",
        // Samples two seconds old, so that a query at any later tick sees them.
        || async {
            let at = (Utc::now().timestamp() - 2).to_string();
            let r = http::client()
                .get(&url)
                .query(&[("query", "app_retention_d7_ratio"), ("time", at.as_str())])
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            (v["data"]["result"].as_array()?.len() == 2).then_some(())
        },
    )
    .await;
    p
}

fn prometheus_yaml(name: &str, url: &str, query: &str, metric: &str) -> String {
    format!(
        "name: {name}\ntype: prometheus\nschedule: \"@every 1s\"\nurl: {url}\nquery: '{query}'\nmetric: {metric}\n"
    )
}

/// The tick `pull_once` evaluates at.
fn tick() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(0)
}

async fn pull_once(yaml: &str) -> Result<Pulled, PullError> {
    let c = okrd::config::load_connector_text(yaml, "test.yaml", &Default::default(), None)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let Runner::Scheduled(mut p) = runner_for(&c, None) else {
        panic!("a pull connector is scheduled")
    };
    let run = Run {
        tick: tick(),
        watermark: None,
        timeout: c.timeout,
        deadline: tokio::time::Instant::now() + c.timeout,
    };
    p.pull(&run).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_prometheus_is_queried_by_yaml_and_rest_connectors() {
    let f = Fixture::start().await;
    let exporter = f.base.trim_start_matches("http://").to_string();
    let prom = start_prometheus(&exporter).await;

    // In process: each series a point, its labels kept without __name__.
    let got = pull_once(&prometheus_yaml(
        "p",
        &prom.url,
        "app_retention_d7_ratio",
        "retention_d7",
    ))
    .await
    .unwrap();
    let mut series: Vec<_> = got
        .points
        .iter()
        .map(|p| (p.series.to_string(), p.value))
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(series.len(), 2, "{series:?}");
    assert_eq!(
        series[0].0,
        format!("retention_d7{{instance=\"{exporter}\",job=\"app\",plan=\"free\"}}")
    );
    assert_eq!(series[0].1, 0.42);
    // Evaluated at the tick's time: the sample carries it.
    let t = got.points[0].ts;
    assert_eq!(t.timestamp_subsec_micros(), 0, "{t}");
    assert!((Utc::now() - t).num_seconds() <= 60, "{t}");
    // A scalar result is one unlabelled point.
    let got = pull_once(&prometheus_yaml(
        "p",
        &prom.url,
        "scalar(sum(app_retention_d7_ratio))",
        "total",
    ))
    .await
    .unwrap();
    assert!(got.points[0].series.labels.is_empty());
    assert!((got.points[0].value - 1.04).abs() < 1e-9);
    // Prometheus's own error text is passed on.
    let e = pull_once(&prometheus_yaml(
        "p",
        &prom.url,
        "sum(app_retention_d7_ratio",
        "x",
    ))
    .await
    .unwrap_err();
    assert_eq!(e.reason(), "query");
    assert!(e.to_string().contains("prometheus: bad_data:"), "{e}");
    // A range vector is not a point per series.
    let e = pull_once(&prometheus_yaml(
        "p",
        &prom.url,
        "app_retention_d7_ratio[1m]",
        "x",
    ))
    .await
    .unwrap_err();
    assert_eq!(e.reason(), "bad_response");

    // End to end: one connector from a file, one over REST.
    let now = Utc::now();
    let d = Deployment::new();
    d.connector_file(
        "prom",
        &prometheus_yaml(
            "prom-file",
            &prom.url,
            "avg(app_retention_d7_ratio)",
            "retention_avg",
        ),
    );
    let server = d.start(
        Some(TOKEN),
        &[objective("file", "retention_avg", "{}", now)],
        None,
        &[],
    );
    let v = eventually(
        Duration::from_secs(30),
        "the file connector's KR value",
        || kr_value(&server, "file"),
    )
    .await;
    assert!((v - 0.52).abs() < 1e-9, "{v}");

    let body = json!({
        "name": "prom-rest",
        "type": "prometheus",
        "schedule": "*/2 * * * * *",
        "url": prom.url,
        "query": "app_retention_d7_ratio{plan=\"free\"}",
        "metric": "retention_free"
    });
    assert_eq!(register(&server, &body).await.status, 201);
    // `${VAR}` may read only what http.connector_env lists: HOME is not.
    let mut secret = body.clone();
    secret["name"] = json!("prom-secret");
    secret["query"] = json!("up{token=\"${HOME}\"}");
    let r = register(&server, &secret).await;
    assert_eq!(r.status, 400);
    let answer = r.json();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("http.connector_env"),
        "{answer}"
    );
    let c = eventually(
        Duration::from_secs(30),
        "the REST connector's points",
        || async {
            connector(&server, "prom-rest")
                .await
                .filter(|c| c["points_ingested"].as_u64() >= Some(1))
        },
    )
    .await;
    assert_eq!(c["schedule"], "*/2 * * * * *");
    assert!(c["last_error"].is_null(), "{c}");
}
