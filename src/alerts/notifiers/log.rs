//! `type: log`: writes the [`AlertEvent`] to okrd's own log, one line with
//! its facts. The quickstart's teams use it, so a fresh clone alerts
//! somewhere that exists; the status page marks the alerting KR as well.

use super::SendError;
use crate::alerts::event::AlertEvent;

/// Logs one event; never fails.
pub fn send(event: &AlertEvent) -> Result<(), SendError> {
    tracing::warn!(
        alert = %event.kind,
        event = %event.event,
        team = %event.team,
        objective = %event.objective.id,
        key_result = %event.key_result.id,
        counter_metric = event.counter_metric.as_ref().map(|c| c.metric.as_str()).unwrap_or("-"),
        "{}",
        event.summary
    );
    Ok(())
}
