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

#[tokio::test]
async fn a_plain_evaluation_gives_the_full_evaluations_rows() {
    let config = load_config(&[("o.yaml".into(), OBJECTIVE.into())]);

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

    let now = Utc.with_ymd_and_hms(2026, 11, 3, 7, 30, 0).unwrap();
    let margins = margins(&config);
    let config = Arc::new(config);
    let mut scorer = Scorer {
        store: store.clone(),
        clock: Arc::new(FixedClock::new(now)),
        slots: Slots::default(),
        cache: SeriesCache::default(),
        view: 0,
        pending: 0,
    };
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
