//! A key result's running state over its period: what an evaluation needs
//! beyond the points of the windows it reads at the instant. That is the
//! baseline, the window of the newest point folded, and the forecast's
//! least-squares sums. A scorer keeps one per KR and advances it with the
//! points written since, so that a rescore costs the windows it reads, not
//! the whole period.
//!
//! One pass over a whole series ([`Running::new`]) is also how a one-shot
//! evaluation scores, so that advancing a state gives the same bits as
//! building it again from the store.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::config::objective::KeyResult;
use crate::config::types::Period;
use crate::model::{minus, Sample, Timestamp};

use super::aggregate::{feeding, fold, Window};
use super::baseline::Baseline;
use super::forecast::{Fit, ForecastFit};
use super::BaselineSource;

/// A KR's state over one period, through an instant.
#[derive(Debug, Clone)]
pub struct Running {
    /// A hash of what it depends on in the KR's definition (see [`basis`]).
    basis: u64,
    /// The period it is for: its start and end.
    period: (Timestamp, Timestamp),
    baseline: Baseline,
    /// The window of the newest point folded.
    window: Window,
    /// The forecast's sums over the points folded in the period.
    fit: Fit,
    /// Every point at or before this is folded in.
    through: Timestamp,
}

/// What an evaluation at one instant read from the samples.
pub(super) struct Measured {
    pub at: Timestamp,
    pub value: Option<f64>,
    pub points_used: usize,
    pub newest_point: Option<Timestamp>,
    pub baseline: Option<f64>,
    pub baseline_source: BaselineSource,
}

impl Running {
    /// The state through `at` (no later than the period end) from ascending
    /// `samples` that hold every point from the latest one at or before
    /// `data_from(kr, period)` on (as `Store::load_series` returns them).
    /// Points after `at` are ignored.
    pub fn new(kr: &KeyResult, period: &Period, samples: &[Sample], at: Timestamp) -> Self {
        let samples = &samples[..samples.partition_point(|s| s.ts <= at)];
        let mut state = Running {
            basis: basis(kr),
            period: (period.start, period.end),
            baseline: Baseline::of(kr, period, samples),
            window: Window::new(kr.aggregate, kr.window),
            fit: Fit::default(),
            through: at,
        };
        for s in samples {
            state.fold(*s);
        }
        state
    }

    /// Whether it was built for a KR that reads the same series the same way
    /// as `kr` (after a reload, most KRs do: their states are kept).
    pub fn built_for(&self, kr: &KeyResult) -> bool {
        self.basis == basis(kr)
    }

    /// Whether [`Running::advance`] can take it on for `period`: it is for
    /// that period and through its start (before the start, points still to
    /// come can change value(period start), which a pass from the store
    /// decides).
    pub fn advances(&self, period: &Period) -> bool {
        self.period == (period.start, period.end) && self.through >= period.start
    }

    /// The evaluation time it was advanced to: every point stored at or
    /// before it then is folded in.
    pub fn through(&self) -> Timestamp {
        self.through
    }

    /// Whether a point written at `ts` since can be folded in by
    /// [`Running::advance`]: it comes after the newest point folded (before
    /// [`Running::through`] is fine: it was not stored yet when the state
    /// got there), and after the period start (a point at or before it can
    /// change value(period start)). Otherwise build the state again.
    pub fn takes(&self, ts: Timestamp) -> bool {
        ts > self.period.0 && self.window.newest().is_none_or(|newest| ts > newest)
    }

    /// Where the points [`Running::advance`] reads start: a window before
    /// the newest point folded (or the period start), so that a score
    /// history from any instant after that point can be evaluated too.
    pub fn reads_from(&self) -> Timestamp {
        let newest = self.window.newest().unwrap_or(self.period.0);
        minus(newest, self.window.length().unwrap_or_default())
    }

    /// The baseline.
    pub(super) fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// Folds in the points of ascending `samples` after the newest one
    /// folded and at or before `at`. `samples` must hold every stored point
    /// after it; [`Running::advances`] must hold, and [`Running::takes`]
    /// for each point written since.
    pub fn advance(&mut self, samples: &[Sample], at: Timestamp) {
        let from = match self.window.newest() {
            Some(newest) => samples.partition_point(|s| s.ts <= newest),
            None => 0,
        };
        let to = samples.partition_point(|s| s.ts <= at);
        for s in &samples[from..to.max(from)] {
            self.fold(*s);
            // Every point folded here is in the period (`through` is at or
            // after its start): the first is its earliest.
            if self.baseline.awaits_earliest() {
                self.baseline.earliest(self.window.exact(), s.ts);
            }
        }
        self.through = self.through.max(at);
    }

    fn fold(&mut self, s: Sample) {
        self.window.push(s);
        self.window.slide_to(s.ts);
        let start = self.period.0;
        if s.ts >= start {
            if let Some(y) = self.window.value() {
                self.fit.add((s.ts - start).as_seconds_f64(), y);
            }
        }
    }

    /// What an evaluation at `t` reads: value(t) from ascending `samples`,
    /// which hold the points of its window (from the latest one at or before
    /// `t` - window), and the baseline. `t` is no later than `through`.
    pub(super) fn measure(
        &self,
        kr: &KeyResult,
        period: &Period,
        samples: &[Sample],
        t: Timestamp,
    ) -> Measured {
        let samples = &samples[..samples.partition_point(|s| s.ts <= t)];
        let used = feeding(samples, kr.aggregate, kr.window, t);
        let points_used = used.len();
        let value = fold(&samples[used], kr.aggregate);
        // Before the period starts, value(period start) is what the points
        // up to `t` say of it.
        let (baseline, baseline_source) = if t < period.start {
            Baseline::of(kr, period, samples).at(t)
        } else {
            self.baseline.at(t)
        };
        Measured {
            at: t,
            value,
            points_used,
            newest_point: samples.last().map(|s| s.ts),
            baseline,
            baseline_source,
        }
    }

    /// The forecast through `through`.
    pub(super) fn forecast(&self, kr: &KeyResult) -> Option<ForecastFit> {
        let (start, end) = self.period;
        self.fit
            .forecast(kr.target, kr.better, (end - start).as_seconds_f64())
    }
}

/// A hash of what a state depends on in `kr`: its series, aggregate,
/// window, configured baseline, and whether it is a maintain KR (which has
/// none). The target and `better` are read at scoring time.
fn basis(kr: &KeyResult) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &kr.metric,
        &kr.labels,
        std::mem::discriminant(&kr.aggregate),
        kr.window,
        kr.baseline.map(f64::to_bits),
        kr.target.is_maintain(),
    )
        .hash(&mut h);
    h.finish()
}
