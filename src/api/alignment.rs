//! `GET /api/v1/alignment`: the objectives as a tree (each one's parent
//! and children, score and roll-up) and every dependency between KRs with
//! the status of the KR depended on (SPEC §5).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::live::Services;

/// The organisation's shape, from the running config and the latest
/// scorecard; `null` scores before the first scorecard.
pub async fn show(State(app): State<Services>) -> Json<Value> {
    let config = app.live.config();
    let card = app.live.card();
    let now = app.clock.now();
    let alignment = config.alignment();
    let objectives: Vec<Value> = config
        .objectives
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let row = card.objective(i, &o.id);
            json!({
                "id": o.id,
                "team": o.team,
                "title": o.objective,
                "period": o.period.at(now).label,
                "score": row.map(|r| r.score),
                "rollup": row.map(|r| r.rollup),
                "aligns_to": o.aligns_to,
                "children": alignment
                    .children(i)
                    .iter()
                    .map(|&c| config.objectives[c].id.as_str())
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let dependencies: Vec<Value> = alignment
        .dependencies()
        .iter()
        .map(|d| {
            let status = card
                .key_result(d.to_index, &d.to.objective, &d.to.key_result)
                .map(|r| r.status);
            json!({
                "from": d.from.to_string(),
                "to": d.to.to_string(),
                "status": status,
            })
        })
        .collect();
    Json(json!({ "objectives": objectives, "dependencies": dependencies }))
}
