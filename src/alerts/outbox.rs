//! Delivering the outbox: claim due deliveries, send each through its
//! notifier, record the outcome. A failure that may pass is retried with
//! exponential backoff and jitter, up to `alerts.max_attempts`; then the
//! delivery is marked failed with its reason (in `/api/v1/alerts` and
//! `okrd_notifications_total{outcome="failed"}`).
//!
//! Claims are leases, so several instances share the outbox, and a
//! delivery whose sender died is picked up again once its lease ends.
//!
//! Also here: the Alertmanager refresher, which re-posts firing alerts every
//! `alerts.alertmanager_resend`, as Alertmanager expects.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::event::AlertEvent;
use super::notifiers::{post_alerts, Senders};
use crate::backoff::{jitter, Backoff};
use crate::config::service::Notifier;
use crate::live::Services;
use crate::model::Timestamp;
use crate::store::{AlertState, Delivery, DeliveryOutcome};

/// How long a claimed delivery is reserved for its sender.
const LEASE: Duration = Duration::from_secs(30);
/// Deliveries claimed per round.
const BATCH: i64 = 20;
/// How often the outbox is checked when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

/// The wait before attempt `attempt + 1`: 2 s doubling up to 10 min, ±25%.
pub fn backoff(attempt: i64, jitter_seed: u32) -> Duration {
    let steps = Backoff::new(Duration::from_secs(2), Duration::from_secs(600));
    let attempt = u32::try_from(attempt.max(0)).unwrap_or(u32::MAX);
    jitter(steps.nth(attempt), 0.25, jitter_seed)
}

/// Delivers until `shutdown`; `wake` is notified when transitions queued
/// deliveries.
pub async fn run(services: Services, wake: Arc<Notify>, shutdown: CancellationToken) {
    let senders = Senders::new(services.live.config().service.alertmanager_resend);
    loop {
        match deliver_due(&services, &senders).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the outbox failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One round: claims and sends what is due. Returns how many it handled.
pub async fn deliver_due(
    services: &Services,
    senders: &Senders,
) -> Result<usize, crate::store::StoreError> {
    let now = services.clock.now();
    let due = services.store.claim_deliveries(now, LEASE, BATCH).await?;
    for d in &due {
        let outcome = attempt(services, senders, d).await;
        let label = match &outcome {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Failed { .. } => "failed",
        };
        services
            .metrics
            .notifications
            .with_label_values(&[&d.notifier, label])
            .inc();
        match &outcome {
            DeliveryOutcome::Sent => {
                tracing::info!(notifier = %d.notifier, id = d.id, event = %d.event, "notification sent")
            }
            DeliveryOutcome::Retry { at, error } => {
                tracing::warn!(notifier = %d.notifier, id = d.id, error = %error, next = %at, "notification failed; will retry")
            }
            DeliveryOutcome::Failed { error } => {
                tracing::error!(notifier = %d.notifier, id = d.id, error = %error, "notification failed for good")
            }
        }
        services
            .store
            .finish_delivery(d.id, services.clock.now(), &outcome)
            .await?;
    }
    Ok(due.len())
}

async fn attempt(services: &Services, senders: &Senders, d: &Delivery) -> DeliveryOutcome {
    let config = services.live.config();
    let Some(notifier) = config.service.notifiers.get(&d.notifier) else {
        return DeliveryOutcome::Failed {
            error: format!("notifier {:?} is no longer configured", d.notifier),
        };
    };
    let mut event: AlertEvent = match serde_json::from_str(&d.payload) {
        Ok(e) => e,
        Err(e) => {
            return DeliveryOutcome::Failed {
                error: format!("unreadable payload: {e}"),
            }
        }
    };
    event.id = Some(d.id);
    match senders.send(notifier, &event).await {
        Ok(()) => DeliveryOutcome::Sent,
        Err(e) if e.retryable && d.attempts + 1 < i64::from(config.service.max_attempts) => {
            let now = services.clock.now();
            let seed = now.timestamp_subsec_nanos() ^ (d.id as u32);
            let wait = chrono::TimeDelta::from_std(backoff(d.attempts, seed))
                .unwrap_or(chrono::TimeDelta::minutes(10));
            DeliveryOutcome::Retry {
                at: now + wait,
                error: e.message,
            }
        }
        Err(e) => DeliveryOutcome::Failed { error: e.message },
    }
}

/// Re-posts every firing alert to its team's Alertmanager notifiers every
/// `alerts.alertmanager_resend`, so Alertmanager keeps it active.
pub async fn refresh_alertmanager(services: Services, shutdown: CancellationToken) {
    loop {
        let config = services.live.config();
        let every = config.service.alertmanager_resend;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let senders = Senders::new(every);
        let now: Timestamp = services.clock.now();
        let firing = match services.store.alerts(now).await {
            Ok(a) => a.into_iter().filter(|a| a.state == AlertState::Firing),
            Err(e) => {
                tracing::warn!(error = %e, "reading alerts failed");
                continue;
            }
        };
        for a in firing {
            let Ok(event) = serde_json::from_str::<AlertEvent>(&a.details) else {
                continue;
            };
            let Some(team) = config.service.teams.get(&a.team) else {
                continue;
            };
            for name in &team.notify {
                let Some(notifier @ Notifier::Alertmanager { urls, .. }) =
                    config.service.notifiers.get(name)
                else {
                    continue;
                };
                let body = super::notifiers::alertmanager_alert(
                    &event,
                    now,
                    senders.alertmanager_ends_after,
                );
                let outcome = match post_alerts(&senders.http_for(notifier), urls, &[body]).await {
                    Ok(()) => "sent",
                    Err(e) => {
                        tracing::warn!(notifier = %name, error = %e, "Alertmanager refresh failed");
                        "retry"
                    }
                };
                services
                    .metrics
                    .notifications
                    .with_label_values(&[name, outcome])
                    .inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mid = 500; // no spread
        assert_eq!(backoff(0, mid), Duration::from_secs(2));
        assert_eq!(backoff(3, mid), Duration::from_secs(16));
        assert_eq!(backoff(30, mid), Duration::from_secs(600));
        let low = backoff(3, 0).as_secs_f64();
        let high = backoff(3, 999).as_secs_f64();
        assert!(
            (12.0..=12.01).contains(&low) && (19.9..=20.0).contains(&high),
            "{low} {high}"
        );
    }
}
