//! `POST /api/v1/points`: pushed points. A request is stored whole or
//! rejected whole: any bad item gets 400 with every bad item's index and
//! reason, and nothing is stored.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::ingest::{point_from_json, FastReader, Interner, RejectReason};
use crate::live::Services;
use crate::metrics::PUSH_CONNECTOR;

/// Stores `{"points": [...]}`; answers `{"stored": n}` once durably written.
pub async fn push(State(app): State<Services>, body: Bytes) -> Result<Json<Value>, ApiError> {
    // The token was checked from the headers before the body was read
    // (`guard`).
    let mut interner = Interner::default();
    // Plain bodies are read without a JSON tree; anything else (or any bad
    // point) goes the general way, which says what is wrong where.
    let points = match FastReader::default().read_push_body(&body, &mut interner) {
        Some(points) => points,
        None => read_general(&app, &body, &mut interner)?,
    };
    let stored = app.ingest(PUSH_CONNECTOR, &points).await?;
    Ok(Json(json!({ "stored": stored })))
}

/// The body read through a JSON tree: every point, or a 400 naming each
/// bad one (index and reason).
fn read_general(
    app: &Services,
    body: &[u8],
    interner: &mut Interner,
) -> Result<Vec<crate::model::Point>, ApiError> {
    let doc: Value = crate::ingest::json::parse(body).map_err(|e| {
        reject_all(app, RejectReason::InvalidJson.as_str());
        ApiError::bad_request(format!("invalid JSON: {e}"))
    })?;
    let Some(items) = doc.get("points").and_then(Value::as_array) else {
        reject_all(app, RejectReason::InvalidShape.as_str());
        return Err(ApiError::bad_request(
            r#"expected a JSON object {"points": [...]}"#,
        ));
    };
    let mut points = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match point_from_json(item, interner) {
            Ok(p) => points.push(p),
            Err(e) => rejected.push((index, e)),
        }
    }
    if !rejected.is_empty() {
        for (_, e) in &rejected {
            app.rejected(PUSH_CONNECTOR, e.reason.as_str(), 1);
        }
        let list: Vec<Value> = rejected
            .iter()
            .map(|(i, e)| json!({"index": i, "reason": e.reason.as_str(), "message": e.message}))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{} of {} points are invalid; nothing was stored",
            rejected.len(),
            items.len()
        ))
        .with("rejected", Value::Array(list)));
    }
    Ok(points)
}

fn reject_all(app: &Services, reason: &str) {
    app.rejected(PUSH_CONNECTOR, reason, 1);
}
