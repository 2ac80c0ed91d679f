//! One file per CLI command; each returns the process exit code.

pub mod check;
pub mod diff;
pub mod ingest;
pub mod migrate;
pub mod score;

use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config, DEFAULT_CONFIG_PATH};

/// Loads the config, or prints every error to stderr and yields exit code 1.
pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    config::load(path, &config::process_env()).map_err(|diags| {
        for d in &diags {
            eprintln!("{d}");
        }
        eprintln!(
            "{} (run `okrd check` for details)",
            plural(diags.len(), "config error")
        );
        ExitCode::FAILURE
    })
}

/// The config file name as messages print it.
pub(crate) fn config_file_name(path: Option<&Path>) -> String {
    path.map_or_else(
        || DEFAULT_CONFIG_PATH.to_string(),
        |p| p.display().to_string(),
    )
}

/// `1 error`, `2 errors`.
pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
