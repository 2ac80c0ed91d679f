//! Scoring: pure functions from a key result's definition, its series'
//! samples and an evaluation time to a score (SPEC §4). No I/O, no clock:
//! the caller passes `now`. Only this module computes scores.
//!
//! - `aggregate`: value(t), a series' points as one number at an instant.
//! - `key_result`: progress, score, expected score and status.
//! - `baseline`: a KR's baseline over its period.
//! - `forecast`: the least-squares line to period end, and the
//!   probability that it meets the target there.
//! - `running`: a KR's state over its period (baseline, window and the
//!   forecast's sums), advanced point by point, so that a rescore costs
//!   the windows it reads rather than the period.
//! - `objective`: the weighted objective score.
//! - `guardrail`: counter metrics: did the KR move while one degraded?
//! - `welch`: Welch's t-test of a counter metric's two windows.
//!
//! The caller loads `Store::load_series(key, data_from(kr, period),
//! evaluation_time(period, now))` and passes the samples to
//! [`score_key_result`].

mod aggregate;
mod baseline;
mod forecast;
pub mod guardrail;
mod key_result;
mod objective;
mod running;
#[cfg(test)]
mod tests;
pub mod welch;

pub use aggregate::aggregate;
pub use forecast::ForecastFit;
pub use key_result::{
    data_from, evaluation_time, score_history, score_history_running, score_key_result,
    score_key_result_without_forecast, score_running,
};
pub use objective::{objective_score, rollups};
pub use running::Running;

use crate::model::Timestamp;

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
    /// Whether a KR in this status puts the KRs that depend on it at risk
    /// (SPEC §4, the dependency alert): `off_track`, `stale` or `no_data`.
    pub fn endangers_dependents(self) -> bool {
        matches!(self, Status::OffTrack | Status::Stale | Status::NoData)
    }

    /// Every status, in the order exported.
    pub const ALL: [Status; 5] = [
        Status::OnTrack,
        Status::AtRisk,
        Status::OffTrack,
        Status::Stale,
        Status::NoData,
    ];

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
    /// The baseline used; `None` for maintain KRs or without data to derive it.
    pub baseline: Option<f64>,
    /// Where the baseline came from.
    pub baseline_source: BaselineSource,
    /// The target (the threshold for maintain KRs).
    pub target: f64,
    /// (value - baseline) / (target - baseline), unclamped; `None` for
    /// maintain KRs or without data. With a degenerate derived baseline
    /// (at or beyond the target) it is 1.0 when the target is met, else 0.0.
    pub progress: Option<f64>,
    /// clamp(progress, 0, 1); maintain: 1.0 when met, else 0.0; no data: 0.0.
    pub score: f64,
    /// Expected score at `at`: the fraction of the period elapsed, ×0.7 for
    /// aspirational KRs.
    pub expected: f64,
    /// The status.
    pub status: Status,
    /// The score the least-squares line through the KR's values in the
    /// period reaches at period end; `None` with fewer than 3 points in the
    /// period or without a baseline.
    pub forecast: Option<f64>,
    /// The probability that the KR's value at period end meets its target
    /// (a maintain KR: its threshold), from the same line; `None` with
    /// fewer than 3 points in the period.
    pub forecast_probability: Option<f64>,
    /// The line behind the forecast: its value at period end, standard
    /// error and degrees of freedom; `None` as for `forecast_probability`.
    pub forecast_fit: Option<ForecastFit>,
    /// ts of the newest point at or before `at`.
    pub newest_point: Option<Timestamp>,
    /// How many samples fed value(at): at most 1 for `last`, the points in
    /// the window otherwise.
    pub points_used: usize,
}
