//! A key result's baseline over its period (SPEC §4): as configured;
//! otherwise value(period start); otherwise the aggregate at the earliest
//! point in the period. Maintain KRs have none.

use crate::config::objective::KeyResult;
use crate::config::types::Period;
use crate::model::{Sample, Timestamp};

use super::aggregate::aggregate;
use super::BaselineSource;

/// A KR's baseline over its period, from ascending samples: as configured;
/// otherwise value(period start); otherwise the aggregate at the earliest
/// point in the period, from that point's ts on. Maintain KRs have none.
/// Built once, it answers for every t in the period, so that one
/// evaluation and a whole history share it.
#[derive(Debug, Clone)]
pub(super) struct Baseline {
    /// Maintain, configured or value(period start): the same at every t.
    fixed: Option<(Option<f64>, BaselineSource)>,
    /// Without a fixed one: the aggregate at the earliest point in the
    /// period, and that point's ts.
    earliest: Option<(f64, Timestamp)>,
}

impl Baseline {
    pub(super) fn of(kr: &KeyResult, period: &Period, samples: &[Sample]) -> Self {
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
    pub(super) fn at(&self, t: Timestamp) -> (Option<f64>, BaselineSource) {
        match (self.fixed, self.earliest) {
            (Some(fixed), _) => fixed,
            (None, Some((b, ts))) if ts <= t => (Some(b), BaselineSource::EarliestInPeriod(ts)),
            (None, _) => (None, BaselineSource::Unavailable),
        }
    }

    /// Whether it waits for the earliest point in the period: no fixed
    /// baseline, and no point in the period yet.
    pub(super) fn awaits_earliest(&self) -> bool {
        self.fixed.is_none() && self.earliest.is_none()
    }

    /// The earliest point in the period came: at `ts`, the aggregate there
    /// `value`.
    pub(super) fn earliest(&mut self, value: Option<f64>, ts: Timestamp) {
        if self.awaits_earliest() {
            self.earliest = value.map(|v| (v, ts));
        }
    }
}
