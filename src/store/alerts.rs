//! Alert state and the notification outbox.
//!
//! Every transition (firing, repeat, resolved) is decided by a conditional
//! update of the alert's row in the same transaction that queues one
//! delivery per notifier. With several instances on one PostgreSQL, the
//! row lock makes each transition happen once; after a restart, pending
//! deliveries are still there, so nothing is lost or sent twice.
//!
//! A part of the [`Store`](super::Store), as its own trait implemented for
//! both backends in this file.

use std::time::Duration;

use async_trait::async_trait;

use super::time::{NullableTime, StoredTime};
use super::words::vocabulary;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::model::{minus, Timestamp};
use crate::scoring::welch::WindowStats;

vocabulary! {
    /// What an alert is about.
    pub enum AlertKind ("alert kind") {
        /// The KR moved toward its target while a counter metric degraded.
        CounterMetric = "counter_metric",
        /// The KR's data stopped arriving.
        StaleData = "stale_data",
        /// Another team's KR that this KR depends on is off track, stale
        /// or without data.
        Dependency = "dependency",
        /// The KR's definition changed while its period ran (a notice,
        /// not an alert: it has no state).
        Revision = "revision",
    }
}

vocabulary! {
    /// An alert's state; an alert that never fired has no row.
    pub enum AlertState ("alert state") {
        /// Firing now.
        Firing = "firing",
        /// Fired, then resolved.
        Resolved = "resolved",
    }
}

vocabulary! {
    /// What a transition was: the event a delivery sends.
    pub enum EventName ("alert event") {
        /// It started firing (a new episode).
        Firing = "firing",
        /// A re-send while firing.
        Repeat = "repeat",
        /// It stopped firing.
        Resolved = "resolved",
        /// A KR's revision (its notice is sent once).
        Revision = "revision",
    }
}

vocabulary! {
    /// Where a delivery stands.
    pub enum DeliveryStatus ("delivery status") {
        /// Queued or being retried.
        Pending = "pending",
        /// The receiver accepted it.
        Sent = "sent",
        /// Failed for good.
        Failed = "failed",
    }
}

impl EventName {
    /// The alert's state after this event.
    pub fn state(self) -> AlertState {
        match self {
            EventName::Firing | EventName::Repeat | EventName::Revision => AlertState::Firing,
            EventName::Resolved => AlertState::Resolved,
        }
    }
}

/// Which alert: a KR's counter metric, or (`subject` empty) its stale-data alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub struct AlertKey {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// The counter metric's name; empty for the stale-data alert.
    pub subject: String,
}

/// What a transition does.
#[derive(Debug, Clone, PartialEq)]
pub enum TransitionOp {
    /// Start firing (a new episode), unless already firing.
    Fire {
        /// The counter metric's value captured as the reference.
        reference: Option<f64>,
        /// `test: welch`'s earlier window, captured as the reference.
        window: Option<WindowStats>,
    },
    /// Re-send while firing, if the last send is at least `every` old.
    Repeat {
        /// `repeat_interval`.
        every: Duration,
    },
    /// Stop firing, if firing.
    Resolve,
}

/// A transition to apply, with the deliveries it queues.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Which alert.
    pub key: AlertKey,
    /// What it is about.
    pub kind: AlertKind,
    /// The owning team.
    pub team: String,
    /// When it happens.
    pub at: Timestamp,
    /// What happens.
    pub op: TransitionOp,
    /// The event as JSON (`AlertEvent`), stored and delivered.
    pub payload: String,
    /// Notifier names to deliver to.
    pub notifiers: Vec<String>,
    /// The change-feed position of the scorecard it was decided from
    /// (`Scorecard::view`): a firing or resolution decided from an older
    /// view than the alert's last one is refused.
    pub view: i64,
}

/// An alert's stored state.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertRecord {
    /// Which alert.
    #[sqlx(flatten)]
    pub key: AlertKey,
    /// What it is about.
    pub kind: AlertKind,
    /// The owning team.
    pub team: String,
    /// Firing or resolved.
    pub state: AlertState,
    /// How many times it has fired.
    #[sqlx(try_from = "i32")]
    pub episode: i64,
    /// The reference captured at firing.
    pub reference: Option<f64>,
    /// `test: welch`'s earlier window captured at firing: its count...
    pub reference_n: Option<i32>,
    /// ...mean...
    pub reference_mean: Option<f64>,
    /// ...and sample variance (see [`AlertRecord::reference_window`]).
    pub reference_variance: Option<f64>,
    /// When the current (or last) episode fired.
    #[sqlx(try_from = "StoredTime")]
    pub fired_at: Timestamp,
    /// When it resolved, if it has.
    #[sqlx(try_from = "NullableTime")]
    pub resolved_at: Option<Timestamp>,
    /// When deliveries were last queued for it.
    #[sqlx(try_from = "StoredTime")]
    pub last_sent_at: Timestamp,
    /// Repeats in the current episode.
    #[sqlx(try_from = "i32")]
    pub repeats: i64,
    /// The latest event as JSON.
    pub details: String,
}

impl AlertRecord {
    /// `test: welch`'s earlier window captured at firing, if one was.
    pub fn reference_window(&self) -> Option<WindowStats> {
        Some(WindowStats {
            n: usize::try_from(self.reference_n?).ok()?,
            mean: self.reference_mean?,
            variance: self.reference_variance?,
        })
    }
}

/// One queued notification.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Delivery {
    /// Unique id; also the receiver's idempotency key.
    pub id: i64,
    /// Which alert.
    #[sqlx(flatten)]
    pub key: AlertKey,
    /// The alert's episode.
    #[sqlx(try_from = "i32")]
    pub episode: i64,
    /// The transition it sends.
    pub event: EventName,
    /// The repeat's number; 0 otherwise.
    #[sqlx(try_from = "i32")]
    pub seq: i64,
    /// The notifier's name.
    pub notifier: String,
    /// The event as JSON.
    pub payload: String,
    /// Pending, sent or failed.
    pub status: DeliveryStatus,
    /// Attempts so far.
    #[sqlx(try_from = "i32")]
    pub attempts: i64,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// When it was queued.
    #[sqlx(try_from = "StoredTime")]
    pub created_at: Timestamp,
    /// When it was delivered.
    #[sqlx(try_from = "NullableTime")]
    pub sent_at: Option<Timestamp>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// Delivered.
    Sent,
    /// Failed; try again at `at`.
    Retry {
        /// The next attempt.
        at: Timestamp,
        /// Why it failed.
        error: String,
    },
    /// Failed for good.
    Failed {
        /// Why.
        error: String,
    },
}

/// Alert state and the notification outbox.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Applies `t` if its condition holds (see [`TransitionOp`]), queuing
    /// its deliveries in the same transaction. Returns whether it applied.
    async fn apply_transition(&self, t: &Transition) -> Result<bool, StoreError>;

    /// Alerts firing now, or resolved at or after `since`.
    async fn alerts(&self, since: Timestamp) -> Result<Vec<AlertRecord>, StoreError>;

    /// The `limit` alerts that fired last among those firing now, and how
    /// many fire in all: what the status page's panel lists.
    async fn firing_alerts(&self, limit: i64) -> Result<(Vec<AlertRecord>, i64), StoreError>;

    /// One KR's alerts firing now, or resolved at or after `since`.
    async fn alerts_of(
        &self,
        objective: &str,
        key_result: &str,
        since: Timestamp,
    ) -> Result<Vec<AlertRecord>, StoreError>;

    /// Claims up to `limit` pending deliveries due at `now` for `lease`
    /// (another claimant skips them until it ends), oldest first.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records an attempt's outcome.
    async fn finish_delivery(
        &self,
        id: i64,
        now: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError>;

    /// Every delivery of an alert, oldest first.
    async fn deliveries(&self, key: &AlertKey) -> Result<Vec<Delivery>, StoreError>;
}

/// What a transition reads of its alert's row, locked or under SQLite's
/// write lock.
#[derive(Debug, sqlx::FromRow)]
struct Current {
    state: AlertState,
    #[sqlx(try_from = "StoredTime")]
    last_sent_at: Timestamp,
    #[sqlx(try_from = "i32")]
    repeats: i64,
    /// The view of its last firing or resolution (`Transition::view`).
    view_position: i64,
}

const CURRENT: &str = "SELECT state, last_sent_at, repeats, view_position FROM alerts \
     WHERE objective = $1 AND key_result = $2 AND subject = $3";

/// The event and the repeat number of transition `t`, given the alert's
/// row (`None`: it never fired); `None` when its condition does not hold,
/// or when it would fire or resolve from an older view than the row's last
/// transition (an instance behind another must not undo its decision).
fn decide(t: &Transition, current: Option<&Current>) -> Option<(EventName, i64)> {
    let (op, at) = (&t.op, t.at);
    let older = current.is_some_and(|c| t.view < c.view_position);
    let firing = current.filter(|c| c.state == AlertState::Firing);
    match (op, firing) {
        (TransitionOp::Fire { .. } | TransitionOp::Resolve, _) if older => None,
        (TransitionOp::Fire { .. }, None) => Some((EventName::Firing, 0)),
        (TransitionOp::Resolve, Some(_)) => Some((EventName::Resolved, 0)),
        (TransitionOp::Repeat { every }, Some(c)) if c.last_sent_at <= minus(at, *every) => {
            Some((EventName::Repeat, c.repeats + 1))
        }
        _ => None,
    }
}

/// A captured window as its three nullable columns.
fn window_columns(w: &Option<WindowStats>) -> (Option<i32>, Option<f64>, Option<f64>) {
    match w {
        Some(w) => (
            Some(i32::try_from(w.n).unwrap_or(i32::MAX)),
            Some(w.mean),
            Some(w.variance),
        ),
        None => (None, None, None),
    }
}

const ALERT_COLUMNS: &str =
    "objective, key_result, subject, kind, team, state, episode, reference, \
     reference_n, reference_mean, reference_variance, \
     fired_at, resolved_at, last_sent_at, repeats, details";
const DELIVERY_COLUMNS: &str =
    "id, objective, key_result, subject, episode, event, seq, notifier, payload, \
     status, attempts, last_error, created_at, sent_at";

// ---------------------------------------------------------------------------
// SQLite: BEGIN IMMEDIATE serializes writers.

#[async_trait]
impl AlertStore for SqliteStore {
    async fn apply_transition(&self, t: &Transition) -> Result<bool, StoreError> {
        let at = StoredTime(t.at);
        let mut tx = self.begin_write().await?;
        let current: Option<Current> = sqlx::query_as(CURRENT)
            .bind(&t.key.objective)
            .bind(&t.key.key_result)
            .bind(&t.key.subject)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((event, seq)) = decide(t, current.as_ref()) else {
            return Ok(false);
        };
        match &t.op {
            TransitionOp::Fire { reference, window } => {
                let (n, mean, variance) = window_columns(window);
                sqlx::query(
                    "INSERT INTO alerts (objective, key_result, subject, kind, team, state, episode, reference, \
                       reference_n, reference_mean, reference_variance, \
                       fired_at, resolved_at, last_sent_at, repeats, details) \
                     VALUES (?, ?, ?, ?, ?, 'firing', 1, ?, ?, ?, ?, ?, NULL, ?, 0, ?) \
                     ON CONFLICT (objective, key_result, subject) DO UPDATE SET \
                       kind = excluded.kind, team = excluded.team, state = 'firing', episode = alerts.episode + 1, \
                       reference = excluded.reference, reference_n = excluded.reference_n, \
                       reference_mean = excluded.reference_mean, reference_variance = excluded.reference_variance, \
                       fired_at = excluded.fired_at, resolved_at = NULL, \
                       last_sent_at = excluded.last_sent_at, repeats = 0, details = excluded.details",
                )
                .bind(&t.key.objective)
                .bind(&t.key.key_result)
                .bind(&t.key.subject)
                .bind(t.kind)
                .bind(&t.team)
                .bind(reference)
                .bind(n)
                .bind(mean)
                .bind(variance)
                .bind(at)
                .bind(at)
                .bind(&t.payload)
                .execute(&mut *tx)
                .await?;
            }
            TransitionOp::Resolve => {
                sqlx::query("UPDATE alerts SET state = 'resolved', resolved_at = ?, details = ? WHERE objective = ? AND key_result = ? AND subject = ?")
                    .bind(at)
                    .bind(&t.payload)
                    .bind(&t.key.objective)
                    .bind(&t.key.key_result)
                    .bind(&t.key.subject)
                    .execute(&mut *tx)
                    .await?;
            }
            TransitionOp::Repeat { .. } => {
                sqlx::query("UPDATE alerts SET last_sent_at = ?, repeats = ?, details = ? WHERE objective = ? AND key_result = ? AND subject = ?")
                    .bind(at)
                    .bind(seq)
                    .bind(&t.payload)
                    .bind(&t.key.objective)
                    .bind(&t.key.key_result)
                    .bind(&t.key.subject)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if !matches!(t.op, TransitionOp::Repeat { .. }) {
            sqlx::query("UPDATE alerts SET view_position = ? WHERE objective = ? AND key_result = ? AND subject = ?")
                .bind(t.view)
                .bind(&t.key.objective)
                .bind(&t.key.key_result)
                .bind(&t.key.subject)
                .execute(&mut *tx)
                .await?;
        }
        for notifier in &t.notifiers {
            sqlx::query(
                "INSERT INTO deliveries (objective, key_result, subject, episode, event, seq, notifier, payload, \
                   status, attempts, next_attempt_at, created_at) \
                 SELECT objective, key_result, subject, episode, ?, ?, ?, ?, 'pending', 0, ?, ? FROM alerts \
                 WHERE objective = ? AND key_result = ? AND subject = ? \
                 ON CONFLICT DO NOTHING",
            )
            .bind(event)
            .bind(seq)
            .bind(notifier)
            .bind(&t.payload)
            .bind(at)
            .bind(at)
            .bind(&t.key.objective)
            .bind(&t.key.key_result)
            .bind(&t.key.subject)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn alerts(&self, since: Timestamp) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' OR resolved_at >= ? \
             ORDER BY fired_at DESC, objective, key_result, subject"
        ))
        .bind(StoredTime(since))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn firing_alerts(&self, limit: i64) -> Result<(Vec<AlertRecord>, i64), StoreError> {
        let listed = sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' \
             ORDER BY fired_at DESC, objective, key_result, subject LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let (total,): (i64,) = sqlx::query_as("SELECT count(*) FROM alerts WHERE state = 'firing'")
            .fetch_one(&self.pool)
            .await?;
        Ok((listed, total))
    }

    async fn alerts_of(
        &self,
        objective: &str,
        key_result: &str,
        since: Timestamp,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE objective = ? AND key_result = ? \
             AND (state = 'firing' OR resolved_at >= ?) \
             ORDER BY fired_at DESC, subject"
        ))
        .bind(objective)
        .bind(key_result)
        .bind(StoredTime(since))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let until = now + chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::zero());
        let mut tx = self.begin_write().await?;
        let mut out: Vec<Delivery> = sqlx::query_as(&format!(
            "UPDATE deliveries SET claimed_until = ? WHERE id IN ( \
               SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? \
                 AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT ?) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(StoredTime(until))
        .bind(StoredTime(now))
        .bind(StoredTime(now))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        now: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let now = StoredTime(now);
        let q = match outcome {
            DeliveryOutcome::Sent => sqlx::query(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, attempts = attempts + 1, claimed_until = NULL WHERE id = ?",
            )
            .bind(now)
            .bind(id),
            DeliveryOutcome::Retry { at, error } => sqlx::query(
                "UPDATE deliveries SET next_attempt_at = ?, last_error = ?, attempts = attempts + 1, claimed_until = NULL WHERE id = ?",
            )
            .bind(StoredTime(*at))
            .bind(error.clone())
            .bind(id),
            DeliveryOutcome::Failed { error } => sqlx::query(
                "UPDATE deliveries SET status = 'failed', last_error = ?, attempts = attempts + 1, claimed_until = NULL WHERE id = ?",
            )
            .bind(error.clone())
            .bind(id),
        };
        let mut tx = self.begin_write().await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries(&self, key: &AlertKey) -> Result<Vec<Delivery>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE objective = ? AND key_result = ? AND subject = ? ORDER BY id"
        ))
        .bind(&key.objective)
        .bind(&key.key_result)
        .bind(&key.subject)
        .fetch_all(&self.pool)
        .await?)
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL: the alert row is locked for the transition, and deliveries
// are claimed with SKIP LOCKED so instances share the outbox.

#[async_trait]
impl AlertStore for PostgresStore {
    async fn apply_transition(&self, t: &Transition) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<Current> = sqlx::query_as(&format!("{CURRENT} FOR UPDATE"))
            .bind(&t.key.objective)
            .bind(&t.key.key_result)
            .bind(&t.key.subject)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((event, seq)) = decide(t, current.as_ref()) else {
            return Ok(false);
        };
        let seq = i32::try_from(seq).unwrap_or(i32::MAX);
        let applied = match &t.op {
            // Two instances may both see no row: the conflict clause makes
            // the second one's insert a no-op that returns nothing.
            TransitionOp::Fire { reference, window } => {
                let (n, mean, variance) = window_columns(window);
                sqlx::query(
                    "INSERT INTO alerts (objective, key_result, subject, kind, team, state, episode, reference, \
                       reference_n, reference_mean, reference_variance, \
                       fired_at, resolved_at, last_sent_at, repeats, details) \
                     VALUES ($1, $2, $3, $4, $5, 'firing', 1, $6, $7, $8, $9, $10, NULL, $10, 0, $11) \
                     ON CONFLICT (objective, key_result, subject) DO UPDATE SET \
                       kind = EXCLUDED.kind, team = EXCLUDED.team, state = 'firing', episode = alerts.episode + 1, \
                       reference = EXCLUDED.reference, reference_n = EXCLUDED.reference_n, \
                       reference_mean = EXCLUDED.reference_mean, reference_variance = EXCLUDED.reference_variance, \
                       fired_at = EXCLUDED.fired_at, resolved_at = NULL, \
                       last_sent_at = EXCLUDED.last_sent_at, repeats = 0, details = EXCLUDED.details \
                     WHERE alerts.state <> 'firing'",
                )
                .bind(&t.key.objective)
                .bind(&t.key.key_result)
                .bind(&t.key.subject)
                .bind(t.kind)
                .bind(&t.team)
                .bind(reference)
                .bind(n)
                .bind(mean)
                .bind(variance)
                .bind(t.at)
                .bind(&t.payload)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            }
            TransitionOp::Resolve => sqlx::query(
                "UPDATE alerts SET state = 'resolved', resolved_at = $1, details = $2 \
                 WHERE objective = $3 AND key_result = $4 AND subject = $5 AND state = 'firing'",
            )
            .bind(t.at)
            .bind(&t.payload)
            .bind(&t.key.objective)
            .bind(&t.key.key_result)
            .bind(&t.key.subject)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            TransitionOp::Repeat { .. } => sqlx::query(
                "UPDATE alerts SET last_sent_at = $1, repeats = $2, details = $3 \
                 WHERE objective = $4 AND key_result = $5 AND subject = $6 AND state = 'firing'",
            )
            .bind(t.at)
            .bind(seq)
            .bind(&t.payload)
            .bind(&t.key.objective)
            .bind(&t.key.key_result)
            .bind(&t.key.subject)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if applied == 0 {
            return Ok(false);
        }
        if !matches!(t.op, TransitionOp::Repeat { .. }) {
            sqlx::query(
                "UPDATE alerts SET view_position = $1 \
                 WHERE objective = $2 AND key_result = $3 AND subject = $4",
            )
            .bind(t.view)
            .bind(&t.key.objective)
            .bind(&t.key.key_result)
            .bind(&t.key.subject)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO deliveries (objective, key_result, subject, episode, event, seq, notifier, payload, \
               status, attempts, next_attempt_at, created_at) \
             SELECT a.objective, a.key_result, a.subject, a.episode, $1, $2, n, $3, 'pending', 0, $4, $4 \
             FROM alerts a, UNNEST($5::text[]) AS n \
             WHERE a.objective = $6 AND a.key_result = $7 AND a.subject = $8 \
             ON CONFLICT DO NOTHING",
        )
        .bind(event)
        .bind(seq)
        .bind(&t.payload)
        .bind(t.at)
        .bind(&t.notifiers)
        .bind(&t.key.objective)
        .bind(&t.key.key_result)
        .bind(&t.key.subject)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn alerts(&self, since: Timestamp) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' OR resolved_at >= $1 \
             ORDER BY fired_at DESC, objective, key_result, subject"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn firing_alerts(&self, limit: i64) -> Result<(Vec<AlertRecord>, i64), StoreError> {
        let listed = sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'firing' \
             ORDER BY fired_at DESC, objective, key_result, subject LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let (total,): (i64,) = sqlx::query_as("SELECT count(*) FROM alerts WHERE state = 'firing'")
            .fetch_one(&self.pool)
            .await?;
        Ok((listed, total))
    }

    async fn alerts_of(
        &self,
        objective: &str,
        key_result: &str,
        since: Timestamp,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE objective = $1 AND key_result = $2 \
             AND (state = 'firing' OR resolved_at >= $3) \
             ORDER BY fired_at DESC, subject"
        ))
        .bind(objective)
        .bind(key_result)
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let until = now + chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::zero());
        let mut out: Vec<Delivery> = sqlx::query_as(&format!(
            "UPDATE deliveries SET claimed_until = $1 WHERE id IN ( \
               SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND (claimed_until IS NULL OR claimed_until < $2) \
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(until)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        now: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let q = match outcome {
            DeliveryOutcome::Sent => sqlx::query(
                "UPDATE deliveries SET status = 'sent', sent_at = $1, attempts = attempts + 1, claimed_until = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(id),
            DeliveryOutcome::Retry { at, error } => sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1, last_error = $2, attempts = attempts + 1, claimed_until = NULL WHERE id = $3",
            )
            .bind(*at)
            .bind(error.clone())
            .bind(id),
            DeliveryOutcome::Failed { error } => sqlx::query(
                "UPDATE deliveries SET status = 'failed', last_error = $1, attempts = attempts + 1, claimed_until = NULL WHERE id = $2",
            )
            .bind(error.clone())
            .bind(id),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn deliveries(&self, key: &AlertKey) -> Result<Vec<Delivery>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE objective = $1 AND key_result = $2 AND subject = $3 ORDER BY id"
        ))
        .bind(&key.objective)
        .bind(&key.key_result)
        .bind(&key.subject)
        .fetch_all(&self.pool)
        .await?)
    }
}
