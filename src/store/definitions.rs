//! Key results' definitions over time (SPEC §4 "Revisions and check-ins"):
//! a row per definition a KR had, recorded by each start or reload that
//! changed it, and the once-only notice of each revision.
//!
//! Recording is decided in the database: the rows a call adds are numbered
//! after the KR's stored ones (`seq`), and a second instance recording the
//! same change at once collides on the primary key and adds nothing; the
//! call then returns what is stored, so every instance scores under the
//! same timeline. A revision is notified by the conditional update that
//! sets its `notified_at`, in the transaction that queues its deliveries
//! (the alerts' outbox), so it is notified once across instances and
//! restarts.

use std::collections::HashMap;

use async_trait::async_trait;

use super::time::{NullableTime, StoredTime};
use super::words::vocabulary;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::definition::{self, Definition, FieldChange, Revision};
use crate::model::Timestamp;

vocabulary! {
    /// What a stored definition was, when recorded.
    pub enum DefinitionKind ("definition kind") {
        /// The first definition okrd saw of the KR.
        FirstSeen = "first_seen",
        /// A change while the KR's period was not running (before it
        /// started, or after it ended): no revision.
        OutsidePeriod = "outside_period",
        /// A change while the KR's period ran: a revision.
        Revision = "revision",
    }
}

/// A KR's definition as a start or reload sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDefinition {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// Its definition now.
    pub definition: Definition,
    /// Whether its period is running now (a change is then a revision).
    pub running: bool,
}

/// One stored definition of a KR.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredDefinition {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// The row's number among the KR's, from 1.
    pub seq: i64,
    /// What the row was.
    pub kind: DefinitionKind,
    /// The KR's revision from this row on (0 before its first revision).
    pub revision: i64,
    /// When it was recorded: it is in force from then on.
    #[sqlx(try_from = "StoredTime")]
    pub recorded_at: Timestamp,
    /// The definition, as JSON.
    pub definition: String,
    /// The fields changed from the previous row, as JSON.
    pub changes: String,
    /// Whether the change made the KR easier.
    pub easier: bool,
    /// When its revision's notice was queued.
    #[sqlx(try_from = "NullableTime")]
    pub notified_at: Option<Timestamp>,
}

impl StoredDefinition {
    /// The definition; `None` when the stored JSON is unreadable.
    pub fn definition(&self) -> Option<Definition> {
        Definition::from_json(&self.definition).ok()
    }

    /// The revision this row is, if it is one.
    pub fn as_revision(&self) -> Option<Revision> {
        (self.kind == DefinitionKind::Revision).then(|| Revision {
            revision: self.revision,
            at: self.recorded_at,
            changes: serde_json::from_str::<Vec<FieldChange>>(&self.changes).unwrap_or_default(),
            easier: self.easier,
        })
    }
}

/// A revision's notice: the deliveries to queue, once.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionNotice {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// The revision's number.
    pub revision: i64,
    /// The event as JSON (`AlertEvent`), stored and delivered.
    pub payload: String,
    /// Notifier names to deliver to.
    pub notifiers: Vec<String>,
    /// When it is queued.
    pub at: Timestamp,
}

/// Definitions over time, and revision notices.
#[async_trait]
pub trait DefinitionStore: Send + Sync {
    /// Records each of `defs` that differs from its KR's newest stored
    /// definition (or that has none), at `now`, and returns every KR's
    /// stored definitions, oldest first, in the order of `defs`.
    async fn record_definitions(
        &self,
        defs: &[NewDefinition],
        now: Timestamp,
    ) -> Result<Vec<Vec<StoredDefinition>>, StoreError>;

    /// A KR's stored definitions, oldest first.
    async fn definitions(
        &self,
        objective: &str,
        key_result: &str,
    ) -> Result<Vec<StoredDefinition>, StoreError>;

    /// Revisions whose notice is not queued yet, oldest first.
    async fn unnotified_revisions(&self) -> Result<Vec<StoredDefinition>, StoreError>;

    /// Queues `notice`'s deliveries unless its revision's notice was queued
    /// already (by this or another instance). Returns whether it queued.
    async fn queue_revision_notice(&self, notice: &RevisionNotice) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "objective, key_result, seq, kind, revision, recorded_at, definition, \
     changes, easier, notified_at";

/// The rows `defs` add to what is stored (`stored`, by KR, oldest first).
fn plan(
    stored: &HashMap<(String, String), Vec<StoredDefinition>>,
    defs: &[NewDefinition],
    now: Timestamp,
) -> Vec<StoredDefinition> {
    // As stored (µs), so that what a call returns is what a read returns.
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let mut out = Vec::new();
    for d in defs {
        let key = (d.objective.clone(), d.key_result.clone());
        let last = stored.get(&key).and_then(|rows| rows.last());
        let json = d.definition.to_json();
        let row = |seq, kind, revision, changes: Vec<FieldChange>, easier| StoredDefinition {
            objective: d.objective.clone(),
            key_result: d.key_result.clone(),
            seq,
            kind,
            revision,
            recorded_at: now,
            definition: json.clone(),
            changes: serde_json::to_string(&changes).expect("changes serialize"),
            easier,
            notified_at: None,
        };
        match last {
            None => out.push(row(1, DefinitionKind::FirstSeen, 0, vec![], false)),
            Some(last) => {
                let before = last.definition();
                if before.as_ref() == Some(&d.definition) {
                    continue;
                }
                // An unreadable stored definition counts as different,
                // with every field changed.
                let (changes, easier) = match &before {
                    Some(b) => (
                        definition::changes(b, &d.definition),
                        definition::easier(b, &d.definition),
                    ),
                    None => (vec![], false),
                };
                let (kind, revision) = if d.running {
                    (DefinitionKind::Revision, last.revision + 1)
                } else {
                    (DefinitionKind::OutsidePeriod, last.revision)
                };
                out.push(row(last.seq + 1, kind, revision, changes, easier));
            }
        }
    }
    out
}

/// The objectives of `defs`, each once: what a call reads of the stored
/// definitions (the rows of only the KRs it records, and their siblings).
fn objectives(defs: &[NewDefinition]) -> Vec<&str> {
    let mut out: Vec<&str> = defs.iter().map(|d| d.objective.as_str()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn by_kr(rows: Vec<StoredDefinition>) -> HashMap<(String, String), Vec<StoredDefinition>> {
    let mut out: HashMap<(String, String), Vec<StoredDefinition>> = HashMap::new();
    for r in rows {
        out.entry((r.objective.clone(), r.key_result.clone()))
            .or_default()
            .push(r);
    }
    out
}

fn in_order(
    mut stored: HashMap<(String, String), Vec<StoredDefinition>>,
    defs: &[NewDefinition],
) -> Vec<Vec<StoredDefinition>> {
    defs.iter()
        .map(|d| {
            stored
                .remove(&(d.objective.clone(), d.key_result.clone()))
                .unwrap_or_default()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// SQLite: BEGIN IMMEDIATE serializes writers, so reading and adding are one.

#[async_trait]
impl DefinitionStore for SqliteStore {
    async fn record_definitions(
        &self,
        defs: &[NewDefinition],
        now: Timestamp,
    ) -> Result<Vec<Vec<StoredDefinition>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<StoredDefinition> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kr_definitions \
             WHERE objective IN (SELECT value FROM json_each(?)) \
             ORDER BY objective, key_result, seq"
        ))
        .bind(serde_json::to_string(&objectives(defs)).expect("ids serialize"))
        .fetch_all(&mut *tx)
        .await?;
        let mut stored = by_kr(rows);
        let added = plan(&stored, defs, now);
        for r in &added {
            sqlx::query(&format!(
                "INSERT INTO kr_definitions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
            ))
            .bind(&r.objective)
            .bind(&r.key_result)
            .bind(r.seq)
            .bind(r.kind)
            .bind(r.revision)
            .bind(StoredTime(r.recorded_at))
            .bind(&r.definition)
            .bind(&r.changes)
            .bind(r.easier)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for r in added {
            stored
                .entry((r.objective.clone(), r.key_result.clone()))
                .or_default()
                .push(r);
        }
        Ok(in_order(stored, defs))
    }

    async fn definitions(
        &self,
        objective: &str,
        key_result: &str,
    ) -> Result<Vec<StoredDefinition>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kr_definitions WHERE objective = ? AND key_result = ? ORDER BY seq"
        ))
        .bind(objective)
        .bind(key_result)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn unnotified_revisions(&self) -> Result<Vec<StoredDefinition>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kr_definitions WHERE kind = 'revision' AND notified_at IS NULL \
             ORDER BY recorded_at, objective, key_result, seq"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn queue_revision_notice(&self, n: &RevisionNotice) -> Result<bool, StoreError> {
        let at = StoredTime(n.at);
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE kr_definitions SET notified_at = ? WHERE objective = ? AND key_result = ? \
             AND kind = 'revision' AND revision = ? AND notified_at IS NULL",
        )
        .bind(at)
        .bind(&n.objective)
        .bind(&n.key_result)
        .bind(n.revision)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        for notifier in &n.notifiers {
            sqlx::query(
                "INSERT INTO deliveries (objective, key_result, subject, episode, event, seq, notifier, payload, \
                   status, attempts, next_attempt_at, created_at) \
                 VALUES (?, ?, '', ?, 'revision', 0, ?, ?, 'pending', 0, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&n.objective)
            .bind(&n.key_result)
            .bind(n.revision)
            .bind(notifier)
            .bind(&n.payload)
            .bind(at)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL: an insert that collides with another instance's adds nothing;
// what is stored is read back after.

#[async_trait]
impl DefinitionStore for PostgresStore {
    async fn record_definitions(
        &self,
        defs: &[NewDefinition],
        now: Timestamp,
    ) -> Result<Vec<Vec<StoredDefinition>>, StoreError> {
        let select = format!(
            "SELECT {COLUMNS} FROM kr_definitions WHERE objective = ANY($1) \
             ORDER BY objective, key_result, seq"
        );
        let objectives = objectives(defs);
        let rows: Vec<StoredDefinition> = sqlx::query_as(&select)
            .bind(&objectives)
            .fetch_all(&self.pool)
            .await?;
        let stored = by_kr(rows);
        let added = plan(&stored, defs, now);
        if added.is_empty() {
            return Ok(in_order(stored, defs));
        }
        let col = |f: fn(&StoredDefinition) -> String| added.iter().map(f).collect::<Vec<_>>();
        sqlx::query(&format!(
            "INSERT INTO kr_definitions ({COLUMNS}) \
             SELECT o, k, s, d, r, $6, j, c, e, NULL \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $7::text[], $8::text[], $9::bool[]) \
               AS x (o, k, s, d, r, j, c, e) \
             ON CONFLICT DO NOTHING"
        ))
        .bind(col(|r| r.objective.clone()))
        .bind(col(|r| r.key_result.clone()))
        .bind(added.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(col(|r| r.kind.as_str().to_string()))
        .bind(added.iter().map(|r| r.revision).collect::<Vec<_>>())
        .bind(now)
        .bind(col(|r| r.definition.clone()))
        .bind(col(|r| r.changes.clone()))
        .bind(added.iter().map(|r| r.easier).collect::<Vec<_>>())
        .execute(&self.pool)
        .await?;
        let rows: Vec<StoredDefinition> = sqlx::query_as(&select)
            .bind(&objectives)
            .fetch_all(&self.pool)
            .await?;
        Ok(in_order(by_kr(rows), defs))
    }

    async fn definitions(
        &self,
        objective: &str,
        key_result: &str,
    ) -> Result<Vec<StoredDefinition>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kr_definitions WHERE objective = $1 AND key_result = $2 ORDER BY seq"
        ))
        .bind(objective)
        .bind(key_result)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn unnotified_revisions(&self) -> Result<Vec<StoredDefinition>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM kr_definitions WHERE kind = 'revision' AND notified_at IS NULL \
             ORDER BY recorded_at, objective, key_result, seq"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn queue_revision_notice(&self, n: &RevisionNotice) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock makes a second instance wait, then find it notified.
        let claimed = sqlx::query(
            "UPDATE kr_definitions SET notified_at = $1 WHERE objective = $2 AND key_result = $3 \
             AND kind = 'revision' AND revision = $4 AND notified_at IS NULL",
        )
        .bind(n.at)
        .bind(&n.objective)
        .bind(&n.key_result)
        .bind(n.revision)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO deliveries (objective, key_result, subject, episode, event, seq, notifier, payload, \
               status, attempts, next_attempt_at, created_at) \
             SELECT $1, $2, '', $3, 'revision', 0, n, $4, 'pending', 0, $5, $5 \
             FROM UNNEST($6::text[]) AS n ON CONFLICT DO NOTHING",
        )
        .bind(&n.objective)
        .bind(&n.key_result)
        .bind(i32::try_from(n.revision).unwrap_or(i32::MAX))
        .bind(&n.payload)
        .bind(n.at)
        .bind(&n.notifiers)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::objective::{Aggregate, Better, KrType};
    use crate::definition::TargetDef;

    fn def(target: f64) -> Definition {
        Definition {
            period: "2026-Q4".into(),
            metric: "m".into(),
            labels: Default::default(),
            aggregate: Aggregate::Last,
            window: None,
            baseline: Some(0.0),
            target: TargetDef::Value(target),
            better: Better::Higher,
            kind: KrType::Committed,
            weight: 1.0,
            stale_after: None,
            counter_metrics: vec![],
        }
    }

    fn new(target: f64, running: bool) -> NewDefinition {
        NewDefinition {
            objective: "o".into(),
            key_result: "k".into(),
            definition: def(target),
            running,
        }
    }

    #[test]
    fn a_change_is_a_revision_only_while_the_period_runs() {
        let now = chrono::DateTime::UNIX_EPOCH;
        let first = plan(&HashMap::new(), &[new(1.0, true)], now);
        assert_eq!(
            (first.len(), first[0].kind, first[0].revision, first[0].seq),
            (1, DefinitionKind::FirstSeen, 0, 1)
        );
        let stored = by_kr(first.clone());
        assert_eq!(plan(&stored, &[new(1.0, true)], now), vec![], "unchanged");
        let before = plan(&stored, &[new(0.5, false)], now);
        assert_eq!(
            (before[0].kind, before[0].revision, before[0].seq),
            (DefinitionKind::OutsidePeriod, 0, 2)
        );
        let during = plan(&stored, &[new(0.5, true)], now);
        assert_eq!(
            (during[0].kind, during[0].revision, during[0].easier),
            (DefinitionKind::Revision, 1, true)
        );
        assert_eq!(
            during[0].as_revision().unwrap().changes,
            vec![FieldChange {
                field: "target".into(),
                from: serde_json::json!({"value": 1.0}),
                to: serde_json::json!({"value": 0.5}),
            }]
        );
    }
}
