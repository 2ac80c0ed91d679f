//! `okrd ingest FILE`: backfill points from CSV or JSON lines.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::load_config;
use crate::ingest::{read_points_file, FileError};
use crate::store;

/// How many bad rows are printed before the rest are only counted.
const SHOWN_ROW_ERRORS: usize = 20;

/// Reads the whole file, rejecting it whole on any bad row, then writes all
/// points in one transaction.
pub async fn run(config_path: Option<&Path>, file: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let started = Instant::now();
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("reading");
    let read = read_points_file(file, &mut |bytes| bar.set_position(bytes));
    bar.finish_and_clear();
    let (points, series) = match read {
        Ok(r) => r,
        Err(FileError::Rows { path, rows }) => {
            for r in rows.iter().take(SHOWN_ROW_ERRORS) {
                eprintln!("{path}:{}: {}", r.line, r.reason);
            }
            if rows.len() > SHOWN_ROW_ERRORS {
                eprintln!(
                    "{path}: ... and {} more bad rows",
                    rows.len() - SHOWN_ROW_ERRORS
                );
            }
            eprintln!(
                "{path}: rejected: {} bad rows; nothing was written",
                rows.len()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };

    let store = store::open(&config.service.database_url)
        .await
        .with_context(|| {
            format!(
                "while opening the store at {}",
                crate::secrets::redact(&config.service.database_url)
            )
        })?;
    let bar = ProgressBar::new(points.len() as u64).with_style(
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} points ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("writing");
    let write_started = Instant::now();
    let progress = |n: usize| bar.set_position(n as u64);
    let stored = store
        .write_points(&points, &progress)
        .await
        .with_context(|| format!("while writing {}: nothing was written", file.display()))?;
    bar.finish_and_clear();
    let write_secs = write_started.elapsed().as_secs_f64();
    println!(
        "ingested {} points ({} distinct, {} series) from {} in {:.2}s; writing took {:.2}s ({:.0} points/s)",
        points.len(),
        stored,
        series,
        file.display(),
        started.elapsed().as_secs_f64(),
        write_secs,
        points.len() as f64 / write_secs.max(1e-9),
    );
    Ok(ExitCode::SUCCESS)
}
