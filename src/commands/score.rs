//! `okrd score`: compute and print every key result's score.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::load_config;
use crate::clock::{Clock, SystemClock};
use crate::model::Timestamp;
use crate::scorecard::Scorecard;
use crate::scorer::score_all;
use crate::scoring::Margins;
use crate::store;

/// Output format of `okrd score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// The JSON document of SPEC §5.
    Json,
}

/// Scores at `at` (default: now) and prints a table or SPEC §5's JSON.
pub async fn run(
    config_path: Option<&Path>,
    at: Option<Timestamp>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let store = store::open(&config.service.database_url)
        .await
        .with_context(|| {
            format!(
                "while opening the store at {}",
                crate::secrets::redact(&config.service.database_url)
            )
        })?;
    let now = at.unwrap_or_else(|| SystemClock.now());
    let margins = Margins {
        at_risk: config.service.at_risk_margin,
        off_track: config.service.off_track_margin,
    };
    let card = score_all(store.as_ref(), &config, now, margins)
        .await
        .context("while reading points")?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&card)?),
        Format::Table => print!("{}", table(&card)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable form: objectives, then one line per key result.
pub fn table(card: &Scorecard) -> String {
    let mut rows = vec![["OBJECTIVE", "SCORE", "ROLLUP"].map(String::from).to_vec()];
    rows.extend(
        card.objectives
            .iter()
            .map(|o| vec![o.id.clone(), num(Some(o.score)), num(Some(o.rollup))]),
    );
    let mut out = columns(&rows);
    out.push('\n');
    let mut rows = vec![[
        "OBJECTIVE",
        "KEY RESULT",
        "VALUE",
        "BASELINE",
        "TARGET",
        "PROGRESS",
        "SCORE",
        "EXPECTED",
        "STATUS",
        "FORECAST",
        "P(TARGET)",
    ]
    .map(String::from)
    .to_vec()];
    rows.extend(card.key_results.iter().map(|k| {
        vec![
            k.objective.clone(),
            k.key_result.clone(),
            num(k.value),
            num(k.baseline),
            num(Some(k.target)),
            num(k.progress),
            num(Some(k.score)),
            num(Some(k.expected)),
            k.status.to_string(),
            num(k.forecast),
            num(k.forecast_probability),
        ]
    }));
    out.push_str(&columns(&rows));
    out
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) => {
            let s = format!("{x:.3}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".into()
            } else {
                s.to_string()
            }
        }
    }
}

fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
