//! Hot reload: an edit of the config, objective or connector files (noticed
//! by polling their modification times) or a SIGHUP loads the config again.
//! A valid config replaces the running one; an invalid one is logged with
//! all its errors and the previous config keeps running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, Env};
use crate::live::Live;

/// How often the files are checked for changes.
const POLL: Duration = Duration::from_secs(1);

/// Watches until `shutdown`.
pub async fn watch(
    config_path: Option<PathBuf>,
    env: Env,
    live: Arc<Live>,
    shutdown: CancellationToken,
) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file changes only");
            None
        }
    };
    let mut seen = fingerprint(config_path.as_deref(), &live.config());
    loop {
        let sighup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sighup => tracing::info!("SIGHUP: reloading the configuration"),
            _ = tokio::time::sleep(POLL) => {
                let now = fingerprint(config_path.as_deref(), &live.config());
                if now == seen {
                    continue;
                }
                tracing::info!("configuration files changed: reloading");
            }
        }
        seen = fingerprint(config_path.as_deref(), &live.config());
        reload(config_path.as_deref(), &env, &live);
    }
}

/// Loads the config again and applies it if valid. Returns whether it was applied.
pub fn reload(config_path: Option<&Path>, env: &Env, live: &Live) -> bool {
    match config::load(config_path, env) {
        Ok(new) => {
            let old = live.config();
            let (o, n) = (&old.service, &new.service);
            if o.database_url != n.database_url
                || o.listen != n.listen
                || o.objectives_dir != n.objectives_dir
                || o.connectors_dir != n.connectors_dir
            {
                tracing::warn!(
                    "database.url, http.listen and paths take effect at the next restart"
                );
            }
            // What needs a restart keeps its running value.
            let mut applied = new;
            applied.service.database_url = o.database_url.clone();
            applied.service.listen = o.listen;
            applied.service.objectives_dir = o.objectives_dir.clone();
            applied.service.connectors_dir = o.connectors_dir.clone();
            let krs: usize = applied.objectives.iter().map(|o| o.key_results.len()).sum();
            tracing::info!(
                objectives = applied.objectives.len(),
                key_results = krs,
                connectors = applied.connectors.len(),
                "configuration reloaded"
            );
            live.set_config(applied);
            true
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                tracing::error!("{d}");
            }
            tracing::error!(
                errors = diagnostics.len(),
                "configuration reload rejected; the previous configuration keeps running"
            );
            false
        }
    }
}

/// Names, sizes and modification times of every file the config reads.
fn fingerprint(
    config_path: Option<&Path>,
    running: &Config,
) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let main = config_path.map_or_else(
        || PathBuf::from(config::DEFAULT_CONFIG_PATH),
        Path::to_path_buf,
    );
    let mut files = vec![main];
    for dir in [
        &running.service.objectives_dir,
        &running.service.connectors_dir,
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            files.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect()
}
