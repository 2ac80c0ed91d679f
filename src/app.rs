//! `okrd serve`: start everything, run until shutdown, stop cleanly.
//!
//! Start: load the config, open (and migrate) the store, bind the listener.
//! Run: the HTTP API, the scorer, the reloader and the connectors, each a
//! task sharing [`Live`]. Stop (SIGTERM/SIGINT, or the `shutdown` token):
//! stop accepting connections, give the requests in flight
//! `http.shutdown_timeout` to finish and drop the rest (a pushed point is
//! acknowledged only once written, so nothing acknowledged is lost), then
//! stop the tasks and close the store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Env};
use crate::connectors::runner;
use crate::live::{Live, Services};
use crate::metrics::Metrics;
use crate::{reload, scorer, store};

/// Runs okrd until `shutdown` is cancelled.
pub async fn serve(
    config_path: Option<PathBuf>,
    env: Env,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = config::load(config_path.as_deref(), &env).map_err(|diagnostics| {
        let list: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid configuration:\n{}", list.join("\n"))
    })?;
    let url = config.service.database_url.clone();
    let store = store::open(&url).await.with_context(|| {
        format!(
            "while opening the store at {}",
            crate::secrets::redact(&url)
        )
    })?;
    let listener = tokio::net::TcpListener::bind(config.service.listen)
        .await
        .with_context(|| format!("while binding http.listen {}", config.service.listen))?;
    let addr = listener.local_addr()?;
    let max_body = config.service.max_body;
    let limits = config.service.limits.clone();
    let live = Arc::new(Live::new(config));
    let metrics = Arc::new(Metrics::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    // Taken before the first scorecard's reads: what another process writes
    // from here on reaches the scorer through the feed.
    let cursor = store
        .feed_cursor()
        .await
        .context("while reading the change feed's position")?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(scorer::run(
        live.clone(),
        store.clone(),
        clock.clone(),
        metrics.clone(),
        crate::feed::Follower::new(cursor),
        shutdown.clone(),
    ));
    tasks.spawn(reload::watch(
        config_path,
        env,
        live.clone(),
        shutdown.clone(),
    ));
    let ctx = Services::new(live, store, metrics, clock);
    let state = ctx.clone();
    tasks.spawn(crate::connectors::scheduler::run(
        ctx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::alerts::run(ctx.clone(), shutdown.clone()));
    tasks.spawn(crate::alerts::outbox::run(
        ctx.clone(),
        ctx.live.outbox_signal(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::alerts::outbox::refresh_alertmanager(
        ctx.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(supervise_connectors(ctx, shutdown.clone()));

    tracing::info!("listening on http://{addr}");
    api::server::serve(
        listener,
        api::router(state, max_body, &limits),
        &limits,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Runs the config's connectors, restarting them when a reload changes them.
async fn supervise_connectors(ctx: Services, shutdown: CancellationToken) {
    let mut configs = ctx.live.watch_config();
    loop {
        let connectors = configs.borrow_and_update().connectors.clone();
        let generation = shutdown.child_token();
        let task = tokio::spawn(runner::run_all(
            ctx.clone(),
            connectors.clone(),
            generation.clone(),
        ));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = task.await;
                    return;
                }
                changed = configs.changed() => {
                    if changed.is_err() {
                        let _ = task.await;
                        return;
                    }
                    if configs.borrow_and_update().connectors != connectors {
                        break;
                    }
                }
            }
        }
        generation.cancel();
        let _ = task.await;
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        token.cancel();
    });
}
