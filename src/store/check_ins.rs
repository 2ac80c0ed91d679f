//! Check-ins (SPEC §4 "Revisions and check-ins"): a person's word on a KR,
//! its confidence (0..1) and a note. Stored beside the scores, never part
//! of them.

use async_trait::async_trait;

use super::time::StoredTime;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::model::Timestamp;

/// A check-in to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheckIn {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// When it was made.
    pub at: Timestamp,
    /// The person's confidence that the KR will be met, in [0, 1].
    pub confidence: f64,
    /// Why.
    pub note: String,
    /// Who, if they said.
    pub author: Option<String>,
}

/// A stored check-in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct CheckIn {
    /// Unique id.
    pub id: i64,
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// When it was made.
    #[sqlx(try_from = "StoredTime")]
    pub at: Timestamp,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// The note.
    pub note: String,
    /// The author, if given.
    pub author: Option<String>,
}

/// Check-ins.
#[async_trait]
pub trait CheckInStore: Send + Sync {
    /// Stores `c`; returns it as stored.
    async fn add_check_in(&self, c: &NewCheckIn) -> Result<CheckIn, StoreError>;

    /// A KR's check-ins, newest first, at most `limit`.
    async fn check_ins(
        &self,
        objective: &str,
        key_result: &str,
        limit: i64,
    ) -> Result<Vec<CheckIn>, StoreError>;

    /// Every KR's latest check-in (one each).
    async fn latest_check_ins(&self) -> Result<Vec<CheckIn>, StoreError>;
}

const COLUMNS: &str = "id, objective, key_result, at, confidence, note, author";

/// Newest first; of two at one instant, the later stored.
const LATEST: &str =
    "SELECT c.id, c.objective, c.key_result, c.at, c.confidence, c.note, c.author \
     FROM check_ins c WHERE c.id = (SELECT d.id FROM check_ins d \
       WHERE d.objective = c.objective AND d.key_result = c.key_result \
       ORDER BY d.at DESC, d.id DESC LIMIT 1) \
     ORDER BY c.objective, c.key_result";

#[async_trait]
impl CheckInStore for SqliteStore {
    async fn add_check_in(&self, c: &NewCheckIn) -> Result<CheckIn, StoreError> {
        let mut tx = self.begin_write().await?;
        let stored: CheckIn = sqlx::query_as(&format!(
            "INSERT INTO check_ins (objective, key_result, at, confidence, note, author) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        ))
        .bind(&c.objective)
        .bind(&c.key_result)
        .bind(StoredTime(c.at))
        .bind(c.confidence)
        .bind(&c.note)
        .bind(&c.author)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn check_ins(
        &self,
        objective: &str,
        key_result: &str,
        limit: i64,
    ) -> Result<Vec<CheckIn>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM check_ins WHERE objective = ? AND key_result = ? \
             ORDER BY at DESC, id DESC LIMIT ?"
        ))
        .bind(objective)
        .bind(key_result)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn latest_check_ins(&self) -> Result<Vec<CheckIn>, StoreError> {
        Ok(sqlx::query_as(LATEST).fetch_all(&self.pool).await?)
    }
}

#[async_trait]
impl CheckInStore for PostgresStore {
    async fn add_check_in(&self, c: &NewCheckIn) -> Result<CheckIn, StoreError> {
        Ok(sqlx::query_as(&format!(
            "INSERT INTO check_ins (objective, key_result, at, confidence, note, author) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(&c.objective)
        .bind(&c.key_result)
        .bind(c.at)
        .bind(c.confidence)
        .bind(&c.note)
        .bind(&c.author)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn check_ins(
        &self,
        objective: &str,
        key_result: &str,
        limit: i64,
    ) -> Result<Vec<CheckIn>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM check_ins WHERE objective = $1 AND key_result = $2 \
             ORDER BY at DESC, id DESC LIMIT $3"
        ))
        .bind(objective)
        .bind(key_result)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn latest_check_ins(&self) -> Result<Vec<CheckIn>, StoreError> {
        Ok(sqlx::query_as(LATEST).fetch_all(&self.pool).await?)
    }
}
