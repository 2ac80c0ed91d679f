//! `okrd migrate`: apply database migrations.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::load_config;
use crate::store;

/// Applies pending migrations to the configured database.
pub async fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let url = &config.service.database_url;
    let applied = store::migrate(url).await.with_context(|| {
        format!(
            "while migrating the store at {}",
            crate::secrets::redact(url)
        )
    })?;
    if applied.is_empty() {
        println!("{url}: schema is up to date");
    } else {
        println!("{url}: applied {}", applied.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
