//! A key result at evaluation time t: value, baseline, progress, score,
//! expected score and status (SPEC §4 "Scoring at evaluation time t").

use chrono::TimeDelta;

use crate::config::objective::{Better, KeyResult, KrType, Target};
use crate::config::types::Period;
use crate::model::{minus, Sample, Timestamp};

use super::aggregate::{aggregate, feeding, fold, Sliding};
use super::forecast::{forecast, ForecastFit};
use super::{BaselineSource, KrScore, Margins, Status};

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
    let samples = &samples[..samples.partition_point(|s| s.ts <= at)];

    let used = feeding(samples, kr.aggregate, kr.window, at);
    let points_used = used.len();
    let value = fold(&samples[used], kr.aggregate);
    let newest_point = samples.last().map(|s| s.ts);
    // `samples` end at `at`, so the earliest point in the period is at or
    // before it.
    let (baseline, baseline_source) = Baseline::of(kr, period, samples).at(at);
    let forecast = with_forecast
        .then(|| forecast(kr, period, samples, at))
        .flatten();
    conclude(
        kr,
        period,
        Measured {
            at,
            value,
            points_used,
            newest_point,
            baseline,
            baseline_source,
        },
        forecast,
        margins,
    )
}

/// The KR's scores without forecast at each of `times` (ascending), as
/// [`score_key_result_without_forecast`] gives them one by one, in one pass
/// over `samples`: how score history is built. Windowed sums and averages
/// agree with it up to float rounding (see `aggregate::Sliding`).
pub fn score_history(
    kr: &KeyResult,
    period: &Period,
    samples: &[Sample],
    times: &[Timestamp],
    margins: Margins,
) -> Vec<KrScore> {
    let mut sliding = Sliding::new(samples, kr.aggregate, kr.window);
    // The baseline changes at most once over a period.
    let base = Baseline::of(kr, period, samples);
    let mut out = Vec::with_capacity(times.len());
    for &t in times {
        let at = evaluation_time(period, t);
        let value = sliding.at(at);
        let fed = sliding.fed();
        let newest_point = samples[..fed.end].last().map(|s| s.ts);
        let (baseline, baseline_source) = base.at(at);
        let measured = Measured {
            at,
            value,
            points_used: fed.len(),
            newest_point,
            baseline,
            baseline_source,
        };
        out.push(conclude(kr, period, measured, None, margins));
    }
    out
}

/// What an evaluation read from the samples.
struct Measured {
    at: Timestamp,
    value: Option<f64>,
    points_used: usize,
    newest_point: Option<Timestamp>,
    baseline: Option<f64>,
    baseline_source: BaselineSource,
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

/// A KR's baseline over its period, from ascending samples: as configured;
/// otherwise value(period start); otherwise the aggregate at the earliest
/// point in the period, from that point's ts on. Maintain KRs have none.
/// Built once, it answers for every t in the period, so that one
/// evaluation and a whole history share it.
struct Baseline {
    /// Maintain, configured or value(period start): the same at every t.
    fixed: Option<(Option<f64>, BaselineSource)>,
    /// Without a fixed one: the aggregate at the earliest point in the
    /// period, and that point's ts.
    earliest: Option<(f64, Timestamp)>,
}

impl Baseline {
    fn of(kr: &KeyResult, period: &Period, samples: &[Sample]) -> Self {
        let at = |ts| aggregate(samples, kr.aggregate, kr.window, ts);
        let fixed = if kr.target.is_maintain() {
            Some((None, BaselineSource::NotApplicable))
        } else if let Some(b) = kr.baseline {
            Some((Some(b), BaselineSource::Configured))
        } else {
            at(period.start).map(|b| (Some(b), BaselineSource::PeriodStart))
        };
        let earliest = match fixed {
            Some(_) => None,
            None => samples
                .iter()
                .find(|s| s.ts >= period.start)
                .and_then(|s| Some((at(s.ts)?, s.ts))),
        };
        Self { fixed, earliest }
    }

    /// The baseline and where it came from at `t`.
    fn at(&self, t: Timestamp) -> (Option<f64>, BaselineSource) {
        match (self.fixed, self.earliest) {
            (Some(fixed), _) => fixed,
            (None, Some((b, ts))) if ts <= t => (Some(b), BaselineSource::EarliestInPeriod(ts)),
            (None, _) => (None, BaselineSource::Unavailable),
        }
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
