//! The plain evaluation a start publishes, from a few points per KR, gives
//! every KR the row the full evaluation gives (the forecast aside), over
//! each aggregate, a counter metric, a KR whose baseline is its earliest
//! point in the period, and one without data.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::clock::FixedClock;
use crate::model::Point;
use crate::store::{no_progress, SqliteStore};

const OBJECTIVE: &str = "id: o\nobjective: Test\nteam: t\nperiod: { start: 2026-10-01, end: 2026-12-31 }\nkey_results:\n\
  - { id: last, title: Last, metric: a, baseline: 0, target: 100, counter_metrics: [ { metric: c, better: lower, tolerance: 5%, window: 2d } ] }\n\
  - { id: derived, title: Derived, metric: a, target: 100, better: higher }\n\
  - { id: late-start, title: Late start, metric: l, target: 100, better: higher }\n\
  - { id: avg, title: Avg, metric: a, aggregate: avg, window: 3d, baseline: 0, target: 100 }\n\
  - { id: max, title: Max, metric: a, aggregate: max, window: 1d, target: 100, better: higher, counter_metrics: [ { metric: c, better: lower, tolerance: 5%, window: 7d } ] }\n\
  - { id: count, title: Count, metric: a, aggregate: count, window: 2d, target: { at_least: 30 } }\n\
  - { id: none, title: None, metric: nothing, baseline: 0, target: 100 }\n";

/// The config of team `t` with the objective files `files` (name, YAML),
/// loaded as `okrd serve` loads it (also for `slots.rs`'s tests).
pub(super) fn load_config(files: &[(String, String)]) -> Config {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("objectives")).unwrap();
    std::fs::write(
        dir.path().join("okrd.yaml"),
        format!(
            "paths:\n  objectives: {0}/objectives\n  connectors: {0}/connectors\nteams:\n  t: {{}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    for (name, yaml) in files {
        std::fs::write(dir.path().join("objectives").join(name), yaml).unwrap();
    }
    crate::config::load(Some(&dir.path().join("okrd.yaml")), &BTreeMap::new()).unwrap_or_else(|d| {
        panic!(
            "{:?}",
            d.iter().map(ToString::to_string).collect::<Vec<_>>()
        )
    })
}

/// A store with [`OBJECTIVE`]'s series: `a` and `c` hourly from
/// 2026-09-20 for 50 days, `l` from 2026-10-05 on.
async fn objective_series() -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    let start = Utc.with_ymd_and_hms(2026, 9, 20, 0, 0, 0).unwrap();
    let series = |m: &str| Arc::new(SeriesKey::new(m, BTreeMap::new()));
    let (a, c, l) = (series("a"), series("c"), series("l"));
    let mut points = Vec::new();
    for h in 0..24 * 50 {
        let ts = start + TimeDelta::hours(h);
        let v = (h as f64 * 0.37).sin() * 20.0 + h as f64 * 0.05;
        points.push(Point {
            series: a.clone(),
            ts,
            value: v,
        });
        points.push(Point {
            series: c.clone(),
            ts,
            value: 10.0 + (h / 24) as f64,
        });
        if ts > Utc.with_ymd_and_hms(2026, 10, 5, 0, 0, 0).unwrap() {
            points.push(Point {
                series: l.clone(),
                ts,
                value: v,
            });
        }
    }
    store.write_points(&points, &no_progress).await.unwrap();
    store
}

#[tokio::test]
async fn a_plain_evaluation_gives_the_full_evaluations_rows() {
    let config = load_config(&[("o.yaml".into(), OBJECTIVE.into())]);

    let store = objective_series().await;

    let now = Utc.with_ymd_and_hms(2026, 11, 3, 7, 30, 0).unwrap();
    let margins = margins(&config);
    let config = Arc::new(config);
    let mut scorer = Scorer::new(store.clone(), Arc::new(FixedClock::new(now)), 0);
    scorer.slots.lay_out(&config);
    let all: Vec<usize> = (0..scorer.slots.len()).collect();
    assert_eq!(all.len(), config.objectives[0].key_results.len());
    scorer
        .plain_rows(&config, &all, now, margins)
        .await
        .unwrap();
    for i in all {
        let (objective, kr) = scorer.slots.kr(&config, i);
        let full = evaluate(store.as_ref(), objective, kr, now, margins)
            .await
            .unwrap()
            .row;
        let plain = scorer
            .slots
            .get(i)
            .row
            .as_deref()
            .expect("a row for every KR");
        let (p, f) = (&plain.detail, &full.detail);
        let what = &kr.id;
        assert_eq!(p.value, f.value, "{what}");
        assert_eq!(p.baseline, f.baseline, "{what}");
        assert_eq!(p.baseline_source, f.baseline_source, "{what}");
        assert_eq!(p.progress, f.progress, "{what}");
        assert_eq!(p.score, f.score, "{what}");
        assert_eq!(p.status, f.status, "{what}");
        assert_eq!(p.newest_point, f.newest_point, "{what}");
        assert_eq!(p.points_used, f.points_used, "{what}");
        assert_eq!(
            format!("{:?}", plain.counters),
            format!("{:?}", full.counters),
            "{what}"
        );
        // No forecast from a few points; a KR evaluated whole has its own.
        let whole = kr.id == "late-start";
        assert_eq!(p.forecast, if whole { f.forecast } else { None }, "{what}");
    }
}

/// A scorer over `store` with its clock at `now`, as `run` makes it.
fn scorer_at(store: Arc<dyn Store>, clock: Arc<FixedClock>) -> Scorer {
    Scorer::new(store, clock, 0)
}

/// Builds every KR's history (one chunk here): the first call evaluates
/// it and starts its write, the second waits for the write and finds
/// nothing more to build.
async fn build_all(scorer: &mut Scorer, live: &Live) {
    assert!(
        scorer.build_history(live).await.unwrap(),
        "one chunk, being written"
    );
    assert!(
        !scorer.build_history(live).await.unwrap(),
        "nothing more to build"
    );
    assert_eq!(scorer.pending, 0);
}

async fn write_a(store: &dyn Store, points: &[(Timestamp, f64)]) {
    let a = Arc::new(SeriesKey::new("a", BTreeMap::new()));
    let points: Vec<Point> = points
        .iter()
        .map(|&(ts, value)| Point {
            series: a.clone(),
            ts,
            value,
        })
        .collect();
    store.write_points(&points, &no_progress).await.unwrap();
}

fn kr_yaml(period: &str, target: u32) -> String {
    kr_yaml_on(period, "a", target)
}

/// One objective `o` with one KR `k` on `metric`, from 0 to `target`.
fn kr_yaml_on(period: &str, metric: &str, target: u32) -> String {
    format!(
        "id: o\nobjective: Test\nteam: t\nperiod: {period}\nkey_results:\n  - {{ id: k, title: K, metric: {metric}, baseline: 0, target: {target} }}\n"
    )
}

/// The revision tests' period, and its first day plus `d` days.
const PERIOD: &str = "{ start: 2026-10-01, end: 2026-12-31 }";
fn day(d: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap() + TimeDelta::days(d)
}

/// A store holding metric `a` at 2·d on days 1 to 10, and a scorer at day
/// 10, noon, that has scored `yaml` (its history not built yet).
async fn scored(yaml: String) -> (Arc<dyn Store>, Arc<FixedClock>, Live, Scorer) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    let points: Vec<(Timestamp, f64)> = (1..=10).map(|d| (day(d), 2.0 * d as f64)).collect();
    write_a(store.as_ref(), &points).await;
    let clock = Arc::new(FixedClock::new(day(10) + TimeDelta::hours(12)));
    let live = Live::new(load_config(&[("o.yaml".into(), yaml)]));
    let mut scorer = scorer_at(store.clone(), clock.clone());
    scorer.recompute(&live).await.unwrap();
    (store, clock, live, scorer)
}

/// [`scored`], with the history built.
async fn built(yaml: String) -> (Arc<dyn Store>, Arc<FixedClock>, Live, Scorer) {
    let (store, clock, live, mut scorer) = scored(yaml).await;
    build_all(&mut scorer, &live).await;
    (store, clock, live, scorer)
}

/// SPEC §4: a revision while the period runs keeps the history before it;
/// the rows after name it; a late point re-scores each instant under the
/// definition in force then.
#[tokio::test]
async fn a_revision_keeps_the_history_before_it_and_late_points_rescore_under_each_definition() {
    let (store, clock, live, mut scorer) = built(kr_yaml(PERIOD, 100)).await;
    let history = |from: i64| {
        let store = store.clone();
        async move {
            store
                .score_history("o", "k", day(from), day(100))
                .await
                .unwrap()
        }
    };
    let before = history(-1).await;
    assert_eq!(
        before.len(),
        10,
        "a row per point's day (now's is the same as day 10's)"
    );
    assert!(before.iter().all(|r| r.revision == 0));

    // The target drops from 100 to 50 mid-period: revision 1, easier.
    let revised_at = day(11);
    clock.set(revised_at);
    live.set_config(load_config(&[("o.yaml".into(), kr_yaml(PERIOD, 50))]));
    scorer.recompute(&live).await.unwrap();
    let row = live.card().key_results[0].clone();
    assert_eq!(row.revision, 1);
    assert_eq!(row.revisions.len(), 1);
    assert_eq!(row.revisions[0].at, revised_at);
    assert!(row.revisions[0].easier);
    let after = history(-1).await;
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "rows before the revision kept"
    );
    let new: Vec<(Timestamp, f64, i64)> = after[before.len()..]
        .iter()
        .map(|r| (r.at, r.score, r.revision))
        .collect();
    assert_eq!(new, [(revised_at, 0.4, 1)], "value 20 of target 50");

    // A late point on day 5: history from there is rebuilt, each instant
    // under the definition in force then.
    write_a(store.as_ref(), &[(day(5), 30.0)]).await;
    live.metrics_written([("a", day(5))]);
    scorer.recompute(&live).await.unwrap();
    let rebuilt = history(-1).await;
    let got: Vec<(Timestamp, f64, i64)> = rebuilt
        .iter()
        .map(|r| (r.at, r.score, r.revision))
        .collect();
    let mut want: Vec<(Timestamp, f64, i64)> =
        before.iter().map(|r| (r.at, r.score, r.revision)).collect();
    want[4] = (day(5), 0.3, 0); // 30 of the target 100 in force on day 5
    want.push((revised_at, 0.4, 1));
    assert_eq!(got, want);
}

/// A chunk's history is written while the scorer goes on: a late point
/// that lands while it is being written is scored into it once it is in,
/// and the newer row the recompute gave the KR is not replaced by the
/// older one the chunk was built with.
#[tokio::test]
async fn a_late_point_during_a_history_write_is_scored_into_that_history() {
    let (store, clock, live, mut scorer) = scored(kr_yaml(PERIOD, 100)).await;
    assert!(
        scorer.build_history(&live).await.unwrap(),
        "the chunk is being written"
    );
    assert!(scorer.writing.is_some());

    // Day 5 corrected, and day 11 new, while the write is in flight.
    clock.set(day(11) + TimeDelta::hours(12));
    write_a(store.as_ref(), &[(day(5), 30.0), (day(11), 22.0)]).await;
    live.metrics_written([("a", day(5))]);
    scorer.recompute(&live).await.unwrap();
    assert_eq!(
        live.card().key_results[0].value,
        Some(22.0),
        "scored at once"
    );
    assert!(live.card().key_results[0].history_building);

    assert!(
        !scorer.build_history(&live).await.unwrap(),
        "written; nothing more"
    );
    let row = live.card().key_results[0].clone();
    assert_eq!(
        row.value,
        Some(22.0),
        "the recompute's row, not the chunk's older one"
    );
    assert!(!row.history_building);
    assert!(live.is_dirty(), "what was written meanwhile is due again");
    scorer.recompute(&live).await.unwrap();
    let got: Vec<(Timestamp, Option<f64>)> = store
        .score_history("o", "k", day(-1), day(100))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.at, r.value))
        .collect();
    let mut want: Vec<(Timestamp, Option<f64>)> =
        (1..=11).map(|d| (day(d), Some(2.0 * d as f64))).collect();
    want[4].1 = Some(30.0);
    assert_eq!(
        got, want,
        "day 5 corrected, day 11 added; now's row is day 11's"
    );
}

/// A revision that moves a KR to another series keeps every row scored
/// under the old one: a late point on the new series re-scores only the
/// stretch that reads it.
#[tokio::test]
async fn a_late_point_never_rescores_rows_of_a_series_a_revision_left() {
    let (store, clock, live, mut scorer) = built(kr_yaml_on(PERIOD, "a", 100)).await;
    let history = || {
        let store = store.clone();
        async move {
            store
                .score_history("o", "k", day(-1), day(100))
                .await
                .unwrap()
        }
    };
    let before = history().await;
    assert_eq!(before.len(), 10);

    // Revised to read metric b, which holds 50 on every day.
    let revised_at = day(11);
    clock.set(revised_at);
    let b = Arc::new(SeriesKey::new("b", Default::default()));
    let points: Vec<Point> = (1..=10)
        .map(|d| Point {
            series: b.clone(),
            ts: day(d),
            value: 50.0,
        })
        .collect();
    store.write_points(&points, &no_progress).await.unwrap();
    live.set_config(load_config(&[(
        "o.yaml".into(),
        kr_yaml_on(PERIOD, "b", 100),
    )]));
    scorer.recompute(&live).await.unwrap();
    assert_eq!(live.card().key_results[0].revision, 1);

    // A late point on b, on day 5: the rows before the revision were
    // scored from a, and stay exactly as they were.
    let late = [Point {
        series: b.clone(),
        ts: day(5),
        value: 70.0,
    }];
    store.write_points(&late, &no_progress).await.unwrap();
    live.metrics_written([("b", day(5))]);
    scorer.recompute(&live).await.unwrap();
    let after = history().await;
    assert_eq!(&after[..before.len()], &before[..]);
    let new: Vec<(Timestamp, f64, i64)> = after[before.len()..]
        .iter()
        .map(|r| (r.at, r.score, r.revision))
        .collect();
    assert_eq!(new, [(revised_at, 0.5, 1)], "b's 50 of the target 100");
}

/// SPEC §4: a recurring period is the calendar period containing t; at its
/// roll-over the KR starts afresh under the new concrete period.
#[tokio::test]
async fn a_recurring_period_rolls_over_with_the_clock() {
    let yaml = "id: o\nobjective: Test\nteam: t\nperiod: current-quarter\nkey_results:\n  - { id: k, title: K, metric: a, target: 100, better: higher }\n";
    let at = |m: u32, d: u32, h: u32| Utc.with_ymd_and_hms(2027, m, d, h, 0, 0).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    // Daily points at noon, 10 on 2027-03-01 rising 1 a day.
    let points: Vec<(Timestamp, f64)> = (0..40)
        .map(|d| (at(3, 1, 12) + TimeDelta::days(d), 10.0 + d as f64))
        .collect();
    write_a(store.as_ref(), &points).await;
    let clock = Arc::new(FixedClock::new(at(3, 31, 18)));
    let live = Live::new(load_config(&[("o.yaml".into(), yaml.into())]));
    let mut scorer = scorer_at(store.clone(), clock.clone());
    scorer.recompute(&live).await.unwrap();
    build_all(&mut scorer, &live).await;
    let q1 = live.card().key_results[0].clone();
    assert_eq!(q1.period, "2027-Q1");
    assert_eq!(q1.value, Some(40.0), "2027-03-31's point");
    // No point at or before 2027-01-01: the earliest in the period.
    assert_eq!(q1.baseline, Some(10.0));
    let q1_history = store
        .score_history("o", "k", at(1, 1, 0), at(12, 31, 0))
        .await
        .unwrap();

    clock.set(at(4, 2, 18));
    live.mark_all();
    scorer.recompute(&live).await.unwrap();
    let q2 = live.card().key_results[0].clone();
    assert_eq!(q2.period, "2027-Q2");
    assert_eq!(q2.value, Some(42.0));
    assert_eq!(
        q2.baseline,
        Some(40.0),
        "re-derived: the latest point at or before 2027-04-01"
    );
    assert_eq!(q2.progress, Some(2.0 / 60.0));
    let expected = (1.0 + 18.0 / 24.0) / 91.0; // of Q2's 91 days
    assert!((q2.expected - expected).abs() < 1e-12, "{}", q2.expected);
    // History continues under the new period; Q1's rows stay.
    let all = store
        .score_history("o", "k", at(1, 1, 0), at(12, 31, 0))
        .await
        .unwrap();
    assert_eq!(&all[..q1_history.len()], &q1_history[..]);
    let new: Vec<(Timestamp, Option<f64>)> = all[q1_history.len()..]
        .iter()
        .map(|r| (r.at, r.value))
        .collect();
    assert_eq!(new, [(at(4, 2, 18), Some(42.0))]);
}

/// Rescores that advance each KR's running state from the cache give the
/// rows one full evaluation from the store gives, to the bit: after new
/// points, an interval tick (which trims the cache to the windows read
/// next), a late correction (which builds the state again from the store)
/// and new points after that.
#[tokio::test]
async fn rescores_from_running_states_give_the_rows_of_a_full_evaluation() {
    let config = Arc::new(load_config(&[("o.yaml".into(), OBJECTIVE.into())]));
    let store = objective_series().await;
    let now = Utc.with_ymd_and_hms(2026, 11, 3, 7, 30, 0).unwrap();
    let clock = Arc::new(FixedClock::new(now));
    let live = Live::new((*config).clone());
    let mut scorer = scorer_at(store.clone(), clock.clone());
    scorer.recompute(&live).await.unwrap();
    build_all(&mut scorer, &live).await;
    // `none` reads a series no write touches: only a tick rescores it.
    let agrees = |what: &str, card: Arc<Scorecard>, want: Scorecard| {
        assert_eq!(card.key_results.len(), want.key_results.len(), "{what}");
        let ticked = what == "built" || what == "a tick";
        for (got, want) in card.key_results.iter().zip(&want.key_results) {
            let id = &want.key_result;
            if id == "none" && !ticked {
                continue;
            }
            assert_eq!(got.detail, want.detail, "{what}: {id}");
            assert_eq!(got.counters, want.counters, "{what}: {id}");
        }
    };
    let config = live.config();
    let full = |at| score_all(store.as_ref(), &config, at, margins(&config));
    agrees("built", live.card(), full(now).await.unwrap());
    let running = (0..scorer.slots.len())
        .filter(|&i| scorer.slots.get(i).running.is_some())
        .count();
    assert_eq!(running, scorer.slots.len(), "every KR has a state");

    let series = |m: &str| Arc::new(SeriesKey::new(m, BTreeMap::new()));
    let write = |points: Vec<(&str, Timestamp, f64)>| {
        let points: Vec<Point> = points
            .into_iter()
            .map(|(m, ts, value)| Point {
                series: series(m),
                ts,
                value,
            })
            .collect();
        let store = store.clone();
        async move {
            store.write_points(&points, &no_progress).await.unwrap();
        }
    };
    let hours = |h: i64| now + TimeDelta::hours(h);
    // New points, one of them ahead of the evaluation time.
    write(vec![
        ("a", hours(1), 31.5),
        ("a", hours(2), 2.25),
        ("c", hours(1), 70.0),
        ("l", hours(1), -4.0),
        ("a", hours(9), 1.0),
    ])
    .await;
    clock.set(hours(2));
    live.metrics_written([("a", hours(1)), ("c", hours(1)), ("l", hours(1))]);
    scorer.recompute(&live).await.unwrap();
    agrees("new points", live.card(), full(hours(2)).await.unwrap());
    // The cache holds windows, not periods: `a` (1,203 points stored)
    // from the anchor at or before the evaluation time − 8 days (the max
    // KR's 7-day counter window, then its 1-day window) on: 327 hourly
    // points to 2026-11-08 23:00, and the 3 written.
    assert_eq!(scorer.cache.held()["a"], 330);

    clock.set(hours(10));
    live.mark_all();
    scorer.recompute(&live).await.unwrap();
    agrees("a tick", live.card(), full(hours(10)).await.unwrap());
    // A tick rescores every KR and trims each series to what it reads
    // next: 8 hours later, 8 hourly points fewer.
    assert_eq!(scorer.cache.held()["a"], 322);

    // A point behind the evaluation time the history was recorded at, but
    // after every point the states hold (17:00): folded in, and the
    // history from it scored again from the cached window, not the store
    // (the cache is cut at it and read back: 323 points).
    let behind = hours(10) - TimeDelta::minutes(15);
    write(vec![("a", behind, 50.0)]).await;
    live.metrics_written([("a", behind)]);
    scorer.recompute(&live).await.unwrap();
    agrees(
        "a point just behind",
        live.card(),
        full(hours(10)).await.unwrap(),
    );
    assert_eq!(scorer.cache.held()["a"], 323);
    let avg: Vec<(Timestamp, Option<f64>)> = store
        .score_history("o", "avg", behind - TimeDelta::hours(1), hours(10))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.at, r.value))
        .collect();
    let want = full(behind).await.unwrap().key_results[3].value;
    assert_eq!(
        avg.iter().find(|(at, _)| *at == behind).map(|r| r.1),
        Some(want)
    );

    let late = Utc.with_ymd_and_hms(2026, 10, 10, 3, 0, 0).unwrap();
    write(vec![("a", late, 99.0), ("l", late, 98.0)]).await;
    live.metrics_written([("a", late), ("l", late)]);
    scorer.recompute(&live).await.unwrap();
    agrees(
        "a late correction",
        live.card(),
        full(hours(10)).await.unwrap(),
    );

    write(vec![
        ("a", hours(11), 5.0),
        ("c", hours(11), 1.0),
        ("l", hours(11), 0.5),
    ])
    .await;
    clock.set(hours(12));
    live.metrics_written([("a", hours(11)), ("c", hours(11)), ("l", hours(11))]);
    scorer.recompute(&live).await.unwrap();
    agrees("after it", live.card(), full(hours(12)).await.unwrap());
}
