//! An HTTP request with timeouts and retries, shared by the `http` and
//! `prometheus` connectors.
//!
//! A run's timeout is its budget. Each attempt may take a third of it, so a
//! request that hangs is retried; an attempt that times out, cannot connect
//! or gets a 5xx is retried after 0.5 s, 1 s, 2 s (doubling, three retries
//! at most) while the budget lasts. A 4xx is the caller's mistake and is
//! never retried.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode};
use tokio::time::Instant;

use super::pull::{PullError, Run};

/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;

/// The wait before the first retry; it doubles for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The largest response body read; past it the run fails.
const MAX_BODY: usize = 64 << 20;

/// How much of an error body a message quotes.
const QUOTE: usize = 300;

/// The HTTP client connectors share the settings of; it trusts `ca` (a
/// connector's `ca_file`) instead of the built-in roots when given.
pub(super) fn client(ca: Option<&crate::tls::CaFile>) -> Client {
    crate::tls::http_client(ca)
        .user_agent(concat!("okrd/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with default TLS settings builds")
}

/// Sends the request `build` makes, retrying as described above, and returns
/// the final status and body: 2xx, or a 4xx for the caller to interpret.
pub(super) async fn send(
    build: impl Fn() -> RequestBuilder,
    target: &str,
    run: &Run,
) -> Result<(StatusCode, Vec<u8>), PullError> {
    let per_attempt = (run.timeout / 3).max(Duration::from_millis(100));
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let remaining = run.deadline.saturating_duration_since(Instant::now());
        let allowed = per_attempt.min(remaining);
        let error = match tokio::time::timeout(allowed, once(build(), target)).await {
            Err(_) => PullError::Timeout {
                target: target.to_string(),
                after: allowed,
            },
            Ok(Ok((status, body))) if status.is_server_error() => PullError::Status {
                target: target.to_string(),
                status: status.as_u16(),
                body: quote(&body),
            },
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => e,
        };
        if let PullError::BadResponse { .. } = error {
            return Err(error);
        }
        attempt += 1;
        if attempt > MAX_RETRIES || Instant::now() + backoff >= run.deadline {
            return Err(error);
        }
        tracing::debug!(target, attempt, error = %error, "retrying");
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

async fn once(request: RequestBuilder, target: &str) -> Result<(StatusCode, Vec<u8>), PullError> {
    let transport = |e: reqwest::Error| PullError::Unreachable {
        target: target.to_string(),
        message: crate::tls::error_chain(&e),
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(PullError::BadResponse {
                target: target.to_string(),
                message: format!("the response is larger than {} MiB", MAX_BODY >> 20),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// The start of a body, for an error message.
pub(super) fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(QUOTE) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}
