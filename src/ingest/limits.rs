//! The limits every point meets, on every path (push, Kafka, pull
//! connectors, `okrd ingest`) and in every store (SPEC §3): checked here,
//! once, so that a point past a limit is a bad point with its reason
//! wherever it comes from, and never a store error.

use chrono::{TimeZone, Utc};

use super::point::{reject, PointError, RejectReason};
use crate::model::{is_valid_label_name, is_valid_metric_name, Labels, Timestamp};

/// The longest metric or label name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// The most labels a point has.
pub const MAX_LABELS: usize = 32;

/// The earliest ts: 1970-01-01T00:00:00Z.
pub fn min_ts() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

/// The latest ts: 9999-12-31T23:59:59.999999Z.
pub fn max_ts() -> Timestamp {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .expect("a valid date")
        + chrono::TimeDelta::microseconds(999_999)
}

/// Checks a metric name: the rule and the length.
pub fn check_metric(name: &str) -> Result<(), PointError> {
    check_name(
        name,
        "metric",
        is_valid_metric_name,
        RejectReason::InvalidMetric,
    )
}

/// A metric or label name (`what`): at most [`MAX_NAME_BYTES`], and `valid`.
fn check_name(
    name: &str,
    what: &str,
    valid: fn(&str) -> bool,
    reason: RejectReason,
) -> Result<(), PointError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(reject(
            reason,
            format!(
                "{what} name of {} bytes: at most {MAX_NAME_BYTES}",
                name.len()
            ),
        ));
    }
    if !valid(name) {
        return Err(reject(
            reason,
            format!("invalid {what} name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"),
        ));
    }
    Ok(())
}

/// Checks one label: the name's rule and length, the value's length.
pub fn check_label(name: &str, value: &str) -> Result<(), PointError> {
    check_name(
        name,
        "label",
        is_valid_label_name,
        RejectReason::InvalidLabels,
    )?;
    if value.len() > MAX_LABEL_VALUE_BYTES {
        return Err(reject(
            RejectReason::InvalidLabels,
            format!(
                "label {name:?} has a value of {} bytes: at most {MAX_LABEL_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Checks how many labels a point has.
pub fn check_label_count(count: usize) -> Result<(), PointError> {
    if count > MAX_LABELS {
        return Err(reject(
            RejectReason::InvalidLabels,
            format!("{count} labels: at most {MAX_LABELS}"),
        ));
    }
    Ok(())
}

/// Checks that a ts is within 1970-01-01 and 9999-12-31.
pub fn check_ts(ts: Timestamp) -> Result<(), PointError> {
    if ts < min_ts() || ts > max_ts() {
        return Err(reject(
            RejectReason::InvalidTs,
            format!(
                "ts {} is out of range: 1970-01-01 to 9999-12-31",
                ts.to_rfc3339()
            ),
        ));
    }
    Ok(())
}

/// Checks that a value is finite.
pub fn check_value(value: f64) -> Result<(), PointError> {
    if !value.is_finite() {
        return Err(reject(
            RejectReason::InvalidValue,
            format!("value {value} is not a finite number"),
        ));
    }
    Ok(())
}

/// Every check, for a point whose parts have been read: what each path
/// calls last, before it builds the [`Point`](crate::model::Point).
pub fn check_point(
    metric: &str,
    labels: &Labels,
    ts: Timestamp,
    value: f64,
) -> Result<(), PointError> {
    check_metric(metric)?;
    check_label_count(labels.len())?;
    for (name, v) in labels {
        check_label(name, v)?;
    }
    check_ts(ts)?;
    check_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize, value_len: usize) -> Labels {
        (0..n)
            .map(|i| (format!("l{i}"), "v".repeat(value_len)))
            .collect()
    }

    #[test]
    fn each_limit_is_inclusive_and_names_its_reason() {
        let t = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        assert!(check_point(&"m".repeat(255), &labels(32, 1024), t, 1.0).is_ok());
        let cases = [
            (
                check_point(&"m".repeat(256), &Labels::new(), t, 1.0),
                RejectReason::InvalidMetric,
            ),
            (
                check_point("m", &labels(33, 1), t, 1.0),
                RejectReason::InvalidLabels,
            ),
            (
                check_point("m", &labels(1, 1025), t, 1.0),
                RejectReason::InvalidLabels,
            ),
            (
                check_point("m", &[("a".repeat(256), "v".into())].into(), t, 1.0),
                RejectReason::InvalidLabels,
            ),
            (
                check_point("m", &[("a-b".into(), "v".into())].into(), t, 1.0),
                RejectReason::InvalidLabels,
            ),
            (
                check_point(
                    "m",
                    &Labels::new(),
                    min_ts() - chrono::TimeDelta::microseconds(1),
                    1.0,
                ),
                RejectReason::InvalidTs,
            ),
            (
                check_point(
                    "m",
                    &Labels::new(),
                    max_ts() + chrono::TimeDelta::microseconds(1),
                    1.0,
                ),
                RejectReason::InvalidTs,
            ),
            (
                check_point("m", &Labels::new(), t, f64::NAN),
                RejectReason::InvalidValue,
            ),
        ];
        for (i, (result, reason)) in cases.into_iter().enumerate() {
            assert_eq!(result.unwrap_err().reason, reason, "case {i}");
        }
        assert!(check_ts(min_ts()).is_ok() && check_ts(max_ts()).is_ok());
    }
}
