//! The alert event: what a notification says. Its JSON is the webhook body
//! (versioned: `okrd.alert.v1`), stored with each queued delivery, and what
//! the Slack, email and Alertmanager notifiers format.

use serde::{Deserialize, Serialize};

use crate::definition::Revision;
use crate::model::Timestamp;
use crate::store::{AlertKind, AlertState, EventName};

/// The version string of the webhook body; bumped on incompatible changes.
pub const VERSION: &str = "okrd.alert.v1";

/// One alert transition, with everything a receiver needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Always [`VERSION`].
    pub version: String,
    /// The delivery's id, unique per (transition, notifier): receivers can
    /// use it to drop a redelivery. Set when sent.
    #[serde(default)]
    pub id: Option<i64>,
    /// `firing`, `repeat` or `resolved`.
    pub event: EventName,
    /// `counter_metric` (the KR moved while a counter metric degraded),
    /// `stale_data` (the KR's data stopped arriving) or `dependency`
    /// (another team's KR this KR depends on is at risk).
    pub kind: AlertKind,
    /// `firing` or `resolved` after this event.
    pub status: AlertState,
    /// When the event happened.
    pub at: Timestamp,
    /// When the alert started firing.
    pub fired_at: Timestamp,
    /// The owning team.
    pub team: String,
    /// One line for people.
    pub summary: String,
    /// The objective.
    pub objective: ObjectiveInfo,
    /// The key result and how it moved.
    pub key_result: KeyResultInfo,
    /// The counter metric and how it moved (`counter_metric` alerts).
    pub counter_metric: Option<CounterInfo>,
    /// The KR depended on and its state (`dependency` alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<DependencyInfo>,
    /// The revision: its number, time, each changed field from → to, and
    /// whether it is easier (`revision` notices only; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// Where to look.
    pub links: Links,
}

/// The objective of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveInfo {
    /// Objective id.
    pub id: String,
    /// The objective's statement.
    pub title: String,
}

/// The key result of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyResultInfo {
    /// Key result id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its metric.
    pub metric: String,
    /// Its value now.
    pub value: Option<f64>,
    /// Its score now.
    pub score: f64,
    /// Score now minus score one comparison window ago.
    pub score_delta: Option<f64>,
    /// Its status now.
    pub status: String,
    /// ts of its newest point.
    pub updated_at: Option<Timestamp>,
}

/// The counter metric of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterInfo {
    /// Its metric name.
    pub metric: String,
    /// Its value now.
    pub value: Option<f64>,
    /// The reference: its value at firing time, one window before.
    pub reference: Option<f64>,
    /// value − reference.
    pub delta: Option<f64>,
    /// `lower` or `higher`: which way is better.
    pub better: String,
    /// The tolerance as written (`5%`, `0.3`).
    pub tolerance: String,
    /// The comparison window (`7d`).
    pub window: String,
}

/// The KR a `dependency` alert is about: the one the alert's KR needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyInfo {
    /// `objective/kr`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its team.
    pub team: String,
    /// Its value now.
    pub value: Option<f64>,
    /// Its score now.
    pub score: f64,
    /// Its status now.
    pub status: String,
}

/// Links to the KR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// The KR's API resource, with its explanation.
    pub api: String,
    /// The status page, at the KR's row.
    pub status_page: String,
}
