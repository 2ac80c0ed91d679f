//! The counter-metric guardrail at evaluation time t (SPEC §4,
//! "Counter-metric alert" and "Statistics that do not cry wolf"): did the
//! KR move toward its target over the comparison window W, and did its
//! counter metric degrade over the same window, by the tolerance rule
//! (`test: threshold`) or by Welch's test (`test: welch`)?

use crate::config::objective::{Better, CounterMetric, CounterTest};
use crate::config::types::Tolerance;
use crate::model::{minus, Sample, Timestamp};

use super::aggregate::aggregate;
use super::welch::{Welch, WindowStats};

/// A KR moves when its score rose by at least this over W.
pub const MIN_SCORE_MOVE: f64 = 0.01;

/// Points the tolerance rule needs in (t − W, t].
const THRESHOLD_MIN_POINTS: usize = 2;

/// What a counter metric's test concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not degraded.
    Ok,
    /// Degraded beyond its tolerance.
    Degraded,
    /// Too few points to tell: never degraded.
    InsufficientData,
}

impl Health {
    /// The name used in JSON (`state`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::InsufficientData => "insufficient_data",
        }
    }
}

/// The two windows of `test: welch` at t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    /// The points in (t − 2W, t − W]; `None` when there are none.
    pub a: Option<WindowStats>,
    /// The points in (t − W, t]; `None` when there are none.
    pub b: Option<WindowStats>,
    /// The test, when both windows hold `min_points`.
    pub test: Option<Welch>,
}

/// A counter metric's state at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterState {
    /// The counter metric's name.
    pub metric: String,
    /// Its aggregate at t (`test: welch`: the mean of (t − W, t]).
    pub value: Option<f64>,
    /// Its aggregate at t − W (`test: welch`: the mean of (t − 2W, t − W]).
    pub reference: Option<f64>,
    /// The KR's score at t minus its score at t − W.
    pub kr_score_delta: f64,
    /// Whether the KR moved toward its target (score rose by ≥ 0.01).
    pub kr_moved: bool,
    /// Whether the counter metric degraded: `state` is `Degraded`.
    pub degraded: bool,
    /// What its test concluded.
    pub state: Health,
    /// `test: welch`'s windows and test; `None` for `test: threshold`.
    pub windows: Option<Windows>,
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

    /// What a firing captures for [`still_degraded`]: `test: welch`'s
    /// earlier window.
    pub fn captured_window(&self) -> Option<WindowStats> {
        self.windows.and_then(|w| w.a)
    }
}

/// The `from` for `Store::load_series` so the samples cover the counter
/// metric's aggregates at t and t − W (`test: welch`: both windows).
pub fn counter_data_from(cm: &CounterMetric, t: Timestamp) -> Timestamp {
    let then = minus(t, cm.window);
    match cm.test {
        CounterTest::Welch { .. } => minus(then, cm.window),
        CounterTest::Threshold => cm.aggregate_window.map_or(then, |w| minus(then, w)),
    }
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

/// Whether a firing alert stays firing: the counter metric is still worse
/// than what was captured at firing by more than the tolerance. The
/// tolerance rule compares the value now with the `reference` value
/// captured; Welch's test recomputes the bound of the current window
/// against the `window` captured. Without enough data now (a gap) it
/// cannot be said to have recovered: it stays.
pub fn still_degraded(
    cm: &CounterMetric,
    reference: Option<f64>,
    window: Option<WindowStats>,
    now: &CounterState,
) -> bool {
    match cm.test {
        CounterTest::Threshold => match (reference, now.value) {
            (Some(r), Some(v)) => worse_than(cm, r, v),
            _ => true,
        },
        CounterTest::Welch { min_points, alpha } => {
            let b = now.windows.and_then(|w| w.b);
            match (window, b) {
                (Some(a), Some(b)) if a.n >= min_points && b.n >= min_points => {
                    Welch::test(a, b, cm.better, cm.tolerance, alpha).degraded()
                }
                _ => true,
            }
        }
    }
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
    let (value, reference, state, windows) = match cm.test {
        CounterTest::Threshold => {
            let value = aggregate(samples, cm.aggregate, cm.aggregate_window, t);
            let reference = aggregate(samples, cm.aggregate, cm.aggregate_window, then);
            let in_window = samples.iter().filter(|s| s.ts > then && s.ts <= t).count();
            let state = match (value, reference) {
                (Some(v), Some(r)) if in_window >= THRESHOLD_MIN_POINTS => {
                    if worse_than(cm, r, v) {
                        Health::Degraded
                    } else {
                        Health::Ok
                    }
                }
                _ => Health::InsufficientData,
            };
            (value, reference, state, None)
        }
        CounterTest::Welch { min_points, alpha } => {
            let windows = welch_windows(cm, samples, t, min_points, alpha);
            let state = match windows.test {
                None => Health::InsufficientData,
                Some(w) if w.degraded() => Health::Degraded,
                Some(_) => Health::Ok,
            };
            let mean = |w: Option<WindowStats>| w.map(|w| w.mean);
            (mean(windows.b), mean(windows.a), state, Some(windows))
        }
    };
    let kr_score_delta = kr_score_now - kr_score_then;
    CounterState {
        metric: cm.metric.clone(),
        value,
        reference,
        kr_score_delta,
        kr_moved: kr_score_delta >= MIN_SCORE_MOVE - 1e-12,
        degraded: state == Health::Degraded,
        state,
        windows,
    }
}

/// The points in (t − 2W, t − W] and (t − W, t], summarised, and the test
/// when both hold `min_points`.
fn welch_windows(
    cm: &CounterMetric,
    samples: &[Sample],
    t: Timestamp,
    min_points: usize,
    alpha: f64,
) -> Windows {
    let then = minus(t, cm.window);
    let before = minus(then, cm.window);
    // Half-open (from, to]: the index range of ascending samples.
    let range = |from: Timestamp, to: Timestamp| {
        samples.partition_point(|s| s.ts <= from)..samples.partition_point(|s| s.ts <= to)
    };
    let stats = |r: std::ops::Range<usize>| WindowStats::of(samples[r].iter().map(|s| s.value));
    let a = stats(range(before, then));
    let b = stats(range(then, t));
    let test = match (a, b) {
        (Some(a), Some(b)) if a.n >= min_points && b.n >= min_points => {
            Some(Welch::test(a, b, cm.better, cm.tolerance, alpha))
        }
        _ => None,
    };
    Windows { a, b, test }
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
            test: CounterTest::Threshold,
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

    fn welch(min_points: usize, tolerance: Tolerance) -> CounterMetric {
        CounterMetric {
            test: CounterTest::Welch {
                min_points,
                alpha: 0.05,
            },
            window: Duration::from_secs(5 * 86_400),
            ..cm(Better::Lower, tolerance)
        }
    }

    /// Daily points: A on days 1–5, B on days 6–10 (W = 5d, t = day 10).
    fn two_windows(a: &[f64], b: &[f64]) -> Vec<Sample> {
        a.iter()
            .chain(b)
            .enumerate()
            .map(|(i, &v)| Sample::new(day(i as i64 + 1), v))
            .collect()
    }

    #[test]
    fn welch_reads_the_points_of_both_windows() {
        // The SciPy case of welch.rs: bound 0.44926 against 0.4.
        let c = welch(5, Tolerance::Absolute(0.4));
        let mut s = two_windows(&[2.0; 5], &[2.5, 2.7, 2.4, 2.6, 2.8]);
        // A point exactly at t − 2W is outside A: (t − 2W, t − W].
        s.insert(0, Sample::new(day(0), 100.0));
        let st = counter_state(&c, &s, day(10), 0.6, 0.5);
        let w = st.windows.expect("welch");
        assert_eq!((w.a.unwrap().n, w.b.unwrap().n), (5, 5));
        assert_eq!(st.state, Health::Degraded);
        assert!(st.degraded && st.firing());
        assert_eq!(st.reference, Some(2.0));
        assert!((st.value.unwrap() - 2.6).abs() < 1e-12);
        assert_eq!(st.captured_window(), w.a);
        assert_eq!(counter_data_from(&c, day(10)), day(0));
        let ok = counter_state(&welch(5, Tolerance::Absolute(0.45)), &s, day(10), 0.6, 0.5);
        assert_eq!(ok.state, Health::Ok);
        assert!(!ok.degraded);
    }

    #[test]
    fn welch_needs_min_points_in_each_window() {
        let c = welch(5, Tolerance::Absolute(0.0));
        let s = two_windows(&[2.0, 2.1, 2.0, 2.1, 2.0], &[3.0, 3.1, 3.0, 3.1, 3.0]);
        // Exactly min_points in each: tested.
        assert_eq!(
            counter_state(&c, &s, day(10), 0.6, 0.5).state,
            Health::Degraded
        );
        // One fewer in A (day 1 dropped), or in B (day 10 dropped).
        for drop in [0, 9] {
            let mut fewer = s.clone();
            fewer.remove(drop);
            let st = counter_state(&c, &fewer, day(10), 0.6, 0.5);
            assert_eq!(st.state, Health::InsufficientData, "without point {drop}");
            assert!(!st.degraded && !st.firing());
            assert_eq!(st.windows.unwrap().test, None);
        }
        // min_points 4 takes them.
        let mut fewer = s.clone();
        fewer.remove(0);
        assert_eq!(
            counter_state(
                &welch(4, Tolerance::Absolute(0.0)),
                &fewer,
                day(10),
                0.6,
                0.5
            )
            .state,
            Health::Degraded
        );
    }

    #[test]
    fn noise_the_threshold_rule_flags_is_no_degradation_for_welch() {
        // The same noisy, level series: its last point is 20% above the one
        // W before it, but the windows' means differ by 1%.
        let a = [3.0, 3.6, 2.7, 3.3, 2.5];
        let b = [3.4, 2.6, 3.5, 2.8, 3.0];
        let s = two_windows(&a, &b);
        let threshold = CounterMetric {
            window: Duration::from_secs(5 * 86_400),
            ..cm(Better::Lower, Tolerance::Relative(0.10))
        };
        let st = counter_state(&threshold, &s, day(10), 0.6, 0.5);
        assert_eq!((st.reference, st.value), (Some(2.5), Some(3.0)));
        assert_eq!(st.state, Health::Degraded);
        let st = counter_state(&welch(5, Tolerance::Relative(0.10)), &s, day(10), 0.6, 0.5);
        assert_eq!(st.state, Health::Ok);
    }

    #[test]
    fn the_threshold_rule_has_insufficient_data_too() {
        let c = cm(Better::Lower, Tolerance::Relative(0.05));
        let st = counter_state(&c, &series(&[(0, 3.0), (7, 4.0)]), day(7), 0.6, 0.5);
        assert_eq!(st.state, Health::InsufficientData);
        let st = counter_state(&c, &series(&[(3, 3.0), (7, 4.0)]), day(7), 0.6, 0.5);
        assert_eq!(st.state, Health::InsufficientData, "no value at t − W");
        let st = counter_state(
            &c,
            &series(&[(0, 3.0), (3, 3.0), (7, 3.0)]),
            day(7),
            0.6,
            0.5,
        );
        assert_eq!((st.state, st.windows), (Health::Ok, None));
        assert_eq!(Health::InsufficientData.as_str(), "insufficient_data");
    }

    #[test]
    fn a_firing_welch_alert_is_judged_against_the_window_captured() {
        let c = welch(5, Tolerance::Absolute(0.4));
        let captured = WindowStats::of([2.0; 5].into_iter());
        let now = |b: &[f64]| {
            let s = two_windows(&[9.0; 5], b);
            counter_state(&c, &s, day(10), 0.5, 0.5)
        };
        // Against today's A (9.0) B is far better, but against the A
        // captured at firing (2.0) it is still worse by more than 0.4.
        let high = now(&[2.5, 2.7, 2.4, 2.6, 2.8]);
        assert_eq!(high.state, Health::Ok);
        assert!(still_degraded(&c, Some(2.0), captured, &high));
        // Back near 2.0: recovered.
        assert!(!still_degraded(
            &c,
            Some(2.0),
            captured,
            &now(&[2.0, 2.1, 1.9, 2.0, 2.1])
        ));
        // Too few points now, or nothing captured: it cannot tell, and stays.
        let s = two_windows(&[9.0; 5], &[2.0, 2.0]);
        let gap = counter_state(&c, &s[..7], day(10), 0.5, 0.5);
        assert!(still_degraded(&c, Some(2.0), captured, &gap));
        assert!(still_degraded(&c, None, None, &now(&[2.0; 5])));
        // The threshold rule compares the value with the reference.
        let t = cm(Better::Lower, Tolerance::Relative(0.05));
        let st = counter_state(
            &t,
            &series(&[(0, 3.0), (3, 3.1), (7, 3.2)]),
            day(7),
            0.6,
            0.5,
        );
        assert!(still_degraded(&t, Some(3.0), None, &st));
        assert!(!still_degraded(&t, Some(3.1), None, &st));
    }
}
