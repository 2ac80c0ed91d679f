//! A key result's definition: every field that affects its score or its
//! alerts (SPEC §4 "Revisions and check-ins"), as okrd stores it; the
//! fields two definitions differ in; whether the change is *easier*; and
//! the revisions a KR went through.
//!
//! Pure: no I/O, no clock. The store keeps definitions as this type's
//! JSON, the scorer scores history under the definition in force at each
//! instant ([`Definition::key_result`]), `okrd diff` compares two
//! deployments with [`changes`] and [`easier`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::objective::{Aggregate, Better, CounterMetric, CounterTest, KrType, Target};
use crate::config::types::{format_duration, HumanDuration, Tolerance};
use crate::config::{KeyResult, Objective};
use crate::model::{Labels, Timestamp};

/// What a KR's score and alerts depend on. The period is the objective's
/// as written (`2026-Q4`, `current-quarter`), so a recurring period's
/// roll-over is no change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The objective's period, as written.
    pub period: String,
    /// The metric read.
    pub metric: String,
    /// The series' labels.
    pub labels: Labels,
    /// `last`, `avg`, ...
    pub aggregate: Aggregate,
    /// The aggregate's window (`7d`).
    pub window: Option<String>,
    /// The configured baseline.
    pub baseline: Option<f64>,
    /// The target.
    pub target: TargetDef,
    /// Which way is better.
    pub better: Better,
    /// Committed or aspirational.
    #[serde(rename = "type")]
    pub kind: KrType,
    /// Weight in the objective score.
    pub weight: f64,
    /// When the KR turns stale (`2d`).
    pub stale_after: Option<String>,
    /// The counter metrics (guardrails).
    pub counter_metrics: Vec<CounterDef>,
}

/// A target as stored: `{"value": 0.45}`, `{"at_most": 300}`, `{"at_least": 0.9}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetDef {
    /// Move to this value.
    Value(f64),
    /// Maintain at or under.
    AtMost(f64),
    /// Maintain at or over.
    AtLeast(f64),
}

/// A tolerance as stored: `{"relative": 0.05}` (5%) or `{"absolute": 0.3}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToleranceDef {
    /// A fraction of the reference.
    Relative(f64),
    /// In the metric's unit.
    Absolute(f64),
}

/// A counter metric as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterDef {
    /// The counter metric.
    pub metric: String,
    /// Its series' labels.
    pub labels: Labels,
    /// Its aggregate.
    pub aggregate: Aggregate,
    /// Its aggregate's window.
    pub aggregate_window: Option<String>,
    /// Which way is better.
    pub better: Better,
    /// How much worse it may get.
    pub tolerance: ToleranceDef,
    /// The comparison window W.
    pub window: String,
    /// `threshold` or `welch`.
    pub test: String,
    /// `welch`'s points per window.
    pub min_points: Option<usize>,
    /// `welch`'s alpha.
    pub alpha: Option<f64>,
}

/// One field two definitions differ in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field: `target`, `type`, `counter_metrics[tickets].tolerance`.
    pub field: String,
    /// Its value before (`null`: absent).
    pub from: Value,
    /// Its value after (`null`: absent).
    pub to: Value,
}

/// A revision: a change of a KR's definition while its period ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// Numbered from 1.
    pub revision: i64,
    /// When okrd recorded it (the start or reload that changed it).
    pub at: Timestamp,
    /// Each changed field, from → to.
    pub changes: Vec<FieldChange>,
    /// Whether the change made the KR easier (SPEC §4).
    pub easier: bool,
}

fn duration_text(d: Option<Duration>) -> Option<String> {
    d.map(format_duration)
}

fn parse_duration(text: &Option<String>) -> Option<Duration> {
    text.as_deref()
        .and_then(|t| t.parse::<HumanDuration>().ok())
        .map(|d| d.0)
}

impl Definition {
    /// The definition of `kr` of `objective`.
    pub fn of(objective: &Objective, kr: &KeyResult) -> Definition {
        Definition {
            period: objective.period.label.clone(),
            metric: kr.metric.clone(),
            labels: kr.labels.clone(),
            aggregate: kr.aggregate,
            window: duration_text(kr.window),
            baseline: kr.baseline,
            target: match kr.target {
                Target::Value(v) => TargetDef::Value(v),
                Target::AtMost(v) => TargetDef::AtMost(v),
                Target::AtLeast(v) => TargetDef::AtLeast(v),
            },
            better: kr.better,
            kind: kr.kind,
            weight: kr.weight,
            stale_after: duration_text(kr.stale_after),
            counter_metrics: kr
                .counter_metrics
                .iter()
                .map(|c| CounterDef {
                    metric: c.metric.clone(),
                    labels: c.labels.clone(),
                    aggregate: c.aggregate,
                    aggregate_window: duration_text(c.aggregate_window),
                    better: c.better,
                    tolerance: match c.tolerance {
                        Tolerance::Relative(v) => ToleranceDef::Relative(v),
                        Tolerance::Absolute(v) => ToleranceDef::Absolute(v),
                    },
                    window: format_duration(c.window),
                    test: c.test.as_str().to_string(),
                    min_points: match c.test {
                        CounterTest::Welch { min_points, .. } => Some(min_points),
                        CounterTest::Threshold => None,
                    },
                    alpha: match c.test {
                        CounterTest::Welch { alpha, .. } => Some(alpha),
                        CounterTest::Threshold => None,
                    },
                })
                .collect(),
        }
    }

    /// `current`, the KR as configured now, as this (older) definition had
    /// it: what its history before a revision is scored under. Everything
    /// but the scoring fields (id, title, where it was declared) is
    /// `current`'s.
    pub fn key_result(&self, current: &KeyResult) -> KeyResult {
        KeyResult {
            metric: self.metric.clone(),
            labels: self.labels.clone(),
            aggregate: self.aggregate,
            window: parse_duration(&self.window),
            baseline: self.baseline,
            target: match self.target {
                TargetDef::Value(v) => Target::Value(v),
                TargetDef::AtMost(v) => Target::AtMost(v),
                TargetDef::AtLeast(v) => Target::AtLeast(v),
            },
            better: self.better,
            kind: self.kind,
            weight: self.weight,
            stale_after: parse_duration(&self.stale_after),
            counter_metrics: self
                .counter_metrics
                .iter()
                .map(|c| CounterMetric {
                    metric: c.metric.clone(),
                    labels: c.labels.clone(),
                    aggregate: c.aggregate,
                    aggregate_window: parse_duration(&c.aggregate_window),
                    better: c.better,
                    tolerance: match c.tolerance {
                        ToleranceDef::Relative(v) => Tolerance::Relative(v),
                        ToleranceDef::Absolute(v) => Tolerance::Absolute(v),
                    },
                    window: parse_duration(&Some(c.window.clone())).unwrap_or_default(),
                    test: match (c.min_points, c.alpha) {
                        (Some(min_points), Some(alpha)) => CounterTest::Welch { min_points, alpha },
                        _ => CounterTest::Threshold,
                    },
                })
                .collect(),
            ..current.clone()
        }
    }

    /// The stored form (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a definition serializes")
    }

    /// Reads the stored form.
    pub fn from_json(text: &str) -> Result<Definition, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The definition as flat fields: `target`, `counter_metrics[m].tolerance`.
    fn fields(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Value::Object(top) = serde_json::to_value(self).expect("a definition serializes")
        else {
            unreachable!("a definition is an object")
        };
        for (k, v) in top {
            if k == "counter_metrics" {
                for c in &self.counter_metrics {
                    let Value::Object(cm) =
                        serde_json::to_value(c).expect("a counter metric serializes")
                    else {
                        unreachable!("a counter metric is an object")
                    };
                    for (ck, cv) in cm {
                        if ck != "metric" {
                            out.insert(format!("counter_metrics[{}].{ck}", c.metric), cv);
                        }
                    }
                }
            } else {
                out.insert(k, v);
            }
        }
        out
    }
}

/// The fields `from` and `to` differ in, by field name.
pub fn changes(from: &Definition, to: &Definition) -> Vec<FieldChange> {
    let a = from.fields();
    let b = to.fields();
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let x = a.get(name).cloned().unwrap_or(Value::Null);
            let y = b.get(name).cloned().unwrap_or(Value::Null);
            (x != y).then(|| FieldChange {
                field: name.clone(),
                from: x,
                to: y,
            })
        })
        .collect()
}

/// Whether going from `from` to `to` makes the KR easier (SPEC §4): the
/// target moves toward the baseline (the worse way, by `better`), a
/// maintain threshold loosens, a counter metric's tolerance rises (same
/// kind of tolerance), or a committed KR turns aspirational.
pub fn easier(from: &Definition, to: &Definition) -> bool {
    let target = match (from.target, to.target) {
        (TargetDef::Value(a), TargetDef::Value(b)) => match to.better {
            Better::Higher => b < a,
            Better::Lower => b > a,
        },
        (TargetDef::AtMost(a), TargetDef::AtMost(b)) => b > a,
        (TargetDef::AtLeast(a), TargetDef::AtLeast(b)) => b < a,
        _ => false,
    };
    let tolerance = to.counter_metrics.iter().any(|c| {
        from.counter_metrics
            .iter()
            .find(|o| o.metric == c.metric)
            .is_some_and(|o| match (o.tolerance, c.tolerance) {
                (ToleranceDef::Relative(a), ToleranceDef::Relative(b))
                | (ToleranceDef::Absolute(a), ToleranceDef::Absolute(b)) => b > a,
                _ => false,
            })
    });
    let kind = from.kind == KrType::Committed && to.kind == KrType::Aspirational;
    target || tolerance || kind
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Definition {
        Definition {
            period: "2026-Q4".into(),
            metric: "activation".into(),
            labels: Labels::new(),
            aggregate: Aggregate::Last,
            window: None,
            baseline: Some(0.32),
            target: TargetDef::Value(0.45),
            better: Better::Higher,
            kind: KrType::Committed,
            weight: 1.0,
            stale_after: None,
            counter_metrics: vec![CounterDef {
                metric: "tickets".into(),
                labels: Labels::new(),
                aggregate: Aggregate::Last,
                aggregate_window: None,
                better: Better::Lower,
                tolerance: ToleranceDef::Relative(0.05),
                window: "7d".into(),
                test: "threshold".into(),
                min_points: None,
                alpha: None,
            }],
        }
    }

    fn with(f: impl Fn(&mut Definition)) -> Definition {
        let mut d = base();
        f(&mut d);
        d
    }

    #[test]
    fn easier_as_spec_defines_it() {
        let lower = |d: &mut Definition| {
            d.target = TargetDef::Value(0.30);
            d.better = Better::Lower;
            d.baseline = Some(0.40);
        };
        let cases: Vec<(&str, Definition, Definition, bool)> = vec![
            (
                "target toward the baseline (higher is better)",
                base(),
                with(|d| d.target = TargetDef::Value(0.40)),
                true,
            ),
            (
                "target away from the baseline (higher is better)",
                base(),
                with(|d| d.target = TargetDef::Value(0.50)),
                false,
            ),
            (
                "target toward the baseline (lower is better)",
                with(lower),
                with(|d| {
                    lower(d);
                    d.target = TargetDef::Value(0.35)
                }),
                true,
            ),
            (
                "target away from the baseline (lower is better)",
                with(lower),
                with(|d| {
                    lower(d);
                    d.target = TargetDef::Value(0.25)
                }),
                false,
            ),
            (
                "at_most raised: loosened",
                with(|d| d.target = TargetDef::AtMost(300.0)),
                with(|d| d.target = TargetDef::AtMost(350.0)),
                true,
            ),
            (
                "at_most lowered: tightened",
                with(|d| d.target = TargetDef::AtMost(300.0)),
                with(|d| d.target = TargetDef::AtMost(250.0)),
                false,
            ),
            (
                "at_least lowered: loosened",
                with(|d| d.target = TargetDef::AtLeast(0.99)),
                with(|d| d.target = TargetDef::AtLeast(0.95)),
                true,
            ),
            (
                "at_least raised: tightened",
                with(|d| d.target = TargetDef::AtLeast(0.99)),
                with(|d| d.target = TargetDef::AtLeast(0.999)),
                false,
            ),
            (
                "tolerance raised",
                base(),
                with(|d| d.counter_metrics[0].tolerance = ToleranceDef::Relative(0.10)),
                true,
            ),
            (
                "tolerance lowered",
                base(),
                with(|d| d.counter_metrics[0].tolerance = ToleranceDef::Relative(0.01)),
                false,
            ),
            (
                "tolerance from relative to absolute: not comparable",
                base(),
                with(|d| d.counter_metrics[0].tolerance = ToleranceDef::Absolute(1.0)),
                false,
            ),
            (
                "committed to aspirational",
                base(),
                with(|d| d.kind = KrType::Aspirational),
                true,
            ),
            (
                "aspirational to committed",
                with(|d| d.kind = KrType::Aspirational),
                base(),
                false,
            ),
            ("weight changed", base(), with(|d| d.weight = 2.0), false),
            (
                "stale_after changed",
                base(),
                with(|d| d.stale_after = Some("2d".into())),
                false,
            ),
            (
                "a maintain target replacing a value target",
                base(),
                with(|d| d.target = TargetDef::AtLeast(0.45)),
                false,
            ),
            ("nothing changed", base(), base(), false),
        ];
        for (name, from, to, want) in cases {
            assert_eq!(easier(&from, &to), want, "{name}");
        }
    }

    #[test]
    fn changes_name_each_field_from_and_to() {
        let to = with(|d| {
            d.target = TargetDef::Value(0.40);
            d.counter_metrics[0].tolerance = ToleranceDef::Relative(0.10);
        });
        let got = changes(&base(), &to);
        assert_eq!(
            got,
            vec![
                FieldChange {
                    field: "counter_metrics[tickets].tolerance".into(),
                    from: serde_json::json!({"relative": 0.05}),
                    to: serde_json::json!({"relative": 0.10}),
                },
                FieldChange {
                    field: "target".into(),
                    from: serde_json::json!({"value": 0.45}),
                    to: serde_json::json!({"value": 0.40}),
                },
            ]
        );
        assert_eq!(changes(&base(), &base()), vec![]);
    }

    #[test]
    fn the_stored_form_reads_back() {
        let d = with(|d| {
            d.window = Some("1w".into());
            d.counter_metrics[0].min_points = Some(5);
            d.counter_metrics[0].alpha = Some(0.05);
        });
        assert_eq!(Definition::from_json(&d.to_json()).unwrap(), d);
    }
}
