//! Pull connectors end to end: `http` against a local fixture server,
//! `prometheus` against the real Prometheus (Debian's package) scraping a
//! fixture exporter, `sql` against the real PostgreSQL and MariaDB (also
//! over TLS); registration by YAML
//! and REST; health in /metrics and the API; scheduling (no overlap, one
//! catch-up, one slow connector never delays another); and one run per
//! tick across two `okrd serve` instances on one PostgreSQL.

mod fixture;

mod api;
mod http;
mod instances;
mod mysql;
mod prometheus;
mod schedule;
mod sql;

use std::path::PathBuf;

use crate::common::http as web;
pub use crate::common::http::metric;
use crate::common::server::Server;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// A deployment directory for connector files, outside the server's own
/// temp dir so that several servers can share it.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Default for Deployment {
    fn default() -> Self {
        Self::new()
    }
}

impl Deployment {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("connectors")).unwrap();
        Deployment { dir }
    }

    pub fn connectors_dir(&self) -> PathBuf {
        self.dir.path().join("connectors")
    }

    /// Writes `connectors/<name>.yaml`.
    pub fn connector_file(&self, name: &str, yaml: &str) {
        std::fs::write(self.connectors_dir().join(format!("{name}.yaml")), yaml).unwrap();
    }

    /// The service config: the connectors dir, a fast recompute, an
    /// optional token. The fixtures listen on loopback, which connectors
    /// registered over the API may reach only when allowed explicitly; they
    /// may read `${FIXTURE_PATH}` and `${WAREHOUSE_URL}`.
    pub fn service_yaml(&self, token: Option<&str>) -> String {
        let token = token.map_or(String::new(), |t| format!("  token: {t}\n"));
        format!(
            "http:\n  listen: 127.0.0.1:0\n  connector_destinations: [127.0.0.0/8]\n  connector_env: [FIXTURE_PATH, WAREHOUSE_URL]\n{token}paths:\n  connectors: {}\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: {{ type: webhook, url: \"http://127.0.0.1:9/hook\" }}\n",
            self.connectors_dir().display()
        )
    }

    /// Starts `okrd serve` on this deployment.
    pub fn start(
        &self,
        token: Option<&str>,
        objectives: &[(&str, String)],
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Server {
        Server::start(&self.service_yaml(token), objectives, database_url, env)
    }
}

/// An objective around `now` with one KR on `metric` with exactly `labels`
/// (a YAML flow map, `{}` for none).
pub fn objective(
    id: &str,
    metric: &str,
    labels: &str,
    now: DateTime<Utc>,
) -> (&'static str, String) {
    let start = (now - chrono::TimeDelta::days(30)).format("%Y-%m-%d");
    let end = (now + chrono::TimeDelta::days(60)).format("%Y-%m-%d");
    (
        // Leaked: file names are `&str` in the shared server helper.
        Box::leak(format!("{id}.yaml").into_boxed_str()),
        format!(
            "id: {id}\nobjective: Objective {id}\nteam: growth\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n  - id: kr\n    title: Raise {metric} from 0.1 to 0.9\n    metric: {metric}\n    labels: {labels}\n    baseline: 0.1\n    target: 0.9\n    counter_metrics:\n      - {{ metric: tickets, better: lower, tolerance: 5% }}\n"
        ),
    )
}

/// The token of the deployments that set one. Reads send it always: a
/// server without a token ignores it.
pub const TOKEN: &str = "s3cret";

/// `GET url` with the token: its JSON, asserting a 2xx status.
pub async fn get_json(url: &str) -> Value {
    web::get(url, Some(TOKEN)).await.ok_json()
}

/// `GET url` with the token: its body.
pub async fn get_text(url: &str) -> String {
    web::get(url, Some(TOKEN)).await.text
}

/// Registers a connector: `POST /api/v1/connectors` with the token.
pub async fn register(server: &Server, body: &Value) -> web::Answer {
    web::post(
        &server.url("/api/v1/connectors"),
        Some(TOKEN),
        body.to_string(),
    )
    .await
}

/// The values stored at `url` of the series `metric` with `labels`, in
/// October and November 2026 (the sources' days), oldest first.
pub async fn stored_values(url: &str, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    use chrono::TimeZone;
    let store = okrd::store::open(url).await.unwrap();
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let key = okrd::model::SeriesKey::new(metric, labels);
    let from = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let samples = store.load_series(&key, from, to).await.unwrap();
    samples.iter().map(|s| s.value).collect()
}

/// One connector of `GET /api/v1/connectors`.
pub async fn connector(server: &Server, name: &str) -> Option<Value> {
    let list = get_json(&server.url("/api/v1/connectors")).await;
    list["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}

/// The value of objective `id`'s KR, once scored.
pub async fn kr_value(server: &Server, id: &str) -> Option<f64> {
    let list = get_json(&server.url("/api/v1/key-results")).await;
    list["key_results"]
        .as_array()?
        .iter()
        .find(|k| k["objective"] == id)?["value"]
        .as_f64()
}
