//! Score history in bulk: the rewrites a first build and late points make,
//! for many KRs in one transaction (binary COPY on PostgreSQL), and where
//! each KR's stored history ends.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;

use super::copy::{copy_in, CopyBuf};
use super::sqlite::{chunk_sql, push_tuples};
use super::time::{NullableTime, StoredTime};
use super::{PostgresStore, ScoreRecord, SqliteStore, StoreError};
use crate::model::Timestamp;

/// One KR's history from `from` on, replaced by `records`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRewrite {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// Rows with `at >= from` are replaced.
    pub from: Timestamp,
    /// The new rows: ascending, at or after `from`, free of consecutive
    /// duplicates.
    pub records: Vec<ScoreRecord>,
}

/// Score history for many KRs at once.
#[async_trait]
pub trait HistoryStore {
    /// Applies every rewrite in one transaction: each KR's rows from its
    /// `from` on are deleted and its records written.
    async fn rewrite_histories(&self, rewrites: &[HistoryRewrite]) -> Result<(), StoreError>;

    /// The `at` of each KR's newest history row (`None` without any), for
    /// `krs` as (objective, key result), in order.
    async fn history_ends(
        &self,
        krs: &[(&str, &str)],
    ) -> Result<Vec<Option<Timestamp>>, StoreError>;
}

/// Rows per SQLite insert: 9 parameters each.
const SQLITE_ROWS: usize = 100;

static SQLITE_FULL: LazyLock<String> = LazyLock::new(|| sqlite_insert(SQLITE_ROWS));

fn sqlite_insert(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR REPLACE INTO kr_scores \
         (objective, key_result, at, value, progress, score, expected, status, revision) VALUES ",
    );
    push_tuples(&mut sql, rows, "(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    sql
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn rewrite_histories(&self, rewrites: &[HistoryRewrite]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for w in rewrites {
            sqlx::query("DELETE FROM kr_scores WHERE objective = ? AND key_result = ? AND at >= ?")
                .bind(&w.objective)
                .bind(&w.key_result)
                .bind(StoredTime(w.from))
                .execute(&mut *tx)
                .await?;
        }
        let records: Vec<&ScoreRecord> = rewrites.iter().flat_map(|w| &w.records).collect();
        for chunk in records.chunks(SQLITE_ROWS) {
            let sql = chunk_sql(&SQLITE_FULL, SQLITE_ROWS, chunk.len(), sqlite_insert);
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(&r.objective)
                    .bind(&r.key_result)
                    .bind(StoredTime(r.at))
                    .bind(r.value)
                    .bind(r.progress)
                    .bind(r.score)
                    .bind(r.expected)
                    .bind(r.status)
                    .bind(r.revision);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn history_ends(
        &self,
        krs: &[(&str, &str)],
    ) -> Result<Vec<Option<Timestamp>>, StoreError> {
        let mut out = Vec::with_capacity(krs.len());
        let mut conn = self.pool.acquire().await?;
        for (objective, key_result) in krs {
            // One primary-key probe each, in-process.
            let at: NullableTime = sqlx::query_scalar(
                "SELECT max(at) FROM kr_scores WHERE objective = ? AND key_result = ?",
            )
            .bind(objective)
            .bind(key_result)
            .fetch_one(&mut *conn)
            .await?;
            out.push(at.0);
        }
        Ok(out)
    }
}

#[async_trait]
impl HistoryStore for PostgresStore {
    async fn rewrite_histories(&self, rewrites: &[HistoryRewrite]) -> Result<(), StoreError> {
        let objectives: Vec<&str> = rewrites.iter().map(|w| w.objective.as_str()).collect();
        let key_results: Vec<&str> = rewrites.iter().map(|w| w.key_result.as_str()).collect();
        let froms: Vec<Timestamp> = rewrites.iter().map(|w| w.from).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM kr_scores s USING UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS r (o, k, f) \
             WHERE s.objective = r.o AND s.key_result = r.k AND s.at >= r.f",
        )
        .bind(objectives)
        .bind(key_results)
        .bind(froms)
        .execute(&mut *tx)
        .await?;
        let mut buf = Vec::new();
        let mut copy = CopyBuf::start(&mut buf);
        for r in rewrites.iter().flat_map(|w| &w.records) {
            copy.row(9);
            copy.text(&r.objective);
            copy.text(&r.key_result);
            copy.timestamp(r.at);
            copy.opt_f64(r.value);
            copy.opt_f64(r.progress);
            copy.f64(r.score);
            copy.f64(r.expected);
            copy.text(r.status.as_str());
            copy.i64(r.revision);
        }
        copy.finish();
        copy_in(
            &mut tx,
            "COPY kr_scores (objective, key_result, at, value, progress, score, expected, status, revision) \
             FROM STDIN WITH (FORMAT binary)",
            &buf,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn history_ends(
        &self,
        krs: &[(&str, &str)],
    ) -> Result<Vec<Option<Timestamp>>, StoreError> {
        let objectives: Vec<&str> = krs.iter().map(|(o, _)| *o).collect();
        let key_results: Vec<&str> = krs.iter().map(|(_, k)| *k).collect();
        // One index probe per KR (the primary key's prefix), one statement.
        let rows: Vec<(i64, Option<Timestamp>)> = sqlx::query_as(
            "SELECT r.i, (SELECT max(s.at) FROM kr_scores s WHERE s.objective = r.o AND s.key_result = r.k) \
             FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS r (o, k, i)",
        )
        .bind(objectives)
        .bind(key_results)
        .fetch_all(&self.pool)
        .await?;
        let by_index: HashMap<i64, Option<Timestamp>> = rows.into_iter().collect();
        Ok((1..=krs.len() as i64)
            .map(|i| by_index.get(&i).copied().flatten())
            .collect())
    }
}
