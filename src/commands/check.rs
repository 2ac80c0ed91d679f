//! `okrd check`: validate every YAML file and lint the OKRs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{config_file_name, plural};
use crate::clock::Clock;
use crate::config::{self, lint, Diagnostic, Severity};
use crate::store;

/// Prints every error and warning; exit 1 on errors (or warnings with `strict`).
pub async fn run(config_path: Option<&Path>, strict: bool) -> anyhow::Result<ExitCode> {
    let file = config_file_name(config_path);
    let config = match config::load(config_path, &config::process_env()) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                println!("{d}");
            }
            let errors = diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            println!("check failed: {}", plural(errors, "error"));
            return Ok(ExitCode::FAILURE);
        }
    };
    let (metrics, store_problem) = match stored_metrics(&config.service.database_url).await {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    let now = crate::clock::SystemClock.now();
    let mut warnings = lint::lint(&config, &file, metrics.as_ref(), now);
    if let Some(e) = store_problem {
        warnings.push(Diagnostic {
            severity: Severity::Warning,
            file: file.clone(),
            span: Default::default(),
            path: "database.url".into(),
            message: format!(
                "cannot read the store ({e}): metrics were checked against connectors only"
            ),
        });
    }
    for w in &warnings {
        println!("{w}");
    }
    let krs: usize = config.objectives.iter().map(|o| o.key_results.len()).sum();
    println!(
        "config ok: {}, {}, {}; {}",
        plural(config.objectives.len(), "objective"),
        plural(krs, "key result"),
        plural(config.connectors.len(), "connector"),
        plural(warnings.len(), "warning"),
    );
    Ok(if strict && !warnings.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Metrics with stored points. A SQLite file that does not exist yet holds
/// none, and `check` does not create it.
async fn stored_metrics(url: &str) -> Result<BTreeSet<String>, store::StoreError> {
    if let Some(path) = sqlite_file(url) {
        if !path.exists() {
            return Ok(BTreeSet::new());
        }
    }
    store::open(url).await?.metrics_with_points().await
}

fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}
