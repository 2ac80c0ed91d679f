//! Scoring: pure functions from a key result's definition, its series'
//! samples and an evaluation time to a score (SPEC §4). No I/O, no clock:
//! the caller passes `now`.

use std::time::Duration;

use crate::config::objective::{KeyResult, Objective};
use crate::config::types::Period;
use crate::model::{Sample, Timestamp};

/// The margins that separate on_track / at_risk / off_track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margins {
    /// Below expected by at most this: on_track.
    pub at_risk: f64,
    /// Below expected by at most this: at_risk; further: off_track.
    pub off_track: f64,
}

/// A key result's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// score >= expected - at_risk_margin.
    OnTrack,
    /// score >= expected - off_track_margin.
    AtRisk,
    /// Further behind.
    OffTrack,
    /// The newest point is older than `stale_after`.
    Stale,
    /// No point usable.
    NoData,
}

impl Status {
    /// Every status, in the order exported.
    pub const ALL: [Status; 5] = [Status::OnTrack, Status::AtRisk, Status::OffTrack, Status::Stale, Status::NoData];

    /// The name used in JSON, metrics and the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::OnTrack => "on_track",
            Status::AtRisk => "at_risk",
            Status::OffTrack => "off_track",
            Status::Stale => "stale",
            Status::NoData => "no_data",
        }
    }
}

/// Where a baseline came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaselineSource {
    /// Written in the KR.
    Configured,
    /// value(period start).
    PeriodStart,
    /// No value at period start: the aggregate at the earliest point in the period, at this ts.
    EarliestInPeriod(Timestamp),
    /// Maintain KRs have no baseline.
    NotApplicable,
    /// No data to derive it from.
    Unavailable,
}

/// A key result's evaluation at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct KrScore {
    /// The evaluation time actually used: min(now, period end).
    pub at: Timestamp,
    /// value(at); `None` when no point is usable.
    pub value: Option<f64>,
    /// The baseline used; `None` for maintain KRs or without data.
    pub baseline: Option<f64>,
    /// Where the baseline came from.
    pub baseline_source: BaselineSource,
    /// The target (the threshold for maintain KRs).
    pub target: f64,
    /// Unclamped progress; `None` for maintain KRs or without data.
    pub progress: Option<f64>,
    /// clamp(progress, 0, 1); maintain: 1 or 0; no data: 0.
    pub score: f64,
    /// Expected score at `at`.
    pub expected: f64,
    /// The status.
    pub status: Status,
    /// The forecast score at period end; `None` with fewer than 3 points in the period.
    pub forecast: Option<f64>,
    /// ts of the newest point at or before `at`.
    pub newest_point: Option<Timestamp>,
    /// How many samples fed value(at).
    pub points_used: usize,
}

/// An objective's score: weight-averaged KR scores, no_data counting 0.
pub fn objective_score(objective: &Objective, scores: &[KrScore]) -> f64 {
    let _ = (objective, scores);
    todo!()
}

/// The instant a KR is evaluated at: `now`, or the period end once it is over.
pub fn evaluation_time(period: &Period, now: Timestamp) -> Timestamp {
    now.min(period.end)
}

/// The `from` argument for `Store::load_series` so that the samples cover
/// everything `score_key_result` needs.
pub fn data_from(kr: &KeyResult, period: &Period) -> Timestamp {
    let _ = (kr, period);
    todo!()
}

/// Evaluates a KR at `now` (clamped to its period end).
/// `samples` are ascending by ts as `Store::load_series(.., data_from(..), evaluation_time(..))` returns them.
pub fn score_key_result(kr: &KeyResult, period: &Period, samples: &[Sample], now: Timestamp, margins: Margins) -> KrScore {
    let _ = (kr, period, samples, now, margins);
    todo!()
}

/// An aggregate over ascending `samples` at `t`.
pub fn aggregate(samples: &[Sample], agg: crate::config::objective::Aggregate, window: Option<Duration>, t: Timestamp) -> Option<f64> {
    let _ = (samples, agg, window, t);
    todo!()
}
