//! Connector state: connectors registered over REST, watermarks of incremental pulls, run leases across instances, and Kafka dead letters.
//!
//! A part of the [`Store`](super::Store), as its own trait implemented for
//! both backends in this file.
//!
//! Each tick of a pull connector runs once across every instance sharing
//! the database: [`ConnectorStore::claim_tick`] is one conditional upsert
//! that moves the connector's `last_tick` forward only while no other run
//! holds an unexpired lease, and only one instance can move it.

use async_trait::async_trait;

use super::dead_letters::{self, DeadLetter, DeadLetterQuery, StoredDeadLetter};
use super::time::{NullableTime, StoredTime};
use super::{PostgresStore, SqliteStore, StoreError};
use crate::model::Timestamp;

/// A connector registered over the API, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiConnector {
    /// Its name.
    pub name: String,
    /// The request body that registered it, `${VAR}` unexpanded.
    pub definition: String,
    /// When it was first registered.
    #[sqlx(try_from = "StoredTime")]
    pub created_at: Timestamp,
    /// When it was last registered (replaced).
    #[sqlx(try_from = "StoredTime")]
    pub updated_at: Timestamp,
}

/// A pull connector's run state and health, shared by every instance.
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct ConnectorState {
    /// Its name.
    pub name: String,
    /// The latest tick some instance claimed.
    #[sqlx(try_from = "NullableTime")]
    pub last_tick: Option<Timestamp>,
    /// Until when the run in progress holds the lease; `None` when idle.
    #[sqlx(try_from = "NullableTime")]
    pub lease_until: Option<Timestamp>,
    /// When the latest run started.
    #[sqlx(try_from = "NullableTime")]
    pub last_run_at: Option<Timestamp>,
    /// When the latest successful run finished.
    #[sqlx(try_from = "NullableTime")]
    pub last_success_at: Option<Timestamp>,
    /// The latest failed run's error.
    pub last_error: Option<String>,
    /// When that run finished.
    #[sqlx(try_from = "NullableTime")]
    pub last_error_at: Option<Timestamp>,
    /// Points written by all its runs.
    #[sqlx(try_from = "i64")]
    pub points_ingested: u64,
    /// The latest point ts it stored (`$1` of a SQL connector).
    #[sqlx(try_from = "NullableTime")]
    pub watermark: Option<Timestamp>,
}

/// How a claimed run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// When it ended.
    pub finished_at: Timestamp,
    /// Points it wrote.
    pub points: u64,
    /// The latest ts among them; the stored watermark only moves forward.
    pub watermark: Option<Timestamp>,
    /// Why it failed; `None` for a success.
    pub error: Option<String>,
}

/// Connector state: connectors registered over REST, watermarks of incremental pulls, run leases across instances, and Kafka dead letters.
#[async_trait]
pub trait ConnectorStore: Send + Sync {
    /// Writes Kafka dead letters in one transaction; a message already
    /// dead-lettered (same connector, topic, partition, offset) is kept as
    /// it was, so a redelivered message is recorded once.
    async fn write_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError>;

    /// Dead letters, newest first.
    async fn dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<StoredDeadLetter>, StoreError>;

    /// Every connector registered over the API, by name.
    async fn api_connectors(&self) -> Result<Vec<ApiConnector>, StoreError>;

    /// Registers (or replaces) an API connector; true when it is new.
    async fn put_api_connector(
        &self,
        name: &str,
        definition: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes an API connector and its run state; false when unknown.
    async fn delete_api_connector(&self, name: &str) -> Result<bool, StoreError>;

    /// The run state of every connector that has run, by name.
    async fn connector_states(&self) -> Result<Vec<ConnectorState>, StoreError>;

    /// One connector's run state, if it has run.
    async fn connector_state(&self, name: &str) -> Result<Option<ConnectorState>, StoreError>;

    /// Claims `tick` for `owner`: succeeds (true) only if no run claimed
    /// this tick or a later one and no other run's lease is unexpired at
    /// `now`. The claim records `now` as the run's start and holds the lease
    /// until `lease_until`.
    async fn claim_tick(
        &self,
        name: &str,
        tick: Timestamp,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records how `owner`'s claimed run ended and releases its lease.
    async fn finish_run(
        &self,
        name: &str,
        owner: &str,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError>;

    /// Records a streaming connector's health, which claims no ticks: its
    /// points since the last report, and its error or its success.
    async fn record_stream_health(
        &self,
        name: &str,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError>;
}

const API_CONNECTORS: &str =
    "SELECT name, definition, created_at, updated_at FROM api_connectors ORDER BY name";

const STATE_COLUMNS: &str = "name, last_tick, lease_until, last_run_at, last_success_at, \
     last_error, last_error_at, points_ingested, watermark";

// The claim: insert the row, or move an existing row's tick forward while
// no unexpired lease is held. PostgreSQL re-checks the WHERE against the
// latest row version after waiting for a concurrent claim, so exactly one
// of two racing instances updates it; SQLite serializes writers.
const CLAIM: &str =
    "INSERT INTO connector_state (name, last_tick, lease_owner, lease_until, last_run_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick, \
       lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, \
       last_run_at = excluded.last_run_at \
     WHERE (connector_state.last_tick IS NULL OR connector_state.last_tick < excluded.last_tick) \
       AND (connector_state.lease_until IS NULL OR connector_state.lease_until <= $5)";

const FINISH_SQLITE: &str = "UPDATE connector_state SET \
       last_success_at = CASE WHEN $2 IS NULL THEN $1 ELSE last_success_at END, \
       last_error = coalesce($2, last_error), \
       last_error_at = CASE WHEN $2 IS NULL THEN last_error_at ELSE $1 END, \
       points_ingested = points_ingested + $3, \
       watermark = CASE WHEN $4 IS NOT NULL AND (watermark IS NULL OR watermark < $4) THEN $4 ELSE watermark END, \
       lease_until = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_until END, \
       lease_owner = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_owner END \
     WHERE name = $6";

const FINISH_POSTGRES: &str = "UPDATE connector_state SET \
       last_success_at = CASE WHEN $2::text IS NULL THEN $1 ELSE last_success_at END, \
       last_error = coalesce($2::text, last_error), \
       last_error_at = CASE WHEN $2::text IS NULL THEN last_error_at ELSE $1 END, \
       points_ingested = points_ingested + $3, \
       watermark = CASE WHEN $4::timestamptz IS NOT NULL AND (watermark IS NULL OR watermark < $4::timestamptz) \
         THEN $4::timestamptz ELSE watermark END, \
       lease_until = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_until END, \
       lease_owner = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_owner END \
     WHERE name = $6";

// A streaming connector's report: a success moves `last_success_at`, an
// error sets `last_error`; either adds its points.
const STREAM_HEALTH: &str = "INSERT INTO connector_state \
       (name, last_run_at, last_success_at, last_error, last_error_at, points_ingested) \
     VALUES ($1, $2, CASE WHEN $3 IS NULL THEN $2 END, $3, CASE WHEN $3 IS NULL THEN NULL ELSE $2 END, $4) \
     ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at, \
       last_success_at = coalesce(excluded.last_success_at, connector_state.last_success_at), \
       last_error = coalesce(excluded.last_error, connector_state.last_error), \
       last_error_at = coalesce(excluded.last_error_at, connector_state.last_error_at), \
       points_ingested = connector_state.points_ingested + excluded.points_ingested";

#[async_trait]
impl ConnectorStore for SqliteStore {
    async fn write_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        dead_letters::sqlite_write(self, letters).await
    }

    async fn dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        dead_letters::sqlite_list(self, query).await
    }

    async fn api_connectors(&self) -> Result<Vec<ApiConnector>, StoreError> {
        Ok(sqlx::query_as(API_CONNECTORS).fetch_all(&self.pool).await?)
    }

    async fn put_api_connector(
        &self,
        name: &str,
        definition: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let existed: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM api_connectors WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO api_connectors (name, definition, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(definition)
        .bind(StoredTime(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    async fn delete_api_connector(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM api_connectors WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted > 0 {
            sqlx::query("DELETE FROM connector_state WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn connector_states(&self) -> Result<Vec<ConnectorState>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STATE_COLUMNS} FROM connector_state ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn connector_state(&self, name: &str) -> Result<Option<ConnectorState>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STATE_COLUMNS} FROM connector_state WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn claim_tick(
        &self,
        name: &str,
        tick: Timestamp,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(CLAIM)
            .bind(name)
            .bind(StoredTime(tick))
            .bind(owner)
            .bind(StoredTime(lease_until))
            .bind(StoredTime(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(claimed == 1)
    }

    async fn finish_run(
        &self,
        name: &str,
        owner: &str,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(FINISH_SQLITE)
            .bind(StoredTime(outcome.finished_at))
            .bind(outcome.error.as_deref())
            .bind(i64::try_from(outcome.points).unwrap_or(i64::MAX))
            .bind(outcome.watermark.map(StoredTime))
            .bind(owner)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_stream_health(
        &self,
        name: &str,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(STREAM_HEALTH)
            .bind(name)
            .bind(StoredTime(outcome.finished_at))
            .bind(outcome.error.as_deref())
            .bind(i64::try_from(outcome.points).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl ConnectorStore for PostgresStore {
    async fn write_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        dead_letters::postgres_write(self, letters).await
    }

    async fn dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<StoredDeadLetter>, StoreError> {
        dead_letters::postgres_list(self, query).await
    }

    async fn api_connectors(&self) -> Result<Vec<ApiConnector>, StoreError> {
        Ok(sqlx::query_as(API_CONNECTORS).fetch_all(&self.pool).await?)
    }

    async fn put_api_connector(
        &self,
        name: &str,
        definition: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        // `xmax = 0` only for a freshly inserted row version.
        let inserted: bool = sqlx::query_scalar(
            "INSERT INTO api_connectors (name, definition, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at \
             RETURNING (xmax = 0)",
        )
        .bind(name)
        .bind(definition)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(inserted)
    }

    async fn delete_api_connector(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM api_connectors WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted > 0 {
            sqlx::query("DELETE FROM connector_state WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn connector_states(&self) -> Result<Vec<ConnectorState>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STATE_COLUMNS} FROM connector_state ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn connector_state(&self, name: &str) -> Result<Option<ConnectorState>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STATE_COLUMNS} FROM connector_state WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn claim_tick(
        &self,
        name: &str,
        tick: Timestamp,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(CLAIM)
            .bind(name)
            .bind(tick)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(claimed == 1)
    }

    async fn finish_run(
        &self,
        name: &str,
        owner: &str,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        sqlx::query(FINISH_POSTGRES)
            .bind(outcome.finished_at)
            .bind(outcome.error.as_deref())
            .bind(i64::try_from(outcome.points).unwrap_or(i64::MAX))
            .bind(outcome.watermark)
            .bind(owner)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_stream_health(
        &self,
        name: &str,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        let sql = STREAM_HEALTH
            .replace("$2", "$2::timestamptz")
            .replace("$3", "$3::text");
        sqlx::query(&sql)
            .bind(name)
            .bind(outcome.finished_at)
            .bind(outcome.error.as_deref())
            .bind(i64::try_from(outcome.points).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};

    fn t(secs: i64) -> Timestamp {
        Utc.timestamp_opt(1_790_812_800 + secs, 0).unwrap()
    }

    #[tokio::test]
    async fn each_tick_is_claimed_once_and_a_lease_blocks_later_ticks() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        assert!(store.claim_tick("c", t(0), "a", t(0), t(60)).await.unwrap());
        assert!(
            !store.claim_tick("c", t(0), "b", t(1), t(61)).await.unwrap(),
            "same tick"
        );
        assert!(
            !store
                .claim_tick("c", t(10), "b", t(10), t(70))
                .await
                .unwrap(),
            "a's lease is unexpired"
        );
        let outcome = RunOutcome {
            finished_at: t(11),
            points: 3,
            watermark: Some(t(5)),
            error: None,
        };
        store.finish_run("c", "a", &outcome).await.unwrap();
        assert!(
            !store
                .claim_tick("c", t(0), "b", t(12), t(70))
                .await
                .unwrap(),
            "a tick already run is not run again once the lease is released"
        );
        assert!(store
            .claim_tick("c", t(10), "b", t(12), t(70))
            .await
            .unwrap());
        store
            .finish_run(
                "c",
                "b",
                &RunOutcome {
                    finished_at: t(13),
                    points: 0,
                    watermark: Some(t(1)),
                    error: Some("boom".into()),
                },
            )
            .await
            .unwrap();
        let s = store.connector_state("c").await.unwrap().unwrap();
        assert_eq!(s.last_tick, Some(t(10)));
        assert_eq!(s.last_run_at, Some(t(12)));
        assert_eq!(s.last_success_at, Some(t(11)));
        assert_eq!(s.last_error.as_deref(), Some("boom"));
        assert_eq!(s.last_error_at, Some(t(13)));
        assert_eq!(s.points_ingested, 3);
        assert_eq!(s.watermark, Some(t(5)), "the watermark never moves back");
        assert_eq!(s.lease_until, None);
        // An expired lease (a crashed instance) does not block forever.
        assert!(store
            .claim_tick("c", t(20), "a", t(20), t(30))
            .await
            .unwrap());
        let late = t(30) + TimeDelta::seconds(1);
        assert!(store
            .claim_tick("c", t(31), "b", late, t(90))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn api_connectors_are_put_replaced_and_deleted() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        assert!(store.put_api_connector("x", "{}", t(0)).await.unwrap());
        assert!(!store
            .put_api_connector("x", "{\"a\":1}", t(5))
            .await
            .unwrap());
        let all = store.api_connectors().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].created_at, all[0].updated_at), (t(0), t(5)));
        assert_eq!(all[0].definition, "{\"a\":1}");
        assert!(store.claim_tick("x", t(0), "a", t(0), t(1)).await.unwrap());
        assert!(store.delete_api_connector("x").await.unwrap());
        assert!(!store.delete_api_connector("x").await.unwrap());
        assert!(store.connector_state("x").await.unwrap().is_none());
    }
}
