//! What stands between a client and a handler, decided from the request's
//! headers before any body is read:
//!
//! - **the token** ([`Access`]): writes need it when `http.token` is set;
//!   so do reads of connector definitions, their errors and dead letters
//!   (raw payloads). Registering or removing a connector is an operator's
//!   action: it needs the token to be set at all.
//! - **the byte budget**: a request with a body reserves its declared
//!   length (or `http.max_body` when it declares none) from
//!   `http.max_buffered`, shared by all requests; past it, 503 with
//!   `Retry-After`. Bodies larger than `http.max_body` are refused with
//!   413 by tower-http's limit layer, from `Content-Length` when declared.
//! - **JSON errors**: whatever produced an error (a layer, axum's own
//!   rejections, an unknown route), the client gets `{"error": ...}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::live::Services;

/// Who may make a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone when no token is set; the token's holder otherwise.
    TokenIfSet,
    /// Only the token's holder, and only when a token is set.
    Operator,
}

/// The middleware's state: the services and the shared byte budget.
#[derive(Clone)]
pub struct Gate {
    /// The services (for the token, which a reload may change).
    pub app: Services,
    /// Bytes of bodies that may be buffered at once.
    pub budget: Arc<Semaphore>,
    /// `http.max_body`, reserved for a body of undeclared length.
    pub max_body: usize,
}

impl Gate {
    /// A gate with a budget of `max_buffered` bytes.
    pub fn new(app: Services, max_buffered: usize, max_body: usize) -> Self {
        Self {
            app,
            budget: Arc::new(Semaphore::new(clamp(max_buffered))),
            max_body,
        }
    }
}

fn clamp(bytes: usize) -> usize {
    bytes.min(u32::MAX as usize).min(Semaphore::MAX_PERMITS)
}

/// Checks the bearer token for `access`. The comparison takes the same
/// time wherever the strings differ.
pub fn check_token(app: &Services, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
    let config = app.live.config();
    let Some(token) = config.service.token.as_deref() else {
        return match access {
            Access::TokenIfSet => Ok(()),
            Access::Operator => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "registering or removing connectors over the API is an operator's action: \
                 set http.token (for example `token: ${OKRD_API_TOKEN}`) and send it as \
                 `Authorization: Bearer <token>`",
            )),
        };
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

/// Middleware: the token for `TokenIfSet` routes, then the byte budget.
pub async fn token_if_set(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    admit(gate, Access::TokenIfSet, req, next).await
}

/// Middleware: the token for `Operator` routes, then the byte budget.
pub async fn operator(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    admit(gate, Access::Operator, req, next).await
}

async fn admit(gate: Gate, access: Access, req: Request, next: Next) -> Response {
    if let Err(e) = check_token(&gate.app, req.headers(), access) {
        return e.into_response();
    }
    let bytes = reserved_bytes(req.headers(), gate.max_body);
    let _permit = if bytes == 0 {
        None
    } else {
        match gate
            .budget
            .clone()
            .try_acquire_many_owned(clamp(bytes) as u32)
        {
            Ok(permit) => Some(permit),
            Err(_) => {
                let mut response = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is reading as many request bodies as http.max_buffered allows; retry shortly",
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        }
    };
    next.run(req).await
}

/// What a request's body may need: its declared length (the limit layer
/// has already refused one over `max_body`), `max_body` when it streams
/// without one, nothing when it has none.
fn reserved_bytes(headers: &HeaderMap, max_body: usize) -> usize {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        return len.min(max_body);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        max_body
    } else {
        0
    }
}

/// Middleware: an error response that is not JSON (axum's rejections,
/// tower-http's 408 and 413, a 404 for an unknown route, a 405) becomes
/// `{"error": ...}` with the same status.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejections say what is wrong in a short text; keep it.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => "no such route".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_string(),
        StatusCode::REQUEST_TIMEOUT => {
            "the request (headers and body) was not received and answered within http.request_timeout".to_string()
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than http.max_body".to_string()
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase(),
        _ => text,
    };
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
