//! Statistics that do not cry wolf (SPEC §4), end to end on both stores:
//! the alert engine driven through time as in tests/alerts.rs, with one KR
//! judging its counter metrics by the threshold rule and another by
//! Welch's test, over the same points. A noisy counter metric fires again
//! and again under the threshold rule and never under Welch's; a real
//! shift fires under both and resolves under both.
//!
//! The expected minutes come from an independent replica of SPEC §4's
//! rules in Python with SciPy's `ttest_ind(equal_var=False)` (its one-sided
//! confidence interval for the bound), run on the same series:
//! `python3 scenario.py`, whose source is in the comment at the end of
//! this file.

mod common;

use common::{both_stores, Backend};

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use okrd::alerts::Engine;
use okrd::config::{self, Config};
use okrd::metrics::Metrics;
use okrd::model::{Point, SeriesKey, Timestamp};
use okrd::scorecard::Scorecard;
use okrd::scorer;
use okrd::store::{self, AlertKey, Store};

/// 2026-11-02T00:00:00Z, inside the test objective's period.
fn minutes(m: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap() + TimeDelta::minutes(m)
}

/// Two KRs on one metric (activation 0.30 → 0.50), each guarded by `noisy`
/// and `shifted` (lower is better, 10%, W = 10m): `threshold` by the
/// threshold rule, `welch` by Welch's test (min_points 5, alpha 0.05).
fn deployment() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("objectives")).unwrap();
    std::fs::write(
        dir.path().join("okrd.yaml"),
        format!(
            "paths:\n  objectives: {0}/objectives\n  connectors: {0}/connectors\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: {{ type: webhook, url: \"http://127.0.0.1:9/\" }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let kr = |id: &str, test: &str| {
        format!(
            "  - id: {id}\n    title: Raise activation from 30% to 50%\n    metric: activation_rate\n    baseline: 0.30\n    target: 0.50\n    counter_metrics:\n      - {{ metric: noisy, better: lower, tolerance: 10%, window: 10m{test} }}\n      - {{ metric: shifted, better: lower, tolerance: 10%, window: 10m{test} }}\n"
        )
    };
    std::fs::write(
        dir.path().join("objectives/growth.yaml"),
        format!(
            "id: growth\nobjective: Grow without hurting anything\nteam: growth\nperiod: 2026-Q4\nkey_results:\n{}{}",
            kr("threshold", ""),
            kr("welch", ", test: welch, min_points: 5, alpha: 0.05")
        ),
    )
    .unwrap();
    let config = config::load(Some(&dir.path().join("okrd.yaml")), &BTreeMap::new())
        .unwrap_or_else(|d| panic!("{d:?}"));
    (dir, config)
}

/// Deterministic noise in [-1, 1] (14 levels each side).
fn u(m: i64) -> f64 {
    ((m * m * 7 + m * 3 + 5) % 29) as f64 / 14.0 - 1.0
}

fn u2(m: i64) -> f64 {
    ((m * 53 + 5) % 19) as f64 / 9.0 - 1.0
}

/// The KR rises 0.004 a minute until minute 60 (its score 0.02 a minute),
/// then holds.
fn activation(m: i64) -> f64 {
    0.30 + 0.004 * m.min(60) as f64
}

/// Level at 2.0 with ±15% noise: nothing happens to it.
fn noisy(m: i64) -> f64 {
    2.0 * (1.0 + 0.15 * u(m))
}

/// 2.0, then 30% higher from minute 30 to 49, with ±2% noise.
fn shifted(m: i64) -> f64 {
    let level = if (30..50).contains(&m) { 2.6 } else { 2.0 };
    level * (1.0 + 0.02 * u2(m))
}

async fn write(store: &dyn Store, at: Timestamp, values: &[(&str, f64)]) {
    let points: Vec<Point> = values
        .iter()
        .map(|&(metric, value)| Point {
            series: Arc::new(SeriesKey::new(metric, Default::default())),
            ts: at,
            value,
        })
        .collect();
    store
        .write_points(&points, &store::no_progress)
        .await
        .unwrap();
}

fn key(kr: &str, counter: &str) -> AlertKey {
    AlertKey {
        objective: "growth".into(),
        key_result: kr.into(),
        subject: counter.into(),
    }
}

/// Every delivery of an alert as `event#episode@minute`.
async fn events(store: &dyn Store, key: &AlertKey) -> Vec<String> {
    store
        .deliveries(key)
        .await
        .unwrap()
        .iter()
        .map(|d| {
            let m = (d.created_at - minutes(0)).num_minutes();
            format!("{}#{}@{m}", d.event, d.episode)
        })
        .collect()
}

/// The state of KR `kr`'s counter metric `counter` in `card`.
fn state(card: &Scorecard, kr: &str, counter: &str) -> &'static str {
    let row = card
        .key_results
        .iter()
        .find(|r| r.key_result == kr)
        .unwrap();
    row.counters
        .iter()
        .find(|c| c.metric == counter)
        .unwrap()
        .state
        .as_str()
}

both_stores!(noise_cries_wolf_only_under_the_threshold_rule);

async fn noise_cries_wolf_only_under_the_threshold_rule(backend: Backend) {
    let store = backend.open().await;
    let store = store.as_ref();
    let (_dir, config) = deployment();
    let mut states = BTreeMap::new();
    let mut last = Scorecard::default();
    for m in 0..=90 {
        let now = minutes(m);
        write(
            store,
            now,
            &[
                ("activation_rate", activation(m)),
                ("noisy", noisy(m)),
                ("shifted", shifted(m)),
            ],
        )
        .await;
        let card = scorer::score_all(store, &config.objectives, now, scorer::margins(&config))
            .await
            .unwrap();
        Engine.evaluate(store, &config, &card, now).await.unwrap();
        if [9, 10, 13, 14, 30, 36].contains(&m) {
            let s = |kr, c| state(&card, kr, c);
            states.insert(
                m,
                [
                    s("threshold", "noisy"),
                    s("threshold", "shifted"),
                    s("welch", "noisy"),
                    s("welch", "shifted"),
                ],
            );
        }
        last = card;
    }

    // The noise: eight episodes under the threshold rule (one point against
    // the point W before it often differs by more than 10%), none under
    // Welch's test (ten points against ten differ by far less).
    assert_eq!(
        events(store, &key("threshold", "noisy")).await,
        [
            "firing#1@14",
            "resolved#1@15",
            "firing#2@20",
            "resolved#2@22",
            "firing#3@25",
            "resolved#3@26",
            "firing#4@32",
            "resolved#4@33",
            "firing#5@36",
            "resolved#5@41",
            "firing#6@43",
            "resolved#6@44",
            "firing#7@49",
            "resolved#7@51",
            "firing#8@54",
            "resolved#8@55",
        ]
    );
    assert_eq!(events(store, &key("welch", "noisy")).await, [] as [&str; 0]);

    // The real shift (minutes 30-49): the threshold rule fires at once and
    // resolves when the value is back within 10% of the reference; Welch's
    // test fires once enough of the window has shifted, and resolves once
    // the window is back near the one captured at firing.
    assert_eq!(
        events(store, &key("threshold", "shifted")).await,
        ["firing#1@30", "resolved#1@50"]
    );
    assert_eq!(
        events(store, &key("welch", "shifted")).await,
        ["firing#1@36", "resolved#1@53"]
    );

    // Each counter metric's state: [threshold noisy, threshold shifted,
    // welch noisy, welch shifted]. Welch needs 5 points in (t − 20m,
    // t − 10m]: from minute 14 on.
    let want = BTreeMap::from([
        (
            9,
            [
                "insufficient_data",
                "insufficient_data",
                "insufficient_data",
                "insufficient_data",
            ],
        ),
        (10, ["ok", "ok", "insufficient_data", "insufficient_data"]),
        (13, ["ok", "ok", "insufficient_data", "insufficient_data"]),
        (14, ["degraded", "ok", "ok", "ok"]),
        (30, ["ok", "degraded", "ok", "ok"]),
        (36, ["degraded", "degraded", "ok", "degraded"]),
    ]);
    assert_eq!(states, want);

    // The forecast probability reaches /metrics beside the other KR gauges.
    let text = Metrics::new().render(&last);
    for kr in ["threshold", "welch"] {
        let row = last
            .key_results
            .iter()
            .find(|r| r.key_result == kr)
            .unwrap();
        let p = row.forecast_probability.expect("91 points in the period");
        let line = format!(
            "okrd_key_result_forecast_probability{{key_result=\"{kr}\",objective=\"growth\"}} {p}"
        );
        assert_eq!(text.lines().filter(|l| *l == line).count(), 1, "{line}");
    }
}

// scenario.py (SciPy 1.17.1):
//
// import numpy as np
// from scipy import stats
// def u(m): return ((m*m*7+m*3+5) % 29)/14 - 1
// def u2(m): return ((m*53+5) % 19)/9 - 1
// def kr(m): return 0.30 + 0.004*min(m, 60)
// def noisy(m): return 2.0*(1+0.15*u(m))
// def shifted(m): return (2.6 if 30 <= m < 50 else 2.0)*(1+0.02*u2(m))
// def score(m): return 0.0 if m < 0 else min(max((kr(m)-0.30)/0.20, 0), 1)
// W=10; TOL=0.10; MINP=5; ALPHA=0.05; END=90
// def bound(a, b):
//     r = stats.ttest_ind(b, a, equal_var=False, alternative='greater')
//     return r.confidence_interval(1-ALPHA).low
// def run(series, rule):
//     firing=None; events=[]; ep=0; states={}
//     for m in range(0, END+1):
//         moved = score(m) - score(m-W) >= 0.01
//         A=[series(k) for k in range(0, m+1) if m-2*W < k <= m-W]
//         B=[series(k) for k in range(0, m+1) if m-W < k <= m]
//         if rule=='threshold':
//             if m-W >= 0:
//                 v, r = series(m), series(m-W)
//                 deg = (v-r) > TOL*abs(r); st = 'degraded' if deg else 'ok'
//             else: deg=False; st='insufficient_data'
//         else:
//             if len(A) >= MINP and len(B) >= MINP:
//                 deg = bound(A, B) > TOL*abs(np.mean(A)); st = 'degraded' if deg else 'ok'
//             else: deg=False; st='insufficient_data'
//         states[m]=st
//         if firing is None:
//             if moved and deg:
//                 ep+=1; events.append((m, 'firing#%d'%ep))
//                 firing = series(m-W) if rule=='threshold' else A
//         else:
//             if rule=='threshold': still = series(m)-firing > TOL*abs(firing)
//             else: still = len(B) < MINP or bound(firing, B) > TOL*abs(np.mean(firing))
//             if not still:
//                 events.append((m, 'resolved#%d'%ep)); firing=None
//     return events, states
// for name, s in [('noisy', noisy), ('shifted', shifted)]:
//     for rule in ['threshold', 'welch']:
//         ev, st = run(s, rule)
//         print(name, rule, ev, {k: st[k] for k in (9, 10, 13, 14, 30, 36)})
