//! `GET /api/v1/alerts`: firing and recently resolved alerts, each with its
//! deliveries.

use axum::extract::State;
use axum::Json;
use chrono::TimeDelta;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::live::Services;
use crate::store::AlertKind;

/// Resolved alerts stay listed this long.
const RECENT: TimeDelta = TimeDelta::hours(24);

/// Firing alerts and those resolved within the last day.
pub async fn list(State(app): State<Services>) -> Result<Json<Value>, ApiError> {
    let now = app.clock.now();
    let mut out = Vec::new();
    for a in app.store.alerts(now - RECENT).await? {
        let deliveries: Vec<Value> = app
            .store
            .deliveries(&a.key)
            .await?
            .into_iter()
            .filter(|d| d.episode == a.episode)
            .map(|d| {
                json!({
                    "id": d.id, "notifier": d.notifier, "event": d.event, "status": d.status,
                    "attempts": d.attempts, "last_error": d.last_error,
                    "created_at": d.created_at, "sent_at": d.sent_at,
                })
            })
            .collect();
        let details: Value = serde_json::from_str(&a.details).unwrap_or(Value::Null);
        out.push(json!({
            "objective": a.key.objective,
            "key_result": a.key.key_result,
            "counter_metric": (a.kind == AlertKind::CounterMetric).then_some(&a.key.subject),
            "dependency": (a.kind == AlertKind::Dependency).then_some(&a.key.subject),
            "kind": a.kind,
            "team": a.team,
            "state": a.state,
            "episode": a.episode,
            "reference": a.reference,
            "fired_at": a.fired_at,
            "resolved_at": a.resolved_at,
            "summary": details["summary"],
            "details": details,
            "deliveries": deliveries,
        }));
    }
    Ok(Json(json!({ "alerts": out })))
}
