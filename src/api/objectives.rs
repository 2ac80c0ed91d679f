//! `GET /api/v1/objectives`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::live::Services;

/// Every objective with its period, team, score, roll-up and key result ids.
pub async fn list(State(app): State<Services>) -> Json<Value> {
    let config = app.live.config();
    let card = app.live.card();
    let now = app.clock.now();
    let objectives: Vec<Value> = config
        .objectives
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let row = card.objective(i, &o.id);
            let period = o.period.at(now);
            json!({
                "id": o.id,
                "objective": o.objective,
                "team": o.team,
                "period": { "label": period.label, "start": period.start, "end": period.end },
                "recurring": o.period.recurrence.map(|_| o.period.label.as_str()),
                "aligns_to": o.aligns_to,
                "score": row.map(|r| r.score),
                "rollup": row.map(|r| r.rollup),
                "key_results": o.key_results.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "objectives": objectives }))
}
