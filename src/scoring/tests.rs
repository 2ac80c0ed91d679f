//! Table tests for SPEC §4 "Scoring at evaluation time t".
//!
//! Every test runs in a 100-day period starting 2026-10-01, so that day `d`
//! of the period is `day(d)` and the fraction elapsed is d / 100.

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};

use super::aggregate::Window;
use super::*;
use crate::config::objective::{Aggregate, Better, KeyResult, KrType, Objective, Target};
use crate::config::types::Period;
use crate::model::Sample;

const MARGINS: Margins = Margins {
    at_risk: 0.10,
    off_track: 0.25,
};

fn period() -> Period {
    let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    Period {
        start,
        end: start + TimeDelta::days(100),
        label: "test".into(),
        recurrence: None,
    }
}

/// Day `d` of the test period (fractions allowed, negative before it).
fn day(d: f64) -> Timestamp {
    period().start + TimeDelta::seconds((d * 86_400.0).round() as i64)
}

fn days(d: u64) -> Duration {
    Duration::from_secs(d * 86_400)
}

/// Samples from (day, value) pairs.
fn points(pairs: &[(f64, f64)]) -> Vec<Sample> {
    pairs.iter().map(|&(d, v)| Sample::new(day(d), v)).collect()
}

/// A committed `last` KR with no configured baseline; `better` follows the
/// target (maintain) or is `higher`.
fn kr(target: Target) -> KeyResult {
    KeyResult {
        id: "kr".into(),
        title: "a key result".into(),
        metric: "m".into(),
        labels: Default::default(),
        aggregate: Aggregate::Last,
        window: None,
        baseline: None,
        target,
        better: match target {
            Target::AtMost(_) => Better::Lower,
            _ => Better::Higher,
        },
        kind: KrType::Committed,
        weight: 1.0,
        stale_after: None,
        counter_metrics: Vec::new(),
        depends_on: Vec::new(),
        span: Default::default(),
    }
}

/// A KR moving from a configured `baseline` to `target`.
fn moving(baseline: f64, target: f64) -> KeyResult {
    KeyResult {
        baseline: Some(baseline),
        better: if target > baseline {
            Better::Higher
        } else {
            Better::Lower
        },
        ..kr(Target::Value(target))
    }
}

fn windowed(aggregate: Aggregate, window_days: u64, target: Target) -> KeyResult {
    KeyResult {
        aggregate,
        window: Some(days(window_days)),
        ..kr(target)
    }
}

fn score_at(kr: &KeyResult, samples: &[Sample], now_day: f64) -> KrScore {
    score_key_result(kr, &period(), samples, day(now_day), MARGINS)
}

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

#[track_caller]
fn assert_close_opt(actual: Option<f64>, expected: Option<f64>) {
    match (actual, expected) {
        (Some(a), Some(e)) => assert_close(a, e),
        (a, e) => assert_eq!(a, e),
    }
}

// progress = (value - baseline) / (target - baseline), unclamped;
// score = clamp(progress, 0, 1).

#[test]
fn increasing_kr_from_32_to_45_percent() {
    let kr = moving(0.32, 0.45);
    // value, progress, score
    let table = [
        (0.32, 0.0, 0.0),
        (0.385, 0.5, 0.5),
        (0.45, 1.0, 1.0),
        (0.50, 0.18 / 0.13, 1.0),  // beyond target: progress > 1
        (0.30, -0.02 / 0.13, 0.0), // below baseline: progress < 0
    ];
    for (value, progress, score) in table {
        let s = score_at(&kr, &points(&[(10.0, value)]), 20.0);
        assert_eq!(s.baseline, Some(0.32));
        assert_eq!(s.baseline_source, BaselineSource::Configured);
        assert_eq!(s.target, 0.45);
        assert_close_opt(s.progress, Some(progress));
        assert_close(s.score, score);
    }
}

#[test]
fn decreasing_kr_p99_from_900_to_300_ms() {
    let kr = moving(900.0, 300.0);
    assert_eq!(kr.better, Better::Lower);
    // value, progress, score
    let table = [
        (900.0, 0.0, 0.0),
        (600.0, 0.5, 0.5),
        (300.0, 1.0, 1.0),
        (200.0, 700.0 / 600.0, 1.0),   // beyond target
        (1000.0, -100.0 / 600.0, 0.0), // worse than baseline
    ];
    for (value, progress, score) in table {
        let s = score_at(&kr, &points(&[(10.0, value)]), 20.0);
        assert_close_opt(s.progress, Some(progress));
        assert_close(s.score, score);
    }
}

// Maintain KRs (`at_most` / `at_least`, both inclusive): 1.0 when met,
// 0.0 when not.

#[test]
fn maintain_kr_thresholds_are_inclusive() {
    // target, value, score
    let table = [
        (Target::AtMost(300.0), 300.0, 1.0),
        (Target::AtMost(300.0), 250.0, 1.0),
        (Target::AtMost(300.0), 300.1, 0.0),
        (Target::AtLeast(300.0), 300.0, 1.0),
        (Target::AtLeast(300.0), 350.0, 1.0),
        (Target::AtLeast(300.0), 299.9, 0.0),
    ];
    for (target, value, score) in table {
        let s = score_at(&kr(target), &points(&[(10.0, value)]), 20.0);
        assert_eq!(s.score, score, "{target:?} with value {value}");
        assert_eq!(s.progress, None);
        assert_eq!(s.baseline, None);
        assert_eq!(s.baseline_source, BaselineSource::NotApplicable);
        assert_eq!(s.target, 300.0);
    }
}

// baseline when omitted: value(start) if any point makes it defined,
// otherwise the aggregate evaluated at the ts of the earliest point in the
// period.

#[test]
fn automatic_baseline_is_the_latest_point_at_or_before_start() {
    let kr = kr(Target::Value(0.45));
    // samples, baseline, source
    let table = [
        (
            points(&[(-3.0, 0.30), (-1.0, 0.32), (5.0, 0.385)]),
            0.32,
            BaselineSource::PeriodStart,
        ),
        (
            points(&[(-1.0, 0.30), (0.0, 0.32), (5.0, 0.385)]),
            0.32,
            BaselineSource::PeriodStart,
        ),
        (
            points(&[(2.0, 0.32), (3.0, 0.35), (5.0, 0.385)]),
            0.32,
            BaselineSource::EarliestInPeriod(day(2.0)),
        ),
    ];
    for (samples, baseline, source) in table {
        let s = score_at(&kr, &samples, 10.0);
        assert_eq!(s.baseline, Some(baseline));
        assert_eq!(s.baseline_source, source);
        assert_close_opt(s.progress, Some(0.5));
    }
}

#[test]
fn automatic_baseline_of_a_windowed_aggregate() {
    let kr = windowed(Aggregate::Avg, 7, Target::Value(100.0));
    // value(start) averages (start - 7d, start]; the point at day -10 is
    // outside that window, as `load_series` returns it for from = start - 7d.
    let s = score_at(
        &kr,
        &points(&[
            (-10.0, 0.0),
            (-6.0, 10.0),
            (-2.0, 20.0),
            (3.0, 30.0),
            (5.0, 40.0),
        ]),
        6.0,
    );
    assert_eq!(s.baseline, Some(15.0));
    assert_eq!(s.baseline_source, BaselineSource::PeriodStart);
    assert_eq!(s.value, Some(35.0)); // avg over (day -1, day 6]
    assert_close_opt(s.progress, Some(20.0 / 85.0));

    // Nothing in (start - 7d, start]: the avg at the earliest point in the
    // period, whose window reaches back before the start.
    let s = score_at(
        &kr,
        &points(&[(-10.0, 0.0), (-6.5, 6.0), (1.0, 10.0), (3.0, 20.0)]),
        4.0,
    );
    assert_eq!(s.baseline_source, BaselineSource::PeriodStart);
    assert_eq!(s.baseline, Some(6.0));
    let s = score_at(&kr, &points(&[(-10.0, 0.0), (1.0, 10.0), (3.0, 20.0)]), 4.0);
    assert_eq!(
        s.baseline_source,
        BaselineSource::EarliestInPeriod(day(1.0))
    );
    assert_eq!(s.baseline, Some(10.0));
    assert_eq!(s.value, Some(15.0));
}

#[test]
fn automatic_baseline_with_no_data_is_unavailable() {
    let s = score_at(&kr(Target::Value(0.45)), &[], 10.0);
    assert_eq!(s.baseline, None);
    assert_eq!(s.baseline_source, BaselineSource::Unavailable);
}

#[test]
fn degenerate_automatic_baseline_scores_whether_the_target_is_met() {
    // better, target, derived baseline, value, progress and score
    let table = [
        (Better::Higher, 0.45, 0.50, 0.47, 1.0),
        (Better::Higher, 0.45, 0.50, 0.44, 0.0),
        (Better::Higher, 0.45, 0.45, 0.45, 1.0),
        (Better::Lower, 300.0, 250.0, 280.0, 1.0),
        (Better::Lower, 300.0, 250.0, 320.0, 0.0),
        (Better::Lower, 300.0, 300.0, 300.1, 0.0),
    ];
    for (better, target, baseline, value, score) in table {
        let kr = KeyResult {
            better,
            ..kr(Target::Value(target))
        };
        let s = score_at(&kr, &points(&[(-1.0, baseline), (5.0, value)]), 10.0);
        assert_eq!(s.baseline, Some(baseline));
        assert_eq!(s.baseline_source, BaselineSource::PeriodStart);
        assert_eq!(s.progress, Some(score), "{better:?} {baseline} -> {value}");
        assert_eq!(s.score, score);
    }
}

// value(t): `last` is the latest point with ts <= t; the others aggregate
// points with ts in (t - window, t].

#[test]
fn aggregates_read_the_window_open_at_t_minus_window_and_closed_at_t() {
    let t = 20.0;
    let samples = points(&[
        (t - 7.0, 100.0), // exactly t - window: excluded
        (t - 6.0, 1.0),
        (t - 1.0, 5.0),
        (t, 3.0),          // exactly t: included
        (t + 1.0, 1000.0), // after t: excluded
    ]);
    // aggregate, value(t), points used
    let table = [
        (Aggregate::Last, 3.0, 1),
        (Aggregate::Avg, 3.0, 3),
        (Aggregate::Sum, 9.0, 3),
        (Aggregate::Min, 1.0, 3),
        (Aggregate::Max, 5.0, 3),
        (Aggregate::Count, 3.0, 3),
    ];
    for (agg, value, used) in table {
        let window = (agg != Aggregate::Last).then(|| days(7));
        assert_eq!(
            aggregate(&samples, agg, window, day(t)),
            Some(value),
            "{agg:?}"
        );
        let kr = KeyResult {
            aggregate: agg,
            window,
            ..kr(Target::AtLeast(0.0))
        };
        let s = score_at(&kr, &samples, t);
        assert_eq!((s.value, s.points_used), (Some(value), used), "{agg:?}");
        assert_eq!(s.newest_point, Some(day(t)));
    }
}

#[test]
fn an_aggregate_over_an_empty_window_is_undefined() {
    let samples = points(&[(1.0, 4.0), (2.0, 5.0)]);
    // The windowed ones.
    for agg in &AGGREGATES[1..] {
        let agg = *agg;
        assert_eq!(aggregate(&samples, agg, Some(days(7)), day(9.0)), None);
        assert_eq!(aggregate(&samples, agg, Some(days(7)), day(0.5)), None);
        let s = score_at(&windowed(agg, 7, Target::AtLeast(0.0)), &samples, 9.0);
        assert_eq!(s.status, Status::NoData, "{agg:?}");
        assert_eq!((s.value, s.points_used, s.score), (None, 0, 0.0));
        assert_eq!(s.newest_point, Some(day(2.0)));
    }
    assert_eq!(aggregate(&samples, Aggregate::Last, None, day(0.5)), None);
}

/// Every aggregate, `last` first.
const AGGREGATES: [Aggregate; 6] = [
    Aggregate::Last,
    Aggregate::Avg,
    Aggregate::Sum,
    Aggregate::Min,
    Aggregate::Max,
    Aggregate::Count,
];

/// A deterministic stream of pseudo-random numbers in [0, 1) from `seed`
/// (a linear congruential generator).
fn pseudo_random(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    }
}

#[test]
fn sliding_evaluation_agrees_with_direct_aggregation() {
    // Irregularly spaced, pseudo-random points.
    let mut next = pseudo_random(42);
    let mut d = -10.0;
    let mut pairs = Vec::new();
    for _ in 0..400 {
        d += (next() * 8.0).floor() / 24.0;
        pairs.push((d, (next() * 1000.0).round() / 10.0 - 50.0));
    }
    let samples = points(&pairs);
    for agg in AGGREGATES {
        let window = (agg != Aggregate::Last).then(|| days(2));
        let mut sliding = Window::new(agg, window);
        let mut pushed = 0;
        for t in samples.iter().map(|s| s.ts).chain([day(200.0)]) {
            let direct = aggregate(&samples, agg, window, t);
            pushed += sliding.catch_up(&samples[pushed..], t);
            assert_eq!(sliding.exact(), direct, "{agg:?} at {t}: exact");
            let slid = sliding.value();
            match (direct, slid) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{agg:?} at {t}"),
                _ => assert_eq!(direct, slid, "{agg:?} at {t}"),
            }
        }
    }
}

#[test]
fn history_in_one_pass_agrees_with_evaluating_each_instant() {
    // Points before and in the period, with a gap (stale) and a decline.
    let pairs: Vec<(f64, f64)> = (0..300)
        .map(|i| {
            let d = -5.0 + f64::from(i) * 0.35 + if i > 150 { 10.0 } else { 0.0 };
            (
                d,
                30.0 + (f64::from(i) * 0.7).sin() * 10.0 + f64::from(i) * 0.05,
            )
        })
        .collect();
    let samples = points(&pairs);
    let with_stale = |kr: KeyResult| KeyResult {
        stale_after: Some(days(3)),
        ..kr
    };
    let krs = [
        kr(Target::Value(45.0)),
        moving(20.0, 50.0),
        kr(Target::AtLeast(35.0)),
        with_stale(windowed(Aggregate::Avg, 3, Target::Value(45.0))),
        windowed(Aggregate::Sum, 2, Target::AtMost(400.0)),
        windowed(Aggregate::Min, 4, Target::Value(50.0)),
        windowed(Aggregate::Max, 1, Target::Value(20.0)),
        windowed(Aggregate::Count, 5, Target::Value(30.0)),
    ];
    // Every point's ts in the period, and a few instants between and after.
    let mut times: Vec<Timestamp> = samples
        .iter()
        .map(|s| s.ts)
        .filter(|ts| *ts >= period().start)
        .chain([day(50.25), day(99.0), day(130.0)])
        .collect();
    times.sort();
    for kr in &krs {
        let history = score_history(kr, &period(), &samples, &times, MARGINS);
        assert_eq!(history.len(), times.len());
        for (t, got) in times.iter().zip(&history) {
            let want = score_key_result_without_forecast(kr, &period(), &samples, *t, MARGINS);
            let what = format!("{:?} {:?} at {t}", kr.aggregate, kr.target);
            assert_eq!(got.at, want.at, "{what}");
            assert_close_opt(got.value, want.value);
            assert_close_opt(got.baseline, want.baseline);
            assert_eq!(got.baseline_source, want.baseline_source, "{what}");
            assert_close_opt(got.progress, want.progress);
            assert_close(got.score, want.score);
            assert_close(got.expected, want.expected);
            assert_eq!(got.status, want.status, "{what}");
            assert_eq!(got.newest_point, want.newest_point, "{what}");
            assert_eq!(got.points_used, want.points_used, "{what}");
            assert_eq!(got.forecast, None);
        }
    }
}

// status: no_data (no point usable), stale (newest point older than
// stale_after), else on_track / at_risk / off_track.

#[test]
fn no_data_when_no_point_is_usable() {
    let kr = moving(0.32, 0.45);
    // no points at all; only points after t
    for samples in [vec![], points(&[(11.0, 0.40), (12.0, 0.41)])] {
        let s = score_at(&kr, &samples, 10.0);
        assert_eq!(s.status, Status::NoData);
        assert_eq!(s.value, None);
        assert_eq!(s.progress, None);
        assert_eq!(s.score, 0.0);
        assert_eq!(s.newest_point, None);
        assert_eq!(s.points_used, 0);
        assert_eq!(s.forecast, None);
    }
}

#[test]
fn stale_when_the_newest_point_is_older_than_stale_after() {
    let kr = KeyResult {
        stale_after: Some(days(2)),
        ..moving(0.0, 1.0)
    };
    // age of the newest point in days at t = day 50, status
    let table = [
        (3.0, Status::Stale),
        (2.01, Status::Stale),
        (2.0, Status::OnTrack), // not older than stale_after
        (0.0, Status::OnTrack),
    ];
    for (age, status) in table {
        let s = score_at(&kr, &points(&[(50.0 - age, 0.5)]), 50.0);
        assert_eq!(s.status, status, "newest point {age} days old");
        assert_eq!(s.score, 0.5);
    }
    let without = score_at(&moving(0.0, 1.0), &points(&[(10.0, 0.5)]), 50.0);
    assert_eq!(without.status, Status::OnTrack);
}

#[test]
fn status_boundaries_with_margins_010_and_025() {
    // kind, t (day), score, status
    let table = [
        // expected 0.5: on_track down to 0.40, at_risk down to 0.25
        (KrType::Committed, 50.0, 0.50, Status::OnTrack),
        (KrType::Committed, 50.0, 0.40, Status::OnTrack),
        (KrType::Committed, 50.0, 0.399, Status::AtRisk),
        (KrType::Committed, 50.0, 0.25, Status::AtRisk),
        (KrType::Committed, 50.0, 0.249, Status::OffTrack),
        (KrType::Committed, 50.0, 0.0, Status::OffTrack),
        // expected 0.35 (0.7 × 0.5): on_track down to 0.25, at_risk to 0.10
        (KrType::Aspirational, 50.0, 0.25, Status::OnTrack),
        (KrType::Aspirational, 50.0, 0.249, Status::AtRisk),
        (KrType::Aspirational, 50.0, 0.10, Status::AtRisk),
        (KrType::Aspirational, 50.0, 0.099, Status::OffTrack),
        // early in the period anything is on track
        (KrType::Committed, 5.0, 0.0, Status::OnTrack),
    ];
    for (kind, t, score, status) in table {
        let kr = KeyResult {
            kind,
            ..moving(0.0, 1.0)
        };
        let s = score_at(&kr, &points(&[(t, score)]), t);
        assert_close(s.score, score);
        assert_eq!(s.status, status, "{kind:?} at day {t} scoring {score}");
    }
}

#[test]
fn maintain_kr_status_follows_the_same_rule() {
    // A breached maintain KR scores 0.0, which is on track while
    // expected is within the at_risk margin (SPEC §4 taken literally).
    let kr = kr(Target::AtMost(300.0));
    // t (day), value, status
    let table = [
        (5.0, 350.0, Status::OnTrack),
        (30.0, 350.0, Status::OffTrack),
        (90.0, 300.0, Status::OnTrack),
    ];
    for (t, value, status) in table {
        let s = score_at(&kr, &points(&[(t, value)]), t);
        assert_eq!(s.status, status, "day {t}, value {value}");
    }
}

// expected(t) = fraction of the period elapsed, clamped to [0, 1]; ×0.7 for
// aspirational KRs.

#[test]
fn expected_score_for_committed_and_aspirational_krs() {
    // now (day), committed, aspirational
    let table = [
        (-5.0, 0.0, 0.0),
        (0.0, 0.0, 0.0),
        (25.0, 0.25, 0.175),
        (50.0, 0.5, 0.35),
        (100.0, 1.0, 0.7),
        (130.0, 1.0, 0.7),
    ];
    let samples = points(&[(-20.0, 0.5)]);
    for (now, committed, aspirational) in table {
        let c = score_at(&moving(0.0, 1.0), &samples, now);
        let a = KeyResult {
            kind: KrType::Aspirational,
            ..moving(0.0, 1.0)
        };
        let a = score_at(&a, &samples, now);
        assert_close(c.expected, committed);
        assert_close(a.expected, aspirational);
    }
}

// After the period ends, a KR is evaluated at its end.

#[test]
fn after_the_period_ends_a_kr_is_evaluated_at_its_end() {
    let kr = moving(0.32, 0.45);
    let samples = points(&[(90.0, 0.40), (99.5, 0.385), (100.5, 0.45), (130.0, 0.50)]);
    let s = score_at(&kr, &samples, 400.0);
    assert_eq!(s.at, period().end);
    assert_eq!(s.expected, 1.0);
    assert_eq!(s.value, Some(0.385));
    assert_close(s.score, 0.5);
    assert_eq!(s.newest_point, Some(day(99.5)));
    assert_eq!(s.status, Status::OffTrack);
    assert_eq!(evaluation_time(&period(), day(400.0)), period().end);
    assert_eq!(evaluation_time(&period(), day(40.0)), day(40.0));
}

#[test]
fn data_from_covers_the_window_before_the_start() {
    assert_eq!(data_from(&kr(Target::Value(1.0)), &period()), day(0.0));
    let avg = windowed(Aggregate::Avg, 7, Target::Value(1.0));
    assert_eq!(data_from(&avg, &period()), day(-7.0));
}

// forecast: least-squares line through the KR's values in the period (at
// least 3 points), extended to period end, scored as above.

#[test]
fn forecast_needs_three_points_in_the_period() {
    let kr = moving(0.0, 1.0);
    // Points before the period do not count.
    let samples = points(&[(-5.0, 0.0), (-1.0, 0.0), (10.0, 0.1), (20.0, 0.2)]);
    assert_eq!(score_at(&kr, &samples, 30.0).forecast, None);
}

#[test]
fn forecast_extends_the_line_to_period_end() {
    // kr, points in the period, forecast score
    let table = [
        // 0.008/day reaches 0.8 at day 100; the point before start is ignored
        (
            moving(0.0, 1.0),
            vec![(-5.0, 5.0), (10.0, 0.08), (20.0, 0.16), (30.0, 0.24)],
            0.8,
        ),
        // beyond the target: clamped
        (
            moving(0.0, 1.0),
            vec![(10.0, 0.2), (20.0, 0.4), (30.0, 0.6)],
            1.0,
        ),
        // p99 900 → 300, falling 3 ms/day: 900 - 300 = 600 at day 100
        (
            moving(900.0, 300.0),
            vec![(10.0, 870.0), (20.0, 840.0), (30.0, 810.0), (40.0, 780.0)],
            0.5,
        ),
        // maintain at_most 300, rising 1 ms/day: 340 at day 100, breached
        (
            kr(Target::AtMost(300.0)),
            vec![(10.0, 250.0), (20.0, 260.0), (30.0, 270.0)],
            0.0,
        ),
        (
            kr(Target::AtMost(300.0)),
            vec![(10.0, 250.0), (20.0, 255.0), (30.0, 260.0)],
            1.0,
        ),
        // automatic baseline: 0.1 at the earliest point, heading to 0.55
        (
            kr(Target::Value(0.5)),
            vec![(10.0, 0.1), (20.0, 0.15), (30.0, 0.2)],
            1.0,
        ),
        (
            kr(Target::Value(0.9)),
            vec![(10.0, 0.1), (20.0, 0.15), (30.0, 0.2)],
            0.5625,
        ),
    ];
    for (kr, pairs, forecast) in table {
        let s = score_at(&kr, &points(&pairs), 35.0);
        assert_close_opt(s.forecast, Some(forecast));
    }
}

#[test]
fn forecast_of_a_windowed_aggregate_uses_its_values_in_the_period() {
    // One point a day from day 0, count over 1 day: the value is 1 at every
    // point in the period, a flat line.
    let kr = windowed(Aggregate::Count, 1, Target::AtLeast(1.0));
    let samples: Vec<Sample> = points(&(-3..=20).map(|d| (d as f64, 7.0)).collect::<Vec<_>>());
    assert_eq!(score_at(&kr, &samples, 20.0).forecast, Some(1.0));
    // The sum over 2 days grows from 5 (day 0, one point) to 10 and stays.
    let kr = windowed(Aggregate::Sum, 2, Target::AtLeast(10.0));
    let samples = points(&[(0.0, 5.0), (1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]);
    // values 5, 10, 10, 10 at x = 0..3 → slope 1.5/day, far above 10 at day 100
    assert_eq!(score_at(&kr, &samples, 3.0).forecast, Some(1.0));
}

// forecast probability: with n ≥ 3 points in the period, the line's
// prediction at the period end has standard error
// s·sqrt(1 + 1/n + (x_end − x̄)²/Σ(x − x̄)²), n − 2 degrees of freedom; the
// Student's t probability that the value at the end meets the target; null
// with fewer than 3 points; with s = 0 the line decides.

/// |got − want| ≤ 1e-9·|want|.
fn close_rel(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "{what}: got {got:e}, want {want:e}"
    );
}

/// References from SciPy 1.17.1 (/tmp/ref/forecast_ref.py), x in seconds
/// since the period start, the period end at day 100:
///
/// ```python
/// from scipy import stats
/// import numpy as np
/// def fc(days, ys, target, at_least, end_days=100):
///     x = np.array(days, float) * 86400.0; y = np.array(ys, float)
///     r = stats.linregress(x, y)
///     n = len(x); xe = end_days * 86400.0
///     yhat = r.intercept + r.slope * xe
///     s = np.sqrt(np.sum((y - (r.intercept + r.slope * x))**2) / (n - 2))
///     se = s * np.sqrt(1 + 1/n + (xe - x.mean())**2 / np.sum((x - x.mean())**2))
///     z = (target - yhat) / se
///     p = stats.t.sf(z, n - 2) if at_least else stats.t.cdf(z, n - 2)
///     print(repr(yhat), repr(se), n - 2, repr(p))
/// ```
#[test]
fn forecast_probability_matches_scipy() {
    // kr, points, (value at end, standard error, df, probability)
    let table = [
        // fc([0, 2, 5, 7, 10, 13, 15, 18, 20], [0.30, 0.31, 0.315, 0.33, 0.335, 0.35, 0.352, 0.366, 0.37], 0.66, True)
        (
            moving(0.30, 0.66),
            vec![
                (0.0, 0.30),
                (2.0, 0.31),
                (5.0, 0.315),
                (7.0, 0.33),
                (10.0, 0.335),
                (13.0, 0.35),
                (15.0, 0.352),
                (18.0, 0.366),
                (20.0, 0.37),
            ],
            (
                0.6530353535353535,
                0.013146431661949252,
                7,
                0.306324626213654,
            ),
        ),
        // A maintain KR: P(value ≤ 300).
        // fc([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [288.0, 295.5, 284.2, 301.7, 290.3, 297.8, 286.9, 299.4, 293.1, 296.6], 300.0, False)
        (
            kr(Target::AtMost(300.0)),
            vec![
                (1.0, 288.0),
                (2.0, 295.5),
                (3.0, 284.2),
                (4.0, 301.7),
                (5.0, 290.3),
                (6.0, 297.8),
                (7.0, 286.9),
                (8.0, 299.4),
                (9.0, 293.1),
                (10.0, 296.6),
            ],
            (350.4509090909093, 61.25327709454355, 8, 0.2170036530308326),
        ),
        // Lower is better: P(value ≤ 0.005).
        // fc([0, 3, 6, 9, 12], [0.040, 0.039, 0.0375, 0.037, 0.0355], 0.005, False)
        (
            moving(0.04, 0.005),
            vec![
                (0.0, 0.040),
                (3.0, 0.039),
                (6.0, 0.0375),
                (9.0, 0.037),
                (12.0, 0.0355),
            ],
            (
                0.0033333333333332923,
                0.002573943508545835,
                3,
                0.7182834413189463,
            ),
        ),
    ];
    for (i, (kr, pairs, (value, se, df, p))) in table.into_iter().enumerate() {
        let at = pairs.last().unwrap().0;
        let s = score_at(&kr, &points(&pairs), at);
        let fit = s.forecast_fit.expect("at least 3 points");
        assert_eq!((fit.n, fit.df), (pairs.len(), df), "case {i}");
        close_rel(fit.value, value, &format!("case {i}: value at end"));
        close_rel(fit.se, se, &format!("case {i}: standard error"));
        close_rel(fit.probability, p, &format!("case {i}: probability"));
        assert_eq!(s.forecast_probability, Some(fit.probability));
    }
}

#[test]
fn forecast_probability_is_null_with_fewer_than_three_points() {
    let kr = moving(0.0, 1.0);
    let samples = points(&[(-5.0, 0.0), (10.0, 0.1), (20.0, 0.2)]);
    let s = score_at(&kr, &samples, 30.0);
    assert_eq!((s.forecast_probability, s.forecast_fit), (None, None));
    // Exactly 3: defined, with 1 degree of freedom.
    let samples = points(&[(10.0, 0.1), (20.0, 0.25), (30.0, 0.3)]);
    let s = score_at(&kr, &samples, 30.0);
    assert_eq!(s.forecast_fit.map(|f| f.df), Some(1));
    // Scoring history leaves it out.
    let s = score_key_result_without_forecast(&kr, &period(), &samples, day(30.0), MARGINS);
    assert_eq!(s.forecast_probability, None);
}

#[test]
fn forecast_probability_without_residuals_is_the_lines_verdict() {
    // kr, points on a line, probability
    let table = [
        // 0.008/day: 0.8 at day 100, short of 1.0
        (
            moving(0.0, 1.0),
            vec![(10.0, 0.08), (20.0, 0.16), (30.0, 0.24)],
            0.0,
        ),
        // past the target: met
        (
            moving(0.0, 0.79),
            vec![(10.0, 0.08), (20.0, 0.16), (30.0, 0.24)],
            1.0,
        ),
        // maintain at_most: 340 at day 100 breaches 300 and meets 341
        (
            kr(Target::AtMost(300.0)),
            vec![(10.0, 250.0), (20.0, 260.0), (30.0, 270.0)],
            0.0,
        ),
        (
            kr(Target::AtMost(341.0)),
            vec![(10.0, 250.0), (20.0, 260.0), (30.0, 270.0)],
            1.0,
        ),
        // maintain at_least 7 on a flat series
        (
            kr(Target::AtLeast(7.0)),
            vec![(10.0, 7.0), (20.0, 7.0), (30.0, 7.0)],
            1.0,
        ),
        (
            kr(Target::AtLeast(7.1)),
            vec![(10.0, 7.0), (20.0, 7.0), (30.0, 7.0)],
            0.0,
        ),
        // falling 3 ms/day toward 300: 600 at day 100, not there
        (
            moving(900.0, 300.0),
            vec![(10.0, 870.0), (20.0, 840.0), (30.0, 810.0)],
            0.0,
        ),
        (
            moving(900.0, 610.0),
            vec![(10.0, 870.0), (20.0, 840.0), (30.0, 810.0)],
            1.0,
        ),
    ];
    for (i, (kr, pairs, p)) in table.into_iter().enumerate() {
        let s = score_at(&kr, &points(&pairs), 30.0);
        let fit = s.forecast_fit.expect("3 points");
        assert_eq!(fit.se, 0.0, "case {i}: s = 0");
        assert_eq!(s.forecast_probability, Some(p), "case {i}");
    }
}

// objective score: weight-averaged KR scores; a no_data KR counts as 0.

#[test]
fn objective_score_weights_krs_and_counts_no_data_as_zero() {
    let weighted = |weight| KeyResult {
        weight,
        ..moving(0.0, 1.0)
    };
    let objective = Objective {
        id: "o".into(),
        objective: "an objective".into(),
        team: "t".into(),
        period: period(),
        aligns_to: None,
        key_results: vec![weighted(1.0), weighted(2.0), weighted(1.0)],
        file: "o.yaml".into(),
        span: Default::default(),
    };
    let krs = &objective.key_results;
    let scores = [
        score_at(&krs[0], &points(&[(10.0, 1.0)]), 50.0),
        score_at(&krs[1], &points(&[(10.0, 0.5)]), 50.0),
        score_at(&krs[2], &[], 50.0),
    ];
    assert_eq!(scores[2].status, Status::NoData);
    assert_close(
        objective_score(&objective, &scores),
        (1.0 + 2.0 * 0.5 + 0.0) / 4.0,
    );

    let empty = Objective {
        key_results: vec![],
        ..objective.clone()
    };
    assert_eq!(objective_score(&empty, &[]), 0.0);
}

// rollup(o): the unweighted mean of score(o), if o has key results of its
// own, and rollup(c) for each objective c aligned to o; an objective
// without key results of its own scores its roll-up.

/// An objective with `krs` key results, aligned to `parent`.
fn aligned(id: &str, parent: Option<&str>, krs: usize) -> Objective {
    Objective {
        id: id.into(),
        objective: format!("objective {id}"),
        team: "t".into(),
        period: period(),
        aligns_to: parent.map(String::from),
        key_results: (0..krs)
            .map(|i| KeyResult {
                id: format!("k{i}"),
                ..moving(0.0, 1.0)
            })
            .collect(),
        file: "o.yaml".into(),
        span: Default::default(),
    }
}

/// (roll-ups, scores) of `objectives` whose own scores are `own`.
fn rolled(objectives: &[Objective], own: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let alignment = crate::config::Alignment::new(objectives);
    let mut scores = own.to_vec();
    let rollups = rollups(objectives, &alignment, &mut scores);
    (rollups, scores)
}

#[test]
fn rollup_table() {
    struct Case {
        name: &'static str,
        objectives: Vec<Objective>,
        own: Vec<f64>,
        rollups: Vec<f64>,
        scores: Vec<f64>,
    }
    let cases = [
        Case {
            name: "a lone objective rolls up to its own score",
            objectives: vec![aligned("a", None, 2)],
            own: vec![0.4],
            rollups: vec![0.4],
            scores: vec![0.4],
        },
        Case {
            // company (no KRs) <- product (0.6) <- {web 0.2, app 1.0}
            //                  <- sales (0.3)
            name: "three levels deep: each level the mean of its own and its children's roll-ups",
            objectives: vec![
                aligned("company", None, 0),
                aligned("product", Some("company"), 1),
                aligned("web", Some("product"), 1),
                aligned("app", Some("product"), 1),
                aligned("sales", Some("company"), 2),
            ],
            own: vec![0.0, 0.6, 0.2, 1.0, 0.3],
            // product: (0.6 + 0.2 + 1.0) / 3 = 0.6; company: (0.6 + 0.3) / 2
            rollups: vec![0.45, 0.6, 0.2, 1.0, 0.3],
            scores: vec![0.45, 0.6, 0.2, 1.0, 0.3],
        },
        Case {
            // company (no KRs) <- region (no KRs) <- {a 0.8, b 0.4}
            name: "objectives without key results at two levels take their roll-up as score",
            objectives: vec![
                aligned("company", None, 0),
                aligned("region", Some("company"), 0),
                aligned("a", Some("region"), 1),
                aligned("b", Some("region"), 1),
            ],
            own: vec![0.0, 0.0, 0.8, 0.4],
            rollups: vec![0.6, 0.6, 0.8, 0.4],
            scores: vec![0.6, 0.6, 0.8, 0.4],
        },
        Case {
            // parent 0.9 <- {child with no data: score 0, other 0.6}; an
            // objective declared before its parent is rolled up all the same.
            name: "children with no data count with their score 0, and order does not matter",
            objectives: vec![
                aligned("nodata", Some("parent"), 1),
                aligned("parent", None, 1),
                aligned("other", Some("parent"), 1),
            ],
            own: vec![0.0, 0.9, 0.6],
            rollups: vec![0.0, 0.5, 0.6],
            scores: vec![0.0, 0.9, 0.6],
        },
    ];
    for c in cases {
        let (rollups, scores) = rolled(&c.objectives, &c.own);
        for (i, (got, want)) in rollups.iter().zip(&c.rollups).enumerate() {
            assert!(
                (got - want).abs() < 1e-12,
                "{}: rollup of {}: {got} != {want}",
                c.name,
                c.objectives[i].id
            );
        }
        for (i, (got, want)) in scores.iter().zip(&c.scores).enumerate() {
            assert!(
                (got - want).abs() < 1e-12,
                "{}: score of {}: {got} != {want}",
                c.name,
                c.objectives[i].id
            );
        }
    }
}

#[test]
fn a_no_data_child_scores_zero_through_objective_score_and_rolls_up() {
    // The no_data KR's objective scores 0 (objective_score), and that 0 is
    // what its parent's roll-up averages.
    let objectives = vec![
        aligned("parent", None, 1),
        aligned("child", Some("parent"), 1),
    ];
    let parent_score = score_at(&objectives[0].key_results[0], &points(&[(10.0, 0.8)]), 50.0);
    let child_score = score_at(&objectives[1].key_results[0], &[], 50.0);
    assert_eq!(child_score.status, Status::NoData);
    let own = [
        objective_score(&objectives[0], [&parent_score]),
        objective_score(&objectives[1], [&child_score]),
    ];
    let (rollups, _) = rolled(&objectives, &own);
    assert_close(rollups[0], (0.8 + 0.0) / 2.0);
    assert_close(rollups[1], 0.0);
}

// A running state advanced point by point scores exactly as one pass over
// the whole series does: the scorer's rescore and `okrd score` agree to
// the bit, for every aggregate and every kind of baseline.
#[test]
fn a_running_state_advanced_point_by_point_scores_as_one_pass_does() {
    let mut next = pseudo_random(7);
    // Irregular points from day -3 (for windows and value(start)) to 60,
    // with fractional values; and the same series from day 5 only, so that
    // the baseline is the earliest point in the period.
    let mut d = -3.0;
    let mut pairs = Vec::new();
    while d < 60.0 {
        pairs.push((d, 20.0 + d * 0.4 + (next() * 1000.0).round() / 97.0));
        d += (next() * 12.0).ceil() / 24.0;
    }
    let all = points(&pairs);
    let late_start: Vec<Sample> = all.iter().copied().filter(|s| s.ts >= day(5.0)).collect();
    for agg in AGGREGATES {
        let window = (agg != Aggregate::Last).then(|| days(2));
        let base = KeyResult {
            aggregate: agg,
            window,
            ..kr(Target::Value(90.0))
        };
        let krs = [
            base.clone(),
            KeyResult {
                baseline: Some(10.0),
                ..base.clone()
            },
            KeyResult {
                target: Target::AtLeast(40.0),
                ..base.clone()
            },
        ];
        for kr in &krs {
            for samples in [&all, &late_start] {
                // Built at day 0.5, then advanced at instants between and
                // on the points, and past them.
                let mut running = Running::new(kr, &period(), samples, day(0.5));
                for k in 1..=190 {
                    let at = 0.5 + f64::from(k) * 0.37;
                    running.advance(samples, day(at));
                    let got =
                        score_running(kr, &period(), &running, samples, day(at), MARGINS, true);
                    let want = score_key_result(kr, &period(), samples, day(at), MARGINS);
                    assert_eq!(
                        got, want,
                        "{agg:?}, baseline {:?}, at day {at}",
                        kr.baseline
                    );
                }
                let last = score_key_result(kr, &period(), samples, day(70.0), MARGINS);
                assert!(
                    last.forecast_fit.is_some(),
                    "{agg:?}: a forecast to compare"
                );
            }
        }
    }
}
