//! The counter-metric guardrail at evaluation time t (SPEC §4,
//! "Counter-metric alert"): did the KR move toward its target over the
//! comparison window W, and did its counter metric degrade beyond its
//! tolerance over the same window?

use crate::config::objective::{Better, CounterMetric};
use crate::config::types::Tolerance;
use crate::model::{minus, Sample, Timestamp};

use super::aggregate::aggregate;

/// A KR moves when its score rose by at least this over W.
pub const MIN_SCORE_MOVE: f64 = 0.01;

/// A counter metric's state at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterState {
    /// The counter metric's name.
    pub metric: String,
    /// Its aggregate at t.
    pub value: Option<f64>,
    /// Its aggregate at t − W.
    pub reference: Option<f64>,
    /// The KR's score at t minus its score at t − W.
    pub kr_score_delta: f64,
    /// Whether the KR moved toward its target (score rose by ≥ 0.01).
    pub kr_moved: bool,
    /// Whether the counter metric moved in its bad direction by more than
    /// its tolerance, with at least 2 points in (t − W, t].
    pub degraded: bool,
}

impl CounterState {
    /// value − reference, when both exist.
    pub fn delta(&self) -> Option<f64> {
        Some(self.value? - self.reference?)
    }

    /// Both conditions of the guardrail at once: the alert fires.
    pub fn firing(&self) -> bool {
        self.kr_moved && self.degraded
    }
}

/// The `from` for `Store::load_series` so the samples cover the counter
/// metric's aggregates at t and t − W.
pub fn counter_data_from(cm: &CounterMetric, t: Timestamp) -> Timestamp {
    let then = minus(t, cm.window);
    cm.aggregate_window.map_or(then, |w| minus(then, w))
}

/// Whether `value` is worse than `reference` by more than the tolerance.
pub fn worse_than(cm: &CounterMetric, reference: f64, value: f64) -> bool {
    let allowed = match cm.tolerance {
        Tolerance::Relative(r) => r * reference.abs(),
        Tolerance::Absolute(a) => a,
    };
    let worsening = match cm.better {
        Better::Lower => value - reference,
        Better::Higher => reference - value,
    };
    worsening > allowed
}

/// Evaluates one counter metric at `t` from its samples (ascending, covering
/// [`counter_data_from`]) and the KR's scores at t and t − W.
pub fn counter_state(
    cm: &CounterMetric,
    samples: &[Sample],
    t: Timestamp,
    kr_score_now: f64,
    kr_score_then: f64,
) -> CounterState {
    let then = minus(t, cm.window);
    let value = aggregate(samples, cm.aggregate, cm.aggregate_window, t);
    let reference = aggregate(samples, cm.aggregate, cm.aggregate_window, then);
    let in_window = samples.iter().filter(|s| s.ts > then && s.ts <= t).count();
    let degraded = match (value, reference) {
        (Some(v), Some(r)) => in_window >= 2 && worse_than(cm, r, v),
        _ => false,
    };
    let kr_score_delta = kr_score_now - kr_score_then;
    CounterState {
        metric: cm.metric.clone(),
        value,
        reference,
        kr_score_delta,
        kr_moved: kr_score_delta >= MIN_SCORE_MOVE - 1e-12,
        degraded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::objective::Aggregate;
    use chrono::TimeDelta;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    fn cm(better: Better, tolerance: Tolerance) -> CounterMetric {
        CounterMetric {
            metric: "tickets".into(),
            labels: Default::default(),
            aggregate: Aggregate::Last,
            aggregate_window: None,
            better,
            tolerance,
            window: Duration::from_secs(7 * 86_400),
        }
    }

    fn day(d: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + TimeDelta::days(d)
    }

    fn series(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(d, v)| Sample::new(day(d), v))
            .collect()
    }

    #[test]
    fn degrades_when_worse_by_more_than_a_relative_tolerance() {
        let c = cm(Better::Lower, Tolerance::Relative(0.05));
        // reference (day 0) 3.0; 5% of it is 0.15.
        let s = series(&[(0, 3.0), (3, 3.1), (7, 3.2)]);
        let st = counter_state(&c, &s, day(7), 0.6, 0.5);
        assert_eq!((st.value, st.reference), (Some(3.2), Some(3.0)));
        assert!(st.degraded && st.kr_moved && st.firing());
        let s = series(&[(0, 3.0), (3, 3.1), (7, 3.15)]);
        assert!(
            !counter_state(&c, &s, day(7), 0.6, 0.5).degraded,
            "exactly at tolerance is not beyond it"
        );
    }

    #[test]
    fn absolute_tolerance_and_higher_is_better() {
        let c = cm(Better::Higher, Tolerance::Absolute(0.3));
        let s = series(&[(0, 10.0), (4, 9.8), (7, 9.6)]);
        assert!(counter_state(&c, &s, day(7), 0.6, 0.5).degraded);
        let s = series(&[(0, 10.0), (4, 9.8), (7, 9.8)]);
        assert!(!counter_state(&c, &s, day(7), 0.6, 0.5).degraded);
    }

    #[test]
    fn needs_two_points_in_the_window() {
        let c = cm(Better::Lower, Tolerance::Relative(0.05));
        let s = series(&[(0, 3.0), (7, 4.0)]);
        assert!(!counter_state(&c, &s, day(7), 0.6, 0.5).degraded);
    }

    #[test]
    fn a_kr_moves_only_when_its_score_rose_by_a_hundredth() {
        let c = cm(Better::Lower, Tolerance::Relative(0.05));
        let s = series(&[(0, 3.0), (3, 3.5), (7, 4.0)]);
        assert!(counter_state(&c, &s, day(7), 0.51, 0.50).kr_moved);
        assert!(!counter_state(&c, &s, day(7), 0.509, 0.50).kr_moved);
        assert!(!counter_state(&c, &s, day(7), 0.4, 0.5).firing());
    }

    #[test]
    fn data_from_covers_the_reference_window() {
        let mut c = cm(Better::Lower, Tolerance::Relative(0.05));
        assert_eq!(counter_data_from(&c, day(7)), day(0));
        c.aggregate = Aggregate::Avg;
        c.aggregate_window = Some(Duration::from_secs(86_400));
        assert_eq!(counter_data_from(&c, day(7)), day(-1));
    }
}
