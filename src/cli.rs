//! The command line: what `okrd` accepts, and which command runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::score::Format;

use crate::commands;

/// okrd scores OKR key results from real data, continuously.
#[derive(Debug, Parser)]
#[command(name = "okrd", version, about)]
pub struct Cli {
    /// The service config file [default: config/okrd.yaml, all defaults when absent].
    #[arg(long, global = true, env = "OKRD_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// okrd's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything: the HTTP API, continuous scoring, /metrics, connectors.
    Serve,
    /// Validate all YAML and lint the OKRs; errors exit 1, warnings exit 0.
    Check {
        /// Make lint warnings fail too.
        #[arg(long)]
        strict: bool,
    },
    /// Compute and print every key result's score.
    Score {
        /// Evaluate at this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_at)]
        at: Option<crate::model::Timestamp>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Backfill points from a CSV or JSON-lines file; a bad row rejects the file whole.
    Ingest {
        /// A `.csv` file (header: metric, ts, value, labels...) or `.jsonl` (one point a line).
        file: PathBuf,
    },
    /// Apply database migrations.
    Migrate,
    /// Compare this deployment's key results with BASE_DIR's (e.g. a
    /// checkout of main): changed fields, whether easier, and the score
    /// under both definitions from this deployment's store. Exits 0.
    Diff {
        /// The base deployment's directory.
        base_dir: PathBuf,
        /// Score at this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_at)]
        at: Option<crate::model::Timestamp>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Measure ingest throughput, end-to-end latency, recompute cost and
    /// memory on PostgreSQL and SQLite against PostgreSQL's binary COPY;
    /// prints a table and writes the figures as JSON.
    Bench {
        /// The PostgreSQL server (databases okrd_bench_* are created and dropped there).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        postgres: String,
        /// Kafka bootstrap servers [default: librdkafka's mock cluster].
        #[arg(long, env = "OKRD_TEST_KAFKA_BROKERS")]
        kafka_brokers: Option<String>,
        /// Stores to measure.
        #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
        stores: Vec<String>,
        /// Phases to run, e.g. `--phases recompute`.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "ingest,latency,recompute"
        )]
        phases: Vec<crate::bench::Phase>,
        /// Points in each ingest phase.
        #[arg(long, default_value_t = 1_000_000)]
        points: usize,
        /// Points per Kafka message.
        #[arg(long, default_value_t = 1)]
        per_message: usize,
        /// Key results (and series) in the recompute phase.
        #[arg(long, default_value_t = 10_000)]
        krs: usize,
        /// Latency probes (one every 100 ms): 1,000, so that p99.9 is not
        /// the slowest.
        #[arg(long, default_value_t = 1_000)]
        probes: usize,
        /// Background load during the latency probes, points/s.
        #[arg(long, default_value_t = 10_000)]
        background: u64,
        /// Where the JSON figures go.
        #[arg(long, default_value = "bench/results.json")]
        out: PathBuf,
    },
}

fn parse_at(text: &str) -> Result<crate::model::Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected RFC 3339, e.g. 2026-11-15T00:00:00Z ({e})"))
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            crate::app::cancel_on_signals(shutdown.clone());
            let env = crate::config::process_env();
            crate::app::serve(cli.config.clone(), env, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { strict } => commands::check::run(config, strict).await,
        Command::Score { at, format } => commands::score::run(config, at, format).await,
        Command::Ingest { file } => commands::ingest::run(config, &file).await,
        Command::Migrate => commands::migrate::run(config).await,
        Command::Diff {
            base_dir,
            at,
            format,
        } => commands::diff::run(config, &base_dir, at, format).await,
        Command::Bench {
            postgres,
            kafka_brokers,
            stores,
            phases,
            points,
            per_message,
            krs,
            probes,
            background,
            out,
        } => {
            let options = crate::bench::Options {
                postgres,
                kafka_brokers: kafka_brokers.filter(|b| !b.trim().is_empty()),
                stores,
                phases,
                points,
                per_message: per_message.max(1),
                krs,
                probes: probes.max(1),
                background,
                out,
            };
            crate::bench::run(options).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
