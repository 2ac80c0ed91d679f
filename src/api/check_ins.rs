//! `GET/POST /api/v1/key-results/{objective}/{kr}/check-ins`: a person's
//! word on a KR (SPEC §4 "Revisions and check-ins"): `confidence` in
//! [0, 1], a `note`, an optional `author`. Stored, never part of the
//! score. POST is a write: the router puts it behind the token when one
//! is set, and its body is bounded like every body (`guard`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::live::Services;
use crate::store::NewCheckIn;

/// The longest note accepted, in characters.
pub const MAX_NOTE: usize = 4_000;
/// The longest author accepted, in characters.
pub const MAX_AUTHOR: usize = 200;
/// Check-ins a GET lists at most (the newest).
const MAX_LISTED: i64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    confidence: f64,
    note: String,
    #[serde(default)]
    author: Option<String>,
}

/// 404 unless the config has the KR.
fn known(app: &Services, objective: &str, kr: &str) -> Result<(), ApiError> {
    let config = app.live.config();
    let Some(o) = config.objectives.iter().find(|o| o.id == objective) else {
        return Err(ApiError::not_found(format!("no objective {objective:?}")));
    };
    if !o.key_results.iter().any(|k| k.id == kr) {
        return Err(ApiError::not_found(format!(
            "objective {objective:?} has no key result {kr:?}"
        )));
    }
    Ok(())
}

/// The check-in `body` describes, or a 400 saying what is wrong.
fn read(objective: &str, kr: &str, body: &[u8], app: &Services) -> Result<NewCheckIn, ApiError> {
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            r#"expected {{"confidence": 0.0-1.0, "note": "...", "author": "..." (optional)}}: {e}"#
        ))
    })?;
    if !(b.confidence.is_finite() && (0.0..=1.0).contains(&b.confidence)) {
        return Err(ApiError::bad_request(format!(
            "confidence must be between 0.0 and 1.0, got {}",
            b.confidence
        ))
        .with("field", json!("confidence")));
    }
    if b.note.trim().is_empty() {
        return Err(ApiError::bad_request("note must say something").with("field", json!("note")));
    }
    if b.note.chars().count() > MAX_NOTE {
        return Err(
            ApiError::bad_request(format!("note is longer than {MAX_NOTE} characters"))
                .with("field", json!("note")),
        );
    }
    let author = b.author.filter(|a| !a.trim().is_empty());
    if author
        .as_ref()
        .is_some_and(|a| a.chars().count() > MAX_AUTHOR)
    {
        return Err(ApiError::bad_request(format!(
            "author is longer than {MAX_AUTHOR} characters"
        ))
        .with("field", json!("author")));
    }
    Ok(NewCheckIn {
        objective: objective.to_string(),
        key_result: kr.to_string(),
        at: app.clock.now(),
        confidence: b.confidence,
        note: b.note,
        author,
    })
}

/// Stores a check-in; 201 with it as stored.
pub async fn add(
    State(app): State<Services>,
    Path((objective, kr)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    known(&app, &objective, &kr)?;
    let new = read(&objective, &kr, &body, &app)?;
    let stored = app.store.add_check_in(&new).await?;
    Ok((StatusCode::CREATED, Json(json!(stored))))
}

/// `{"check_ins": [...]}`, newest first.
pub async fn list(
    State(app): State<Services>,
    Path((objective, kr)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    known(&app, &objective, &kr)?;
    let list = app.store.check_ins(&objective, &kr, MAX_LISTED).await?;
    Ok(Json(json!({ "check_ins": list })))
}
