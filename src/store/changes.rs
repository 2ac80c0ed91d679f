//! The change feed (SPEC §6): how every process learns of the points every
//! other process wrote, within a second.
//!
//! Every `write_points` transaction adds, in the same transaction, a row to
//! `changes` for each metric it wrote, with the earliest ts it wrote and the
//! writing store's `origin`. A reader ([`ChangeFeed::read_changes`]) tails
//! the table with a [`FeedCursor`] and skips its own rows (its process
//! marked them itself).
//!
//! How a reader knows it has read everything:
//! - **SQLite** has one writer at a time (`BEGIN IMMEDIATE`), so ids are
//!   assigned in commit order: the cursor is the last id read.
//! - **PostgreSQL** hands out sequence values at insert, not at commit, so
//!   a row with a lower id can become visible after one with a higher id.
//!   The cursor is therefore a transaction id: every transaction below a
//!   snapshot's `xmin` has ended. A read returns every visible row whose
//!   `txid` is at or above the previous read's `xmin`, reports those it has
//!   not reported before, and moves to the new `xmin`. Rows of a
//!   transaction still open are read once it commits; a long transaction
//!   elsewhere holds `xmin` back, which only makes the set of ids to
//!   remember larger, never a change late or lost.
//!
//! Rows are kept for [`RETENTION`]; a reader that could not read for longer
//! than half of it cannot prove it missed nothing and must reload
//! everything (`feed.rs`).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, SqliteConnection};

use super::sqlite::push_tuples;
use super::time::StoredTime;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::model::Timestamp;

/// How long change rows are kept.
pub const RETENTION: Duration = Duration::from_secs(3600);

/// A metric got points from another process.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The metric.
    pub metric: String,
    /// The earliest ts written: history from there on is re-scored.
    pub earliest: Timestamp,
}

/// A reader's place in the feed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedCursor {
    /// Every change below this was read. SQLite: the next id to read;
    /// PostgreSQL: the `xmin` of the last read's snapshot.
    pub position: i64,
    /// PostgreSQL: ids already reported whose `txid` is at or above
    /// `position`, which the next read returns again.
    seen: HashSet<i64>,
}

/// The feed, as a store offers it.
#[async_trait]
pub trait ChangeFeed {
    /// A cursor at the feed's end now: what was written before is not
    /// reported by [`ChangeFeed::read_changes`].
    async fn feed_cursor(&self) -> Result<FeedCursor, StoreError>;

    /// The changes other processes committed since `cursor`, which moves
    /// past them.
    async fn read_changes(&self, cursor: &mut FeedCursor) -> Result<Vec<Change>, StoreError>;

    /// Deletes the rows older than [`RETENTION`]; returns how many.
    async fn prune_changes(&self) -> Result<u64, StoreError>;
}

/// A store's writer identity: random per opened store, so that a reader can
/// tell its own rows from another process's.
pub(super) fn new_origin() -> i64 {
    use std::hash::BuildHasher;
    let seed = (std::process::id(), std::time::SystemTime::now());
    // RandomState is seeded from the OS's randomness.
    std::collections::hash_map::RandomState::new().hash_one(seed) as i64
}

/// SQLite's clock in Unix microseconds, so that pruning compares the
/// database's times with the database's time.
const SQLITE_NOW_US: &str = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)";

/// Records `changes` (metric, earliest ts) in the writing transaction.
pub(super) async fn sqlite_record(
    tx: &mut SqliteConnection,
    origin: i64,
    changes: &[(&str, Timestamp)],
) -> Result<(), sqlx::Error> {
    // A write usually touches a handful of metrics; 200 rows of 3
    // parameters stay far below SQLite's parameter limit.
    for chunk in changes.chunks(200) {
        let mut sql =
            String::from("INSERT INTO changes (origin, metric, earliest, written_at) VALUES ");
        push_tuples(
            &mut sql,
            chunk.len(),
            &format!("(?, ?, ?, {SQLITE_NOW_US})"),
        );
        let mut query = sqlx::query(&sql);
        for (metric, earliest) in chunk {
            query = query.bind(origin).bind(*metric).bind(StoredTime(*earliest));
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Records `changes` (metric, earliest ts) in the writing transaction.
pub(super) async fn pg_record(
    tx: &mut PgConnection,
    origin: i64,
    changes: &[(&str, Timestamp)],
) -> Result<(), sqlx::Error> {
    let metrics: Vec<&str> = changes.iter().map(|(m, _)| *m).collect();
    let earliest: Vec<Timestamp> = changes.iter().map(|(_, ts)| *ts).collect();
    sqlx::query(
        "INSERT INTO changes (origin, metric, earliest) \
         SELECT $1, * FROM UNNEST($2::text[], $3::timestamptz[])",
    )
    .bind(origin)
    .bind(metrics)
    .bind(earliest)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn feed_cursor(&self) -> Result<FeedCursor, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(FeedCursor {
            position: last.unwrap_or(0) + 1,
            seen: HashSet::new(),
        })
    }

    async fn read_changes(&self, cursor: &mut FeedCursor) -> Result<Vec<Change>, StoreError> {
        let rows: Vec<(i64, i64, String, StoredTime)> = sqlx::query_as(
            "SELECT id, origin, metric, earliest FROM changes WHERE id >= ? ORDER BY id",
        )
        .bind(cursor.position)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for (id, origin, metric, earliest) in rows {
            cursor.position = cursor.position.max(id + 1);
            if origin != self.origin {
                out.push(Change {
                    metric,
                    earliest: earliest.0,
                });
            }
        }
        Ok(out)
    }

    async fn prune_changes(&self) -> Result<u64, StoreError> {
        let retention = i64::try_from(RETENTION.as_micros()).unwrap_or(i64::MAX);
        let done = sqlx::query(&format!(
            "DELETE FROM changes WHERE written_at < {SQLITE_NOW_US} - ?"
        ))
        .bind(retention)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

// One statement, so that the rows and the xmin come from one snapshot. The
// LEFT JOIN answers one row even when there is no change.
const PG_READ: &str = "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) \
     SELECT s.xmin::text::bigint, c.id, c.txid::text::bigint, c.origin, c.metric, c.earliest \
     FROM s LEFT JOIN changes c ON c.txid >= $1::text::xid8 \
     ORDER BY c.id";

type PgChangeRow = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<Timestamp>,
);

#[async_trait]
impl ChangeFeed for PostgresStore {
    async fn feed_cursor(&self) -> Result<FeedCursor, StoreError> {
        let xmin: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&self.pool)
                .await?;
        let mut cursor = FeedCursor {
            position: xmin,
            seen: HashSet::new(),
        };
        // What is visible now is history the caller loads itself.
        let rows: Vec<PgChangeRow> = sqlx::query_as(PG_READ)
            .bind(xmin.to_string())
            .fetch_all(&self.pool)
            .await?;
        cursor.seen = rows.iter().filter_map(|r| r.1).collect();
        Ok(cursor)
    }

    async fn read_changes(&self, cursor: &mut FeedCursor) -> Result<Vec<Change>, StoreError> {
        let rows: Vec<PgChangeRow> = sqlx::query_as(PG_READ)
            .bind(cursor.position.to_string())
            .fetch_all(&self.pool)
            .await?;
        let Some(xmin) = rows.first().map(|r| r.0) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (_, id, txid, origin, metric, earliest) in rows {
            let (Some(id), Some(txid), Some(origin), Some(metric), Some(earliest)) =
                (id, txid, origin, metric, earliest)
            else {
                continue;
            };
            if !cursor.seen.contains(&id) && origin != self.origin {
                out.push(Change { metric, earliest });
            }
            // Rows below the new xmin are never returned again.
            if txid >= xmin {
                seen.insert(id);
            }
        }
        cursor.position = cursor.position.max(xmin);
        cursor.seen = seen;
        Ok(out)
    }

    async fn prune_changes(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM changes WHERE written_at < now() - $1::interval")
            .bind(format!("{} seconds", RETENTION.as_secs()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
