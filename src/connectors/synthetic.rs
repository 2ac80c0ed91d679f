//! The `synthetic` connector: realistic, moving demo series for the
//! quickstart, so `okrd serve` shows live scores with nothing else installed.
//!
//! Every value is a pure function of the series and the instant: trends,
//! daily and weekly cycles, and noise drawn from a hash of (series, t), never
//! from RNG state. Generating the same instant again yields the same points,
//! so reruns and overlapping backfills are idempotent writes.
//!
//! # The series
//!
//! Over every calendar quarter (UTC; the example objectives in
//! `config/objectives/` have `period: current-quarter`), from its start to
//! its end, so the quickstart never freezes: each quarter replays the same
//! trends (2026-Q4's are the ones described here):
//!
//! | series | shape |
//! |---|---|
//! | `activation_rate{plan="free"}` | 0.32 → 0.435, ±0.5 pt daily wobble, slow drift and noise |
//! | `activation_rate{plan="pro"}` | 0.52 → 0.56, same texture |
//! | `support_tickets_per_100_users` | about 4.3 → 4.1 with weekly and daily cycles, ±1.6% noise |
//! | `onboarding_p99_ms` | 255 → 230 ms with a 15:00 UTC daily peak, under 300 ms except in spike hours (about 1 in 30) that add 80–140 ms |
//! | `weekly_active_teams` | 800 → 1,120, accelerating slightly |
//! | `churn_rate` | 0.040 → 0.029 |
//! | `payment_decline_rate` | flat at 0.05, ±15% noise (see "Statistics that do not cry wolf") |
//!
//! At a quarter's start the trends begin again from their start values,
//! as a recurring KR's period starts afresh. Periodic components and noise are kept small enough that the
//! example counter metrics (7-day windows) never degrade beyond their
//! tolerances: only the guardrail scenario below fires (and, by design, the
//! threshold rule on `payment_decline_rate`'s noise).
//!
//! # The guardrail scenario
//!
//! `checkout_conversion_rate` (a KR metric) and `refund_rate` (its counter
//! metric, see `config/objectives/synthetic-guardrail-demo.yaml`: baseline 0.030,
//! target 0.040, counter `window: 5m`, `tolerance: 10%`) play a 30-minute
//! cycle aligned to the Unix epoch, so it restarts at :00 and :30 of every
//! hour and plays out within minutes of any start. Minutes into the cycle:
//!
//! | minute | checkout_conversion_rate | refund_rate |
//! |---|---|---|
//! | 0–15 | rises 0.031 → 0.037 (score 0.1 → 0.7, +0.2 per 5 min) | flat at 0.020 |
//! | 3–12 | (still rising) | degrades 0.020 → 0.036 (+80%) |
//! | 12–18 | (still rising, then flat) | recovers 0.036 → 0.020 |
//! | 15–24 | flat at 0.037: the KR stops moving | flat at 0.020 |
//! | 24–30 | falls back to 0.031 | flat at 0.020 |
//!
//! Noise is ±0.00002 on conversion and ±1% on refunds. Evaluated on points
//! every 15 s with W = 5m: the KR moves (score up ≥ 0.01 over W) from about
//! minute 4 to minute 19.5; refunds degrade beyond 10% of their value 5
//! minutes earlier from about minute 4.5 to minute 13.5, so the alert fires
//! around minute 4.5 with the pre-degradation reference 0.020. Refunds are
//! back within 10% of that reference (≤ 0.022) from about minute 17.3, so the
//! alert resolves then; from minute 20 to the next cycle neither condition
//! holds.
//!
//! # Statistics that do not cry wolf
//!
//! `payment_decline_rate` is level at 0.05 with ±15% white noise: nothing
//! happens to it. Both checkout KRs watch it and `refund_rate` with a 10%
//! tolerance over W = 5m: `checkout-conversion`
//! (`config/objectives/synthetic-guardrail-demo.yaml`) by the threshold
//! rule, `checkout-conversion-welch`
//! (`config/objectives/synthetic-statistics-demo.yaml`) by Welch's test.
//! On points every 15 s, while the KR moves (minutes 4–19.5):
//!
//! | counter metric | `test: threshold` | `test: welch` |
//! |---|---|---|
//! | `refund_rate` (a real +80%) | fires about minute 4.5, resolves about 17.5 | fires about minute 7, resolves about 19.5 |
//! | `payment_decline_rate` (noise) | fires and resolves again and again: one point against one point W earlier often differs by more than 10% | never: 20 points against 20 differ by about 1% |
//!
//! # Running it
//!
//! A runner should, on start, [`backfill`] from the start of the earliest
//! period of the objectives bound to [`SYNTHETIC_METRICS`] up to now with a
//! 1h step (about 18,000 points for a quarter; reruns hit the same
//! timestamps), then write [`points_at`]`(now)` on every schedule tick
//! (default `@every 15s`). Both are cheap: a few µs per instant.
//!
//! [`SYNTHETIC_METRICS`]: crate::config::connector::SYNTHETIC_METRICS

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use crate::ingest::Interner;
use crate::model::{Labels, Point, SeriesKey, Timestamp};

const DAY_SECS: f64 = 86_400.0;
const WEEK_SECS: f64 = 7.0 * DAY_SECS;
/// Length of the guardrail scenario's cycle, in seconds.
const CYCLE_SECS: f64 = 30.0 * 60.0;

/// One demo series: its identity and how its value follows time.
struct Demo {
    metric: &'static str,
    labels: &'static [(&'static str, &'static str)],
    value: fn(&Moment, &Noise) -> f64,
}

/// Every series the connector generates, in output order.
const SERIES: &[Demo] = &[
    Demo {
        metric: "activation_rate",
        labels: &[("plan", "free")],
        value: |at, n| {
            0.32 + 0.115 * at.quarter
                + 0.005 * at.daily(0.25)
                + 0.004 * n.smooth(at, 6.0 * 3600.0)
                + 0.0015 * n.white(at)
        },
    },
    Demo {
        metric: "activation_rate",
        labels: &[("plan", "pro")],
        value: |at, n| {
            0.52 + 0.04 * at.quarter
                + 0.005 * at.daily(0.25)
                + 0.004 * n.smooth(at, 6.0 * 3600.0)
                + 0.0015 * n.white(at)
        },
    },
    Demo {
        metric: "support_tickets_per_100_users",
        labels: &[],
        // Cycles of whole days and weeks cancel out over the 7-day guardrail
        // window; the noise (at most ±1.6%) stays well inside its 5%.
        value: |at, n| {
            (4.3 - 0.2 * at.quarter)
                * (1.0 + 0.03 * at.weekly(0.0))
                * (1.0 + 0.015 * at.daily(0.6))
                * (1.0 + 0.008 * n.smooth(at, 6.0 * 3600.0))
                * (1.0 + 0.008 * n.white(at))
        },
    },
    Demo {
        metric: "onboarding_p99_ms",
        labels: &[],
        value: |at, n| {
            255.0 - 25.0 * at.quarter
                + 22.0 * at.daily(0.625)
                + 8.0 * n.smooth(at, 2.0 * 3600.0)
                + 6.0 * n.white(at)
                + n.spike(at)
        },
    },
    Demo {
        metric: "weekly_active_teams",
        labels: &[],
        value: |at, n| {
            let q = at.quarter;
            800.0 + 260.0 * q + 60.0 * q * q + 6.0 * n.smooth(at, 12.0 * 3600.0) + 2.0 * n.white(at)
        },
    },
    Demo {
        metric: "churn_rate",
        labels: &[],
        value: |at, n| {
            0.040 - 0.011 * at.quarter + 0.0003 * n.smooth(at, 12.0 * 3600.0) + 0.0001 * n.white(at)
        },
    },
    Demo {
        metric: "checkout_conversion_rate",
        labels: &[],
        value: |at, n| checkout_conversion(at.cycle_minute) + 0.000_02 * n.white(at),
    },
    Demo {
        metric: "refund_rate",
        labels: &[],
        value: |at, n| refund(at.cycle_minute) * (1.0 + 0.01 * n.white(at)),
    },
    Demo {
        metric: "payment_decline_rate",
        labels: &[],
        // Level, and noisy: ±15% white noise, nothing else.
        value: |at, n| PAYMENT_DECLINES * (1.0 + 0.15 * n.white(at)),
    },
];

/// `payment_decline_rate`'s level: it never moves, only wobbles.
const PAYMENT_DECLINES: f64 = 0.05;

/// The guardrail scenario's KR metric, noise aside, at `m` minutes into the
/// cycle: up for 15 minutes, flat for 9, back down for 6.
fn checkout_conversion(m: f64) -> f64 {
    if m < 15.0 {
        0.031 + 0.0004 * m
    } else if m < 24.0 {
        0.037
    } else {
        0.037 - 0.001 * (m - 24.0)
    }
}

/// The guardrail scenario's counter metric, noise aside, at `m` minutes into
/// the cycle: degrades during minutes 3–12 and recovers by minute 18.
fn refund(m: f64) -> f64 {
    const BASE: f64 = 0.020;
    const PEAK: f64 = 0.036;
    if (3.0..12.0).contains(&m) {
        BASE + (PEAK - BASE) * (m - 3.0) / 9.0
    } else if (12.0..18.0).contains(&m) {
        PEAK - (PEAK - BASE) * (m - 12.0) / 6.0
    } else {
        BASE
    }
}

/// The fraction of the calendar quarter (UTC) containing `t` elapsed at `t`.
fn quarter_fraction(t: Timestamp) -> f64 {
    use chrono::{Datelike, NaiveDate};
    let first_month = 3 * ((t.month() - 1) / 3) + 1;
    let start = NaiveDate::from_ymd_opt(t.year(), first_month, 1).expect("a quarter's first day");
    let end = if first_month == 10 {
        NaiveDate::from_ymd_opt(t.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(t.year(), first_month + 3, 1)
    }
    .expect("the next quarter's first day");
    let micros = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros() as f64
    };
    let (s, e) = (micros(start), micros(end));
    ((t.timestamp_micros() as f64 - s) / (e - s)).clamp(0.0, 1.0)
}

/// An instant, decomposed once for all its series.
struct Moment {
    micros: i64,
    /// Unix seconds.
    secs: f64,
    /// Fraction elapsed of the calendar quarter (UTC) containing the
    /// instant, in [0, 1).
    quarter: f64,
    /// Minutes into the guardrail scenario's cycle, in [0, 30).
    cycle_minute: f64,
}

impl Moment {
    fn new(t: Timestamp) -> Self {
        let micros = t.timestamp_micros();
        let secs = micros as f64 / 1e6;
        Self {
            micros,
            secs,
            quarter: quarter_fraction(t),
            cycle_minute: secs.rem_euclid(CYCLE_SECS) / 60.0,
        }
    }

    /// A daily cycle in [-1, 1] peaking at `peak` (fraction of the UTC day).
    fn daily(&self, peak: f64) -> f64 {
        (TAU * (self.secs / DAY_SECS - peak)).cos()
    }

    /// A weekly cycle in [-1, 1] peaking at `peak` (fraction of the week
    /// from Monday 00:00 UTC).
    fn weekly(&self, peak: f64) -> f64 {
        // The Unix epoch was a Thursday: Monday 00:00 is 3 days later.
        (TAU * ((self.secs - 3.0 * DAY_SECS) / WEEK_SECS - peak)).cos()
    }
}

/// Deterministic noise for one series.
struct Noise {
    salt: u64,
}

impl Noise {
    fn for_series(key: &SeriesKey) -> Self {
        Self {
            salt: fnv1a(key.to_string().as_bytes()),
        }
    }

    /// A uniform value in [-1, 1] for (series, `x`).
    fn at(&self, stream: u64, x: i64) -> f64 {
        let h = splitmix64(self.salt ^ stream ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Independent noise at every instant.
    fn white(&self, at: &Moment) -> f64 {
        self.at(0x5749_5445, at.micros)
    }

    /// Noise that drifts smoothly, through a fresh random level every
    /// `period` seconds.
    fn smooth(&self, at: &Moment, period: f64) -> f64 {
        let x = at.secs / period;
        let k = x.floor();
        let f = x - k;
        let f = f * f * (3.0 - 2.0 * f);
        let (a, b) = (
            self.at(0x534D_4F4F, k as i64),
            self.at(0x534D_4F4F, k as i64 + 1),
        );
        a + (b - a) * f
    }

    /// A latency spike lasting a whole hour, in about one hour in 30:
    /// +80 to +140 ms, else 0.
    fn spike(&self, at: &Moment) -> f64 {
        let hour = (at.secs / 3600.0).floor() as i64;
        let roll = (self.at(0x5350_494B, hour) + 1.0) / 2.0;
        if roll < 1.0 / 30.0 {
            80.0 + 60.0 * (self.at(0x4845_4947, hour) + 1.0) / 2.0
        } else {
            0.0
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The demo series' shared keys and noise, looked up once per call.
fn series(interner: &mut Interner) -> Vec<(&'static Demo, Arc<SeriesKey>, Noise)> {
    SERIES
        .iter()
        .map(|demo| {
            let labels: Labels = demo
                .labels
                .iter()
                .map(|&(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let key = interner.intern(SeriesKey::new(demo.metric, labels));
            let noise = Noise::for_series(&key);
            (demo, key, noise)
        })
        .collect()
}

fn push_points(
    series: &[(&'static Demo, Arc<SeriesKey>, Noise)],
    t: Timestamp,
    out: &mut Vec<Point>,
) {
    let at = Moment::new(t);
    out.extend(series.iter().map(|(demo, key, noise)| Point {
        series: Arc::clone(key),
        ts: t,
        value: (demo.value)(&at, noise),
    }));
}

/// One point per demo series at instant `t`. The same `t` always gives the
/// same points.
pub fn points_at(t: Timestamp, interner: &mut Interner) -> Vec<Point> {
    let series = series(interner);
    let mut out = Vec::with_capacity(series.len());
    push_points(&series, t, &mut out);
    out
}

/// [`points_at`] every multiple of `step` since the Unix epoch in
/// [`from`, `to`], so reruns hit the same timestamps. Empty when `from` is
/// after `to`.
///
/// # Panics
///
/// When `step` is shorter than a microsecond (timestamps have microsecond
/// precision).
pub fn backfill(
    from: Timestamp,
    to: Timestamp,
    step: Duration,
    interner: &mut Interner,
) -> Vec<Point> {
    let step = i64::try_from(step.as_micros()).unwrap_or(i64::MAX);
    assert!(step > 0, "backfill step must be at least 1µs");
    let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
    let Some(first) = from.div_euclid(step).checked_mul(step).and_then(|f| {
        if f < from {
            f.checked_add(step)
        } else {
            Some(f)
        }
    }) else {
        return Vec::new();
    };
    if first > to {
        return Vec::new();
    }
    let series = series(interner);
    let instants = (to - first) / step + 1;
    let mut out = Vec::with_capacity(usize::try_from(instants).unwrap_or(0) * series.len());
    for i in 0..instants {
        let Some(t) = DateTime::from_timestamp_micros(first + i * step) else {
            break;
        };
        push_points(&series, t, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::config::connector::SYNTHETIC_METRICS;
    use crate::config::objective::Target;
    use crate::config::types::Tolerance;
    use crate::config::{self, Config};
    use crate::model::Sample;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// The repository's own deployment: config/okrd.yaml and its objectives.
    fn example_config() -> Config {
        // Objective paths are relative to the working directory, which cargo
        // sets to the package root for tests.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        config::load(Some(&root.join("config/okrd.yaml")), &BTreeMap::new())
            .unwrap_or_else(|e| panic!("example config: {e:?}"))
    }

    fn values(points: &[Point]) -> BTreeMap<String, f64> {
        points
            .iter()
            .map(|p| (p.series.to_string(), p.value))
            .collect()
    }

    #[test]
    fn the_same_instant_gives_the_same_points() {
        let t = utc(2026, 11, 20, 10, 7, 15);
        let mut interner = Interner::default();
        let a = points_at(t, &mut interner);
        let b = points_at(t, &mut Interner::default());
        assert_eq!(a, b);
        assert_eq!(a.len(), SERIES.len());
        assert!(a.iter().all(|p| p.ts == t && p.value.is_finite()));
        // Interned once: a second call shares the keys.
        let c = points_at(t, &mut interner);
        assert!(Arc::ptr_eq(&a[0].series, &c[0].series));
        assert_eq!(interner.len(), SERIES.len());
        // And the noise really depends on t.
        let later = points_at(t + TimeDelta::seconds(15), &mut interner);
        assert_ne!(values(&a), values(&later));
    }

    #[test]
    fn backfill_hits_every_multiple_of_the_step_since_the_epoch() {
        let mut interner = Interner::default();
        let from = utc(2026, 10, 1, 0, 20, 0);
        let to = utc(2026, 10, 1, 3, 0, 0);
        let points = backfill(from, to, Duration::from_secs(3600), &mut interner);
        let stamps: BTreeSet<Timestamp> = points.iter().map(|p| p.ts).collect();
        let hours = [1, 2, 3].map(|h| utc(2026, 10, 1, h, 0, 0));
        assert_eq!(
            stamps.into_iter().collect::<Vec<_>>(),
            hours,
            "both ends inclusive"
        );
        assert_eq!(points.len(), 3 * SERIES.len());
        // Each instant is exactly points_at at that instant.
        assert_eq!(
            &points[SERIES.len()..2 * SERIES.len()],
            points_at(hours[1], &mut interner)
        );

        // A step that does not divide an hour still aligns on the epoch.
        let step = Duration::from_secs(7 * 60);
        let points = backfill(from, to, step, &mut interner);
        assert!(points.iter().all(|p| p.ts.timestamp() % (7 * 60) == 0));
        let n = (to.timestamp() / 420) - (from.timestamp() + 419) / 420 + 1;
        assert_eq!(points.len() as i64, n * SERIES.len() as i64);

        assert!(backfill(to, from, step, &mut interner).is_empty());
        let hour = Duration::from_secs(3600);
        let one = backfill(hours[0], hours[0], hour, &mut interner);
        assert_eq!(one.len(), SERIES.len(), "a point exactly on from = to");
        assert!(backfill(from, from, hour, &mut interner).is_empty());
    }

    #[test]
    fn every_series_an_example_key_result_reads_is_generated() {
        let generated: BTreeSet<String> =
            points_at(utc(2026, 11, 1, 0, 0, 0), &mut Interner::default())
                .iter()
                .map(|p| p.series.to_string())
                .collect();
        let config = example_config();
        let mut read = BTreeSet::new();
        for o in &config.objectives {
            for kr in &o.key_results {
                read.insert(SeriesKey::new(&kr.metric, kr.labels.clone()));
                for cm in &kr.counter_metrics {
                    read.insert(SeriesKey::new(&cm.metric, cm.labels.clone()));
                }
            }
        }
        assert!(read.len() >= 7, "{read:?}");
        for key in &read {
            assert!(
                generated.contains(&key.to_string()),
                "{key} is read but not generated"
            );
        }
        assert!(generated.contains("activation_rate{plan=\"free\"}"));

        // What `okrd check` believes the connector declares is what it makes.
        let metrics: BTreeSet<&str> = SERIES.iter().map(|d| d.metric).collect();
        let declared: BTreeSet<&str> = SYNTHETIC_METRICS.iter().copied().collect();
        assert_eq!(metrics, declared);
    }

    #[test]
    fn values_stay_realistic_over_the_whole_quarter() {
        let ranges: BTreeMap<&str, (f64, f64)> = [
            ("activation_rate{plan=\"free\"}", (0.30, 0.46)),
            ("activation_rate{plan=\"pro\"}", (0.50, 0.58)),
            ("support_tickets_per_100_users", (3.7, 4.7)),
            ("onboarding_p99_ms", (180.0, 450.0)),
            ("weekly_active_teams", (780.0, 1140.0)),
            ("churn_rate", (0.027, 0.042)),
            ("checkout_conversion_rate", (0.030, 0.038)),
            ("refund_rate", (0.019, 0.037)),
            ("payment_decline_rate", (0.0425, 0.0575)),
        ]
        .into();
        // An odd step, so every time of day and phase of the cycle is seen.
        let points = backfill(
            utc(2026, 10, 1, 0, 0, 0),
            utc(2027, 1, 1, 0, 0, 0),
            Duration::from_secs(7 * 60 + 13),
            &mut Interner::default(),
        );
        let mut by_series: BTreeMap<String, Vec<(Timestamp, f64)>> = BTreeMap::new();
        for p in &points {
            by_series
                .entry(p.series.to_string())
                .or_default()
                .push((p.ts, p.value));
        }
        assert_eq!(by_series.len(), ranges.len());
        for (series, samples) in &by_series {
            let (lo, hi) = ranges[series.as_str()];
            for &(ts, v) in samples {
                assert!(
                    (lo..=hi).contains(&v),
                    "{series} = {v} at {ts}, outside [{lo}, {hi}]"
                );
            }
        }

        // The trends move the way the example objectives hope.
        let daily_mean = |series: &str, day: Timestamp| {
            let v: Vec<f64> = by_series[series]
                .iter()
                .filter(|(ts, _)| *ts >= day && *ts < day + TimeDelta::days(1))
                .map(|&(_, v)| v)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let (first, last) = (utc(2026, 10, 1, 0, 0, 0), utc(2026, 12, 31, 0, 0, 0));
        let activation = "activation_rate{plan=\"free\"}";
        assert!((daily_mean(activation, first) - 0.32).abs() < 0.01);
        assert!((daily_mean(activation, last) - 0.435).abs() < 0.01);
        assert!(
            daily_mean("weekly_active_teams", last)
                > daily_mean("weekly_active_teams", first) + 250.0
        );
        assert!(daily_mean("churn_rate", last) < daily_mean("churn_rate", first) - 0.009);
        let tickets = |d| daily_mean("support_tickets_per_100_users", d);
        assert!(
            (tickets(last) / tickets(first) - 1.0).abs() < 0.08,
            "tickets roughly flat"
        );

        // p99: mostly under 300 ms, with occasional spikes above.
        let p99 = &by_series["onboarding_p99_ms"];
        let above = p99.iter().filter(|(_, v)| *v > 300.0).count() as f64 / p99.len() as f64;
        assert!(
            (0.01..0.07).contains(&above),
            "{above} of p99 points above 300 ms"
        );

        // Only the guardrail scenario may degrade: the example counter
        // metrics stay inside their 7-day tolerances all quarter.
        let week = 7 * 86_400 / (7 * 60 + 13);
        let worst = |series: &str| {
            let s = &by_series[series];
            s[week..]
                .iter()
                .zip(s)
                .map(|((_, now), (_, then))| now / then - 1.0)
                .fold(f64::MIN, f64::max)
        };
        assert!(
            worst("support_tickets_per_100_users") < 0.04,
            "tolerance 5%"
        );
        assert!(worst("churn_rate") < 0.05, "tolerance 10%");
    }

    /// Last value at or before `t` in ascending samples.
    fn last_at(samples: &[(Timestamp, f64)], t: Timestamp) -> Option<f64> {
        samples
            .iter()
            .take_while(|(ts, _)| *ts <= t)
            .last()
            .map(|&(_, v)| v)
    }

    #[test]
    fn the_guardrail_fires_within_minutes_and_resolves_after() {
        // The demo objective binds the scenario: read its numbers from it.
        let config = example_config();
        let kr = config
            .objectives
            .iter()
            .flat_map(|o| &o.key_results)
            .find(|kr| kr.metric == "checkout_conversion_rate")
            .expect("config/objectives/synthetic-guardrail-demo.yaml");
        let (Some(baseline), Target::Value(target)) = (kr.baseline, kr.target) else {
            panic!("a KR with a baseline and a target value");
        };
        let cm = &kr.counter_metrics[0];
        assert_eq!(cm.metric, "refund_rate");
        let w = TimeDelta::from_std(cm.window).unwrap();
        assert_eq!(w, TimeDelta::minutes(5));
        let Tolerance::Relative(tolerance) = cm.tolerance else {
            panic!("a relative tolerance");
        };
        let score = |v: f64| ((v - baseline) / (target - baseline)).clamp(0.0, 1.0);

        // Points every 15 s for 40 minutes from an arbitrary start; this
        // cycle's degradation starts at 10:03.
        let start = utc(2026, 11, 20, 9, 57, 0);
        let degradation = utc(2026, 11, 20, 10, 3, 0);
        let points = backfill(
            start,
            start + TimeDelta::minutes(40),
            Duration::from_secs(15),
            &mut Interner::default(),
        );
        let series = |metric: &str| -> Vec<(Timestamp, f64)> {
            points
                .iter()
                .filter(|p| p.series.metric == metric)
                .map(|p| (p.ts, p.value))
                .collect()
        };
        let (kr_points, counter) = (series("checkout_conversion_rate"), series("refund_rate"));
        assert_eq!(kr_points.len(), 161);

        // (score(t) - score(t-W), relative change of the counter over W)
        let at = |t: Timestamp| {
            let moved =
                score(last_at(&kr_points, t).unwrap()) - score(last_at(&kr_points, t - w).unwrap());
            let (now, then) = (
                last_at(&counter, t).unwrap(),
                last_at(&counter, t - w).unwrap(),
            );
            let in_window = counter
                .iter()
                .filter(|(ts, _)| *ts > t - w && *ts <= t)
                .count();
            assert!(in_window >= 2);
            (moved, (now - then) / then, then)
        };
        let fires = |t| {
            let (moved, worse, _) = at(t);
            moved >= 0.01 && worse > tolerance
        };

        // Quiet before the degradation.
        let mut t = start + w;
        while t < degradation + TimeDelta::minutes(1) {
            assert!(!fires(t), "fired early, at {t}");
            t += TimeDelta::seconds(15);
        }
        // Fires within the first ~12 minutes of it (in fact by minute 2.5)...
        let fired = (0..12 * 4)
            .map(|i| degradation + TimeDelta::seconds(15 * i))
            .find(|&t| fires(t))
            .expect("the guardrail fires");
        assert!(
            fired <= degradation + TimeDelta::seconds(150),
            "fired at {fired}"
        );
        let reference = at(fired).2;
        assert!(
            (reference - 0.020).abs() < 0.0005,
            "pre-degradation reference {reference}"
        );
        // ...and both conditions hold clearly mid-degradation.
        let (moved, worse, _) = at(utc(2026, 11, 20, 10, 8, 0));
        assert!(moved >= 0.1 && worse >= 0.2, "moved {moved}, worse {worse}");
        let (moved, worse, _) = at(utc(2026, 11, 20, 10, 12, 0));
        assert!(moved >= 0.1 && worse >= 0.2, "moved {moved}, worse {worse}");

        // Still worse than the reference by more than the tolerance at 10:15;
        // recovered (back within tolerance) from 10:18 on, so it resolves.
        let worse_than_reference =
            |t| last_at(&counter, t).unwrap() > reference * (1.0 + tolerance);
        assert!(worse_than_reference(utc(2026, 11, 20, 10, 15, 0)));
        let resolved = (0..20 * 4)
            .map(|i| fired + TimeDelta::seconds(15 * i))
            .find(|&t| !worse_than_reference(t))
            .expect("the counter metric recovers");
        assert!(
            resolved <= utc(2026, 11, 20, 10, 18, 0),
            "recovered at {resolved}"
        );
        let mut t = utc(2026, 11, 20, 10, 18, 0);
        while t < utc(2026, 11, 20, 10, 33, 0) {
            assert!(!worse_than_reference(t), "worse again at {t}");
            t += TimeDelta::seconds(15);
        }

        // Later in the cycle both conditions are clearly false: the KR has
        // stopped moving (then falls back) and refunds are flat.
        for minute in [20, 25, 31] {
            let t = utc(2026, 11, 20, 10, minute, 0);
            let (moved, worse, _) = at(t);
            assert!(
                moved < 0.005 && worse < 0.03,
                "at {t}: moved {moved}, worse {worse}"
            );
        }
        // The next cycle (degradation at 10:33) fires again.
        assert!(fires(utc(2026, 11, 20, 10, 36, 0)));
    }

    #[test]
    fn the_scenario_repeats_every_thirty_minutes() {
        let mut interner = Interner::default();
        let a = values(&points_at(utc(2026, 11, 20, 10, 8, 0), &mut interner));
        let b = values(&points_at(utc(2026, 12, 5, 17, 38, 0), &mut interner));
        for series in ["checkout_conversion_rate", "refund_rate"] {
            assert!((a[series] / b[series] - 1.0).abs() < 0.03, "{series}");
        }
    }

    #[test]
    fn welch_ignores_the_declines_noise_and_catches_the_refunds() {
        use crate::scoring::guardrail::counter_state;
        use crate::scoring::{score_key_result_without_forecast, Margins};

        let config = example_config();
        let find = |id: &str| {
            config
                .objectives
                .iter()
                .flat_map(|o| o.key_results.iter().map(move |kr| (o, kr)))
                .find(|(_, kr)| kr.id == id)
                .unwrap_or_else(|| panic!("{id} in config/objectives"))
        };
        let margins = Margins {
            at_risk: 0.1,
            off_track: 0.25,
        };
        // Two cycles of points every 15 s, from 10:00 (a cycle's start),
        // with the 10 minutes before for the windows.
        let start = utc(2026, 11, 20, 9, 50, 0);
        let points = backfill(
            start,
            start + TimeDelta::minutes(70),
            Duration::from_secs(15),
            &mut Interner::default(),
        );
        let samples = |metric: &str| -> Vec<Sample> {
            points
                .iter()
                .filter(|p| p.series.metric == metric)
                .map(|p| Sample::new(p.ts, p.value))
                .collect()
        };
        // (KR id, counter metric) → the cycle minutes it fires at.
        let mut fires: BTreeMap<(&str, String), Vec<f64>> = BTreeMap::new();
        for id in ["checkout-conversion", "checkout-conversion-welch"] {
            let (objective, kr) = find(id);
            let own = samples(&kr.metric);
            assert_eq!(kr.counter_metrics.len(), 2, "{id}");
            for cm in &kr.counter_metrics {
                let counter = samples(&cm.metric);
                let w = TimeDelta::from_std(cm.window).unwrap();
                let mut t = start + TimeDelta::minutes(10);
                while t <= start + TimeDelta::minutes(70) {
                    let score = |at| {
                        score_key_result_without_forecast(
                            kr,
                            &objective.period.at(at),
                            &own,
                            at,
                            margins,
                        )
                        .score
                    };
                    let st = counter_state(cm, &counter, t, score(t), score(t - w));
                    if st.firing() {
                        let minute =
                            (t - start - TimeDelta::minutes(10)).num_seconds() as f64 / 60.0;
                        fires
                            .entry((id, cm.metric.clone()))
                            .or_default()
                            .push(minute);
                    }
                    t += TimeDelta::seconds(15);
                }
            }
        }
        let count =
            |id: &str, metric: &str| fires.get(&(id, metric.to_string())).map_or(0, Vec::len);
        let first = |id: &str, metric: &str, cycle: f64| {
            fires[&(id, metric.to_string())]
                .iter()
                .copied()
                .find(|m| (cycle * 30.0..(cycle + 1.0) * 30.0).contains(m))
        };
        let (threshold, welch) = ("checkout-conversion", "checkout-conversion-welch");
        // The noise: the threshold rule's condition holds at 39 of the 241
        // instants (in both cycles, minutes 4.5-19.25 and 36.25-48.75, while
        // the KR moves); Welch's test's at none.
        assert_eq!(count(threshold, "payment_decline_rate"), 39, "{fires:?}");
        assert_eq!(first(threshold, "payment_decline_rate", 0.0), Some(4.5));
        assert_eq!(first(threshold, "payment_decline_rate", 1.0), Some(36.25));
        assert_eq!(count(welch, "payment_decline_rate"), 0, "{fires:?}");
        // The refunds: both catch them in each cycle, the threshold rule
        // from minute 4.25 to 13.25 (37 instants a cycle), Welch's test,
        // which waits for enough of the window to have shifted, from minute
        // 7 to 15 (33 a cycle).
        assert_eq!(count(threshold, "refund_rate"), 2 * 37);
        assert_eq!(count(welch, "refund_rate"), 2 * 33);
        for cycle in [0.0, 1.0] {
            let at = |m: f64| Some(m + 30.0 * cycle);
            assert_eq!(first(threshold, "refund_rate", cycle), at(4.25));
            assert_eq!(first(welch, "refund_rate", cycle), at(7.0));
        }
    }
}
