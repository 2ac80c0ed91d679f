//! The one trait every pull connector implements, and what a run returns.
//!
//! A pull connector (`http`, `prometheus`, `sql`) is three parts: its
//! settings (parsed in `config::connector`), a [`Pull`] implementation in
//! its own file, and that file's tests. The [`scheduler`](super::scheduler)
//! decides when it runs, bounds each run by the connector's timeout, writes
//! the points and records its health; a connector only fetches and converts.
//! A new type is a copy of a sibling file plus one arm in the registry
//! ([`super::runner_for`]).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::config::types::format_duration;
use crate::ingest::{PointError, RejectReason};
use crate::model::{parse_timestamp, unix_seconds, Point, Timestamp};

/// One run of a pull connector.
#[derive(Debug, Clone)]
pub struct Run {
    /// The schedule tick this run is for (a Prometheus query is evaluated
    /// at it; an `http` item without a ts gets it).
    pub tick: Timestamp,
    /// The latest point ts this connector stored (`$1` of a SQL query).
    pub watermark: Option<Timestamp>,
    /// The connector's timeout: the run's whole budget.
    pub timeout: Duration,
    /// When the run must be over: `timeout` after its start.
    pub deadline: tokio::time::Instant,
}

/// What a run fetched: the valid points, and the items it could not read.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Points to store.
    pub points: Vec<Point>,
    /// Items that are not points, each with its reason (counted and logged).
    pub rejected: Vec<PointError>,
}

/// Why a run failed. Each maps to one `reason` label of
/// `okrd_connector_errors_total`, a small fixed set ([`ERROR_REASONS`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PullError {
    /// No answer within the time allowed.
    #[error("{target}: no answer within {}", format_duration(*after))]
    Timeout {
        /// The URL (or redacted DSN).
        target: String,
        /// The time allowed.
        after: Duration,
    },
    /// The source could not be reached.
    #[error("{target}: unreachable: {message}")]
    Unreachable {
        /// The URL (or redacted DSN).
        target: String,
        /// Why.
        message: String,
    },
    /// An HTTP status other than 2xx (after retries, for 5xx).
    #[error("{target}: HTTP {status} ({body})")]
    Status {
        /// The URL.
        target: String,
        /// The status code.
        status: u16,
        /// The body's content type and length (never its content).
        body: String,
    },
    /// The answer is not what the connector expects (not JSON, a JSON
    /// pointer that matches nothing, an unsupported column type, ...).
    #[error("{target}: {message}")]
    BadResponse {
        /// The URL (or redacted DSN).
        target: String,
        /// What is wrong, naming the pointer or column.
        message: String,
    },
    /// The source refused the query (PromQL or SQL error), its text kept.
    #[error("{target}: {message}")]
    Query {
        /// The URL (or redacted DSN).
        target: String,
        /// The source's own error text.
        message: String,
    },
    /// Writing the points or the run state failed.
    #[error("store: {0}")]
    Store(String),
}

/// Every `reason` label `okrd_connector_errors_total` can carry.
pub const ERROR_REASONS: [&str; 6] = [
    "timeout",
    "unreachable",
    "http_status",
    "bad_response",
    "query",
    crate::sink::STORE_REASON,
];

impl PullError {
    /// The `reason` label (one of [`ERROR_REASONS`]).
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::Timeout { .. } => "timeout",
            PullError::Unreachable { .. } => "unreachable",
            PullError::Status { .. } => "http_status",
            PullError::BadResponse { .. } => "bad_response",
            PullError::Query { .. } => "query",
            PullError::Store(_) => crate::sink::STORE_REASON,
        }
    }
}

/// A pull connector: fetches the points of one tick.
#[async_trait]
pub trait Pull: Send {
    /// Where it pulls from, for messages: a URL, or a DSN without password.
    fn target(&self) -> &str;

    /// Fetches and converts the points of `run`. Bounded by the scheduler's
    /// timeout; it may use `run.deadline` to budget retries.
    async fn pull(&mut self, run: &Run) -> Result<Pulled, PullError>;
}

pub(super) fn reject(reason: RejectReason, message: impl Into<String>) -> PointError {
    PointError {
        reason,
        message: message.into(),
    }
}

/// A point value from JSON: a number, or a string holding one (as
/// Prometheus and many APIs send them); finite only.
pub(super) fn json_number(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(x) if x.is_finite() => Ok(x),
        Some(x) => Err(format!("value {x} is not a finite number")),
        None => Err(format!("value is {}, not a number", kind(v))),
    }
}

/// A ts from JSON: an RFC 3339 string, or Unix seconds (number or string).
pub(super) fn json_ts(v: &Value) -> Result<Timestamp, String> {
    match v {
        Value::String(s) => parse_timestamp(s),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("invalid timestamp {n}"))
            .and_then(unix_seconds),
        other => Err(format!(
            "ts is {}, neither an RFC 3339 string nor Unix seconds",
            kind(other)
        )),
    }
}

/// A label value from JSON: strings as they are, numbers and booleans as
/// text; `None` for null (the label is absent). Objects and arrays are not
/// label values.
pub(super) fn json_label(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!("{} is not a label value (a string)", kind(other))),
    }
}

/// What kind of JSON value `v` is, for messages that must not quote
/// upstream content.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_ts_and_labels() {
        assert_eq!(json_number(&json!(0.5)), Ok(0.5));
        assert_eq!(json_number(&json!("0.25")), Ok(0.25));
        assert!(json_number(&json!("NaN")).is_err());
        assert!(json_number(&json!(true)).is_err());
        assert_eq!(
            json_ts(&json!(1_790_812_800)).unwrap(),
            json_ts(&json!("2026-10-01T00:00:00Z")).unwrap()
        );
        assert!(json_ts(&json!([1])).is_err());
        assert_eq!(json_label(&json!(3)), Ok(Some("3".into())));
        assert_eq!(json_label(&json!(null)), Ok(None));
        assert!(json_label(&json!({})).is_err());
    }
}
