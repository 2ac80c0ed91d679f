//! The embedded SQLite store, okrd's default.
//!
//! Timestamps are stored as integer microseconds since the Unix epoch. Writes
//! use multi-row statements of a fixed size, so each shape is prepared once
//! per connection and then reused from sqlx's statement cache.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::batch::{self, Batch, SeriesCache};
use super::migrations;
use super::time::StoredTime;
use super::*;

/// Points per insert statement: 3 parameters each, well under SQLite's
/// 32,766-parameter limit, and large enough that per-statement overhead
/// vanishes.
const POINT_CHUNK: usize = 500;

/// Series per insert statement (2 parameters each).
const SERIES_CHUNK: usize = 500;

/// How long a writer waits for another connection's write lock. Generous,
/// because a large import holds the lock for seconds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Readers can proceed alongside the one writer under WAL.
const MAX_CONNECTIONS: u32 = 4;

static POINTS_FULL: LazyLock<String> = LazyLock::new(|| points_sql(POINT_CHUNK));
static SERIES_FULL: LazyLock<String> = LazyLock::new(|| series_sql(SERIES_CHUNK));

/// A store in a SQLite database file (or in memory, for tests).
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    series: SeriesCache,
    /// This store's rows in the change feed.
    pub(super) origin: i64,
}

impl SqliteStore {
    /// Opens `url` (`sqlite://data/okrd.db`, `sqlite:///abs/path.db` or
    /// `sqlite::memory:`), creating the file and its directory if needed, and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::open_migrated(url).await?.0)
    }

    /// Like [`SqliteStore::open`], also returning the names of the
    /// migrations this call applied (e.g. `["0001_init"]`).
    pub async fn open_migrated(url: &str) -> Result<(Self, Vec<String>), StoreError> {
        let in_memory = is_in_memory(url);
        let mut options = quiet(
            SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .busy_timeout(BUSY_TIMEOUT),
        );
        let pool_options = if in_memory {
            // Every connection to `:memory:` is its own database, so the pool
            // holds exactly one and never lets it go.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            let path = options.get_filename();
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            // WAL lets the API read while an import writes; NORMAL is
            // durable across application crashes, which is what WAL needs.
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options.connect_with(options).await?;
        let applied = migrations::run(&pool, migrations::SQLITE).await?;
        let store = Self {
            pool,
            series: SeriesCache::default(),
            origin: changes::new_origin(),
        };
        Ok((store, applied))
    }

    /// Closes the connections, waiting for those in use to be returned;
    /// SQLite then folds the WAL back into the database file.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction that holds the write lock from its first
    /// statement: a deferred one that reads first could fail with SQLITE_BUSY
    /// when it upgrades, without waiting for the busy timeout.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The id of `key`, if the series exists.
    async fn series_id(&self, key: &SeriesKey) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.series.get(key) {
            return Ok(Some(id));
        }
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM series WHERE metric = ? AND labels = ?")
                .bind(&key.metric)
                .bind(key.labels_json())
                .fetch_optional(&self.pool)
                .await?;
        if let Some(id) = id {
            self.series.insert([(Arc::new(key.clone()), id)]);
        }
        Ok(id)
    }

    /// The id of each range's series, `None` where it has none: the cached
    /// ones, and the rest in one query (a cold start asks for thousands).
    async fn series_ids(&self, ranges: &[SeriesRange]) -> Result<Vec<Option<i64>>, StoreError> {
        let lookup = self.series.lookup(ranges);
        if lookup.asked.is_empty() {
            return Ok(lookup.found(&self.series, Vec::new()));
        }
        // As one JSON array [[metric, labels], ...].
        let requests = serde_json::Value::Array(
            lookup
                .asked
                .iter()
                .map(|k| serde_json::json!([k.metric, k.labels_json()]))
                .collect(),
        );
        let found: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT r.key, s.id FROM json_each(?1) r \
             JOIN series s ON s.metric = r.value ->> 0 AND s.labels = r.value ->> 1",
        )
        .bind(requests.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(lookup.found(&self.series, found))
    }
}

/// The samples of `load_many`'s text, "TS VALUE TS VALUE ...", ascending.
fn samples_from_text(text: &str) -> Result<Vec<Sample>, StoreError> {
    let bad = |what: &str, word: &str| StoreError::Decode {
        column: "points".into(),
        message: format!("{word:?} is not a stored {what}"),
    };
    let mut words = text.split(' ');
    let mut out = Vec::with_capacity(text.len() / 24);
    while let Some(ts) = words.next() {
        let value = words.next().ok_or_else(|| bad("value", ""))?;
        let micros: i64 = ts.parse().map_err(|_| bad("timestamp", ts))?;
        let ts = super::time::from_micros(micros).map_err(|e| StoreError::Decode {
            column: "points.ts".into(),
            message: e.to_string(),
        })?;
        let value: f64 = value.parse().map_err(|_| bad("value", value))?;
        out.push(Sample::new(ts, value));
    }
    Ok(out)
}

/// Whether `url` names an in-memory database, which sqlx does not expose.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|param| param == "mode=memory")
}

/// `INSERT INTO points` of `rows` rows that replaces existing values; an
/// unchanged value is left alone so that re-sent data dirties no pages.
fn points_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO points (series_id, ts, value) VALUES ");
    push_tuples(&mut sql, rows, "(?, ?, ?)");
    sql.push_str(
        " ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value \
         WHERE value <> excluded.value",
    );
    sql
}

/// `INSERT INTO series` of `rows` rows that returns the id of each, new or
/// not (the no-op update makes existing rows part of RETURNING).
fn series_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO series (metric, labels) VALUES ");
    push_tuples(&mut sql, rows, "(?, ?)");
    sql.push_str(
        " ON CONFLICT (metric, labels) DO UPDATE SET metric = excluded.metric \
         RETURNING id, metric, labels",
    );
    sql
}

/// Appends `rows` copies of `tuple`, comma-separated: a multi-row VALUES.
pub(super) fn push_tuples(sql: &mut String, rows: usize, tuple: &str) {
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(tuple);
    }
}

/// The full-size statement for a chunk of the full size, else a one-off.
pub(super) fn chunk_sql<'a>(
    full: &'a str,
    full_rows: usize,
    rows: usize,
    build: fn(usize) -> String,
) -> Cow<'a, str> {
    if rows == full_rows {
        Cow::Borrowed(full)
    } else {
        Cow::Owned(build(rows))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_points(
        &self,
        points: &[Point],
        progress: Progress<'_>,
    ) -> Result<usize, StoreError> {
        if points.is_empty() {
            return Ok(0);
        }
        let batch = Batch::new(points);
        let mut ids = self.series.get_all(&batch.series);
        let unknown = batch::unknown(&batch, &ids);

        let mut tx = self.begin_write().await?;
        for chunk in unknown.chunks(SERIES_CHUNK) {
            let sql = chunk_sql(&SERIES_FULL, SERIES_CHUNK, chunk.len(), series_sql);
            let mut query = sqlx::query_as::<_, (i64, String, String)>(&sql);
            for series in chunk {
                query = query.bind(&series.key.metric).bind(&series.labels);
            }
            let returned = query.fetch_all(&mut *tx).await?;
            batch::assign(chunk, returned, &mut ids);
        }
        let ids = batch::resolved(&batch, ids)?;

        let rows = batch.rows(&ids);
        let mut written = 0;
        for chunk in rows.chunks(POINT_CHUNK) {
            let sql = chunk_sql(&POINTS_FULL, POINT_CHUNK, chunk.len(), points_sql);
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query
                    .bind(row.series_id)
                    .bind(StoredTime(row.ts))
                    .bind(row.value);
            }
            query.execute(&mut *tx).await?;
            written += chunk.len();
            progress(written);
        }
        changes::sqlite_record(&mut tx, self.origin, &batch.changes()).await?;
        tx.commit().await?;

        self.series.insert(
            unknown
                .iter()
                .map(|series| (Arc::clone(series.key), ids[series.index])),
        );
        Ok(rows.len())
    }

    async fn load_series(
        &self,
        key: &SeriesKey,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Sample>, StoreError> {
        let Some(id) = self.series_id(key).await? else {
            return Ok(Vec::new());
        };
        // The anchor (latest point at or before `from`) and the range are one
        // contiguous stretch of the primary key: everything from the anchor
        // on, since no point lies between the anchor and `from`. Without an
        // anchor, `ts >= from` is `ts > from`, as no point sits at `from`.
        // `to` is raised to `from` so that the anchor alone is returned when
        // the range is empty.
        let rows: Vec<(StoredTime, f64)> = sqlx::query_as(
            "SELECT ts, value FROM points \
             WHERE series_id = ?1 \
               AND ts >= coalesce((SELECT max(ts) FROM points WHERE series_id = ?1 AND ts <= ?2), ?2) \
               AND ts <= ?3 \
             ORDER BY ts",
        )
        .bind(id)
        .bind(StoredTime(from))
        .bind(StoredTime(to.max(from)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(ts, value)| Sample::new(ts.0, value))
            .collect())
    }

    async fn load_many(&self, ranges: &[SeriesRange]) -> Result<Vec<Vec<Sample>>, StoreError> {
        let mut out = vec![Vec::new(); ranges.len()];
        // The requests travel as one JSON array [[i, series_id, lo, hi], ...];
        // CROSS JOIN keeps them the outer loop, each a range of the primary
        // key, as in `load_series`.
        let mut requests = String::from("[");
        let series = self.series_ids(ranges).await?;
        for (i, (r, id)) in ranges.iter().zip(series).enumerate() {
            if let Some(id) = id {
                if requests.len() > 1 {
                    requests.push(',');
                }
                requests.push_str(&format!(
                    "[{i},{id},{},{}]",
                    r.from.timestamp_micros(),
                    r.to.max(r.from).timestamp_micros()
                ));
            }
        }
        requests.push(']');
        if requests.len() == 2 {
            return Ok(out);
        }
        // One row per range, its points as text: sqlx hands SQLite rows over
        // one at a time through a channel, which cost more than the query
        // (about 3 µs a point: 4.9 s of `okrd score` over 1.6M points).
        // `%!.17g` prints 17 significant digits, which every double parses
        // back from exactly (`load_many_keeps_every_double_exactly`).
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "WITH r (i, series_id, lo, hi) AS MATERIALIZED ( \
               SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?1)) \
             SELECT r.i, group_concat(p.ts || ' ' || printf('%!.17g', p.value), ' ' ORDER BY p.ts) \
             FROM r CROSS JOIN points p \
             WHERE p.series_id = r.series_id \
               AND p.ts >= coalesce((SELECT max(ts) FROM points WHERE series_id = r.series_id AND ts <= r.lo), r.lo) \
               AND p.ts <= r.hi \
             GROUP BY r.i",
        )
        .bind(requests)
        .fetch_all(&self.pool)
        .await?;
        // Each range's text is in ts order (the aggregate's ORDER BY).
        for (i, text) in rows {
            out[i as usize] = samples_from_text(&text)?;
        }
        Ok(out)
    }

    async fn metrics_with_points(&self) -> Result<BTreeSet<String>, StoreError> {
        let metrics: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT metric FROM series s \
             WHERE EXISTS (SELECT 1 FROM points p WHERE p.series_id = s.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(metrics.into_iter().collect())
    }

    async fn record_scores(&self, records: &[ScoreRecord]) -> Result<usize, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for record in records {
            let at = StoredTime(record.at);
            let newest: Option<(Option<f64>, Option<f64>, f64, Status, i64)> = sqlx::query_as(
                "SELECT value, progress, score, status, revision FROM kr_scores \
                 WHERE objective = ? AND key_result = ? AND at <= ? \
                 ORDER BY at DESC LIMIT 1",
            )
            .bind(&record.objective)
            .bind(&record.key_result)
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((value, progress, score, status, revision)) = newest {
                if value == record.value
                    && progress == record.progress
                    && score == record.score
                    && status == record.status
                    && revision == record.revision
                {
                    continue;
                }
            }
            sqlx::query(
                "INSERT INTO kr_scores (objective, key_result, at, value, progress, score, expected, status, revision) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (objective, key_result, at) DO UPDATE SET \
                   value = excluded.value, progress = excluded.progress, score = excluded.score, \
                   expected = excluded.expected, status = excluded.status, revision = excluded.revision",
            )
            .bind(&record.objective)
            .bind(&record.key_result)
            .bind(at)
            .bind(record.value)
            .bind(record.progress)
            .bind(record.score)
            .bind(record.expected)
            .bind(record.status)
            .bind(record.revision)
            .execute(&mut *tx)
            .await?;
            written += 1;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn score_history(
        &self,
        objective: &str,
        key_result: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ScoreRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT objective, key_result, at, value, progress, score, expected, status, revision FROM kr_scores \
             WHERE objective = ? AND key_result = ? AND at > ? AND at <= ? \
             ORDER BY at",
        )
        .bind(objective)
        .bind(key_result)
        .bind(StoredTime(from))
        .bind(StoredTime(to))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn score_lines(
        &self,
        krs: &[(String, String)],
        from: Timestamp,
        to: Timestamp,
        points: usize,
    ) -> Result<Vec<ScorePoint>, StoreError> {
        let keys = serde_json::to_string(krs).expect("strings serialize");
        let span = bucket_us(from, to, points);
        // SQLite's max() gives the bare columns of the row it picks: each
        // span's last row.
        Ok(sqlx::query_as(
            "SELECT objective, key_result, max(at) AS at, score FROM kr_scores \
             WHERE (objective, key_result) IN \
               (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)) \
             AND at > ? AND at <= ? \
             GROUP BY objective, key_result, (at - ?) / ? \
             ORDER BY 1, 2, 3",
        )
        .bind(keys)
        .bind(StoredTime(from))
        .bind(StoredTime(to))
        .bind(StoredTime(from))
        .bind(span)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_in_memory_urls() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://okrd?mode=memory"));
        assert!(!is_in_memory("sqlite://data/okrd.db"));
        assert!(!is_in_memory("sqlite:///var/lib/okrd/okrd.db"));
    }

    #[test]
    fn statements_have_one_tuple_per_row() {
        assert_eq!(points_sql(3).matches("(?, ?, ?)").count(), 3);
        assert_eq!(series_sql(2).matches("(?, ?)").count(), 2);
    }
}
