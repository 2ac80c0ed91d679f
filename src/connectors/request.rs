//! An HTTP request with timeouts and retries, shared by the `http` and
//! `prometheus` connectors.
//!
//! A run's timeout is its budget. Each attempt may take a third of it, so a
//! request that hangs is retried; an attempt that times out, cannot connect
//! or gets a 5xx is retried after 0.5 s, 1 s, 2 s (doubling, three retries
//! at most) while the budget lasts. A 4xx is the caller's mistake and is
//! never retried.
//!
//! An upstream answer is described by its status, content type and length
//! ([`Answer::describe`]); its body is never quoted in an error, so no
//! upstream content reaches a log line or `GET /api/v1/connectors`.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, RequestBuilder, StatusCode};
use tokio::time::Instant;

use super::guard::Guard;
use super::pull::{PullError, Run};
use crate::backoff::Backoff;

/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;

/// The wait before the first retry; it doubles for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The largest response body read; past it the run fails.
const MAX_BODY: usize = 64 << 20;

/// An HTTP answer.
#[derive(Debug)]
pub(super) struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer as an error message shows it: content type and length.
    pub fn describe(&self) -> String {
        describe(self.content_type.as_deref(), self.body.len())
    }
}

/// A body as an error message shows it: content type and length, never
/// its content.
pub(super) fn describe(content_type: Option<&str>, len: usize) -> String {
    let kind: String = content_type
        .unwrap_or("no content type")
        .chars()
        .take(100)
        .filter(|c| !c.is_control())
        .collect();
    format!("{kind}, {len} bytes")
}

/// The HTTP client of one connector. With a [`Guard`] (a connector
/// registered over the API) it resolves names through the guard, follows
/// no redirects and uses no proxy; `port` is the port its URL names. With
/// `ca` (the connector's `ca_file`) it trusts that CA instead of the
/// built-in roots.
pub(super) fn client(guard: Option<&Guard>, port: u16, ca: Option<&crate::tls::CaFile>) -> Client {
    let builder =
        crate::tls::http_client(ca).user_agent(concat!("okrd/", env!("CARGO_PKG_VERSION")));
    let builder = match guard {
        None => builder,
        Some(g) => builder
            .dns_resolver(g.resolver(port))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy(),
    };
    builder
        .build()
        .expect("a client builds: a ca_file's certificates parsed when it was loaded")
}

/// The port of `url`, for [`client`].
pub(super) fn port_of(url: &str) -> u16 {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(80)
}

/// Sends the request `build` makes, retrying as described above, and returns
/// the final answer for the caller to interpret: 2xx, 4xx, or a 5xx once
/// the retries are spent. With a
/// guard, a URL whose host is a refused address is not sent.
pub(super) async fn send(
    build: impl Fn() -> RequestBuilder,
    guard: Option<&Guard>,
    target: &str,
    run: &Run,
) -> Result<Answer, PullError> {
    if let Some(guard) = guard {
        let request = build().build().map_err(|e| PullError::BadResponse {
            target: target.to_string(),
            message: format!(
                "cannot build the request: {}",
                crate::telemetry::error_chain(&e.without_url())
            ),
        })?;
        guard
            .check_url(request.url())
            .map_err(|message| PullError::Unreachable {
                target: target.to_string(),
                message,
            })?;
    }
    let per_attempt = (run.timeout / 3).max(Duration::from_millis(100));
    let mut backoff = Backoff::new(FIRST_BACKOFF, run.timeout.max(FIRST_BACKOFF));
    let mut attempt = 0;
    loop {
        let remaining = run.deadline.saturating_duration_since(Instant::now());
        let allowed = per_attempt.min(remaining);
        let (error, answer) = match tokio::time::timeout(allowed, once(build(), target)).await {
            Err(_) => (
                PullError::Timeout {
                    target: target.to_string(),
                    after: allowed,
                },
                None,
            ),
            Ok(Ok(answer)) if answer.status.is_server_error() => (
                PullError::Status {
                    target: target.to_string(),
                    status: answer.status.as_u16(),
                    body: answer.describe(),
                },
                Some(answer),
            ),
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => (e, None),
        };
        if let PullError::BadResponse { .. } = error {
            return Err(error);
        }
        attempt += 1;
        let wait = backoff.next_delay();
        if attempt > MAX_RETRIES || Instant::now() + wait >= run.deadline {
            // A 5xx, once retries are spent, is the caller's to read (a
            // Prometheus error comes in one).
            return answer.ok_or(error);
        }
        tracing::debug!(target, attempt, error = %error, "retrying");
        tokio::time::sleep(wait).await;
    }
}

async fn once(request: RequestBuilder, target: &str) -> Result<Answer, PullError> {
    let transport = |e: reqwest::Error| PullError::Unreachable {
        target: target.to_string(),
        message: crate::tls::explain(&e.without_url()),
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
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
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// At most `max` characters of a source's own error text (a PromQL or SQL
/// error), control characters dropped.
pub(super) fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}
