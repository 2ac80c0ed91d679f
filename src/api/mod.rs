//! The HTTP API (SPEC §5): the axum router and its shared state. One file
//! per resource; errors become responses in `error.rs`.
//!
//! - `points.rs`: `POST /api/v1/points`
//! - `objectives.rs`: `GET /api/v1/objectives`
//! - `alerts.rs`: `GET /api/v1/alerts`
//! - `connectors.rs`: `GET/POST /api/v1/connectors`, `GET/DELETE /api/v1/connectors/{name}`
//! - `key_results.rs`: `GET /api/v1/key-results[/{objective}/{kr}]`
//! - `dead_letters.rs`: `GET /api/v1/dead-letters`
//! - `status_page.rs`: the HTML status page at `/` (a pure renderer)
//! - this file: the router, `/metrics`, `/healthz`, `/readyz`, the page handler

mod alerts;
mod connectors;
mod dead_letters;
mod error;
mod key_results;
mod objectives;
mod points;
pub mod status_page;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::TimeDelta;

pub use error::ApiError;

use status_page::{KrView, ObjectiveView, StatusPage};

/// What every handler can reach.
pub type AppState = crate::live::Services;

/// The router. `max_body` bounds request bodies (413 beyond it).
pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/points", post(points::push))
        .route("/api/v1/objectives", get(objectives::list))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/dead-letters", get(dead_letters::list))
        .route(
            "/api/v1/connectors",
            get(connectors::list).post(connectors::register),
        )
        .route(
            "/api/v1/connectors/{name}",
            get(connectors::detail).delete(connectors::delete),
        )
        .route("/api/v1/key-results", get(key_results::list))
        .route(
            "/api/v1/key-results/{objective}/{kr}",
            get(key_results::detail),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Checks the bearer token for a write, when one is configured. The
/// comparison takes the same time wherever the strings differ.
pub(crate) fn require_token(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = app.live.config();
    let Some(token) = config.service.token.as_deref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret; the contents are compared in full.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(app): State<AppState>) -> Response {
    let text = app.metrics.render(&app.live.card());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn ready(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store did not answer within 2s\n",
        )
            .into_response(),
    }
}

async fn page(State(app): State<AppState>) -> Result<Html<String>, ApiError> {
    let config = app.live.config();
    let card = app.live.card();
    let now = app.clock.now();
    let mut objectives = Vec::with_capacity(config.objectives.len());
    for o in &config.objectives {
        let mut key_results = Vec::with_capacity(o.key_results.len());
        for kr in &o.key_results {
            let Some(row) = card
                .key_results
                .iter()
                .find(|r| r.objective == o.id && r.key_result == kr.id)
            else {
                continue;
            };
            let since = o.period.start - TimeDelta::microseconds(1);
            let history = app.store.score_history(&o.id, &kr.id, since, now).await?;
            key_results.push(KrView {
                id: kr.id.clone(),
                title: kr.title.clone(),
                status: row.detail.status,
                score: row.score,
                expected: row.expected,
                value: row.value,
                target: kr.target,
                updated_at: row.detail.newest_point,
                history: history.iter().map(|h| (h.at, h.score)).collect(),
                alerting: row.counters.iter().any(|c| c.firing()),
            });
        }
        objectives.push(ObjectiveView {
            id: o.id.clone(),
            statement: o.objective.clone(),
            team: o.team.clone(),
            period: o.period.label.clone(),
            score: card
                .objectives
                .iter()
                .find(|r| r.id == o.id)
                .map_or(0.0, |r| r.score),
            key_results,
        });
    }
    Ok(Html(status_page::render(&StatusPage {
        generated_at: now,
        objectives,
    })))
}
