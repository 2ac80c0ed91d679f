//! Objectives and their key results (`config/objectives/*.yaml`, SPEC §4).
//!
//! [`RawObjective`] is what the YAML says; [`Objective`] is what it means,
//! with every default applied and every rule of SPEC §4 checked.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::Diagnostics;
use super::types::{HumanDuration, Period, RawPeriod, Tolerance};
use super::yaml::{Kind, Node, Span};
use crate::model::{is_valid_metric_name, Labels};

/// An objective with its key results, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Unique across all objective files.
    pub id: String,
    /// The objective's statement.
    pub objective: String,
    /// The owning team, declared in the service config.
    pub team: String,
    /// The period the key results are scored over.
    pub period: Period,
    /// Optional parent objective id (any team), checked to exist and to
    /// form no cycle (`alignment.rs`).
    pub aligns_to: Option<String>,
    /// May be empty only when another objective aligns to this one.
    pub key_results: Vec<KeyResult>,
    /// The file the objective came from, for messages.
    pub file: String,
    /// Where the objective's document starts in that file.
    pub span: Span,
}

/// A key result bound to a metric series.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyResult {
    /// Unique within its objective.
    pub id: String,
    /// Human-readable outcome.
    pub title: String,
    /// The metric this KR reads.
    pub metric: String,
    /// The exact label set of the series read.
    pub labels: Labels,
    /// How points become the KR's value.
    pub aggregate: Aggregate,
    /// Aggregation window; `None` exactly when `aggregate` is `Last`.
    pub window: Option<Duration>,
    /// Configured baseline; `None` means "the aggregate at period start".
    pub baseline: Option<f64>,
    /// What the KR aims at.
    pub target: Target,
    /// The direction of improvement, configured or implied by the target.
    pub better: Better,
    /// Committed or aspirational.
    pub kind: KrType,
    /// Weight in the objective score, > 0.
    pub weight: f64,
    /// A KR whose newest point is older than this is `stale`.
    pub stale_after: Option<Duration>,
    /// Guardrails.
    pub counter_metrics: Vec<CounterMetric>,
    /// The KRs (any team's) this KR needs, checked to exist.
    pub depends_on: Vec<KrRef>,
    /// Where the KR was declared, for messages and lints.
    pub span: Span,
}

/// A reference to a key result, written `objective/kr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KrRef {
    /// The objective's id.
    pub objective: String,
    /// The key result's id within it.
    pub key_result: String,
}

impl KrRef {
    /// Parses `objective/kr`; `None` unless both parts are valid ids.
    pub fn parse(s: &str) -> Option<KrRef> {
        let (objective, key_result) = s.split_once('/')?;
        (is_valid_id(objective) && is_valid_id(key_result)).then(|| KrRef {
            objective: objective.to_string(),
            key_result: key_result.to_string(),
        })
    }
}

impl std::fmt::Display for KrRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.objective, self.key_result)
    }
}

/// The target of a key result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Move from the baseline to this value.
    Value(f64),
    /// Maintain: met while value <= threshold.
    AtMost(f64),
    /// Maintain: met while value >= threshold.
    AtLeast(f64),
}

impl Target {
    /// The number the KR is compared against.
    pub fn value(&self) -> f64 {
        match *self {
            Target::Value(v) | Target::AtMost(v) | Target::AtLeast(v) => v,
        }
    }

    /// Whether this is a maintain (threshold) target.
    pub fn is_maintain(&self) -> bool {
        !matches!(self, Target::Value(_))
    }
}

/// The direction in which a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Larger values are better.
    Higher,
    /// Smaller values are better.
    Lower,
}

/// How a series' points become one value at evaluation time t.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The latest point with ts <= t.
    #[default]
    Last,
    /// Mean of the points in (t - window, t].
    Avg,
    /// Sum of the points in (t - window, t].
    Sum,
    /// Minimum of the points in (t - window, t].
    Min,
    /// Maximum of the points in (t - window, t].
    Max,
    /// Number of points in (t - window, t].
    Count,
}

impl Aggregate {
    /// The name used in YAML and in explanations.
    pub fn as_str(&self) -> &'static str {
        match self {
            Aggregate::Last => "last",
            Aggregate::Avg => "avg",
            Aggregate::Sum => "sum",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Count => "count",
        }
    }
}

/// Committed KRs are expected to reach 1.0; aspirational ones 0.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KrType {
    /// Expected to be fully met (the default).
    #[default]
    Committed,
    /// A stretch goal: 0.7 is success.
    Aspirational,
}

/// A metric that must not degrade while its KR improves.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterMetric {
    /// The counter metric's name.
    pub metric: String,
    /// The exact label set of the series read.
    pub labels: Labels,
    /// How its points become a value.
    pub aggregate: Aggregate,
    /// Aggregation window; `None` exactly when `aggregate` is `Last`.
    /// Defaults to `window` for the other aggregates.
    pub aggregate_window: Option<Duration>,
    /// Its direction of improvement.
    pub better: Better,
    /// How much worse it may get before the guardrail fires.
    pub tolerance: Tolerance,
    /// The comparison window W (default 7d).
    pub window: Duration,
    /// How "degrades" is decided: the tolerance rule or Welch's test.
    pub test: CounterTest,
}

/// How a counter metric's degradation is decided (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterTest {
    /// The aggregate at t against the one at t − W (the default).
    Threshold,
    /// Welch's t-test of the points in (t − W, t] against those in
    /// (t − 2W, t − W]: degraded when the one-sided lower confidence
    /// bound of the worsening exceeds the tolerance.
    Welch {
        /// Points each window needs, at least 2 (default 5).
        min_points: usize,
        /// 1 − the bound's confidence level, in (0, 1) (default 0.05).
        alpha: f64,
    },
}

impl CounterTest {
    /// The name used in YAML and in explanations.
    pub fn as_str(&self) -> &'static str {
        match self {
            CounterTest::Threshold => "threshold",
            CounterTest::Welch { .. } => "welch",
        }
    }
}

// ---------------------------------------------------------------------------
// What the YAML says.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObjective {
    id: String,
    objective: String,
    team: String,
    period: Node,
    #[serde(default)]
    aligns_to: Option<String>,
    #[serde(default)]
    key_results: Vec<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyResult {
    id: String,
    title: String,
    metric: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    aggregate: Aggregate,
    #[serde(default)]
    window: Option<HumanDuration>,
    #[serde(default)]
    baseline: Option<f64>,
    target: Node,
    #[serde(default)]
    better: Option<Better>,
    #[serde(default, rename = "type")]
    kind: KrType,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    stale_after: Option<HumanDuration>,
    #[serde(default)]
    counter_metrics: Vec<RawCounterMetric>,
    #[serde(default)]
    depends_on: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintain {
    #[serde(default)]
    at_most: Option<f64>,
    #[serde(default)]
    at_least: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounterMetric {
    metric: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    aggregate: Aggregate,
    #[serde(default)]
    aggregate_window: Option<HumanDuration>,
    better: Better,
    tolerance: Tolerance,
    #[serde(default)]
    window: Option<HumanDuration>,
    #[serde(default)]
    test: RawTest,
    #[serde(default)]
    min_points: Option<usize>,
    #[serde(default)]
    alpha: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum RawTest {
    #[default]
    Threshold,
    Welch,
}

const DEFAULT_COUNTER_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// `test: welch`'s defaults (SPEC §4).
const DEFAULT_MIN_POINTS: usize = 5;
const DEFAULT_ALPHA: f64 = 0.05;

/// Validates one objective document. Errors go to `diags`; `None` when the
/// document is unusable.
pub(super) fn load_objective(node: &Node, diags: &mut Diagnostics) -> Option<Objective> {
    let Some(raw) = diags.deserialize::<RawObjective>(node, "") else {
        // Still check the key results, so their errors are reported too.
        if let Some(list) = node.get("key_results") {
            for (i, kr) in list.items().iter().enumerate() {
                load_key_result(kr, &format!("key_results[{i}]"), diags);
            }
        }
        return None;
    };
    let id_ok = check_id(node.get("id"), "id", &raw.id, diags);
    let period = RawPeriod::load(&raw.period, "period", diags)
        .and_then(|p| p.resolve(&raw.period, "period", diags));
    // No key results of its own is allowed for an objective others align
    // to; that needs every objective, so `alignment.rs` checks it.
    let mut key_results = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, kr_node) in raw.key_results.iter().enumerate() {
        let path = format!("key_results[{i}]");
        if let Some(id_node) = kr_node.get("id") {
            let id = id_node.as_str().unwrap_or_default();
            if !seen.insert(id.to_string()) {
                diags.error(
                    id_node,
                    &format!("{path}.id"),
                    format!("duplicate key result id {id:?} in objective {:?}", raw.id),
                );
            }
        }
        if let Some(kr) = load_key_result(kr_node, &path, diags) {
            key_results.push(kr);
        }
    }
    if !id_ok || seen.len() != raw.key_results.len() || key_results.len() != raw.key_results.len() {
        return None;
    }
    Some(Objective {
        id: raw.id,
        objective: raw.objective,
        team: raw.team,
        period: period?,
        aligns_to: raw.aligns_to,
        key_results,
        file: diags.file().to_string(),
        span: node.span,
    })
}

fn load_key_result(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<KeyResult> {
    let raw: RawKeyResult = diags.deserialize(node, path)?;
    let at = |key: &str| node.get(key).unwrap_or(node);
    let key = |k: &str| format!("{path}.{k}");
    let errors_before = diags.error_count();

    check_id(node.get("id"), &key("id"), &raw.id, diags);
    check_metric(at("metric"), &key("metric"), &raw.metric, diags);
    let window = check_window(
        raw.aggregate,
        raw.window.map(|d| d.0),
        at("window"),
        &key("window"),
        diags,
    );

    let target_path = key("target");
    let target = match &raw.target.kind {
        Kind::Map(_) => match diags.deserialize::<RawMaintain>(&raw.target, &target_path) {
            None => None,
            Some(RawMaintain {
                at_most: Some(v),
                at_least: None,
            }) => Some(Target::AtMost(v)),
            Some(RawMaintain {
                at_most: None,
                at_least: Some(v),
            }) => Some(Target::AtLeast(v)),
            Some(_) => {
                diags.error(
                    at("target"),
                    &key("target"),
                    "a maintain target needs exactly one of at_most or at_least",
                );
                None
            }
        },
        _ => diags
            .deserialize::<f64>(&raw.target, &target_path)
            .map(Target::Value),
    };
    if let Some(t) = target {
        if !t.value().is_finite() {
            diags.error(at("target"), &target_path, "target must be a finite number");
        }
    }
    let better = target
        .and_then(|target| resolve_better(target, raw.baseline, raw.better, node, path, diags));

    if let Some(w) = raw.weight {
        if !(w.is_finite() && w > 0.0) {
            diags.error(
                at("weight"),
                &key("weight"),
                "weight must be a positive number",
            );
        }
    }

    let mut counter_metrics = Vec::new();
    if let Some(list) = node.get("counter_metrics") {
        for (i, (raw_cm, cm_node)) in raw
            .counter_metrics
            .into_iter()
            .zip(list.items())
            .enumerate()
        {
            let cm_path = format!("{path}.counter_metrics[{i}]");
            let cm_at = |k: &str| cm_node.get(k).unwrap_or(cm_node);
            check_metric(
                cm_at("metric"),
                &format!("{cm_path}.metric"),
                &raw_cm.metric,
                diags,
            );
            let window = raw_cm.window.map_or(DEFAULT_COUNTER_WINDOW, |d| d.0);
            let aggregate_window = if raw_cm.aggregate == Aggregate::Last {
                if raw_cm.aggregate_window.is_some() {
                    diags.error(
                        cm_at("aggregate_window"),
                        &format!("{cm_path}.aggregate_window"),
                        "aggregate `last` takes no window: it reads the latest point",
                    );
                }
                None
            } else {
                Some(raw_cm.aggregate_window.map_or(window, |d| d.0))
            };
            let (Tolerance::Relative(r) | Tolerance::Absolute(r)) = raw_cm.tolerance;
            {
                if r < 0.0 {
                    diags.error(
                        cm_at("tolerance"),
                        &format!("{cm_path}.tolerance"),
                        "tolerance must not be negative",
                    );
                }
            }
            let test = check_test(&raw_cm, cm_node, &cm_path, diags);
            counter_metrics.push(CounterMetric {
                metric: raw_cm.metric,
                labels: raw_cm.labels,
                aggregate: raw_cm.aggregate,
                aggregate_window,
                better: raw_cm.better,
                tolerance: raw_cm.tolerance,
                window,
                test,
            });
        }
    }

    let mut depends_on = Vec::new();
    if let Some(list) = node.get("depends_on") {
        for (j, (raw_ref, ref_node)) in raw.depends_on.iter().zip(list.items()).enumerate() {
            match KrRef::parse(raw_ref) {
                Some(r) => depends_on.push(r),
                None => diags.error(
                    ref_node,
                    &format!("{path}.depends_on[{j}]"),
                    format!("invalid key result reference {raw_ref:?}: write objective/key_result, e.g. platform/api-latency"),
                ),
            }
        }
    }

    if diags.error_count() != errors_before {
        return None;
    }
    Some(KeyResult {
        id: raw.id,
        title: raw.title,
        metric: raw.metric,
        labels: raw.labels,
        aggregate: raw.aggregate,
        window,
        baseline: raw.baseline,
        target: target?,
        better: better?,
        kind: raw.kind,
        weight: raw.weight.unwrap_or(1.0),
        stale_after: raw.stale_after.map(|d| d.0),
        counter_metrics,
        depends_on,
        span: node.span,
    })
}

/// A counter metric's test, with `test: welch`'s defaults applied:
/// `min_points` at least 2 (a window's variance needs two points) and
/// `alpha` strictly between 0 and 1; neither is taken by `test: threshold`,
/// and `test: welch` reads points, not an `aggregate`.
fn check_test(
    raw: &RawCounterMetric,
    node: &Node,
    path: &str,
    diags: &mut Diagnostics,
) -> CounterTest {
    let at = |k: &str| node.get(k).unwrap_or(node);
    if raw.test == RawTest::Threshold {
        for (key, set) in [
            ("min_points", raw.min_points.is_some()),
            ("alpha", raw.alpha.is_some()),
        ] {
            if set {
                diags.error(
                    at(key),
                    &format!("{path}.{key}"),
                    format!("`{key}` applies only to `test: welch`"),
                );
            }
        }
        return CounterTest::Threshold;
    }
    for key in ["aggregate", "aggregate_window"] {
        if let Some(n) = node.get(key) {
            diags.error(
                n,
                &format!("{path}.{key}"),
                format!("`{key}` does not apply to `test: welch`: it compares the points of the two windows"),
            );
        }
    }
    let min_points = raw.min_points.unwrap_or(DEFAULT_MIN_POINTS);
    if min_points < 2 {
        diags.error(
            at("min_points"),
            &format!("{path}.min_points"),
            format!("min_points must be at least 2 (a window's variance needs two points), not {min_points}"),
        );
    }
    let alpha = raw.alpha.unwrap_or(DEFAULT_ALPHA);
    if !(alpha > 0.0 && alpha < 1.0) {
        diags.error(
            at("alpha"),
            &format!("{path}.alpha"),
            format!("alpha must be strictly between 0 and 1 (e.g. 0.05), not {alpha}"),
        );
    }
    CounterTest::Welch { min_points, alpha }
}

/// The direction of improvement: configured, or implied by a maintain target
/// or by baseline and target; a contradiction is an error.
fn resolve_better(
    target: Target,
    baseline: Option<f64>,
    better: Option<Better>,
    node: &Node,
    path: &str,
    diags: &mut Diagnostics,
) -> Option<Better> {
    let at = |key: &str| node.get(key).unwrap_or(node);
    let implied = match (target, baseline) {
        (Target::AtMost(_), _) => Some(Better::Lower),
        (Target::AtLeast(_), _) => Some(Better::Higher),
        (Target::Value(t), Some(b)) if t > b => Some(Better::Higher),
        (Target::Value(t), Some(b)) if t < b => Some(Better::Lower),
        (Target::Value(_), Some(_)) => {
            diags.error(
                at("target"),
                &format!("{path}.target"),
                "target equals baseline: there is no progress to measure",
            );
            return None;
        }
        (Target::Value(_), None) => None,
    };
    match (better, implied) {
        (Some(b), Some(i)) if b != i => {
            let why = match target {
                Target::AtMost(_) => "an at_most target means lower is better".to_string(),
                Target::AtLeast(_) => "an at_least target means higher is better".to_string(),
                Target::Value(t) => format!(
                    "target {t} is {} than baseline {}",
                    if i == Better::Higher {
                        "higher"
                    } else {
                        "lower"
                    },
                    baseline.unwrap_or_default()
                ),
            };
            diags.error(
                at("target"),
                &format!("{path}.target"),
                format!(
                    "target contradicts `better: {}`: {why}",
                    if b == Better::Higher {
                        "higher"
                    } else {
                        "lower"
                    }
                ),
            );
            None
        }
        (Some(b), _) => Some(b),
        (None, Some(i)) => Some(i),
        (None, None) => {
            diags.error(
                node,
                &format!("{path}.better"),
                "`better: higher` or `better: lower` is required when no baseline is configured",
            );
            None
        }
    }
}

fn check_window(
    aggregate: Aggregate,
    window: Option<Duration>,
    node: &Node,
    path: &str,
    diags: &mut Diagnostics,
) -> Option<Duration> {
    match (aggregate, window) {
        (Aggregate::Last, Some(_)) => {
            diags.error(
                node,
                path,
                "aggregate `last` takes no window: it reads the latest point",
            );
            None
        }
        (Aggregate::Last, None) => None,
        (agg, None) => {
            diags.error(
                node,
                path,
                format!(
                    "aggregate `{}` needs a window (e.g. `window: 7d`)",
                    agg.as_str()
                ),
            );
            None
        }
        (_, Some(w)) if w.is_zero() => {
            diags.error(node, path, "window must be longer than zero");
            None
        }
        (_, Some(w)) => Some(w),
    }
}

/// Checks an id against `[a-z0-9-]+`; returns whether it is valid.
pub(super) fn check_id(node: Option<&Node>, path: &str, id: &str, diags: &mut Diagnostics) -> bool {
    let ok = is_valid_id(id);
    if !ok {
        if let Some(node) = node {
            diags.error(
                node,
                path,
                format!("invalid id {id:?}: use lowercase letters, digits and '-'"),
            );
        }
    }
    ok
}

/// Whether `id` is a valid objective or key result id: `[a-z0-9-]+`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub(super) fn check_metric(node: &Node, path: &str, metric: &str, diags: &mut Diagnostics) {
    if !is_valid_metric_name(metric) {
        diags.error(
            node,
            path,
            format!("invalid metric name {metric:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    /// The objective of `counter` (one counter metric's YAML flow map), or
    /// every diagnostic as `okrd check` prints it.
    fn load(counter: &str) -> Result<Objective, Vec<String>> {
        let text = format!(
            "id: o\nobjective: O\nteam: t\nperiod: 2026-Q4\nkey_results:\n  - id: k\n    title: K\n    metric: m\n    baseline: 0\n    target: 1\n    counter_metrics:\n      - {counter}\n"
        );
        let node = yaml::parse(&text).expect("YAML").remove(0);
        let mut diags = Diagnostics::new();
        diags.set_file("o.yaml");
        let objective = load_objective(&node, &mut diags);
        let shown: Vec<String> = diags.into_sorted().iter().map(|d| d.to_string()).collect();
        match objective {
            Some(o) if shown.is_empty() => Ok(o),
            _ => Err(shown),
        }
    }

    fn test_of(counter: &str) -> CounterTest {
        load(counter).expect("valid").key_results[0].counter_metrics[0].test
    }

    #[test]
    fn test_defaults_to_threshold_and_welch_to_five_points_at_five_percent() {
        let base = "{ metric: c, better: lower, tolerance: 5%";
        assert_eq!(test_of(&format!("{base} }}")), CounterTest::Threshold);
        assert_eq!(
            test_of(&format!("{base}, test: threshold }}")),
            CounterTest::Threshold
        );
        assert_eq!(
            test_of(&format!("{base}, test: welch }}")),
            CounterTest::Welch {
                min_points: 5,
                alpha: 0.05
            }
        );
        assert_eq!(
            test_of(&format!(
                "{base}, test: welch, min_points: 2, alpha: 0.2 }}"
            )),
            CounterTest::Welch {
                min_points: 2,
                alpha: 0.2
            }
        );
    }

    #[test]
    fn bad_test_settings_are_positioned_errors() {
        let base = "{ metric: c, better: lower, tolerance: 5%";
        let table = [
            (
                "test: ttest",
                "o.yaml:12:58: error: key_results[0].counter_metrics[0].test: unknown variant `ttest`, expected `threshold` or `welch`",
            ),
            (
                "test: welch, alpha: 0",
                "o.yaml:12:72: error: key_results[0].counter_metrics[0].alpha: alpha must be strictly between 0 and 1 (e.g. 0.05), not 0",
            ),
            (
                "test: welch, alpha: 1.5",
                "o.yaml:12:72: error: key_results[0].counter_metrics[0].alpha: alpha must be strictly between 0 and 1 (e.g. 0.05), not 1.5",
            ),
            (
                "test: welch, min_points: 1",
                "o.yaml:12:77: error: key_results[0].counter_metrics[0].min_points: min_points must be at least 2 (a window's variance needs two points), not 1",
            ),
            (
                "test: welch, min_points: -3",
                "o.yaml:12:77: error: key_results[0].counter_metrics[0].min_points: invalid value: integer `-3`, expected usize",
            ),
            (
                "min_points: 8",
                "o.yaml:12:64: error: key_results[0].counter_metrics[0].min_points: `min_points` applies only to `test: welch`",
            ),
            (
                "test: welch, aggregate: avg",
                "o.yaml:12:76: error: key_results[0].counter_metrics[0].aggregate: `aggregate` does not apply to `test: welch`: it compares the points of the two windows",
            ),
        ];
        for (extra, want) in table {
            let got = load(&format!("{base}, {extra} }}")).expect_err(extra);
            assert_eq!(got, [want], "{extra}");
        }
    }
}
