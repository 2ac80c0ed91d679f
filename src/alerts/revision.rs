//! Revision notices (SPEC §4 "Revisions and check-ins"): each revision of a
//! KR notifies its owning team once (kind `revision`), through the outbox.
//! The scorer records revisions; this reads the ones whose notice is not
//! queued and queues each by the store's conditional update, so a notice
//! is queued once across instances and restarts.

use super::event::{self, AlertEvent, ObjectiveInfo};
use super::{kr_info, links};
use crate::config::Config;
use crate::model::Timestamp;
use crate::scorecard::Scorecard;
use crate::store::{AlertKind, EventName, RevisionNotice, Store, StoreError};

/// Queues the notice of every revision not notified yet whose KR is in
/// `config` and `card`. Returns how many it queued.
pub async fn notify(
    store: &dyn Store,
    config: &Config,
    card: &Scorecard,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let pending = store.unnotified_revisions().await?;
    let mut queued = 0;
    for stored in pending {
        let Some(revision) = stored.as_revision() else {
            continue;
        };
        let Some(objective) = config.objectives.iter().find(|o| o.id == stored.objective) else {
            continue;
        };
        let Some(kr) = objective
            .key_results
            .iter()
            .find(|k| k.id == stored.key_result)
        else {
            continue;
        };
        let Some(row) = card
            .key_results
            .iter()
            .find(|r| r.objective == objective.id && r.key_result == kr.id)
        else {
            continue;
        };
        let changed: Vec<&str> = revision.changes.iter().map(|c| c.field.as_str()).collect();
        let summary = format!(
            "{}/{}: revision {} changed {}{}",
            objective.id,
            kr.id,
            revision.revision,
            if changed.is_empty() {
                "its definition".to_string()
            } else {
                changed.join(", ")
            },
            if revision.easier { " (easier)" } else { "" }
        );
        let event = AlertEvent {
            version: event::VERSION.into(),
            id: None,
            event: EventName::Revision,
            kind: AlertKind::Revision,
            status: EventName::Revision.state(),
            at: revision.at,
            fired_at: revision.at,
            team: objective.team.clone(),
            summary,
            objective: ObjectiveInfo {
                id: objective.id.clone(),
                title: objective.objective.clone(),
            },
            key_result: kr_info(kr, row, None),
            counter_metric: None,
            dependency: None,
            revision: Some(revision.clone()),
            links: links(config, objective, kr),
        };
        let notice = RevisionNotice {
            objective: objective.id.clone(),
            key_result: kr.id.clone(),
            revision: revision.revision,
            payload: serde_json::to_string(&event).expect("an event serializes"),
            notifiers: config
                .service
                .teams
                .get(&objective.team)
                .map(|t| t.notify.clone())
                .unwrap_or_default(),
            at: now,
        };
        if store.queue_revision_notice(&notice).await? {
            tracing::info!(
                objective = %notice.objective,
                key_result = %notice.key_result,
                revision = notice.revision,
                easier = revision.easier,
                "revision {}", event.summary
            );
            queued += 1;
        }
    }
    Ok(queued)
}
