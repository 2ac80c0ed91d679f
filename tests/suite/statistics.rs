//! Statistics that do not cry wolf (SPEC §4), end to end on both stores:
//! the alert engine driven through time as in tests/alerts.rs, with one KR
//! judging its counter metrics by the threshold rule and another by
//! Welch's test, over the same points. A noisy counter metric fires again
//! and again under the threshold rule and never under Welch's; a real
//! shift fires under both and resolves under both.
//!
//! Then the same through a running `okrd serve`: the read API's
//! `forecast_probability` and per-counter-metric `state`, the explanation's
//! Welch test (both windows' n, means and standard deviations, the degrees
//! of freedom, the bound, the tolerance) and forecast, `/metrics` and the
//! status page.
//!
//! The expected minutes come from an independent replica of SPEC §4's
//! rules in Python with SciPy's `ttest_ind(equal_var=False)` (its one-sided
//! confidence interval for the bound), run on the same series:
//! `python3 scenario.py`, whose source is in the comment at the end of
//! this file.

use crate::common::{both_stores, Backend};

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use crate::common::http::{self, get_json, get_text};
use crate::common::server::{service_yaml, Server};
use crate::common::wait::eventually;
use chrono::{SubsecRound, TimeDelta, TimeZone, Utc};
use okrd::alerts::Engine;
use okrd::config::{self, Config};
use okrd::metrics::Metrics;
use okrd::model::{Point, SeriesKey, Timestamp};
use okrd::scorecard::Scorecard;
use okrd::scorer;
use okrd::store::{self, AlertKey, Store};
use serde_json::{json, Value};

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

both_stores!(
    noise_cries_wolf_only_under_the_threshold_rule,
    the_read_api_explains_the_test_and_the_forecast
);

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
        let card = scorer::score_all(store, &config, now, scorer::margins(&config))
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

/// |got − want| ≤ 1e-9·|want|.
fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "{what}: got {got:e}, want {want:e}"
    );
}

/// One KR guarded three ways, W = 1h: `tickets` by Welch's test with a
/// real rise (the SciPy case of src/scoring/welch.rs), `sparse` by Welch's
/// test with 3 points where it needs 5, `refunds` by the threshold rule.
async fn the_read_api_explains_the_test_and_the_forecast(backend: Backend) {
    let now = Utc::now().trunc_subsecs(0);
    let period = |d: i64| (now + TimeDelta::days(d)).format("%Y-%m-%d");
    let objective = format!(
        "id: growth\nobjective: Grow\nteam: growth\nperiod: {{ start: {}, end: {} }}\nkey_results:\n  - id: kr\n    title: Raise activation from 30% to 50%\n    metric: activation_rate\n    baseline: 0.30\n    target: 0.50\n    counter_metrics:\n      - {{ metric: tickets, better: lower, tolerance: 5%, window: 1h, test: welch }}\n      - {{ metric: sparse, better: lower, tolerance: 5%, window: 1h, test: welch }}\n      - {{ metric: refunds, better: lower, tolerance: 5%, window: 1h }}\n",
        period(-30),
        period(60)
    );
    let db = backend.server_url();
    let server = Server::start(
        &service_yaml(""),
        &[("growth.yaml", objective)],
        db.as_deref(),
        &[],
    );
    let at = |minutes_ago: i64| (now - TimeDelta::minutes(minutes_ago)).to_rfc3339();
    let mut points = Vec::new();
    // A: 115 to 65 minutes ago; B: 55 to 5 minutes ago. The server
    // evaluates seconds later, far from the windows' bounds (now − 2h,
    // now − 1h).
    let a = [4.1, 3.9, 4.3, 4.0, 4.2, 3.8];
    let b = [4.9, 5.2, 4.7, 5.0, 5.3, 4.8];
    for (i, (va, vb)) in a.iter().zip(&b).enumerate() {
        let i = i as i64;
        points.push(json!({"metric": "tickets", "ts": at(115 - 10 * i), "value": va}));
        points.push(json!({"metric": "tickets", "ts": at(55 - 10 * i), "value": vb}));
        points.push(json!({"metric": "sparse", "ts": at(115 - 10 * i), "value": va}));
        if i < 3 {
            points.push(json!({"metric": "sparse", "ts": at(55 - 10 * i), "value": vb}));
        }
    }
    for (ago, v) in [(70, 1.0), (30, 1.1), (5, 1.2)] {
        points.push(json!({"metric": "refunds", "ts": at(ago), "value": v}));
    }
    // Ten daily points, rising 0.01 a day with a wiggle: 0.30 → 0.389.
    let wiggle = [
        0.0, 0.004, -0.003, 0.002, -0.004, 0.003, 0.0, -0.002, 0.004, -0.001,
    ];
    let activation: Vec<f64> = (0..10)
        .map(|d| 0.30 + 0.01 * d as f64 + wiggle[d])
        .collect();
    for (d, v) in activation.iter().enumerate() {
        let ts = now - TimeDelta::days(9 - d as i64) - TimeDelta::minutes(1);
        points.push(json!({"metric": "activation_rate", "ts": ts.to_rfc3339(), "value": v}));
    }
    http::push(&server, Value::Array(points), None)
        .await
        .assert_ok();

    let list = eventually(Duration::from_secs(10), "scores of the points", || async {
        let l = get_json(&server.url("/api/v1/key-results")).await;
        // The forecast comes with the KR's history: the first scorecard
        // after a start is a plain evaluation without it.
        let row = &l["key_results"][0];
        (row["value"] == json!(activation[9]) && row["history_status"] == "complete").then_some(l)
    })
    .await;
    let row = &list["key_results"][0];
    assert_eq!(
        row["counter_metrics"],
        json!([
            {"metric": "tickets", "state": "degraded"},
            {"metric": "sparse", "state": "insufficient_data"},
            {"metric": "refunds", "state": "degraded"},
        ])
    );
    let p = row["forecast_probability"].as_f64().expect("10 points");

    let detail = get_json(&server.url("/api/v1/key-results/growth/kr")).await;
    assert_eq!(detail["counter_metrics"], row["counter_metrics"]);
    assert_eq!(detail["forecast_probability"].as_f64(), Some(p));
    let forecast = &detail["explanation"]["forecast"];
    assert_eq!(forecast["probability"].as_f64(), Some(p));
    assert_eq!(
        (&forecast["points"], &forecast["degrees_of_freedom"]),
        (&json!(10), &json!(8))
    );
    assert!(forecast["standard_error"].as_f64().unwrap() > 0.0);

    let counters = &detail["explanation"]["counter_metrics"];
    let welch = &counters[0]["test"];
    assert_eq!(
        (&counters[0]["state"], &welch["name"]),
        (&json!("degraded"), &json!("welch"))
    );
    assert_eq!(
        (&welch["min_points"], &welch["alpha"]),
        (&json!(5), &json!(0.05))
    );
    assert_eq!((&welch["a"]["n"], &welch["b"]["n"]), (&json!(6), &json!(6)));
    // SciPy 1.17.1: np.mean, np.std(ddof=1) of A and B; the bound and
    // the degrees of freedom as in src/scoring/welch.rs's table.
    close(&welch["a"]["mean"], 4.05, "mean A");
    close(&welch["b"]["mean"], 4.983333333333333, "mean B");
    close(&welch["a"]["sd"], 0.18708286933869708, "sd A");
    close(&welch["b"]["sd"], 0.231660671385254, "sd B");
    close(&welch["degrees_of_freedom"], 9.575596816976129, "df");
    close(&welch["bound"], 0.7120084366354245, "bound");
    close(&welch["tolerance"], 0.2025, "5% of 4.05");
    assert_eq!(
        counters[1]["test"]["summary"],
        "insufficient_data: each window needs 5 points (A has 6, B 3)"
    );
    assert_eq!(counters[1]["test"]["bound"], Value::Null);
    assert_eq!(counters[2]["test"], json!({"name": "threshold"}));
    assert_eq!(
        (&counters[2]["state"], &counters[2]["value"]),
        (&json!("degraded"), &json!(1.2))
    );

    let metrics = get_text(&server.url("/metrics")).await;
    // The scorecard is recomputed every interval: the figure of a later
    // evaluation, equal but for rounding (time enters the regression).
    let series = r#"okrd_key_result_forecast_probability{key_result="kr",objective="growth"}"#;
    let exported = http::metric(&metrics, series).unwrap_or_else(|| panic!("{series}:\n{metrics}"));
    close(&json!(exported), p, "the exported forecast probability");
    let page = get_text(&server.url("/")).await;
    let likely = format!("{:.0}% likely</span>", p * 100.0);
    assert_eq!(page.matches(&likely).count(), 1, "{likely}");
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
