//! Connector definitions (`connectors/*.yaml`, SPEC §3): parsed and
//! validated here; the connectors themselves run elsewhere.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::Diagnostics;
use super::objective::{check_id, check_metric};
use super::service::type_of;
use super::types::{HumanDuration, Schedule};
use super::yaml::{Node, Span};
use crate::tls::CaFile;

/// A validated connector definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    /// Unique, `[a-z0-9-]+`.
    pub name: String,
    /// When a pull connector runs; `None` for streaming types.
    pub schedule: Option<Schedule>,
    /// Upper bound on one run of a pull connector.
    pub timeout: Duration,
    /// Type-specific settings.
    pub kind: ConnectorKind,
    /// The file it came from.
    pub file: String,
    /// Where it starts in that file.
    pub span: Span,
}

/// Type-specific connector settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectorKind {
    /// Pull JSON over HTTP.
    Http(HttpSource),
    /// A PromQL instant query.
    Prometheus(PrometheusSource),
    /// A SQL query against PostgreSQL or MySQL/MariaDB.
    Sql(SqlSource),
    /// Consume a Kafka topic.
    Kafka(KafkaSource),
    /// Generated demo series.
    Synthetic,
}

impl ConnectorKind {
    /// The `type` as written in YAML.
    pub fn type_name(&self) -> &'static str {
        match self {
            ConnectorKind::Http(_) => "http",
            ConnectorKind::Prometheus(_) => "prometheus",
            ConnectorKind::Sql(_) => "sql",
            ConnectorKind::Kafka(_) => "kafka",
            ConnectorKind::Synthetic => "synthetic",
        }
    }
}

/// The metrics the `synthetic` connector generates (its demo scenario).
pub const SYNTHETIC_METRICS: &[&str] = &[
    "activation_rate",
    "support_tickets_per_100_users",
    "onboarding_p99_ms",
    "weekly_active_teams",
    "churn_rate",
    "checkout_conversion_rate",
    "refund_rate",
    "payment_decline_rate",
];

impl Connector {
    /// Metric names this connector is known to produce. Connectors that take
    /// the metric name from the data (a JSON pointer, a `metric` column, a
    /// Kafka message) declare none.
    pub fn declared_metrics(&self) -> Vec<&str> {
        match &self.kind {
            ConnectorKind::Http(h) => match &h.extract.metric {
                FieldRef::Literal(m) => vec![m.as_str()],
                FieldRef::Pointer(_) => vec![],
            },
            ConnectorKind::Prometheus(p) => vec![p.metric.as_str()],
            ConnectorKind::Sql(s) => s.metric.as_deref().into_iter().collect(),
            ConnectorKind::Kafka(_) => vec![],
            ConnectorKind::Synthetic => SYNTHETIC_METRICS.to_vec(),
        }
    }
}

/// A metric name given literally or picked out of the data.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldRef {
    /// A fixed metric name.
    Literal(String),
    /// An RFC 6901 JSON pointer.
    Pointer(String),
}

/// `type: http`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// GET (default) or POST.
    #[serde(default)]
    pub method: HttpMethod,
    /// The URL.
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body (POST).
    #[serde(default)]
    pub body: Option<String>,
}

/// HTTP method of an `http` connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    #[default]
    Get,
    /// POST.
    Post,
}

/// How points are picked out of an `http` connector's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Extract {
    /// Pointer to the array of items; `None` means the document is one item.
    pub items: Option<String>,
    /// The metric name, literal or a pointer into each item.
    pub metric: FieldRef,
    /// Pointer to each item's ts; `None` means the time of the pull.
    pub ts: Option<String>,
    /// Pointer to each item's value.
    pub value: String,
    /// Label name to pointer into each item.
    pub labels: BTreeMap<String, String>,
}

/// `type: http` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSource {
    /// The request to make.
    pub request: HttpRequest,
    /// How to read the response.
    pub extract: Extract,
    /// A private CA to trust instead of the built-in roots (`ca_file`).
    pub ca: Option<CaFile>,
}

/// `type: prometheus` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API.
    pub url: String,
    /// A PromQL instant query.
    pub query: String,
    /// The metric name given to the results.
    pub metric: String,
    /// A private CA to trust instead of the built-in roots (`ca_file`).
    pub ca: Option<CaFile>,
}

/// `type: sql` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlSource {
    /// The source database: `postgres://...` or `mysql://...`, with its
    /// TLS parameters.
    pub dsn: String,
    /// The query; `$1` (PostgreSQL) or every `?` (MySQL) binds the
    /// connector's watermark.
    pub query: String,
    /// The metric name, unless the query returns a `metric` column.
    pub metric: Option<String>,
}

/// `type: kafka` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSource {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id.
    pub group: String,
    /// Pointers into each message; `None` means messages are points as in SPEC §3.
    pub mapping: Option<KafkaMapping>,
    /// `earliest` or `latest` for partitions without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Extra librdkafka properties, passed through.
    pub properties: BTreeMap<String, String>,
    /// A batch is written once it holds this many points...
    pub batch_max_points: usize,
    /// ...or this long after its first message arrived.
    pub batch_max_wait: Duration,
    /// Consumption pauses while this many points are taken but unwritten.
    pub max_in_flight_points: usize,
}

/// Default `batch_max_points` of a `kafka` connector.
pub const KAFKA_BATCH_MAX_POINTS: usize = 10_000;
/// Default `batch_max_wait` of a `kafka` connector.
pub const KAFKA_BATCH_MAX_WAIT: Duration = Duration::from_millis(100);
/// Default `max_in_flight_points` of a `kafka` connector.
pub const KAFKA_MAX_IN_FLIGHT_POINTS: usize = 100_000;

/// librdkafka properties a `kafka` connector's `properties` may not set:
/// okrd sets them from the connector's own keys, or needs them as they are
/// (offsets are stored only once their points are written).
pub const KAFKA_RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "auto.offset.reset",
    "enable.auto.offset.store",
];

/// Where a Kafka message keeps a point's fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaMapping {
    /// Pointer to the metric name.
    pub metric: String,
    /// Pointer to the ts.
    pub ts: String,
    /// Pointer to the value.
    pub value: String,
    /// Pointer to an object of labels.
    #[serde(default)]
    pub labels: Option<String>,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest retained message (the default: nothing is skipped).
    #[default]
    Earliest,
    /// Only new messages.
    Latest,
}

const TYPES: [&str; 5] = ["http", "prometheus", "sql", "kafka", "synthetic"];
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const SYNTHETIC_SCHEDULE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    schedule: Schedule,
    #[serde(default)]
    timeout: Option<HumanDuration>,
    request: HttpRequest,
    extract: RawExtract,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtract {
    #[serde(default)]
    items: Option<String>,
    metric: String,
    #[serde(default)]
    ts: Option<String>,
    value: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    schedule: Schedule,
    #[serde(default)]
    timeout: Option<HumanDuration>,
    url: String,
    query: String,
    metric: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    schedule: Schedule,
    #[serde(default)]
    timeout: Option<HumanDuration>,
    dsn: String,
    query: String,
    #[serde(default)]
    metric: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    brokers: String,
    topics: Vec<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    mapping: Option<KafkaMapping>,
    #[serde(default)]
    auto_offset_reset: OffsetReset,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    batch_max_points: Option<usize>,
    #[serde(default)]
    batch_max_wait: Option<HumanDuration>,
    #[serde(default)]
    max_in_flight_points: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSynthetic {
    name: String,
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    schedule: Option<Schedule>,
}

/// Validates one connector definition at `path`.
pub fn load_connector(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<Connector> {
    let kind = type_of(node, path, &TYPES, diags)?;
    let before = diags.error_count();
    let key = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let at = |k: &str| node.get(k).unwrap_or(node);
    let (name, schedule, timeout, kind) = match kind.as_str() {
        "http" => {
            let r: RawHttp = diags.deserialize(node, path)?;
            let extract_node = at("extract");
            let ex = r.extract;
            let metric = if ex.metric.starts_with('/') {
                FieldRef::Pointer(ex.metric)
            } else {
                check_metric(
                    extract_node.get("metric").unwrap_or(extract_node),
                    &key("extract.metric"),
                    &ex.metric,
                    diags,
                );
                FieldRef::Literal(ex.metric)
            };
            let mut pointers: Vec<(String, &String)> = vec![(key("extract.value"), &ex.value)];
            pointers.extend(ex.items.iter().map(|p| (key("extract.items"), p)));
            pointers.extend(ex.ts.iter().map(|p| (key("extract.ts"), p)));
            pointers.extend(
                ex.labels
                    .iter()
                    .map(|(l, p)| (key(&format!("extract.labels.{l}")), p)),
            );
            for (p, ptr) in pointers {
                check_pointer(extract_node, &p, ptr, diags);
            }
            check_url(at("request"), &key("request.url"), &r.request.url, diags);
            let ca = load_ca_file(node, &key("ca_file"), r.ca_file.as_deref(), diags);
            let extract = Extract {
                items: ex.items,
                metric,
                ts: ex.ts,
                value: ex.value,
                labels: ex.labels,
            };
            (
                r.name,
                Some(r.schedule),
                r.timeout,
                ConnectorKind::Http(HttpSource {
                    request: r.request,
                    extract,
                    ca,
                }),
            )
        }
        "prometheus" => {
            let r: RawPrometheus = diags.deserialize(node, path)?;
            check_metric(at("metric"), &key("metric"), &r.metric, diags);
            check_url(at("url"), &key("url"), &r.url, diags);
            let ca = load_ca_file(node, &key("ca_file"), r.ca_file.as_deref(), diags);
            let source = PrometheusSource {
                url: r.url,
                query: r.query,
                metric: r.metric,
                ca,
            };
            (
                r.name,
                Some(r.schedule),
                r.timeout,
                ConnectorKind::Prometheus(source),
            )
        }
        "sql" => {
            let r: RawSql = diags.deserialize(node, path)?;
            if let Some(m) = &r.metric {
                check_metric(at("metric"), &key("metric"), m, diags);
            }
            if !["postgres://", "postgresql://", "mysql://"]
                .iter()
                .any(|p| r.dsn.starts_with(p))
            {
                diags.error(
                    at("dsn"),
                    &key("dsn"),
                    "dsn must be a PostgreSQL or MySQL URL (postgres://USER@HOST/DB or mysql://USER@HOST/DB)",
                );
            }
            let source = SqlSource {
                dsn: r.dsn,
                query: r.query,
                metric: r.metric,
            };
            (
                r.name,
                Some(r.schedule),
                r.timeout,
                ConnectorKind::Sql(source),
            )
        }
        "kafka" => {
            let r: RawKafka = diags.deserialize(node, path)?;
            if r.topics.is_empty() {
                diags.error(at("topics"), &key("topics"), "at least one topic is needed");
            }
            if let Some(m) = &r.mapping {
                let mnode = at("mapping");
                for (k, p) in [
                    ("metric", Some(&m.metric)),
                    ("ts", Some(&m.ts)),
                    ("value", Some(&m.value)),
                    ("labels", m.labels.as_ref()),
                ] {
                    if let Some(p) = p {
                        check_pointer(
                            mnode.get(k).unwrap_or(mnode),
                            &key(&format!("mapping.{k}")),
                            p,
                            diags,
                        );
                    }
                }
            }
            for k in r.properties.keys() {
                if KAFKA_RESERVED_PROPERTIES.contains(&k.as_str()) {
                    let pnode = at("properties");
                    diags.error(
                        pnode.get(k).unwrap_or(pnode),
                        &key(&format!("properties.{k}")),
                        format!("{k} cannot be set in properties: okrd sets it (brokers, group and auto_offset_reset are the connector's own keys; offsets are stored once points are written)"),
                    );
                }
            }
            let batch_max_points = r.batch_max_points.unwrap_or(KAFKA_BATCH_MAX_POINTS);
            let max_in_flight_points = r
                .max_in_flight_points
                .unwrap_or(KAFKA_MAX_IN_FLIGHT_POINTS.max(batch_max_points));
            if batch_max_points == 0 {
                diags.error(
                    at("batch_max_points"),
                    &key("batch_max_points"),
                    "batch_max_points must be at least 1",
                );
            }
            if max_in_flight_points < batch_max_points {
                diags.error(
                    at("max_in_flight_points"),
                    &key("max_in_flight_points"),
                    format!("max_in_flight_points ({max_in_flight_points}) must be at least batch_max_points ({batch_max_points})"),
                );
            }
            let source = KafkaSource {
                brokers: r.brokers,
                topics: r.topics,
                group: r.group.unwrap_or_else(|| "okrd".into()),
                mapping: r.mapping,
                auto_offset_reset: r.auto_offset_reset,
                properties: r.properties,
                batch_max_points,
                batch_max_wait: r.batch_max_wait.map_or(KAFKA_BATCH_MAX_WAIT, |d| d.0),
                max_in_flight_points,
            };
            (r.name, None, None, ConnectorKind::Kafka(source))
        }
        _ => {
            let r: RawSynthetic = diags.deserialize(node, path)?;
            let schedule = r.schedule.unwrap_or(Schedule::Every(SYNTHETIC_SCHEDULE));
            (r.name, Some(schedule), None, ConnectorKind::Synthetic)
        }
    };
    check_id(node.get("name"), &key("name"), &name, diags);
    let timeout = timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    if timeout.is_zero() {
        diags.error(
            at("timeout"),
            &key("timeout"),
            "timeout must be longer than zero",
        );
    }
    (diags.error_count() == before).then(|| Connector {
        name,
        schedule,
        timeout,
        kind,
        file: diags.file().to_string(),
        span: node.span,
    })
}

fn check_pointer(node: &Node, path: &str, pointer: &str, diags: &mut Diagnostics) {
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        diags.error(node, path, format!("invalid JSON pointer {pointer:?}: must be empty or start with '/' (e.g. /data/0/rate)"));
    }
}

fn check_url(node: &Node, path: &str, url: &str, diags: &mut Diagnostics) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        diags.error(
            node.get("url").unwrap_or(node),
            path,
            format!("invalid url {url:?}: must start with http:// or https://"),
        );
    }
}

/// Reads the `ca_file` at `path` (of the mapping `node`), reporting a file
/// that cannot be read or holds no certificate. Relative paths are from the
/// working directory.
pub(super) fn load_ca_file(
    node: &Node,
    path: &str,
    file: Option<&std::path::Path>,
    diags: &mut Diagnostics,
) -> Option<CaFile> {
    match CaFile::load(file?) {
        Ok(ca) => Some(ca),
        Err(message) => {
            diags.error(node.get("ca_file").unwrap_or(node), path, message);
            None
        }
    }
}
