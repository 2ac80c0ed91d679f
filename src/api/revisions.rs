//! What the KR read API says of a KR's revisions and its latest check-in
//! (SPEC §5): `revision`, `revisions`, `confidence`, the revision each
//! history row was computed under, and the explanation's word on the
//! revision in force.

use serde_json::{json, Value};

use crate::scorecard::KeyResultRow;
use crate::store::{CheckIn, ScoreRecord};

/// Adds `revision`, `revisions`, `confidence` (and `check_in`) to the KR
/// `body` from its published row and its latest check-in; each of
/// `history`'s rows (as `body["history"]` lists them) gets its `revision`;
/// the explanation its `revision` line.
pub fn annotate(
    body: &mut Value,
    row: Option<&KeyResultRow>,
    history: &[ScoreRecord],
    latest: Option<&CheckIn>,
) {
    let revision = row.map_or(0, |r| r.revision);
    let revisions: &[crate::definition::Revision] = row.map_or(&[], |r| r.revisions.as_slice());
    body["revision"] = json!(revision);
    body["revisions"] = json!(revisions);
    body["confidence"] = json!(latest.map(|c| c.confidence));
    body["check_in"] = json!(latest);
    if let Some(rows) = body["history"].as_array_mut() {
        for (v, h) in rows.iter_mut().zip(history) {
            v["revision"] = json!(h.revision);
        }
    }
    if body["explanation"].is_object() {
        body["explanation"]["revision"] = json!(explain(revision, revisions));
    }
}

/// The explanation's line on the revision in force.
pub fn explain(revision: i64, revisions: &[crate::definition::Revision]) -> String {
    match revisions.iter().find(|r| r.revision == revision) {
        None => "scored under the KR's definition as first recorded (revision 0: never revised while its period ran)".into(),
        Some(r) => {
            let changes: Vec<String> = r
                .changes
                .iter()
                .map(|c| format!("{} {} → {}", c.field, c.from, c.to))
                .collect();
            format!(
                "scored under revision {} (since {}): {}{}; history before it keeps the scores of the definition then in force",
                r.revision,
                r.at.to_rfc3339(),
                if changes.is_empty() { "definition changed".to_string() } else { changes.join(", ") },
                if r.easier { " (easier)" } else { "" }
            )
        }
    }
}
