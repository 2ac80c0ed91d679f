//! One JSON point object (`{metric, labels, ts, value}`, SPEC §3) to a
//! [`Point`], or the reason it is not one.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::model::{is_valid_metric_name, parse_timestamp, unix_seconds, Labels, Point, SeriesKey};

/// Hands out one shared [`SeriesKey`] per distinct series, so a batch of
/// points allocates each key once.
#[derive(Debug, Default)]
pub struct Interner {
    keys: HashMap<SeriesKey, Arc<SeriesKey>>,
}

impl Interner {
    /// The shared key equal to `key`.
    pub fn intern(&mut self, key: SeriesKey) -> Arc<SeriesKey> {
        if let Some(k) = self.keys.get(&key) {
            return Arc::clone(k);
        }
        let k = Arc::new(key.clone());
        self.keys.insert(key, Arc::clone(&k));
        k
    }

    /// How many distinct series were seen.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no series was seen.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Whether `name` is a valid label name (the Prometheus rule).
pub fn is_valid_label_name(name: &str) -> bool {
    is_valid_metric_name(name)
}

/// Why a point was rejected: a small fixed set, usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not an object, or unknown fields.
    InvalidShape,
    /// Missing or invalid metric name.
    InvalidMetric,
    /// Labels not a map of valid names to strings.
    InvalidLabels,
    /// Missing or unparsable ts.
    InvalidTs,
    /// Missing, non-numeric or non-finite value.
    InvalidValue,
}

impl RejectReason {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidShape => "invalid_shape",
            Self::InvalidMetric => "invalid_metric",
            Self::InvalidLabels => "invalid_labels",
            Self::InvalidTs => "invalid_ts",
            Self::InvalidValue => "invalid_value",
        }
    }
}

/// A rejected point: the reason's category and what exactly is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PointError {
    /// The category.
    pub reason: RejectReason,
    /// One phrase saying what is wrong.
    pub message: String,
}

fn reject(reason: RejectReason, message: impl Into<String>) -> PointError {
    PointError {
        reason,
        message: message.into(),
    }
}

/// Reads a point object. The error says what is wrong in one phrase.
pub fn point_from_json(value: &Value, interner: &mut Interner) -> Result<Point, PointError> {
    use RejectReason::*;
    let obj = value
        .as_object()
        .ok_or_else(|| reject(InvalidShape, "a point must be a JSON object"))?;
    for key in obj.keys() {
        if !matches!(key.as_str(), "metric" | "labels" | "ts" | "value") {
            return Err(reject(
                InvalidShape,
                format!("unknown field {key:?} (a point has metric, labels, ts, value)"),
            ));
        }
    }
    let metric = match obj.get("metric") {
        Some(Value::String(m)) if is_valid_metric_name(m) => m.clone(),
        Some(Value::String(m)) => {
            return Err(reject(
                InvalidMetric,
                format!("invalid metric name {m:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ))
        }
        Some(_) => return Err(reject(InvalidMetric, "metric must be a string")),
        None => return Err(reject(InvalidMetric, "missing metric")),
    };
    let mut labels = Labels::new();
    match obj.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if !is_valid_label_name(k) {
                    return Err(reject(
                        InvalidLabels,
                        format!("invalid label name {k:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"),
                    ));
                }
                match v {
                    Value::String(s) => {
                        labels.insert(k.clone(), s.clone());
                    }
                    _ => {
                        return Err(reject(
                            InvalidLabels,
                            format!("label {k:?} must be a string"),
                        ))
                    }
                }
            }
        }
        Some(_) => return Err(reject(InvalidLabels, "labels must be an object of strings")),
    }
    let ts = match obj.get("ts") {
        Some(Value::String(s)) => parse_timestamp(s).map_err(|e| reject(InvalidTs, e))?,
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| "invalid timestamp".to_string())
            .and_then(unix_seconds)
            .map_err(|e| reject(InvalidTs, e))?,
        Some(_) => {
            return Err(reject(
                InvalidTs,
                "ts must be an RFC 3339 string or Unix seconds",
            ))
        }
        None => return Err(reject(InvalidTs, "missing ts")),
    };
    let value = match obj.get("value") {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| reject(InvalidValue, "value must be a finite number"))?,
        Some(Value::Null) | None => return Err(reject(InvalidValue, "missing value")),
        Some(_) => return Err(reject(InvalidValue, "value must be a finite number")),
    };
    Ok(Point {
        series: interner.intern(SeriesKey::new(metric, labels)),
        ts,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_points_and_rejects_bad_ones() {
        let mut i = Interner::default();
        let p = point_from_json(&json!({"metric": "m", "labels": {"plan": "free"}, "ts": "2026-10-01T00:00:00Z", "value": 0.5}), &mut i).unwrap();
        assert_eq!((p.series.metric.as_str(), p.value), ("m", 0.5));
        let q = point_from_json(
            &json!({"metric": "m", "labels": {"plan": "free"}, "ts": 1790812800, "value": 1}),
            &mut i,
        )
        .unwrap();
        assert_eq!(p.ts, q.ts);
        assert!(Arc::ptr_eq(&p.series, &q.series), "one key per series");
        for (bad, why) in [
            (
                json!({"metric": "m", "ts": 1, "value": "1"}),
                "finite number",
            ),
            (
                json!({"metric": "m", "ts": "soon", "value": 1}),
                "invalid timestamp",
            ),
            (
                json!({"metric": "1m", "ts": 1, "value": 1}),
                "invalid metric",
            ),
            (json!({"metric": "m", "ts": 1}), "missing value"),
            (
                json!({"metric": "m", "ts": 1, "value": 1, "extra": 1}),
                "unknown field",
            ),
            (
                json!({"metric": "m", "ts": 1, "value": 1, "labels": {"a": 1}}),
                "must be a string",
            ),
            (json!([1]), "JSON object"),
        ] {
            let e = point_from_json(&bad, &mut i).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }
}
