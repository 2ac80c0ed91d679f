//! Kafka dead letters: messages a `kafka` connector could not read as
//! points, kept with their raw payload so they can be explained and fixed.
//! The SQL of [`ConnectorStore`](super::ConnectorStore)'s dead-letter
//! methods, for both backends.

use super::time::StoredTime;
use super::{PostgresStore, SqliteStore, StoreError};
use crate::model::Timestamp;

/// The largest payload kept in a dead letter; a longer one is cut there.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Rows per SQLite insert statement (10 parameters each).
const SQLITE_CHUNK: usize = 500;

/// A message a `kafka` connector could not read as points.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    /// The connector that consumed it.
    pub connector: String,
    /// Where it was.
    pub topic: String,
    /// Its partition.
    #[sqlx(rename = "kafka_partition")]
    pub partition: i32,
    /// Its offset.
    #[sqlx(rename = "kafka_offset")]
    pub offset: i64,
    /// A bounded category (`invalid_json`, `invalid_shape`, `invalid_ts`, ...).
    pub reason: String,
    /// What exactly is wrong, in one phrase.
    pub error: String,
    /// The payload, at most [`MAX_PAYLOAD`] bytes of it.
    pub payload: Vec<u8>,
    /// The payload's size before the cut.
    #[sqlx(try_from = "i64")]
    pub payload_size: u64,
    /// When it was dead-lettered.
    #[sqlx(try_from = "StoredTime")]
    pub received_at: Timestamp,
}

impl DeadLetter {
    /// Keeps at most [`MAX_PAYLOAD`] bytes of `payload`, remembering its size.
    pub fn cut_payload(payload: &[u8]) -> (Vec<u8>, u64) {
        let kept = &payload[..payload.len().min(MAX_PAYLOAD)];
        (kept.to_vec(), payload.len() as u64)
    }
}

/// A stored dead letter and its id (ascending in the order they were
/// written).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredDeadLetter {
    /// Its id.
    pub id: i64,
    /// The letter.
    #[sqlx(flatten)]
    pub letter: DeadLetter,
}

/// Which dead letters to list: newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeadLetterQuery {
    /// Only this connector's.
    pub connector: Option<String>,
    /// Only those with an id below this (the next page).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

const COLUMNS: &str = "id, connector, topic, kafka_partition, kafka_offset, reason, error, \
     payload, payload_size, received_at";

/// Writes `letters` to SQLite in one transaction; a letter already stored
/// for the same message is left as it was.
pub(super) async fn sqlite_write(
    store: &SqliteStore,
    letters: &[DeadLetter],
) -> Result<(), StoreError> {
    if letters.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin_write().await?;
    for chunk in letters.chunks(SQLITE_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO dead_letters (connector, topic, kafka_partition, kafka_offset, reason, \
             error, payload, payload_size, received_at) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?,?,?,?,?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?,?,?,?,?)"
            });
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        let mut query = sqlx::query(&sql);
        for l in chunk {
            query = query
                .bind(&l.connector)
                .bind(&l.topic)
                .bind(l.partition)
                .bind(l.offset)
                .bind(&l.reason)
                .bind(&l.error)
                .bind(&l.payload)
                .bind(l.payload_size as i64)
                .bind(StoredTime(l.received_at));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Lists dead letters from SQLite.
pub(super) async fn sqlite_list(
    store: &SqliteStore,
    q: &DeadLetterQuery,
) -> Result<Vec<StoredDeadLetter>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE (?1 IS NULL OR connector = ?1) \
             AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
    ))
    .bind(q.connector.as_deref())
    .bind(q.before_id)
    .bind(i64::from(q.limit))
    .fetch_all(&store.pool)
    .await?)
}

/// Writes `letters` to PostgreSQL in one statement; a letter already stored
/// for the same message is left as it was.
pub(super) async fn postgres_write(
    store: &PostgresStore,
    letters: &[DeadLetter],
) -> Result<(), StoreError> {
    if letters.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&DeadLetter) -> String| letters.iter().map(f).collect::<Vec<_>>();
    let partitions: Vec<i32> = letters.iter().map(|l| l.partition).collect();
    let offsets: Vec<i64> = letters.iter().map(|l| l.offset).collect();
    let payloads: Vec<&[u8]> = letters.iter().map(|l| l.payload.as_slice()).collect();
    let sizes: Vec<i64> = letters.iter().map(|l| l.payload_size as i64).collect();
    let times: Vec<Timestamp> = letters.iter().map(|l| l.received_at).collect();
    sqlx::query(
        "INSERT INTO dead_letters (connector, topic, kafka_partition, kafka_offset, reason, \
           error, payload, payload_size, received_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int8[], $5::text[], \
           $6::text[], $7::bytea[], $8::int8[], $9::timestamptz[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(col(|l| l.connector.clone()))
    .bind(col(|l| l.topic.clone()))
    .bind(partitions)
    .bind(offsets)
    .bind(col(|l| l.reason.clone()))
    .bind(col(|l| l.error.clone()))
    .bind(payloads)
    .bind(sizes)
    .bind(times)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// Lists dead letters from PostgreSQL.
pub(super) async fn postgres_list(
    store: &PostgresStore,
    q: &DeadLetterQuery,
) -> Result<Vec<StoredDeadLetter>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE ($1::text IS NULL OR connector = $1) \
             AND ($2::int8 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(q.connector.as_deref())
    .bind(q.before_id)
    .bind(i64::from(q.limit))
    .fetch_all(&store.pool)
    .await?)
}
