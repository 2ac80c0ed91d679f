//! `GET /api/v1/dead-letters`: the Kafka messages a connector could not read
//! as points, newest first, with why and their raw payload.
//!
//! Query: `connector` (only its letters), `limit` (default 100, at most
//! 1,000), `before` (an id: the next page).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::live::Services;
use crate::store::{DeadLetterQuery, StoredDeadLetter};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    connector: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

/// Lists dead letters: `{"dead_letters": [...]}`.
pub async fn list(
    State(app): State<Services>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let letters = app
        .store
        .dead_letters(&DeadLetterQuery {
            connector: params.connector,
            before_id: params.before,
            limit,
        })
        .await?;
    let items: Vec<Value> = letters.iter().map(to_json).collect();
    Ok(Json(json!({ "dead_letters": items })))
}

/// One letter. The payload is shown as text (invalid UTF-8 replaced), with
/// its size before the cut, so a truncated payload is recognisable.
fn to_json(s: &StoredDeadLetter) -> Value {
    let l = &s.letter;
    json!({
        "id": s.id,
        "connector": l.connector,
        "topic": l.topic,
        "partition": l.partition,
        "offset": l.offset,
        "reason": l.reason,
        "error": l.error,
        "payload": String::from_utf8_lossy(&l.payload),
        "payload_size": l.payload_size,
        "payload_truncated": (l.payload.len() as u64) < l.payload_size,
        "received_at": l.received_at,
    })
}
