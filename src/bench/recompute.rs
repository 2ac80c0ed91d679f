//! Recompute cost: `krs` KRs over as many series of 30 days of hourly
//! points, scored by an `okrd serve` child. The full recompute is timed by
//! okrd itself (`okrd_recompute_duration_seconds`) after SIGHUP marks every
//! KR; the incremental one after a single pushed point. A cold start is
//! timed from outside: to the first scorecard (`/readyz`), and to every
//! KR's history built. Then the same KRs with `test: welch` on every
//! counter metric, in a second child beside the first (on a database of
//! its own with the same points): full recomputes of one and the other in
//! turn, so that both see the same machine, and the ratio of their
//! medians.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DurationRound, TimeDelta, Utc};
use serde::Serialize;

use super::child::Child;
use crate::model::{Labels, Point, SeriesKey};

/// Hourly points per series: 30 days.
const POINTS_PER_SERIES: usize = 30 * 24;

/// KRs per objective, and objectives per team: SPEC's lint limits.
const PER_OBJECTIVE: usize = 5;

/// KRs sharing a metric name (told apart by a `shard` label): a point
/// dirties every KR on its metric.
const SHARDS: usize = 10;

const SAMPLES: usize = 5;

/// Recompute figures.
#[derive(Debug, Clone, Serialize)]
pub struct Recompute {
    /// KRs scored.
    pub krs: usize,
    /// Series, one per KR (each KR also watches a neighbour's as its
    /// counter-metric).
    pub series: usize,
    /// Points stored.
    pub points: usize,
    /// From the child answering (its store open) to its first scorecard
    /// (`/readyz` ready): one plain evaluation of every KR, seconds.
    pub first_scorecard_s: f64,
    /// From the child answering to every KR's score history built
    /// (`okrd_history_pending_key_results` 0), seconds.
    pub full_history_s: f64,
    /// A full recompute (every KR), median of several, seconds.
    pub full_s: f64,
    /// One new point: the recompute it causes (the KRs on its metric and
    /// those watching it), median, milliseconds.
    pub incremental_ms: f64,
    /// okrd's peak RSS once started, after the first recompute, and after
    /// the full ones, MB.
    pub rss_started_mb: f64,
    pub rss_first_mb: f64,
    pub rss_full_mb: f64,
    /// Full recomputes taken in turn by the threshold rule's child and one
    /// with `test: welch` on every counter metric, medians, seconds; and
    /// the ratio welch / threshold.
    pub full_beside_welch_s: f64,
    pub full_welch_s: f64,
    pub welch_ratio: f64,
    /// The status page at this size, once history is built: the first
    /// view (`GET /`) in KB and its median time, and a team's page
    /// (`GET /?team=t0`), milliseconds.
    pub page_first_view_kb: f64,
    pub page_first_view_ms: f64,
    pub page_team_ms: f64,
}

/// How the KRs' counter metrics are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// The threshold rule (the default).
    Threshold,
    /// Welch's test, with its defaults.
    Welch,
}

fn key(s: usize) -> Arc<SeriesKey> {
    let mut labels = Labels::new();
    labels.insert("shard".into(), format!("s{}", s % SHARDS));
    Arc::new(SeriesKey::new(format!("bench_r{}", s / SHARDS), labels))
}

/// Stores `krs` series of 30 days of hourly points ending now, through
/// okrd's store (setup, not timed).
pub async fn load(url: &str, krs: usize) -> anyhow::Result<usize> {
    let store = crate::store::open(url).await?;
    let end = Utc::now().duration_trunc(TimeDelta::hours(1))?;
    let mut batch = Vec::with_capacity(200_000);
    let mut total = 0;
    for s in 0..krs {
        let series = key(s);
        for i in 0..POINTS_PER_SERIES {
            batch.push(Point {
                series: Arc::clone(&series),
                ts: end - TimeDelta::hours((POINTS_PER_SERIES - 1 - i) as i64),
                value: ((s * 13 + i) % 100) as f64,
            });
        }
        if batch.len() >= 200_000 || s + 1 == krs {
            total += store
                .write_points(&batch, &crate::store::no_progress)
                .await?;
            batch.clear();
        }
    }
    if url.starts_with("postgres") {
        // A restart finds its store at rest: the bulk load's pages vacuumed
        // (hint bits set) and the planner's statistics current, as they are
        // on a store that took these points over 30 days.
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect_with(&crate::tls::pg_options(url)?).await?;
        sqlx::raw_sql("VACUUM (ANALYZE) points, series")
            .execute(&mut conn)
            .await?;
    }
    Ok(total)
}

/// Writes the objective files for `krs` KRs into `dir/objectives`, each
/// KR's counter metric judged by `test`, and returns the teams' YAML lines.
pub fn objectives(dir: &Path, krs: usize, test: Test) -> anyhow::Result<Vec<String>> {
    let test = match test {
        Test::Threshold => "",
        Test::Welch => ", test: welch",
    };
    let now = Utc::now().date_naive();
    let (start, end) = (now - chrono::Days::new(30), now + chrono::Days::new(60));
    let objectives = krs.div_ceil(PER_OBJECTIVE);
    let mut teams = Vec::new();
    std::fs::create_dir_all(dir.join("objectives"))?;
    for o in 0..objectives {
        let team = o / PER_OBJECTIVE;
        if o % PER_OBJECTIVE == 0 {
            teams.push(format!("t{team}:"));
        }
        let mut y = format!(
            "id: o{o}\nobjective: Objective {o}\nteam: t{team}\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n"
        );
        for s in (o * PER_OBJECTIVE)..((o + 1) * PER_OBJECTIVE).min(krs) {
            let (k, c) = (key(s), key((s + 1) % krs));
            let _ = write!(
                y,
                "  - id: kr{s}\n    title: Key result {s}\n    metric: {}\n    labels: {{ shard: {} }}\n    \
                 baseline: 10\n    target: 90\n    counter_metrics:\n      - {{ metric: {}, labels: {{ shard: {} }}, better: lower, tolerance: 10%, window: 1d{} }}\n",
                k.metric, k.labels["shard"], c.metric, c.labels["shard"], test
            );
        }
        std::fs::write(dir.join("objectives").join(format!("o{o}.yaml")), y)?;
    }
    Ok(teams)
}

/// Measures the child, whose config holds [`objectives`] over [`load`]'s
/// series.
pub async fn measure(child: &Child, krs: usize, points: usize) -> anyhow::Result<Recompute> {
    const SUM: &str = "okrd_recompute_duration_seconds_sum";
    const COUNT: &str = "okrd_recompute_duration_seconds_count";
    // The first scorecard comes from one plain evaluation of every KR;
    // history is built after it, in the background.
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let answered = Instant::now();
    let rss_started_mb = mb(child.peak_rss()?);
    let ready = format!("{}/readyz", child.base);
    let deadline = answered + Duration::from_secs(1800);
    let first_scorecard_s = loop {
        if child.client.get(&ready).send().await?.status().is_success() {
            break answered.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            bail!("no scorecard published in 1800s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let full_history_s = loop {
        let built = child
            .sample("okrd_history_pending_key_results", &[])
            .await?
            == 0.0
            && child.sample(COUNT, &[]).await? > 0.0;
        if built {
            break answered.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            bail!("score history not built in 1800s");
        }
        tokio::time::sleep(POLL).await;
    };
    wait_count(child, 0.0, Duration::from_secs(60)).await?;
    let rss_first_mb = mb(child.peak_rss()?);
    let mut full = Vec::new();
    for _ in 0..SAMPLES {
        full.push(next_recompute(child, Duration::from_secs(300), || child.hang_up()).await?);
    }
    let rss_full_mb = mb(child.peak_rss()?);
    let mut incremental = Vec::new();
    let url = format!("{}/api/v1/points", child.base);
    let k = key(0);
    for i in 0..SAMPLES {
        let body = format!(
            r#"{{"points":[{{"metric":"{}","labels":{{"shard":"{}"}},"ts":"{}","value":{}}}]}}"#,
            k.metric,
            k.labels["shard"],
            Utc::now().to_rfc3339(),
            50 + i
        );
        let before = child.sample(COUNT, &[]).await?;
        let before_sum = child.sample(SUM, &[]).await?;
        let r = child.client.post(&url).body(body).send().await?;
        if !r.status().is_success() {
            bail!("push answered {}", r.status());
        }
        wait_count(child, before, Duration::from_secs(60)).await?;
        incremental.push((child.sample(SUM, &[]).await? - before_sum) * 1000.0);
    }
    let (page_first_view_kb, page_first_view_ms) = page(child, "/").await?;
    let (_, page_team_ms) = page(child, "/?team=t0").await?;
    Ok(Recompute {
        page_first_view_kb,
        page_first_view_ms,
        page_team_ms,
        krs,
        series: krs,
        points,
        first_scorecard_s,
        full_history_s,
        full_s: median(full),
        incremental_ms: median(incremental),
        rss_started_mb,
        rss_first_mb,
        rss_full_mb,
        full_beside_welch_s: 0.0,
        full_welch_s: 0.0,
        welch_ratio: 0.0,
    })
}

/// `path` of the status page: its size in KB and the median of
/// [`SAMPLES`] fetches, read whole, in milliseconds.
async fn page(child: &Child, path: &str) -> anyhow::Result<(f64, f64)> {
    let url = format!("{}{path}", child.base);
    let (mut times, mut bytes) = (Vec::new(), 0);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let r = child.client.get(&url).send().await?;
        if !r.status().is_success() {
            bail!("{path} answered {}", r.status());
        }
        bytes = r.bytes().await?.len();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((bytes as f64 / 1000.0, median(times)))
}

/// Full recomputes of `threshold` and `welch` in turn, once `welch` has
/// published its first scorecard and built every KR's history: the medians
/// of each, seconds.
pub async fn beside(threshold: &Child, welch: &Child) -> anyhow::Result<(f64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let built = welch
            .sample("okrd_history_pending_key_results", &[])
            .await?
            == 0.0
            && welch
                .sample("okrd_recompute_duration_seconds_count", &[])
                .await?
                > 0.0;
        if built {
            break;
        }
        if Instant::now() > deadline {
            bail!("score history not built in 1800s");
        }
        tokio::time::sleep(POLL).await;
    }
    wait_count(welch, 0.0, Duration::from_secs(60)).await?;
    // Its first scorecard fired its alerts (one transaction each): let that
    // settle, as it did for `threshold` long before, so that it does not
    // run beside the recomputes timed.
    settle_alerts(welch, deadline).await?;
    let (mut t, mut w) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let timeout = Duration::from_secs(300);
        t.push(next_recompute(threshold, timeout, || threshold.hang_up()).await?);
        w.push(next_recompute(welch, timeout, || welch.hang_up()).await?);
    }
    Ok((median(t), median(w)))
}

/// Waits until the number of the child's alerts (`/api/v1/alerts`) stays
/// the same for three polls in a row.
async fn settle_alerts(child: &Child, deadline: Instant) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/alerts", child.base);
    let (mut last, mut same) = (usize::MAX, 0);
    while same < 3 {
        if Instant::now() > deadline {
            bail!("alerts did not settle");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let body: serde_json::Value = child.client.get(&url).send().await?.json().await?;
        let n = body["alerts"].as_array().map_or(0, Vec::len);
        if n == last {
            same += 1;
        } else {
            (last, same) = (n, 0);
        }
    }
    Ok(())
}

/// Between scrapes: with 10,000 KRs `/metrics` is megabytes, and rendering
/// it would compete with the recompute being timed.
const POLL: Duration = Duration::from_millis(500);

/// Runs `trigger`, waits for the next recompute to finish, and returns
/// how long okrd says it took.
async fn next_recompute(
    child: &Child,
    timeout: Duration,
    trigger: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let before = child
        .sample("okrd_recompute_duration_seconds_count", &[])
        .await?;
    let before_sum = child
        .sample("okrd_recompute_duration_seconds_sum", &[])
        .await?;
    trigger()?;
    wait_count(child, before, timeout).await?;
    Ok(child
        .sample("okrd_recompute_duration_seconds_sum", &[])
        .await?
        - before_sum)
}

/// Waits until a recompute after `before` (a count) has finished and no
/// other follows within two polls, so that the sum covers everything the
/// trigger caused (a wakeup with nothing dirty adds a recompute of ~0 s).
async fn wait_count(child: &Child, before: f64, timeout: Duration) -> anyhow::Result<()> {
    const COUNT: &str = "okrd_recompute_duration_seconds_count";
    let deadline = Instant::now() + timeout;
    let mut last = before;
    let mut quiet = 0;
    while quiet < 2 {
        if Instant::now() > deadline {
            bail!("no recompute finished in {}s", timeout.as_secs());
        }
        tokio::time::sleep(POLL).await;
        let count = child.sample(COUNT, &[]).await?;
        if count > last {
            (last, quiet) = (count, 0);
        } else if last > before {
            quiet += 1;
        }
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
