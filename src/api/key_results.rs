//! `GET /api/v1/key-results` and `GET /api/v1/key-results/{objective}/{kr}`:
//! scores, and for one KR its history and how its score was computed.

use axum::extract::{Path, State};
use axum::Json;
use chrono::TimeDelta;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::config::objective::{Better, CounterMetric, CounterTest, Target};
use crate::config::types::{format_duration, Tolerance};
use crate::config::{KeyResult, Objective};
use crate::live::Services;
use crate::model::{minus, SeriesKey};
use crate::scorecard::KeyResultRow;
use crate::scorer::{self, Evaluation};
use crate::scoring::guardrail::{CounterState, Windows};
use crate::scoring::welch::WindowStats;
use crate::scoring::{BaselineSource, KrScore, Margins, Status};

/// Points listed in an explanation at most (the most recent).
const MAX_EXPLAINED_POINTS: usize = 1_000;

/// A KR's fields as `okrd score --format json` prints them, plus team, title,
/// `updated_at` (the ts of the newest point the score saw) and each counter
/// metric's `state` (`ok`, `degraded` or `insufficient_data`).
pub fn kr_json(row: &KeyResultRow) -> Value {
    let mut v = serde_json::to_value(row).expect("a row serializes");
    v["team"] = json!(row.team);
    v["title"] = json!(row.title);
    v["updated_at"] = json!(row.detail.newest_point);
    v["history_status"] = json!(history_status(row.history_building));
    v["revision"] = json!(row.revision);
    v["counter_metrics"] = row
        .counters
        .iter()
        .map(|c| json!({ "metric": c.metric, "state": c.state.as_str() }))
        .collect();
    v
}

/// `history_status`: `building` while the scorer is still building the
/// KR's score history (after a start, or a reload that added it), then
/// `complete`.
fn history_status(building: bool) -> &'static str {
    if building {
        "building"
    } else {
        "complete"
    }
}

/// Every KR of the latest scorecard.
pub async fn list(State(app): State<Services>) -> Json<Value> {
    let card = app.live.card();
    let krs: Vec<Value> = card.key_results.iter().map(|k| kr_json(k)).collect();
    Json(json!({ "key_results": krs }))
}

/// One KR, evaluated now, with its score history and an explanation.
pub async fn detail(
    State(app): State<Services>,
    Path((objective_id, kr_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let config = app.live.config();
    let Some(objective) = config.objectives.iter().find(|o| o.id == objective_id) else {
        return Err(ApiError::not_found(format!(
            "no objective {objective_id:?}"
        )));
    };
    let Some(kr) = objective.key_results.iter().find(|k| k.id == kr_id) else {
        return Err(ApiError::not_found(format!(
            "objective {objective_id:?} has no key result {kr_id:?}"
        )));
    };
    let now = app.clock.now();
    let margins = scorer::margins(&config);
    let eval = scorer::evaluate(app.store.as_ref(), objective, kr, now, margins).await?;
    let since = objective.period.at(now).start - TimeDelta::microseconds(1);
    let history = app
        .store
        .score_history(&objective.id, &kr.id, since, now)
        .await?;
    let card = app.live.card();
    let published = card
        .key_results
        .iter()
        .find(|r| r.objective == objective.id && r.key_result == kr.id);
    let building = published.is_none_or(|r| r.history_building);
    let mut body = kr_json(&eval.row);
    body["history_status"] = json!(history_status(building));
    body["history"] = history
        .iter()
        .map(|h| {
            json!({"at": h.at, "value": h.value, "progress": h.progress, "score": h.score,
                   "expected": h.expected, "status": h.status.as_str()})
        })
        .collect();
    body["explanation"] = explain(objective, kr, &eval, margins);
    let latest = app.store.check_ins(&objective.id, &kr.id, 1).await?;
    super::revisions::annotate(&mut body, published.map(|r| &**r), &history, latest.first());
    Ok(Json(body))
}

fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// How the score was computed: the series and points used, the aggregate,
/// the baseline and where it came from, and the formulas with numbers.
pub(super) fn explain(
    objective: &Objective,
    kr: &KeyResult,
    eval: &Evaluation,
    margins: Margins,
) -> Value {
    let s = &eval.row.detail;
    let at = s.at;
    let used: Vec<Value> = match kr.window {
        None => eval
            .samples
            .iter()
            .rev()
            .find(|p| p.ts <= at)
            .into_iter()
            .map(point)
            .collect(),
        Some(w) => {
            let from = minus(at, w);
            let mut v: Vec<Value> = eval
                .samples
                .iter()
                .rev()
                .filter(|p| p.ts > from && p.ts <= at)
                .take(MAX_EXPLAINED_POINTS)
                .map(point)
                .collect();
            v.reverse();
            v
        }
    };
    let baseline_source = match s.baseline_source {
        BaselineSource::Configured => "configured".to_string(),
        BaselineSource::PeriodStart => format!(
            "the {} at the period start ({})",
            kr.aggregate.as_str(),
            objective.period.at(at).start.to_rfc3339()
        ),
        BaselineSource::EarliestInPeriod(ts) => format!(
            "no value at the period start: the {} at the earliest point in the period ({})",
            kr.aggregate.as_str(),
            ts.to_rfc3339()
        ),
        BaselineSource::NotApplicable => {
            "not applicable: a maintain key result has no baseline".into()
        }
        BaselineSource::Unavailable => "unavailable: no data to derive it from".into(),
    };
    let formula = match (s.value, kr.target) {
        (None, _) => "no usable point: score = 0".to_string(),
        (Some(v), Target::AtMost(t)) => format!(
            "maintain: value {} <= {}? {}: score = {}",
            num(v),
            num(t),
            if v <= t { "yes" } else { "no" },
            num(s.score)
        ),
        (Some(v), Target::AtLeast(t)) => format!(
            "maintain: value {} >= {}? {}: score = {}",
            num(v),
            num(t),
            if v >= t { "yes" } else { "no" },
            num(s.score)
        ),
        (Some(v), Target::Value(t)) => match s.baseline {
            None => "no baseline: score = 0".to_string(),
            Some(b) => {
                let worse_start = match kr.better {
                    Better::Higher => b < t,
                    Better::Lower => b > t,
                };
                if worse_start {
                    format!(
                        "progress = (value - baseline) / (target - baseline) = ({} - {}) / ({} - {}) = {}; score = clamp(progress, 0, 1) = {}",
                        num(v), num(b), num(t), num(b), num(s.progress.unwrap_or_default()), num(s.score)
                    )
                } else {
                    format!(
                        "the derived baseline {} is already at or past the target {}: score = 1 when the value meets the target, else 0; value {} gives {}",
                        num(b), num(t), num(v), num(s.score)
                    )
                }
            }
        },
    };
    let period = &*objective.period.at(at);
    let days = |d: TimeDelta| d.as_seconds_f64() / 86_400.0;
    let expected = format!(
        "expected = elapsed fraction of {} ({:.1} of {:.1} days){} = {}",
        period.label,
        days((at - period.start).max(TimeDelta::zero())).min(days(period.end - period.start)),
        days(period.end - period.start),
        if s.expected > 0.0 && matches!(kr.kind, crate::config::objective::KrType::Aspirational) {
            " x 0.7 (aspirational)"
        } else {
            ""
        },
        num(s.expected)
    );
    let status = match s.status {
        Status::NoData => "no_data: no usable point".to_string(),
        Status::Stale => format!(
            "stale: the newest point ({}) is older than stale_after ({})",
            s.newest_point.map(|t| t.to_rfc3339()).unwrap_or_default(),
            kr.stale_after.map(format_duration).unwrap_or_default()
        ),
        Status::OnTrack => format!(
            "on_track: score {} >= expected {} - at_risk_margin {}",
            num(s.score),
            num(s.expected),
            num(margins.at_risk)
        ),
        Status::AtRisk => format!(
            "at_risk: score {} >= expected {} - off_track_margin {}",
            num(s.score),
            num(s.expected),
            num(margins.off_track)
        ),
        Status::OffTrack => format!(
            "off_track: score {} < expected {} - off_track_margin {}",
            num(s.score),
            num(s.expected),
            num(margins.off_track)
        ),
    };
    let counters: Vec<Value> = kr
        .counter_metrics
        .iter()
        .zip(&eval.row.counters)
        .map(|(cm, c)| {
            json!({
                "metric": c.metric,
                "series": SeriesKey::new(cm.metric.clone(), cm.labels.clone()).to_string(),
                "window": format_duration(cm.window),
                "better": if cm.better == Better::Higher { "higher" } else { "lower" },
                "tolerance": match cm.tolerance { Tolerance::Relative(r) => format!("{}%", num(r * 100.0)), Tolerance::Absolute(a) => num(a) },
                "value": c.value,
                "reference": c.reference,
                "delta": c.delta(),
                "kr_score_delta": c.kr_score_delta,
                "kr_moved": c.kr_moved,
                "degraded": c.degraded,
                "state": c.state.as_str(),
                "test": explain_test(cm, c),
            })
        })
        .collect();
    json!({
        "evaluated_at": at,
        "series": SeriesKey::new(kr.metric.clone(), kr.labels.clone()).to_string(),
        "aggregate": kr.aggregate.as_str(),
        "window": kr.window.map(format_duration),
        "points_used": used,
        "baseline": { "value": s.baseline, "source": baseline_source },
        "formula": formula,
        "expected": expected,
        "status": status,
        "forecast": explain_forecast(kr, s),
        "counter_metrics": counters,
    })
}

/// The forecast's line at period end and its probability, with the
/// standard error and degrees of freedom behind it.
fn explain_forecast(kr: &KeyResult, s: &KrScore) -> Value {
    let Some(f) = s.forecast_fit else {
        return json!({
            "score": null, "probability": null,
            "formula": "fewer than 3 points in the period: no forecast",
        });
    };
    let meets = match kr.target {
        Target::AtMost(t) => format!("<= {}", num(t)),
        Target::AtLeast(t) => format!(">= {}", num(t)),
        Target::Value(t) if kr.better == Better::Higher => format!(">= {}", num(t)),
        Target::Value(t) => format!("<= {}", num(t)),
    };
    let formula = if f.se == 0.0 {
        format!(
            "the {} points lie on the line (s = 0): its value at the period end, {}, decides: P(value {meets}) = {}",
            f.n, num(f.value), num(f.probability)
        )
    } else {
        format!(
            "least-squares line through {} points: value at the period end {}, standard error s·sqrt(1 + 1/n + (x_end − x̄)²/Σ(x − x̄)²) = {}; P(value {meets}) by Student's t with {} degrees of freedom = {}",
            f.n, num(f.value), num(f.se), f.df, num(f.probability)
        )
    };
    json!({
        "score": s.forecast,
        "value": f.value,
        "points": f.n,
        "standard_error": f.se,
        "degrees_of_freedom": f.df,
        "probability": f.probability,
        "formula": formula,
    })
}

/// How a counter metric's state was decided: the tolerance rule, or
/// Welch's test with both windows' n, means and standard deviations, the
/// degrees of freedom, the bound and the tolerance.
fn explain_test(cm: &CounterMetric, c: &CounterState) -> Value {
    let CounterTest::Welch { min_points, alpha } = cm.test else {
        return json!({ "name": "threshold" });
    };
    let windows = c.windows.unwrap_or(Windows {
        a: None,
        b: None,
        test: None,
    });
    let window = |w: Option<WindowStats>, range: &str| {
        json!({
            "range": range,
            "n": w.map_or(0, |w| w.n),
            "mean": w.map(|w| w.mean),
            "sd": w.map(|w| w.sd()),
        })
    };
    let w = format_duration(cm.window);
    let mut v = json!({
        "name": "welch",
        "min_points": min_points,
        "alpha": alpha,
        "a": window(windows.a, &format!("(t - 2*{w}, t - {w}]")),
        "b": window(windows.b, &format!("(t - {w}, t]")),
    });
    match windows.test {
        None => {
            v["summary"] = json!(format!(
                "insufficient_data: each window needs {min_points} points (A has {}, B {})",
                windows.a.map_or(0, |w| w.n),
                windows.b.map_or(0, |w| w.n)
            ));
        }
        Some(t) => {
            v["d"] = json!(t.d);
            v["standard_error"] = json!(t.se);
            v["degrees_of_freedom"] = json!(t.df);
            v["bound"] = json!(t.bound);
            v["tolerance"] = json!(t.allowed);
            v["summary"] = json!(format!(
                "d = {} (positive is worse); its {}% lower confidence bound {} {} the tolerance {}: {}",
                num(t.d),
                num((1.0 - alpha) * 100.0),
                num(t.bound),
                if t.degraded() { "exceeds" } else { "does not exceed" },
                num(t.allowed),
                c.state.as_str()
            ));
        }
    }
    v
}

fn point(p: &crate::model::Sample) -> Value {
    json!({ "ts": p.ts, "value": p.value })
}
