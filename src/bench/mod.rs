//! `okrd bench`: one command that measures okrd against the database's own
//! limit, on PostgreSQL and on SQLite, and writes the figures to
//! `bench/results.json` so two runs can be compared. Never part of the
//! test suite.
//!
//! Every phase runs a real `okrd serve` child (this same binary) on a fresh
//! database, and reads okrd's own `/metrics`:
//!
//! - `dataset.rs`: the points the ingest phases send, as JSON and as COPY rows
//! - `postgres.rs`: fresh databases, and PostgreSQL's binary COPY reference
//! - `child.rs`: the `okrd serve` child: config, readiness, `/metrics`, peak RSS
//! - `ingest.rs`: HTTP push from 8 clients; a Kafka topic through a `kafka` connector;
//!   on PostgreSQL both in plaintext and over TLS (`verify-full`)
//! - `latency.rs`: point pushed → KR value on `/metrics`, under background load
//! - `recompute.rs`: 10,000 KRs over 10,000 series of 30 days of hourly points

mod child;
mod dataset;
mod ingest;
mod latency;
mod postgres;
mod recompute;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{ensure, Context as _};
use serde::Serialize;

use self::child::{Child, Setup};
use self::dataset::Dataset;
use self::ingest::{Broker, Rate};
use self::latency::Latency;
use self::recompute::Recompute;

/// Series of the ingest data set.
const SERIES: usize = 1_000;

/// Points per push request, and concurrent push clients.
const PUSH_BATCH: usize = 1_000;
const PUSH_CLIENTS: usize = 8;

/// Kafka topic layout: enough partitions that the mock cluster's
/// per-partition retention (about 5 MB) keeps 1,000,000 one-point messages.
const PARTITIONS: i32 = 24;

/// What `okrd bench` measures, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Admin URL of the PostgreSQL server (databases `okrd_bench_*` are
    /// created and dropped there).
    pub postgres: String,
    /// Kafka bootstrap servers; librdkafka's mock cluster when `None`.
    pub kafka_brokers: Option<String>,
    /// The stores to measure: `postgres`, `sqlite`.
    pub stores: Vec<String>,
    /// The phases to run: `ingest` (HTTP push and Kafka, with COPY as
    /// reference), `latency`, `recompute`.
    pub phases: Vec<Phase>,
    /// Points in each ingest phase.
    pub points: usize,
    /// Points per Kafka message.
    pub per_message: usize,
    /// KRs (and series) of the recompute phase.
    pub krs: usize,
    /// Latency probes.
    pub probes: usize,
    /// Background load of the latency phase, points/s.
    pub background: u64,
    /// Where the JSON goes.
    pub out: PathBuf,
}

/// A part of the bench that can be run alone (`--phases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// HTTP push and Kafka into each store, against PostgreSQL's COPY.
    Ingest,
    /// Point pushed → KR value on `/metrics`, under background load.
    Latency,
    /// 10,000 KRs: cold start, full and incremental recomputes, and the
    /// full one with `test: welch` beside the threshold rule.
    Recompute,
}

/// Everything one run measured, as `bench/results.json` holds it.
#[derive(Debug, Serialize)]
pub struct Results {
    /// When the run started (RFC 3339).
    pub started: String,
    /// The machine.
    pub machine: Machine,
    /// Points in each ingest phase, and their series.
    pub points: usize,
    pub series: usize,
    /// PostgreSQL's binary COPY of the same rows into `points`, rows/s
    /// (with the ingest phases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_rows_per_s: Option<f64>,
    /// Per store.
    pub stores: Vec<StoreResults>,
}

/// Where the figures came from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub postgres: String,
    pub kafka: String,
    pub okrd: String,
}

/// One store's figures.
#[derive(Debug, Serialize)]
pub struct StoreResults {
    pub store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_push: Option<Ingest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Ingest>,
    /// The same phases with okrd's connections to PostgreSQL over TLS
    /// (the plaintext ones use `sslmode=disable`); PostgreSQL only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_push_tls: Option<Ingest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_tls: Option<Ingest>,
    /// Kafka → store with two `okrd serve` in one consumer group, the
    /// points/s of both together; PostgreSQL only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_two_instances: Option<Ingest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recompute: Option<Recompute>,
    /// The largest peak RSS of the okrd processes of all phases, MB.
    pub peak_rss_mb: f64,
}

/// An ingest phase's figures.
#[derive(Debug, Serialize)]
pub struct Ingest {
    #[serde(flatten)]
    pub rate: Rate,
    /// points/s ÷ PostgreSQL's binary COPY rows/s.
    pub ratio_to_copy: f64,
    /// Peak RSS of the okrd process, MB.
    pub peak_rss_mb: f64,
}

/// Runs every phase, prints the table and writes the JSON.
pub async fn run(options: Options) -> anyhow::Result<Results> {
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let root = std::env::temp_dir().join(format!("okrd-bench-{}", std::process::id()));
    let results = run_in(&options, &root, started)
        .await
        .with_context(|| format!("the okrd logs are kept in {}", root.display()))?;
    let _ = std::fs::remove_dir_all(&root);
    println!("{}", table(&results));
    if let Some(parent) = options.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&options.out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", options.out.display()))?;
    println!("written to {}", options.out.display());
    Ok(results)
}

async fn run_in(options: &Options, root: &Path, started: String) -> anyhow::Result<Results> {
    let pg = postgres::Server::new(&options.postgres);
    let dataset = Dataset {
        points: options.points,
        series: SERIES,
    };
    let broker = Broker::start(options.kafka_brokers.as_deref())?;
    let machine = machine(&options.postgres, &broker).await?;
    eprintln!(
        "okrd bench: {} CPUs ({}), PostgreSQL {}, Kafka: {}",
        machine.cpus, machine.cpu, machine.postgres, machine.kafka
    );

    let run = |p: Phase| options.phases.contains(&p);
    let copy = if run(Phase::Ingest) {
        eprintln!(
            "reference: PostgreSQL binary COPY of {} rows",
            dataset.points
        );
        let url = pg.fresh("copy").await?;
        let copy = postgres::copy_rate(&url, &dataset).await?;
        pg.drop("copy").await?;
        eprintln!("  {copy:.0} rows/s");
        Some(copy)
    } else {
        None
    };

    let bodies = Arc::new(if run(Phase::Ingest) {
        dataset.push_bodies(PUSH_BATCH)
    } else {
        Vec::new()
    });
    let mut stores = Vec::new();
    for store in &options.stores {
        let dir = root.join(store);
        let mut phase = Stage {
            store,
            dir: &dir,
            pg: &pg,
            tls: false,
        };
        let mut results = StoreResults {
            store: store.clone(),
            http_push: None,
            kafka: None,
            http_push_tls: None,
            kafka_tls: None,
            kafka_two_instances: None,
            latency: None,
            recompute: None,
            peak_rss_mb: 0.0,
        };
        let mut peaks = Vec::new();
        if let Some(copy) = copy {
            let (http_push, kafka) = phase
                .ingest(&dataset, &bodies, &broker, options.per_message, copy)
                .await?;
            peaks.extend([http_push.peak_rss_mb, kafka.peak_rss_mb]);
            results.http_push = Some(http_push);
            results.kafka = Some(kafka);
            if *store == "postgres" {
                phase.tls = true;
                let tls = phase
                    .ingest(&dataset, &bodies, &broker, options.per_message, copy)
                    .await;
                phase.tls = false;
                match tls {
                    Ok((push, kafka)) => {
                        peaks.extend([push.peak_rss_mb, kafka.peak_rss_mb]);
                        results.http_push_tls = Some(push);
                        results.kafka_tls = Some(kafka);
                    }
                    Err(e) if e.to_string().contains(NO_TLS) => {
                        eprintln!("{store}: {NO_TLS}: no TLS phases");
                    }
                    Err(e) => return Err(e),
                }
                eprintln!(
                    "{store}: Kafka, two instances in one consumer group, {PARTITIONS} partitions"
                );
                let (rate, rss) = phase
                    .kafka(&dataset, &broker, options.per_message, 2)
                    .await?;
                eprintln!("  {:.0} points/s", rate.points_per_s);
                peaks.push(rss);
                results.kafka_two_instances = Some(ingest(rate, rss, copy));
            }
        }

        if run(Phase::Latency) {
            eprintln!(
                "{store}: latency, {} probes under {} points/s",
                options.probes, options.background
            );
            let (latency, latency_rss) = phase.latency(options.probes, options.background).await?;
            eprintln!(
                "  p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
                latency.p50_ms, latency.p99_ms, latency.p999_ms
            );
            peaks.push(latency_rss);
            results.latency = Some(latency);
        }

        if run(Phase::Recompute) {
            eprintln!("{store}: recompute, {} KRs", options.krs);
            let (recompute, recompute_rss) = phase.recompute(options.krs).await?;
            eprintln!(
                "  full {:.3} s, incremental {:.1} ms; in turn, threshold {:.3} s, test: welch {:.3} s ({:.2}×)",
                recompute.full_s,
                recompute.incremental_ms,
                recompute.full_beside_welch_s,
                recompute.full_welch_s,
                recompute.welch_ratio
            );
            peaks.push(recompute_rss);
            results.recompute = Some(recompute);
        }
        results.peak_rss_mb = peaks.into_iter().fold(0.0, f64::max);
        stores.push(results);
    }
    Ok(Results {
        started,
        machine,
        points: dataset.points,
        series: dataset.series,
        copy_rows_per_s: copy,
        stores,
    })
}

fn ingest(rate: Rate, rss: f64, copy: f64) -> Ingest {
    Ingest {
        ratio_to_copy: rate.points_per_s / copy,
        rate,
        peak_rss_mb: rss,
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Why the TLS phases are left out.
const NO_TLS: &str = "the PostgreSQL server has TLS off";

/// One store's phases, each on a fresh database and a fresh child.
struct Stage<'a> {
    store: &'a str,
    dir: &'a Path,
    pg: &'a postgres::Server,
    /// Whether okrd reaches PostgreSQL over TLS.
    tls: bool,
}

impl Stage<'_> {
    /// The two ingest phases, HTTP push then Kafka.
    async fn ingest(
        &self,
        dataset: &Dataset,
        bodies: &Arc<Vec<String>>,
        broker: &Broker,
        per_message: usize,
        copy: f64,
    ) -> anyhow::Result<(Ingest, Ingest)> {
        let store = self.store;
        let over = if self.tls { " (over TLS)" } else { "" };
        eprintln!("{store}{over}: HTTP push, {PUSH_CLIENTS} clients × {PUSH_BATCH}-point batches");
        let (rate, rss) = self.http_push(dataset, bodies.clone()).await?;
        eprintln!("  {:.0} points/s", rate.points_per_s);
        let http_push = ingest(rate, rss, copy);
        eprintln!(
            "{store}{over}: Kafka, {per_message} point(s) a message, {PARTITIONS} partitions"
        );
        let (rate, rss) = self.kafka(dataset, broker, per_message, 1).await?;
        eprintln!("  {:.0} points/s", rate.points_per_s);
        Ok((http_push, ingest(rate, rss, copy)))
    }

    /// A fresh database for phase `name`, and the child's directory.
    async fn fresh(&self, name: &str) -> anyhow::Result<(String, PathBuf)> {
        let dir = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let url = match self.store {
            "postgres" if self.tls => {
                let url = self.pg.fresh(name).await?;
                self.pg.tls(&url).await?.context(NO_TLS)?
            }
            "postgres" => self.pg.fresh(name).await?,
            "sqlite" => format!("sqlite://{}", dir.join("okrd.db").display()),
            other => anyhow::bail!("unknown store {other:?}: postgres or sqlite"),
        };
        Ok((url, dir))
    }

    async fn done(&self, name: &str) -> anyhow::Result<()> {
        if self.store == "postgres" {
            self.pg.drop(name).await?;
        }
        Ok(())
    }

    async fn http_push(
        &self,
        dataset: &Dataset,
        bodies: Arc<Vec<String>>,
    ) -> anyhow::Result<(Rate, f64)> {
        let (url, dir) = self.fresh("push").await?;
        let child = Child::start(&setup(&dir, &url, "30s", &[])).await?;
        let rate = ingest::http_push(&child, bodies, dataset.points, PUSH_CLIENTS).await?;
        let rss = child.stop().await?;
        stored_exactly(&url, dataset.points).await?;
        self.done("push").await?;
        Ok((rate, mb(rss)))
    }

    async fn kafka(
        &self,
        dataset: &Dataset,
        broker: &Broker,
        per_message: usize,
        instances: usize,
    ) -> anyhow::Result<(Rate, f64)> {
        let (url, dir) = self.fresh("kafka").await?;
        let topic = format!(
            "okrd-bench-{}-{}{}-{instances}",
            std::process::id(),
            self.store,
            if self.tls { "-tls" } else { "" }
        );
        broker
            .fill(&topic, PARTITIONS, dataset, per_message)
            .await?;
        let mut children = Vec::with_capacity(instances);
        for i in 0..instances {
            // One directory each (its config and log), one group for all.
            let dir = dir.join(format!("i{i}"));
            std::fs::create_dir_all(&dir)?;
            ingest::kafka_connector(&dir, "bench-kafka", &broker.brokers, &topic)?;
            children.push(Child::start(&setup(&dir, &url, "30s", &[])).await?);
        }
        let refs: Vec<&Child> = children.iter().collect();
        let rate = ingest::kafka_drain(&refs, "bench-kafka", dataset.points).await?;
        let mut rss: f64 = 0.0;
        for child in children {
            rss = rss.max(mb(child.stop().await?));
        }
        stored_exactly(&url, dataset.points).await?;
        self.done("kafka").await?;
        Ok((rate, rss))
    }

    async fn latency(&self, probes: usize, background: u64) -> anyhow::Result<(Latency, f64)> {
        let (url, dir) = self.fresh("latency").await?;
        std::fs::create_dir_all(dir.join("objectives"))?;
        std::fs::write(
            dir.join("objectives/bench.yaml"),
            latency::objectives_yaml(),
        )?;
        let child = Child::start(&setup(&dir, &url, "30s", &["bench:".to_string()])).await?;
        let latency = latency::measure(&child, probes, background).await?;
        let rss = child.stop().await?;
        self.done("latency").await?;
        Ok((latency, mb(rss)))
    }

    /// The threshold rule's child; then, beside it on a copy of its
    /// database, a child whose every counter metric is judged by Welch's
    /// test, and full recomputes of the two in turn.
    async fn recompute(&self, krs: usize) -> anyhow::Result<(Recompute, f64)> {
        let (url, dir) = self.fresh("recompute").await?;
        let points = recompute::load(&url, krs).await?;
        let teams = recompute::objectives(&dir, krs, recompute::Test::Threshold)?;
        let threshold = Child::start(&setup(&dir, &url, "1h", &teams)).await?;
        let mut figures = recompute::measure(&threshold, krs, points).await?;
        // A database of its own, with the same points: on a shared one the
        // two children would decide the same alerts differently, and each
        // recompute of one would be followed by the other's transitions.
        let (welch_url, welch_dir) = self.fresh("recompute_welch").await?;
        recompute::load(&welch_url, krs).await?;
        let teams = recompute::objectives(&welch_dir, krs, recompute::Test::Welch)?;
        let welch = Child::start(&setup(&welch_dir, &welch_url, "1h", &teams)).await?;
        let (t, w) = recompute::beside(&threshold, &welch).await?;
        figures.full_beside_welch_s = t;
        figures.full_welch_s = w;
        figures.welch_ratio = w / t;
        let rss = threshold.stop().await?.max(welch.stop().await?);
        self.done("recompute").await?;
        self.done("recompute_welch").await?;
        Ok((figures, mb(rss)))
    }
}

fn setup<'a>(dir: &'a Path, url: &'a str, interval: &'a str, teams: &'a [String]) -> Setup<'a> {
    Setup {
        dir,
        database_url: url,
        scoring_interval: interval,
        teams,
    }
}

async fn stored_exactly(url: &str, points: usize) -> anyhow::Result<()> {
    let n = postgres::count_points(url).await?;
    ensure!(n == points as i64, "{n} points stored, {points} sent");
    Ok(())
}

async fn machine(postgres: &str, broker: &Broker) -> anyhow::Result<Machine> {
    use sqlx::Connection;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let mut conn = sqlx::PgConnection::connect(postgres)
        .await
        .with_context(|| format!("connecting to {postgres}"))?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        memory_gib: (memory_gib * 10.0).round() / 10.0,
        postgres: version,
        kafka: if broker.is_mock() {
            format!(
                "librdkafka mock cluster ({})",
                rdkafka::util::get_rdkafka_version().1
            )
        } else {
            broker.brokers.clone()
        },
        okrd: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// The figures as a table, a column per store.
pub fn table(r: &Results) -> String {
    let mut rows: Vec<(String, Vec<String>)> = vec![(
        "".into(),
        r.stores.iter().map(|s| s.store.clone()).collect(),
    )];
    let mut row = |name: &str, f: &dyn Fn(&StoreResults) -> String| {
        rows.push((name.to_string(), r.stores.iter().map(f).collect()));
    };
    let rate = |i: &Ingest| {
        format!(
            "{} pts/s ({:.2}× COPY)",
            thousands(i.rate.points_per_s),
            i.ratio_to_copy
        )
    };
    let or_dash = |i: &Option<Ingest>| i.as_ref().map_or("-".to_string(), rate);
    row("HTTP push, 8 clients × 1,000", &|s| or_dash(&s.http_push));
    row("Kafka → store", &|s| or_dash(&s.kafka));
    row("HTTP push, store over TLS", &|s| or_dash(&s.http_push_tls));
    row("Kafka → store over TLS", &|s| or_dash(&s.kafka_tls));
    row("Kafka → store, 2 instances", &|s| {
        or_dash(&s.kafka_two_instances)
    });
    row("end-to-end p50 / p99 / p99.9", &|s| {
        s.latency.as_ref().map_or("-".into(), |l| {
            format!("{:.0} / {:.0} / {:.0} ms", l.p50_ms, l.p99_ms, l.p999_ms)
        })
    });
    let recompute = |s: &StoreResults, f: &dyn Fn(&Recompute) -> String| {
        s.recompute.as_ref().map_or("-".into(), f)
    };
    row("full recompute", &|s| {
        recompute(s, &|r| {
            format!("{:.2} s ({} KRs)", r.full_s, thousands(r.krs as f64))
        })
    });
    row("full recompute in turn, threshold / welch", &|s| {
        recompute(s, &|r| {
            format!(
                "{:.2} / {:.2} s ({:.2}×)",
                r.full_beside_welch_s, r.full_welch_s, r.welch_ratio
            )
        })
    });
    row("incremental (one point)", &|s| {
        recompute(s, &|r| format!("{:.1} ms", r.incremental_ms))
    });
    row("cold start: first scorecard", &|s| {
        recompute(s, &|r| format!("{:.2} s", r.first_scorecard_s))
    });
    row("cold start: full history", &|s| {
        recompute(s, &|r| format!("{:.1} s", r.full_history_s))
    });
    row("status page: first view", &|s| {
        recompute(s, &|r| {
            format!(
                "{:.0} KB, {:.0} ms",
                r.page_first_view_kb, r.page_first_view_ms
            )
        })
    });
    row("status page: a team's page", &|s| {
        recompute(s, &|r| format!("{:.0} ms", r.page_team_ms))
    });
    row("peak RSS", &|s| format!("{:.0} MB", s.peak_rss_mb));
    let w0 = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let w: Vec<usize> = (0..r.stores.len())
        .map(|i| {
            rows.iter()
                .map(|(_, c)| c[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "okrd bench, {}: {} CPUs ({}), {:.0} GiB, PostgreSQL {}, Kafka: {}\n\
         {} points over {} series; PostgreSQL binary COPY into points: {} rows/s\n\n",
        r.started,
        r.machine.cpus,
        r.machine.cpu,
        r.machine.memory_gib,
        r.machine.postgres,
        r.machine.kafka,
        thousands(r.points as f64),
        thousands(r.series as f64),
        r.copy_rows_per_s.map_or("-".into(), thousands)
    );
    for (name, cells) in &rows {
        out.push_str(&format!("{name:<w0$}"));
        for (c, w) in cells.iter().zip(&w) {
            out.push_str(&format!("  {c:>w$}"));
        }
        out.push('\n');
    }
    out
}

/// `1234567.8` → `1,234,568`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }
}
