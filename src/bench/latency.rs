//! End-to-end latency: a point pushed → the KR it feeds shows its value on
//! `/metrics`, measured while other clients push a steady background load
//! onto series that other KRs are bound to.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::Utc;
use serde::Serialize;

use super::child::Child;

/// Background batches per second; `background / BATCHES_PER_S` points each.
const BATCHES_PER_S: u64 = 20;

/// KRs bound to the background series, recomputed as it arrives.
pub const BACKGROUND_KRS: usize = 50;

/// Latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Probes sent.
    pub probes: usize,
    /// Background load, points per second.
    pub background_points_per_s: u64,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile, milliseconds (from 1,000 probes on, not the
    /// slowest).
    pub p999_ms: f64,
    /// Slowest, milliseconds.
    pub max_ms: f64,
}

/// The objective file of this phase: one probe KR, and
/// [`BACKGROUND_KRS`] KRs on the background series, in a period around
/// now.
pub fn objectives_yaml() -> String {
    let now = Utc::now().date_naive();
    let (start, end) = (now - chrono::Days::new(30), now + chrono::Days::new(60));
    let mut y = format!(
        "id: bench\nobjective: Measure okrd\nteam: bench\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n  \
         - {{ id: probe, title: Probe, metric: bench_probe, baseline: 0, target: 1000000000 }}\n"
    );
    for k in 0..BACKGROUND_KRS {
        let _ = writeln!(
            y,
            "  - {{ id: bg{k}, title: Background {k}, metric: bench_bg{}, labels: {{ shard: s{} }}, aggregate: avg, window: 1h, baseline: 0, target: 100 }}",
            k % 10,
            k / 10
        );
    }
    y
}

/// Sends `probes` probe points, one every 100 ms, under `background`
/// points/s, and returns the latency percentiles.
pub async fn measure(child: &Child, probes: usize, background: u64) -> anyhow::Result<Latency> {
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(background_load(
        child.client.clone(),
        format!("{}/api/v1/points", child.base),
        background,
        stop.clone(),
    ));
    // Let the load settle first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let result = probe(child, probes).await;
    stop.store(true, Ordering::Relaxed);
    load.await??;
    let mut ms = result?;
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Ok(Latency {
        probes,
        background_points_per_s: background,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: at(1.0),
    })
}

async fn probe(child: &Child, probes: usize) -> anyhow::Result<Vec<f64>> {
    let url = format!("{}/api/v1/points", child.base);
    let labels = [("objective", "bench"), ("key_result", "probe")];
    let mut out = Vec::with_capacity(probes);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for i in 1..=probes {
        tick.tick().await;
        let value = i as f64;
        let body = format!(
            r#"{{"points":[{{"metric":"bench_probe","ts":"{}","value":{value}}}]}}"#,
            Utc::now().to_rfc3339()
        );
        let sent = Instant::now();
        let r = child.client.post(&url).body(body).send().await?;
        if !r.status().is_success() {
            bail!("probe push answered {}", r.status());
        }
        loop {
            if child.sample("okrd_key_result_value", &labels).await? == value {
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                bail!("probe {i} did not reach /metrics in 30s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

async fn background_load(
    client: reqwest::Client,
    url: String,
    per_s: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let per_batch = (per_s / BATCHES_PER_S).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / BATCHES_PER_S));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let ts = Utc::now().timestamp_micros() as f64 / 1e6;
        let mut body = String::from(r#"{"points":["#);
        for j in 0..per_batch {
            if j > 0 {
                body.push(',');
            }
            // Unique timestamps per series: each point is new.
            let s = j % (BACKGROUND_KRS * 2);
            let _ = write!(
                body,
                r#"{{"metric":"bench_bg{}","labels":{{"shard":"s{}"}},"ts":{},"value":{}}}"#,
                s % 10,
                s / 10,
                ts + (j / (BACKGROUND_KRS * 2)) as f64 * 1e-5,
                (n + j as u64) % 100
            );
        }
        body.push_str("]}");
        let r = client.post(&url).body(body).send().await?;
        if !r.status().is_success() {
            bail!("background push answered {}", r.status());
        }
        n += per_batch as u64;
    }
    Ok(())
}
