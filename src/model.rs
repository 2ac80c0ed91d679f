//! The data okrd moves around: series keys, points and samples.
//!
//! Everything here is already validated: a [`Point`] always has a valid metric
//! name and a finite value, so code past the edge never re-checks.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

/// Instants are UTC with microsecond precision everywhere in okrd.
pub type Timestamp = DateTime<Utc>;

/// A label set. Ordered, so two equal sets always serialize identically.
pub type Labels = BTreeMap<String, String>;

/// Identifies one time series: a metric name plus its exact label set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Metric name, `[a-zA-Z_][a-zA-Z0-9_]*`.
    pub metric: String,
    /// The series' labels; empty for an unlabelled series.
    pub labels: Labels,
}

impl SeriesKey {
    /// A series key; the caller has validated the metric name.
    pub fn new(metric: impl Into<String>, labels: Labels) -> Self {
        Self {
            metric: metric.into(),
            labels,
        }
    }

    /// The canonical text form of the label set, as stored in the database:
    /// a JSON object with keys in ascending order (`{}` when empty).
    pub fn labels_json(&self) -> String {
        serde_json::to_string(&self.labels).expect("a string map always serializes")
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// One observation of a series. The store keys points by (series, ts): a point
/// that arrives again replaces the stored value.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Shared so that a batch of points from one series costs one allocation.
    pub series: Arc<SeriesKey>,
    /// When the value was observed.
    pub ts: Timestamp,
    /// Always finite.
    pub value: f64,
}

/// A point of an already-known series, as read back for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When the value was observed.
    pub ts: Timestamp,
    /// The observed value.
    pub value: f64,
}

impl Sample {
    /// A sample at `ts`.
    pub fn new(ts: Timestamp, value: f64) -> Self {
        Self { ts, value }
    }
}

/// `t - d`, saturating at the earliest representable instant (a window
/// longer than history means "everything").
pub fn minus(t: Timestamp, d: std::time::Duration) -> Timestamp {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(Timestamp::MIN_UTC)
}

/// Whether `name` is a valid metric name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, the
/// Prometheus rule, which happens to be okrd's metric-name rule too).
pub fn is_valid_label_name(name: &str) -> bool {
    is_valid_metric_name(name)
}

/// Parses a point timestamp: RFC 3339, or Unix seconds (fractions allowed).
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Ok(ts.with_timezone(&Utc));
    }
    if let Ok(secs) = text.parse::<f64>() {
        return unix_seconds(secs);
    }
    let shown: String = text.chars().take(40).collect();
    let more = if shown.len() < text.len() { "..." } else { "" };
    Err(format!(
        "invalid timestamp {shown:?}{more}: expected RFC 3339 (2026-10-01T00:00:00Z) or Unix seconds"
    ))
}

/// Converts Unix seconds (possibly fractional) to a timestamp.
pub fn unix_seconds(secs: f64) -> Result<Timestamp, String> {
    if !secs.is_finite() {
        return Err(format!("invalid timestamp {secs}: not a finite number"));
    }
    let micros = (secs * 1e6).round();
    if micros.abs() > 8.0e18 {
        return Err(format!("invalid timestamp {secs}: out of range"));
    }
    Utc.timestamp_micros(micros as i64)
        .single()
        .ok_or_else(|| format!("invalid timestamp {secs}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert!(is_valid_metric_name("activation_rate"));
        assert!(is_valid_metric_name("_x9"));
        assert!(!is_valid_metric_name("9x"));
        assert!(!is_valid_metric_name("a-b"));
        assert!(!is_valid_metric_name(""));
    }

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2026-10-01T00:00:00Z").unwrap();
        assert_eq!(t.timestamp(), 1_790_812_800);
        assert_eq!(parse_timestamp("1790812800").unwrap(), t);
        assert_eq!(
            parse_timestamp("1790812800.5")
                .unwrap()
                .timestamp_subsec_micros(),
            500_000
        );
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("NaN").is_err());
    }
}
