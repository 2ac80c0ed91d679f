//! `/api/v1/connectors`: the connectors and their health; registering and
//! removing connectors at run time.
//!
//! - `GET /api/v1/connectors` and `GET /api/v1/connectors/{name}`: each
//!   connector's origin (`yaml` or `api`), type, schedule, last run, last
//!   success, last error and points ingested (from the run state shared by
//!   every instance).
//! - `POST /api/v1/connectors` (an operator's action: needs `http.token`
//!   set and sent): one connector as JSON, validated exactly like one in
//!   `connectors/*.yaml` (JSON is YAML). `${VAR}` may name only the
//!   variables listed in `http.connector_env`, checked on the parsed
//!   values; it is stored unexpanded. 201 when new, 200 when it replaces an
//!   API connector, 409 when a connector file defines the name. The
//!   scheduler starts it within a second, on every instance, behind the
//!   destination guard (`connectors::guard`).
//! - `DELETE /api/v1/connectors/{name}` (an operator's action): 204; 409
//!   for a connector defined in a file; 404 for an unknown name.
//!
//! When a token is set, reading connectors needs it too (`guard`); errors
//! are shown redacted ([`crate::secrets`]).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::config::types::format_duration;
use crate::config::{self, Connector};
use crate::connectors::scheduler::{schedule_text, API_SOURCE};
use crate::live::Services;
use crate::model::Timestamp;
use crate::store::ConnectorState;

/// One row of the listing, before its run state is added.
struct Entry {
    name: String,
    origin: &'static str,
    connector: Option<Connector>,
    registered_at: Option<Timestamp>,
    problems: Vec<String>,
}

async fn entries(app: &Services) -> Result<Vec<Entry>, ApiError> {
    let config = app.live.config();
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let env = config::process_env();
    let allowed = &config.service.connector_env;
    for stored in app.store.api_connectors().await? {
        let (connector, problems) = match config::load_connector_text(
            &stored.definition,
            API_SOURCE,
            &env,
            Some(allowed),
        ) {
            Ok(c) => (Some(c), Vec::new()),
            Err(d) => (
                None,
                d.iter()
                    .map(|d| crate::secrets::redact(&d.to_string()))
                    .collect(),
            ),
        };
        out.insert(
            stored.name.clone(),
            Entry {
                name: stored.name,
                origin: "api",
                connector,
                registered_at: Some(stored.updated_at),
                problems,
            },
        );
    }
    // A file's connector shadows an API one of the same name.
    for c in &config.connectors {
        out.insert(
            c.name.clone(),
            Entry {
                name: c.name.clone(),
                origin: "yaml",
                connector: Some(c.clone()),
                registered_at: None,
                problems: Vec::new(),
            },
        );
    }
    Ok(out.into_values().collect())
}

fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn view(e: &Entry, state: Option<&ConnectorState>, now: Timestamp) -> Value {
    let c = e.connector.as_ref();
    let mut v = json!({
        "name": e.name,
        "origin": e.origin,
        "type": c.map(|c| c.kind.type_name()),
        "schedule": c.and_then(|c| c.schedule.as_ref()).map(schedule_text),
        "timeout": c.filter(|c| c.schedule.is_some()).map(|c| format_duration(c.timeout)),
        "running": state.and_then(|s| s.lease_until).is_some_and(|t| t > now),
        "last_run": ts(state.and_then(|s| s.last_run_at)),
        "last_success": ts(state.and_then(|s| s.last_success_at)),
        "last_error": state.and_then(|s| s.last_error.as_deref()).map(crate::secrets::redact),
        "last_error_at": ts(state.and_then(|s| s.last_error_at)),
        "points_ingested": state.map_or(0, |s| s.points_ingested),
        "watermark": ts(state.and_then(|s| s.watermark)),
    });
    if e.origin == "yaml" {
        if let Some(c) = c {
            v["file"] = json!(format!("{}:{}", c.file, c.span.line));
        }
    } else {
        v["registered_at"] = ts(e.registered_at);
    }
    if !e.problems.is_empty() {
        v["problems"] = json!(e.problems);
    }
    v
}

/// `GET /api/v1/connectors`.
pub async fn list(State(app): State<Services>) -> Result<Json<Value>, ApiError> {
    let states = app.store.connector_states().await?;
    let now = app.clock.now();
    let list: Vec<Value> = entries(&app)
        .await?
        .iter()
        .map(|e| view(e, states.iter().find(|s| s.name == e.name), now))
        .collect();
    Ok(Json(json!({ "connectors": list })))
}

/// `GET /api/v1/connectors/{name}`.
pub async fn detail(
    State(app): State<Services>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(entry) = entries(&app).await?.into_iter().find(|e| e.name == name) else {
        return Err(ApiError::not_found(format!("no connector named {name:?}")));
    };
    let state = app.store.connector_state(&name).await?;
    Ok(Json(view(&entry, state.as_ref(), app.clock.now())))
}

/// `POST /api/v1/connectors`.
pub async fn register(
    State(app): State<Services>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // An operator's action: `guard` checked the token before the body.
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if !doc.is_object() {
        return Err(ApiError::bad_request(
            "expected one connector: a JSON object with name, type, ...",
        ));
    }
    let text = String::from_utf8_lossy(&body);
    let config = app.live.config();
    let connector = config::load_connector_text(
        &text,
        API_SOURCE,
        &config::process_env(),
        Some(&config.service.connector_env),
    )
    .map_err(|diagnostics| {
        let errors: Vec<String> = diagnostics
            .iter()
            .map(|d| crate::secrets::redact(&d.to_string()))
            .collect();
        ApiError::bad_request(format!("invalid connector: {}", errors.join("; ")))
            .with("errors", json!(errors))
    })?;
    if let Some(c) = config.connectors.iter().find(|c| c.name == connector.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "connector {:?} is defined in {}:{}; edit that file, or choose another name",
                c.name, c.file, c.span.line
            ),
        ));
    }
    let created = app
        .store
        .put_api_connector(&connector.name, &text, app.clock.now())
        .await?;
    tracing::info!(connector = %connector.name, r#type = connector.kind.type_name(), created, "connector registered over the API");
    let state = app.store.connector_state(&connector.name).await?;
    let entry = Entry {
        name: connector.name.clone(),
        origin: "api",
        connector: Some(connector),
        registered_at: Some(app.clock.now()),
        problems: Vec::new(),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&entry, state.as_ref(), app.clock.now()))))
}

/// `DELETE /api/v1/connectors/{name}`.
pub async fn delete(
    State(app): State<Services>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let config = app.live.config();
    if let Some(c) = config.connectors.iter().find(|c| c.name == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "connector {name:?} is defined in {}:{}; remove it there",
                c.file, c.span.line
            ),
        ));
    }
    if app.store.delete_api_connector(&name).await? {
        tracing::info!(connector = %name, "connector removed over the API");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no connector named {name:?}")))
    }
}
