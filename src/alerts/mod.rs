//! Alerts (SPEC §4 "Counter-metric alert"): decide transitions from each
//! recompute's scorecard, store them with their deliveries (the outbox),
//! and deliver them to the owning team's notifiers.
//!
//! - `mod.rs`: the [`Engine`] that turns a scorecard into transitions;
//! - `event.rs`: what a notification says (the versioned webhook body);
//! - `outbox.rs`: the delivery worker (retries with backoff and jitter) and
//!   the Alertmanager refresher;
//! - `notifiers/`: webhook, Slack, email, Alertmanager;
//! - `revision.rs`: the once-only notice of each KR revision.
//!
//! A counter-metric alert fires when the KR moved toward its target
//! (score rose ≥ 0.01 over W) while the counter metric degraded beyond its
//! tolerance; it stays firing while the counter metric is worse than the
//! reference captured at firing by more than the tolerance (`test: welch`:
//! while the bound recomputed against the window captured at firing
//! exceeds it), and resolves when it recovers. A stale-data alert fires
//! when a KR that had data turns `stale` or `no_data`, and resolves when
//! data flows again. While firing, these two are re-sent every
//! `alerts.repeat_interval`. A dependency alert (subject `objective/kr`,
//! the KR depended on, which no metric name can be) fires when another
//! team's KR that this KR depends on turns `off_track`, `stale` or
//! `no_data`, and resolves when it is `on_track` or `at_risk` again; it is
//! sent once per transition (SPEC §4), not repeated.

pub mod event;
pub mod notifiers;
pub mod outbox;
pub mod revision;

use std::collections::HashMap;

use crate::config::objective::{Better, CounterMetric};
use crate::config::types::{format_duration, Tolerance};
use crate::config::{Config, KeyResult, Objective};
use crate::model::Timestamp;
use crate::scorecard::{KeyResultRow, Scorecard};
use crate::scoring::guardrail::{still_degraded, CounterState};
use crate::scoring::Status;
use crate::store::{
    AlertKey, AlertKind, AlertRecord, AlertState, EventName, Store, StoreError, Transition,
    TransitionOp,
};

use event::{AlertEvent, CounterInfo, DependencyInfo, KeyResultInfo, Links, ObjectiveInfo};

/// Decides alert transitions. Stateless between calls: the alert state
/// lives in the store, so several instances and restarts agree.
#[derive(Debug, Default)]
pub struct Engine;

/// The alert task of `okrd serve`: evaluates each scorecard the scorer
/// publishes ([`Live::card_published`](crate::live::Live::card_published)),
/// until `shutdown`, and wakes the outbox when transitions queued
/// deliveries. The scorer knows nothing of alerts.
pub async fn run(services: crate::live::Services, shutdown: tokio_util::sync::CancellationToken) {
    let engine = Engine;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = services.live.card_published() => {}
        }
        let (config, card) = (services.live.config(), services.live.card());
        let store = services.store.as_ref();
        match revision::notify(store, &config, &card, services.clock.now()).await {
            Ok(0) => {}
            Ok(_) => services.live.outbox_signal().notify_one(),
            Err(e) => {
                tracing::error!(error = %e, "queuing revision notices failed; retrying on the next scorecard")
            }
        }
        match engine
            .evaluate(
                services.store.as_ref(),
                &config,
                &card,
                services.clock.now(),
            )
            .await
        {
            Ok(0) => {}
            Ok(_) => services.live.outbox_signal().notify_one(),
            Err(e) => {
                tracing::error!(error = %e, "evaluating alerts failed; retrying on the next scorecard")
            }
        }
    }
}

impl Engine {
    /// Evaluates every KR of `card` at `now` and applies the transitions
    /// due. Returns how many applied.
    pub async fn evaluate(
        &self,
        store: &dyn Store,
        config: &Config,
        card: &Scorecard,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let firing: HashMap<AlertKey, AlertRecord> = store
            .alerts(now)
            .await?
            .into_iter()
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| (a.key.clone(), a))
            .collect();
        // The card's KRs in the config (once, not a search per row: a
        // scorecard of 10,000 KRs comes after every recompute).
        let krs: HashMap<(&str, &str), (&Objective, &KeyResult, usize)> = config
            .objectives
            .iter()
            .flat_map(|o| {
                o.key_results
                    .iter()
                    .map(move |kr| ((o.id.as_str(), kr.id.as_str()), (o, kr)))
            })
            .enumerate()
            .map(|(i, (key, (o, kr)))| (key, (o, kr, i)))
            .collect();
        let mut applied = 0;
        for row in &card.key_results {
            let row: &KeyResultRow = row;
            let Some(&(objective, kr, index)) =
                krs.get(&(row.objective.as_str(), row.key_result.as_str()))
            else {
                continue;
            };
            let notifiers = config
                .service
                .teams
                .get(&objective.team)
                .map(|t| t.notify.clone())
                .unwrap_or_default();
            let about = About {
                config,
                objective,
                kr,
                row,
            };
            let mut transitions = Vec::new();
            for (cm, state) in kr.counter_metrics.iter().zip(&row.counters) {
                let key = AlertKey {
                    objective: objective.id.clone(),
                    key_result: kr.id.clone(),
                    subject: cm.metric.clone(),
                };
                let current = firing.get(&key);
                let op = match current {
                    None if state.firing() => Some(TransitionOp::Fire {
                        reference: state.reference,
                        window: state.captured_window(),
                    }),
                    None => None,
                    Some(rec) => {
                        let still_worse =
                            still_degraded(cm, rec.reference, rec.reference_window(), state);
                        Some(if still_worse {
                            TransitionOp::Repeat {
                                every: config.service.repeat_interval,
                            }
                        } else {
                            TransitionOp::Resolve
                        })
                    }
                };
                if let Some(op) = op {
                    let reference = match &op {
                        TransitionOp::Fire { reference, .. } => *reference,
                        _ => current.and_then(|r| r.reference),
                    };
                    let fired_at = current.map_or(now, |r| r.fired_at);
                    let event = counter_event(&about, cm, state, reference, &op, fired_at, now);
                    transitions.push((key, AlertKind::CounterMetric, op, event));
                }
            }
            let key = AlertKey {
                objective: objective.id.clone(),
                key_result: kr.id.clone(),
                subject: String::new(),
            };
            let stale = matches!(row.detail.status, Status::Stale | Status::NoData)
                && row.detail.newest_point.is_some();
            let current = firing.get(&key);
            let op = match (current, stale) {
                (None, true) => Some(TransitionOp::Fire {
                    reference: None,
                    window: None,
                }),
                (Some(_), true) => Some(TransitionOp::Repeat {
                    every: config.service.repeat_interval,
                }),
                (Some(_), false) => Some(TransitionOp::Resolve),
                (None, false) => None,
            };
            if let Some(op) = op {
                let fired_at = current.map_or(now, |r| r.fired_at);
                let event = stale_event(&about, &op, fired_at, now);
                transitions.push((key, AlertKind::StaleData, op, event));
            }
            for dependency in config.alignment().depends_on(index) {
                let Some(&(dep_objective, dep_kr, _)) = krs.get(&(
                    dependency.to.objective.as_str(),
                    dependency.to.key_result.as_str(),
                )) else {
                    continue;
                };
                // Only another team's KR: a team sees its own on its page.
                if dep_objective.team == objective.team {
                    continue;
                }
                let Some(dep_row) = card.key_result(
                    dependency.to_index,
                    &dependency.to.objective,
                    &dependency.to.key_result,
                ) else {
                    continue;
                };
                let key = AlertKey {
                    objective: objective.id.clone(),
                    key_result: kr.id.clone(),
                    subject: dependency.to.to_string(),
                };
                let at_risk = dep_row.detail.status.endangers_dependents();
                let current = firing.get(&key);
                // Notified once per transition: no repeats while it lasts.
                let op = match (current, at_risk) {
                    (None, true) => Some(TransitionOp::Fire {
                        reference: None,
                        window: None,
                    }),
                    (Some(_), false) => Some(TransitionOp::Resolve),
                    _ => None,
                };
                if let Some(op) = op {
                    let fired_at = current.map_or(now, |r| r.fired_at);
                    let on = (dep_objective, dep_kr, dep_row);
                    let event = dependency_event(&about, on, &op, fired_at, now);
                    transitions.push((key, AlertKind::Dependency, op, event));
                }
            }
            for (key, kind, op, event) in transitions {
                let t = Transition {
                    key,
                    kind,
                    team: objective.team.clone(),
                    at: now,
                    op,
                    payload: serde_json::to_string(&event).expect("an event serializes"),
                    notifiers: notifiers.clone(),
                    view: card.view,
                };
                if store.apply_transition(&t).await? {
                    tracing::info!(
                        objective = %t.key.objective,
                        key_result = %t.key.key_result,
                        subject = %t.key.subject,
                        event = %event.event,
                        "alert {}", event.summary
                    );
                    applied += 1;
                }
            }
        }
        Ok(applied)
    }
}

fn event_name(op: &TransitionOp) -> EventName {
    match op {
        TransitionOp::Fire { .. } => EventName::Firing,
        TransitionOp::Repeat { .. } => EventName::Repeat,
        TransitionOp::Resolve => EventName::Resolved,
    }
}

fn links(config: &Config, objective: &Objective, kr: &KeyResult) -> Links {
    let base = &config.service.external_url;
    Links {
        api: format!("{base}/api/v1/key-results/{}/{}", objective.id, kr.id),
        status_page: format!("{base}/#kr-{}-{}", objective.id, kr.id),
    }
}

fn kr_info(kr: &KeyResult, row: &KeyResultRow, score_delta: Option<f64>) -> KeyResultInfo {
    KeyResultInfo {
        id: kr.id.clone(),
        title: kr.title.clone(),
        metric: kr.metric.clone(),
        value: row.value,
        score: row.score,
        score_delta,
        status: row.status.to_string(),
        updated_at: row.detail.newest_point,
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    })
}

/// The KR an event is about.
struct About<'a> {
    config: &'a Config,
    objective: &'a Objective,
    kr: &'a KeyResult,
    row: &'a KeyResultRow,
}

/// What differs between the two kinds of events.
struct Specific {
    kind: AlertKind,
    summary: String,
    score_delta: Option<f64>,
    counter_metric: Option<CounterInfo>,
    dependency: Option<DependencyInfo>,
}

fn event(
    about: &About,
    op: &TransitionOp,
    fired_at: Timestamp,
    now: Timestamp,
    specific: Specific,
) -> AlertEvent {
    let About {
        config,
        objective,
        kr,
        row,
    } = *about;
    let event = event_name(op);
    AlertEvent {
        version: event::VERSION.into(),
        id: None,
        event,
        kind: specific.kind,
        status: event.state(),
        at: now,
        fired_at,
        team: objective.team.clone(),
        summary: specific.summary,
        objective: ObjectiveInfo {
            id: objective.id.clone(),
            title: objective.objective.clone(),
        },
        key_result: kr_info(kr, row, specific.score_delta),
        counter_metric: specific.counter_metric,
        dependency: specific.dependency,
        revision: None,
        links: links(config, objective, kr),
    }
}

fn counter_event(
    about: &About,
    cm: &CounterMetric,
    state: &CounterState,
    reference: Option<f64>,
    op: &TransitionOp,
    fired_at: Timestamp,
    now: Timestamp,
) -> AlertEvent {
    let (objective, kr) = (about.objective, about.kr);
    let summary = match op {
        TransitionOp::Resolve => format!(
            "{}/{}: {} recovered to {} (reference {})",
            objective.id,
            kr.id,
            cm.metric,
            fmt(state.value),
            fmt(reference)
        ),
        _ => format!(
            "{}/{}: score rose by {} while {} went from {} to {}",
            objective.id,
            kr.id,
            fmt(Some(state.kr_score_delta)),
            cm.metric,
            fmt(reference),
            fmt(state.value)
        ),
    };
    let counter_metric = CounterInfo {
        metric: cm.metric.clone(),
        value: state.value,
        reference,
        delta: state.value.zip(reference).map(|(v, r)| v - r),
        better: if cm.better == Better::Higher {
            "higher"
        } else {
            "lower"
        }
        .into(),
        tolerance: match cm.tolerance {
            Tolerance::Relative(r) => format!("{}%", fmt(Some(r * 100.0))),
            Tolerance::Absolute(a) => fmt(Some(a)),
        },
        window: format_duration(cm.window),
    };
    let specific = Specific {
        kind: AlertKind::CounterMetric,
        summary,
        score_delta: Some(state.kr_score_delta),
        counter_metric: Some(counter_metric),
        dependency: None,
    };
    event(about, op, fired_at, now, specific)
}

fn stale_event(
    about: &About,
    op: &TransitionOp,
    fired_at: Timestamp,
    now: Timestamp,
) -> AlertEvent {
    let About {
        objective, kr, row, ..
    } = *about;
    let newest = row
        .detail
        .newest_point
        .map_or("never".into(), |t| t.to_rfc3339());
    let summary = match op {
        TransitionOp::Resolve => format!(
            "{}/{}: data flows again ({} is {})",
            objective.id, kr.id, kr.metric, row.status
        ),
        _ => format!(
            "{}/{}: {} is {}: its newest point is from {newest}; check its connector",
            objective.id, kr.id, kr.metric, row.status
        ),
    };
    let specific = Specific {
        kind: AlertKind::StaleData,
        summary,
        score_delta: None,
        counter_metric: None,
        dependency: None,
    };
    event(about, op, fired_at, now, specific)
}

fn dependency_event(
    about: &About,
    (objective, kr, row): (&Objective, &KeyResult, &KeyResultRow),
    op: &TransitionOp,
    fired_at: Timestamp,
    now: Timestamp,
) -> AlertEvent {
    let id = format!("{}/{}", objective.id, kr.id);
    let dependent = format!("{}/{}", about.objective.id, about.kr.id);
    let summary = match op {
        TransitionOp::Resolve => format!(
            "{dependent}: {id} (team {}), which it depends on, is {} again",
            objective.team, row.status
        ),
        _ => format!(
            "{dependent}: {id} (team {}), which it depends on, is {} (score {})",
            objective.team,
            row.status,
            fmt(Some(row.score))
        ),
    };
    let specific = Specific {
        kind: AlertKind::Dependency,
        summary,
        score_delta: None,
        counter_metric: None,
        dependency: Some(DependencyInfo {
            id,
            title: kr.title.clone(),
            team: objective.team.clone(),
            value: row.value,
            score: row.score,
            status: row.status.to_string(),
        }),
    };
    event(about, op, fired_at, now, specific)
}
