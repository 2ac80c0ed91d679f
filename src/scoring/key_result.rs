//! A key result at evaluation time t: value, baseline, progress, score,
//! expected score and status (SPEC §4 "Scoring at evaluation time t").

use chrono::TimeDelta;

use crate::config::objective::{Better, KeyResult, KrType, Target};
use crate::config::types::Period;
use crate::model::{minus, Sample, Timestamp};

use super::aggregate::Window;
use super::baseline::Baseline;
use super::forecast::ForecastFit;
use super::running::{Measured, Running};
use super::{KrScore, Margins, Status};

/// The expected score of an aspirational KR at period end: 0.7 is success
/// for a stretch goal.
const ASPIRATIONAL_SUCCESS: f64 = 0.7;

/// Slack in the status comparisons, so that float noise (0.35 - 0.10 is
/// 0.24999999999999997) does not flip a status exactly at a boundary.
const EPSILON: f64 = 1e-9;

/// The instant a KR is evaluated at: `now`, or the period end once it is
/// over (a finished KR keeps its final score).
pub fn evaluation_time(period: &Period, now: Timestamp) -> Timestamp {
    now.min(period.end)
}

/// The `from` argument for `Store::load_series` so that the samples cover
/// everything [`score_key_result`] needs: the period start for `last` (the
/// store adds the latest point at or before it), and one window earlier for
/// windowed aggregates, so that value(start) and the aggregate at the
/// earliest point in the period see their whole windows.
pub fn data_from(kr: &KeyResult, period: &Period) -> Timestamp {
    match kr.window {
        None => period.start,
        Some(window) => minus(period.start, window),
    }
}

/// Evaluates a KR at `now`, clamped to its period end.
///
/// `samples` are ascending by ts, as `Store::load_series(.., data_from(..),
/// evaluation_time(..))` returns them; points after the evaluation time are
/// ignored wherever they come from.
pub fn score_key_result(
    kr: &KeyResult,
    period: &Period,
    samples: &[Sample],
    now: Timestamp,
    margins: Margins,
) -> KrScore {
    evaluate(kr, period, samples, now, margins, true)
}

/// Like [`score_key_result`] without the forecast (always `None`): the cheap
/// form for rebuilding score history at many past instants, where the
/// forecast's pass over the whole period would make the rebuild quadratic.
pub fn score_key_result_without_forecast(
    kr: &KeyResult,
    period: &Period,
    samples: &[Sample],
    now: Timestamp,
    margins: Margins,
) -> KrScore {
    evaluate(kr, period, samples, now, margins, false)
}

fn evaluate(
    kr: &KeyResult,
    period: &Period,
    samples: &[Sample],
    now: Timestamp,
    margins: Margins,
    with_forecast: bool,
) -> KrScore {
    let at = evaluation_time(period, now);
    let running = Running::new(kr, period, samples, at);
    score_running(kr, period, &running, samples, now, margins, with_forecast)
}

/// Evaluates a KR at `now` (clamped to its period end) from its running
/// state, advanced through that instant, and `samples` that hold the
/// windows it reads there (see [`Running::measure`]). The forecast is the
/// state's; without `with_forecast` it is `None`.
pub fn score_running(
    kr: &KeyResult,
    period: &Period,
    running: &Running,
    samples: &[Sample],
    now: Timestamp,
    margins: Margins,
    with_forecast: bool,
) -> KrScore {
    let at = evaluation_time(period, now);
    let measured = running.measure(kr, period, samples, at);
    let forecast = with_forecast.then(|| running.forecast(kr)).flatten();
    conclude(kr, period, measured, forecast, margins)
}

/// The KR's scores without forecast at each of `times` (ascending), as
/// [`score_key_result_without_forecast`] gives them one by one, in one pass
/// over `samples`: how score history is built. Windowed sums and averages
/// agree with it up to float rounding (see `aggregate::Window`).
pub fn score_history(
    kr: &KeyResult,
    period: &Period,
    samples: &[Sample],
    times: &[Timestamp],
    margins: Margins,
) -> Vec<KrScore> {
    // The baseline changes at most once over a period.
    let base = Baseline::of(kr, period, samples);
    history_under(kr, period, &base, samples, times, margins)
}

/// [`score_history`] with the baseline of `running` (the KR's state,
/// advanced through the last of `times`), from `samples` that hold only
/// the points from a window before the first of `times` on: how a rescore
/// writes the history after a point that came late but after every point
/// the state holds.
pub fn score_history_running(
    kr: &KeyResult,
    period: &Period,
    running: &Running,
    samples: &[Sample],
    times: &[Timestamp],
    margins: Margins,
) -> Vec<KrScore> {
    history_under(kr, period, running.baseline(), samples, times, margins)
}

fn history_under(
    kr: &KeyResult,
    period: &Period,
    base: &Baseline,
    samples: &[Sample],
    times: &[Timestamp],
    margins: Margins,
) -> Vec<KrScore> {
    let mut window = Window::new(kr.aggregate, kr.window);
    let mut pushed = 0;
    let mut out = Vec::with_capacity(times.len());
    for &t in times {
        let at = evaluation_time(period, t);
        pushed += window.catch_up(&samples[pushed..], at);
        let (baseline, baseline_source) = base.at(at);
        let measured = Measured {
            at,
            value: window.value(),
            points_used: window.len(),
            newest_point: window.newest(),
            baseline,
            baseline_source,
        };
        out.push(conclude(kr, period, measured, None, margins));
    }
    out
}

/// The score, expected score and status of what was measured.
fn conclude(
    kr: &KeyResult,
    period: &Period,
    m: Measured,
    fit: Option<ForecastFit>,
    margins: Margins,
) -> KrScore {
    let Measured {
        at,
        value,
        points_used,
        newest_point,
        baseline,
        baseline_source,
    } = m;
    let measured = value.and_then(|v| measure(kr, v, baseline));
    let (progress, score) = measured.unwrap_or((None, 0.0));
    let expected = expected(kr, period, at);
    let forecast = fit
        .and_then(|f| measure(kr, f.value, baseline))
        .map(|(_, score)| score);

    let status = if value.is_none() {
        Status::NoData
    } else if is_stale(kr, newest_point, at) {
        Status::Stale
    } else if score >= expected - margins.at_risk - EPSILON {
        Status::OnTrack
    } else if score >= expected - margins.off_track - EPSILON {
        Status::AtRisk
    } else {
        Status::OffTrack
    };

    KrScore {
        at,
        value,
        baseline,
        baseline_source,
        target: kr.target.value(),
        progress,
        score,
        expected,
        status,
        forecast,
        forecast_probability: fit.map(|f| f.probability),
        forecast_fit: fit,
        newest_point,
        points_used,
    }
}

/// Progress (unclamped; `None` for maintain KRs) and score of `value`;
/// `None` when a KR that moves toward a target has no baseline.
///
/// A baseline derived from data can land at or beyond the target (e.g.
/// `better: higher`, target 0.45 and 0.50 at period start). Then
/// (value - baseline) / (target - baseline) is meaningless: its sign flips
/// or it divides by zero. Such a *degenerate* baseline scores like a
/// maintain KR instead: progress and score are 1.0 when the value meets the
/// target in the better direction, 0.0 otherwise. A configured baseline is
/// never degenerate: config validation rejects baseline == target and a
/// target that contradicts `better`.
fn measure(kr: &KeyResult, value: f64, baseline: Option<f64>) -> Option<(Option<f64>, f64)> {
    let met = |yes: bool| if yes { 1.0 } else { 0.0 };
    match kr.target {
        Target::AtMost(threshold) => Some((None, met(value <= threshold))),
        Target::AtLeast(threshold) => Some((None, met(value >= threshold))),
        Target::Value(target) => {
            let baseline = baseline?;
            let (worse_start, meets) = match kr.better {
                Better::Higher => (baseline < target, value >= target),
                Better::Lower => (baseline > target, value <= target),
            };
            let progress = if worse_start {
                (value - baseline) / (target - baseline)
            } else {
                met(meets)
            };
            Some((Some(progress), progress.clamp(0.0, 1.0)))
        }
    }
}

/// The score expected at `t`: the fraction of the period elapsed, clamped
/// to [0, 1], times 0.7 for aspirational KRs.
fn expected(kr: &KeyResult, period: &Period, t: Timestamp) -> f64 {
    let length = (period.end - period.start).as_seconds_f64();
    let elapsed = (t - period.start).as_seconds_f64();
    let fraction = if length > 0.0 {
        (elapsed / length).clamp(0.0, 1.0)
    } else {
        1.0
    };
    match kr.kind {
        KrType::Committed => fraction,
        KrType::Aspirational => ASPIRATIONAL_SUCCESS * fraction,
    }
}

/// Whether the newest point is older than `stale_after` at `t`.
fn is_stale(kr: &KeyResult, newest_point: Option<Timestamp>, t: Timestamp) -> bool {
    match (kr.stale_after, newest_point) {
        (Some(limit), Some(newest)) => {
            TimeDelta::from_std(limit).is_ok_and(|limit| t - newest > limit)
        }
        _ => false,
    }
}
