//! One JSON point object (`{metric, labels, ts, value}`, SPEC §3) to a
//! [`Point`], or the reason it is not one.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::json;
use super::limits;
use crate::model::{parse_timestamp, unix_seconds, Labels, Point, SeriesKey};

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

/// Why a point was rejected: a small fixed set, usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not JSON at all (push bodies, Kafka messages, JSON lines).
    InvalidJson,
    /// Not an object, or unknown fields.
    InvalidShape,
    /// Missing or invalid metric name, or one past the length limit.
    InvalidMetric,
    /// Labels not a map of valid names to strings, a key written twice, or
    /// past a limit (count, name or value length).
    InvalidLabels,
    /// Missing or unparsable ts, or one outside 1970-01-01 to 9999-12-31.
    InvalidTs,
    /// Missing, non-numeric or non-finite value.
    InvalidValue,
}

impl RejectReason {
    /// The label value.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
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

/// Every reason, in the order documented (README, SPEC §3).
pub const REJECT_REASONS: [RejectReason; 6] = [
    RejectReason::InvalidJson,
    RejectReason::InvalidShape,
    RejectReason::InvalidMetric,
    RejectReason::InvalidLabels,
    RejectReason::InvalidTs,
    RejectReason::InvalidValue,
];

pub(crate) fn reject(reason: RejectReason, message: impl Into<String>) -> PointError {
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
    if let Some(keys) = json::duplicates(obj) {
        return Err(reject(
            InvalidShape,
            format!("field {:?} written twice", keys[0]),
        ));
    }
    for key in obj.keys() {
        if !matches!(key.as_str(), "metric" | "labels" | "ts" | "value") {
            return Err(reject(
                InvalidShape,
                format!("unknown field {key:?} (a point has metric, labels, ts, value)"),
            ));
        }
    }
    let metric = match obj.get("metric") {
        Some(Value::String(m)) => {
            limits::check_metric(m)?;
            m.clone()
        }
        Some(_) => return Err(reject(InvalidMetric, "metric must be a string")),
        None => return Err(reject(InvalidMetric, "missing metric")),
    };
    let mut labels = Labels::new();
    match obj.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if let Some(keys) = json::duplicates(map) {
                return Err(reject(
                    InvalidLabels,
                    format!("label {:?} written twice", keys[0]),
                ));
            }
            limits::check_label_count(map.len())?;
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        limits::check_label(k, s)?;
                        labels.insert(k.clone(), s.clone());
                    }
                    _ => {
                        limits::check_label(k, "")?;
                        return Err(reject(
                            InvalidLabels,
                            format!("label {k:?} must be a string"),
                        ));
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
    limits::check_point(&metric, &labels, ts, value)?;
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
