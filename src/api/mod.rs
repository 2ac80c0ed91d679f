//! The HTTP API (SPEC §5): the axum router and its shared state. One file
//! per resource; errors become responses in `error.rs`.
//!
//! - `points.rs`: `POST /api/v1/points`
//! - `objectives.rs`: `GET /api/v1/objectives`
//! - `alignment.rs`: `GET /api/v1/alignment`
//! - `alerts.rs`: `GET /api/v1/alerts`
//! - `connectors.rs`: `GET/POST /api/v1/connectors`, `GET/DELETE /api/v1/connectors/{name}`
//! - `key_results.rs`: `GET /api/v1/key-results[/{objective}/{kr}]`
//! - `revisions.rs`: a KR's revisions and latest check-in in its read API
//! - `check_ins.rs`: `GET/POST /api/v1/key-results/{objective}/{kr}/check-ins`
//! - `dead_letters.rs`: `GET /api/v1/dead-letters`
//! - `pages.rs`: the HTML pages' handlers: `/` and `/key-results/{objective}/{kr}`
//! - `status_page.rs`: the status page at `/` (a pure renderer)
//! - `kr_page.rs`: a key result's page (a pure renderer)
//! - `guard.rs`: the token, the byte budget and JSON errors, before any body
//! - `server.rs`: the accept loop: connection cap, timeouts, shutdown deadline
//! - this file: the router, `/metrics`, `/healthz`, `/readyz`

mod alerts;
mod alignment;
mod check_ins;
mod connectors;
mod dead_letters;
mod error;
pub mod guard;
mod key_results;
pub mod kr_page;
mod objectives;
mod pages;
mod points;
mod revisions;
pub mod server;
pub mod status_page;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

use crate::config::service::HttpLimits;
use crate::live::Services;
use guard::Gate;

/// The router. Bodies over `max_body` get 413 (at once when declared);
/// `limits` bound the bytes buffered across requests and each request's
/// time. Writes, connector definitions and dead letters need the token
/// when one is set ([`guard`]); every error is JSON.
pub fn router(state: Services, max_body: usize, limits: &HttpLimits) -> Router {
    let gate = Gate::new(state.clone(), limits.max_buffered, max_body);
    let token = from_fn_with_state(gate.clone(), guard::token_if_set);
    let operator = from_fn_with_state(gate, guard::operator);
    Router::new()
        .route("/", get(pages::overview))
        .route("/key-results/{objective}/{kr}", get(pages::key_result))
        .route("/api/v1/points", post(points::push.layer(token.clone())))
        .route("/api/v1/objectives", get(objectives::list))
        .route("/api/v1/alignment", get(alignment::show))
        .route("/api/v1/alerts", get(alerts::list))
        .route(
            "/api/v1/dead-letters",
            get(dead_letters::list.layer(token.clone())),
        )
        .route(
            "/api/v1/connectors",
            get(connectors::list.layer(token.clone()))
                .post(connectors::register.layer(operator.clone())),
        )
        .route(
            "/api/v1/connectors/{name}",
            get(connectors::detail.layer(token.clone())).delete(connectors::delete.layer(operator)),
        )
        .route("/api/v1/key-results", get(key_results::list))
        .route(
            "/api/v1/key-results/{objective}/{kr}",
            get(key_results::detail),
        )
        .route(
            "/api/v1/key-results/{objective}/{kr}/check-ins",
            get(check_ins::list).post(check_ins::add.layer(token.clone())),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(from_fn(guard::json_errors))
        .with_state(state)
}

async fn metrics(State(app): State<Services>) -> Response {
    // Check-ins are not in the scorecard (never part of the score): their
    // latest confidence is read at scrape time, so every instance agrees.
    let confidences = match app.store.latest_check_ins().await {
        Ok(list) => list
            .into_iter()
            .map(|c| ((c.objective, c.key_result), c.confidence))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the latest check-ins for /metrics failed");
            Default::default()
        }
    };
    // Streamed a chunk at a time: a scrape holds one chunk of text.
    let body = Body::from_stream(app.metrics.exposition(app.live.card(), confidences));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// 200 while the store answers; 503 otherwise, the cause only in the log.
async fn ready(State(app): State<Services>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) if app.live.is_scored() => (StatusCode::OK, "ready\n").into_response(),
        Ok(Ok(())) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the first scorecard is not published yet",
        )
        .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the store is unavailable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
                .into_response()
        }
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store did not answer within 2s",
        )
        .into_response(),
    }
}
