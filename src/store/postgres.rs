//! The PostgreSQL store.
//!
//! Batches travel in chunks of tens of thousands of points, a few
//! statements each: a large chunk of new points by binary COPY
//! (PostgreSQL's fastest way in), a small one, and one that overlaps stored
//! points, as arrays expanded by `UNNEST` into an insert or an upsert. Statement texts are constant, so each is
//! prepared once per connection.

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use super::batch::{self, Batch, Row, SeriesCache};
use super::copy::{copy_in, CopyBuf};
use super::migrations;
use super::timescale::{self, PointsLayout};
use super::*;

/// Points per statement. Large enough that round trips do not matter, small
/// enough that progress moves and no single array is huge.
const POINT_CHUNK: usize = 20_000;

/// Series per statement.
const SERIES_CHUNK: usize = 10_000;

/// Connections per process: the scorer, the API and a few connectors.
const MAX_CONNECTIONS: u32 = 8;

const INSERT_SERIES: &str = "INSERT INTO series (metric, labels) \
     SELECT * FROM UNNEST($1::text[], $2::text[]) \
     ON CONFLICT (metric, md5(labels)) DO UPDATE SET metric = EXCLUDED.metric \
     RETURNING id, metric, labels";

// An unchanged value is not rewritten: re-sent data (overlapping pulls) then
// creates no dead row versions.
const UPSERT_POINTS: &str = "INSERT INTO points (series_id, ts, value) \
     SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::float8[]) \
     ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value \
     WHERE points.value <> EXCLUDED.value";

// For small chunks of new points only: below [`COPY_MIN_ROWS`] a prepared
// insert is one round trip, where a COPY takes two and an unprepared
// statement.
const INSERT_POINTS: &str = "INSERT INTO points (series_id, ts, value) \
     SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::float8[])";

/// New points go by binary COPY from this many rows a chunk on.
const COPY_MIN_ROWS: usize = 5_000;

// Whether any stored point of a series falls within the chunk's ts range for
// it: one short index probe per series. A correlated subquery rather than a
// join, because the planner would hash-join a join against the whole table.
const ANY_STORED: &str = "SELECT coalesce(bool_or(EXISTS ( \
       SELECT 1 FROM points p WHERE p.series_id = r.series_id AND p.ts BETWEEN r.lo AND r.hi)), false) \
     FROM UNNEST($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS r (series_id, lo, hi)";

// `load_series` for many series in one statement: the same contiguous
// stretch of the primary key per series (see `load_series`), `r.i` telling
// which request a row answers.
const LOAD_MANY: &str = "SELECT r.i, p.ts, p.value \
     FROM UNNEST($1::int4[], $2::bigint[], $3::timestamptz[], $4::timestamptz[]) AS r (i, series_id, lo, hi) \
     CROSS JOIN LATERAL ( \
       SELECT ts, value FROM points \
       WHERE series_id = r.series_id \
         AND ts >= coalesce((SELECT max(ts) FROM points WHERE series_id = r.series_id AND ts <= r.lo), r.lo) \
         AND ts <= r.hi \
       ORDER BY ts) p";

/// `record_scores`' statement, over the records as column arrays: a KR's
/// record is written unless its newest row at or before it has the same
/// value, progress, score and status (history keeps changes only).
const RECORD_SCORES: &str = "INSERT INTO kr_scores (objective, key_result, at, value, progress, score, expected, status, revision) \
     SELECT r.objective, r.key_result, r.at, r.value, r.progress, r.score, r.expected, r.status, r.revision \
     FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::text[], $9::int8[]) \
       AS r (objective, key_result, at, value, progress, score, expected, status, revision) \
     WHERE NOT EXISTS ( \
       SELECT 1 FROM ( \
         SELECT k.value, k.progress, k.score, k.status, k.revision FROM kr_scores k \
         WHERE k.objective = r.objective AND k.key_result = r.key_result AND k.at <= r.at \
         ORDER BY k.at DESC LIMIT 1) n \
       WHERE n.value IS NOT DISTINCT FROM r.value AND n.progress IS NOT DISTINCT FROM r.progress \
         AND n.score = r.score AND n.status = r.status AND n.revision = r.revision) \
     ON CONFLICT (objective, key_result, at) DO UPDATE SET \
       value = EXCLUDED.value, progress = EXCLUDED.progress, score = EXCLUDED.score, \
       expected = EXCLUDED.expected, status = EXCLUDED.status, revision = EXCLUDED.revision";

/// A store in a PostgreSQL database.
pub struct PostgresStore {
    pub(super) pool: PgPool,
    series: SeriesCache,
    points_layout: PointsLayout,
    /// This store's rows in the change feed.
    pub(super) origin: i64,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER@HOST/DB`) and applies pending
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::open_migrated(url).await?.0)
    }

    /// Like [`PostgresStore::open`], also returning the names of the
    /// migrations this call applied (e.g. `["0001_init"]`).
    ///
    /// After the migrations, the points table becomes a TimescaleDB
    /// hypertable when the server has the extension (see
    /// [`PostgresStore::points_layout`]).
    pub async fn open_migrated(url: &str) -> Result<(Self, Vec<String>), StoreError> {
        let connect_error = |e: sqlx::Error| StoreError::Connect {
            target: crate::secrets::redact(url),
            message: crate::tls::describe(&e).unwrap_or_else(|| e.to_string()),
        };
        let options = quiet(crate::tls::pg_options(url).map_err(connect_error)?);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        let applied = migrations::run(&pool, migrations::POSTGRES).await?;
        let points_layout = timescale::enable(&pool).await?;
        match &points_layout {
            PointsLayout::Hypertable { version } => tracing::info!(
                timescaledb = %version,
                chunk = timescale::CHUNK_INTERVAL,
                compress_after = timescale::COMPRESS_AFTER,
                "points is a TimescaleDB hypertable"
            ),
            PointsLayout::Plain { reason } => {
                tracing::info!(reason = %reason, "points is a plain table")
            }
        }
        let store = Self {
            pool,
            series: SeriesCache::default(),
            points_layout,
            origin: changes::new_origin(),
        };
        Ok((store, applied))
    }

    /// Whether the points table is a TimescaleDB hypertable or a plain table.
    pub fn points_layout(&self) -> &PointsLayout {
        &self.points_layout
    }

    /// Closes the connections, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The id of `key`, if the series exists.
    async fn series_id(&self, key: &SeriesKey) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.series.get(key) {
            return Ok(Some(id));
        }
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM series WHERE metric = $1 AND md5(labels) = md5($2) AND labels = $2",
        )
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
        let metrics: Vec<&str> = lookup.asked.iter().map(|k| k.metric.as_str()).collect();
        let labels: Vec<String> = lookup.asked.iter().map(|k| k.labels_json()).collect();
        let found: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT k.i - 1, s.id \
             FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS k (metric, labels, i) \
             JOIN series s ON s.metric = k.metric AND md5(s.labels) = md5(k.labels) AND s.labels = k.labels",
        )
        .bind(&metrics)
        .bind(&labels)
        .fetch_all(&self.pool)
        .await?;
        Ok(lookup.found(&self.series, found))
    }
}

/// A chunk of rows as the column arrays `UNNEST` takes, reused across chunks.
struct Columns {
    series_ids: Vec<i64>,
    timestamps: Vec<Timestamp>,
    values: Vec<f64>,
}

impl Columns {
    fn with_capacity(rows: usize) -> Self {
        Self {
            series_ids: Vec::with_capacity(rows),
            timestamps: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows),
        }
    }

    fn fill(&mut self, rows: &[Row]) {
        self.series_ids.clear();
        self.timestamps.clear();
        self.values.clear();
        for row in rows {
            self.series_ids.push(row.series_id);
            self.timestamps.push(row.ts);
            self.values.push(row.value);
        }
    }

    /// Runs `sql` (`INSERT_POINTS` or `UPSERT_POINTS`) with the columns.
    async fn execute(&self, sql: &'static str, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(sql)
            .bind(&self.series_ids)
            .bind(&self.timestamps)
            .bind(&self.values)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// `points` rows `(series_id, ts as Unix microseconds, value)` in
/// PostgreSQL's binary COPY format, replacing what `buf` held.
pub fn encode_copy_rows(rows: impl IntoIterator<Item = (i64, i64, f64)>, buf: &mut Vec<u8>) {
    let mut copy = CopyBuf::start(buf);
    for (series_id, unix_micros, value) in rows {
        copy.row(3);
        copy.i64(series_id);
        copy.unix_micros(unix_micros);
        copy.f64(value);
    }
    copy.finish();
}

/// Inserts `rows`, all new, by binary COPY: PostgreSQL's fastest way in,
/// about twice an `INSERT` of the same rows. A row that is already stored
/// fails the whole COPY with a unique violation, as the insert would.
/// `buf` is reused across chunks.
async fn copy_points(
    rows: &[Row],
    buf: &mut Vec<u8>,
    conn: &mut PgConnection,
) -> Result<(), sqlx::Error> {
    encode_copy_rows(
        rows.iter()
            .map(|r| (r.series_id, r.ts.timestamp_micros(), r.value)),
        buf,
    );
    copy_in(
        conn,
        "COPY points (series_id, ts, value) FROM STDIN WITH (FORMAT binary)",
        buf,
    )
    .await
}

/// Whether any point is stored in the span `chunk` covers, per series.
/// `chunk` is sorted by (series_id, ts), so each series is one run.
async fn any_stored(conn: &mut PgConnection, chunk: &[Row]) -> Result<bool, sqlx::Error> {
    let mut series_ids = Vec::new();
    let mut lows = Vec::new();
    let mut highs: Vec<Timestamp> = Vec::new();
    for row in chunk {
        if series_ids.last() == Some(&row.series_id) {
            if let Some(high) = highs.last_mut() {
                *high = row.ts;
            }
        } else {
            series_ids.push(row.series_id);
            lows.push(row.ts);
            highs.push(row.ts);
        }
    }
    sqlx::query_scalar(ANY_STORED)
        .bind(series_ids)
        .bind(lows)
        .bind(highs)
        .fetch_one(conn)
        .await
}

#[async_trait]
impl Store for PostgresStore {
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

        let mut tx = self.pool.begin().await?;
        for chunk in unknown.chunks(SERIES_CHUNK) {
            let metrics: Vec<&str> = chunk.iter().map(|s| s.key.metric.as_str()).collect();
            let labels: Vec<&str> = chunk.iter().map(|s| s.labels.as_str()).collect();
            let returned: Vec<(i64, String, String)> = sqlx::query_as(INSERT_SERIES)
                .bind(metrics)
                .bind(labels)
                .fetch_all(&mut *tx)
                .await?;
            batch::assign(chunk, returned, &mut ids);
        }
        let ids = batch::resolved(&batch, ids)?;

        let rows = batch.rows(&ids);
        let mut columns = Columns::with_capacity(POINT_CHUNK.min(rows.len()));
        let mut copy_buf = Vec::new();
        let mut written = 0;
        for chunk in rows.chunks(POINT_CHUNK) {
            columns.fill(chunk);
            if any_stored(&mut tx, chunk).await? {
                columns.execute(UPSERT_POINTS, &mut tx).await?;
            } else {
                // A concurrent call may be inserting the same points; its
                // commit turns the COPY into a unique violation, and
                // the savepoint lets this chunk fall back to the upsert
                // without losing the rest of the transaction.
                let mut savepoint = tx.begin().await?;
                let inserted = if chunk.len() >= COPY_MIN_ROWS {
                    copy_points(chunk, &mut copy_buf, &mut savepoint).await
                } else {
                    columns.execute(INSERT_POINTS, &mut savepoint).await
                };
                match inserted {
                    Ok(()) => savepoint.commit().await?,
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        savepoint.rollback().await?;
                        columns.execute(UPSERT_POINTS, &mut tx).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            written += chunk.len();
            progress(written);
        }
        changes::pg_record(&mut tx, self.origin, &batch.changes()).await?;
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
        let rows: Vec<(Timestamp, f64)> = sqlx::query_as(
            "SELECT ts, value FROM points \
             WHERE series_id = $1 \
               AND ts >= coalesce((SELECT max(ts) FROM points WHERE series_id = $1 AND ts <= $2), $2) \
               AND ts <= $3 \
             ORDER BY ts",
        )
        .bind(id)
        .bind(from)
        .bind(to.max(from))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(ts, value)| Sample::new(ts, value))
            .collect())
    }

    async fn load_many(&self, ranges: &[SeriesRange]) -> Result<Vec<Vec<Sample>>, StoreError> {
        let mut out = vec![Vec::new(); ranges.len()];
        let (mut index, mut ids, mut los, mut his) = (vec![], vec![], vec![], vec![]);
        let series = self.series_ids(ranges).await?;
        for (i, (r, id)) in ranges.iter().zip(series).enumerate() {
            if let Some(id) = id {
                index.push(i as i32);
                ids.push(id);
                los.push(r.from);
                his.push(r.to.max(r.from));
            }
        }
        if ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<(i32, Timestamp, f64)> = sqlx::query_as(LOAD_MANY)
            .bind(index)
            .bind(ids)
            .bind(los)
            .bind(his)
            .fetch_all(&self.pool)
            .await?;
        for (i, ts, value) in rows {
            out[i as usize].push(Sample::new(ts, value));
        }
        Ok(batch::sorted(out))
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
        // One statement for every record (a recompute after a write records
        // one per KR it touched): each is written unless the KR's newest
        // row at or before it already says the same.
        let mut objective = Vec::with_capacity(records.len());
        let mut key_result = Vec::with_capacity(records.len());
        let mut at = Vec::with_capacity(records.len());
        let mut value = Vec::with_capacity(records.len());
        let mut progress = Vec::with_capacity(records.len());
        let mut score = Vec::with_capacity(records.len());
        let mut expected = Vec::with_capacity(records.len());
        let mut status = Vec::with_capacity(records.len());
        let mut revision = Vec::with_capacity(records.len());
        for r in records {
            objective.push(r.objective.as_str());
            key_result.push(r.key_result.as_str());
            at.push(r.at);
            value.push(r.value);
            progress.push(r.progress);
            score.push(r.score);
            expected.push(r.expected);
            status.push(r.status.as_str());
            revision.push(r.revision);
        }
        let written = sqlx::query(RECORD_SCORES)
            .bind(objective)
            .bind(key_result)
            .bind(at)
            .bind(value)
            .bind(progress)
            .bind(score)
            .bind(expected)
            .bind(status)
            .bind(revision)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(written as usize)
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
             WHERE objective = $1 AND key_result = $2 AND at > $3 AND at <= $4 \
             ORDER BY at",
        )
        .bind(objective)
        .bind(key_result)
        .bind(from)
        .bind(to)
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
        let (objectives, key_results): (Vec<&str>, Vec<&str>) =
            krs.iter().map(|(o, k)| (o.as_str(), k.as_str())).unzip();
        let span = bucket_us(from, to, points);
        // Each span's last row: DISTINCT ON keeps the first of each
        // (KR, span) in the order given. The lateral join reads each KR by
        // its primary key's range, where a semi-join may scan the table;
        // date_bin (PostgreSQL 14+) spans rows without numeric arithmetic.
        Ok(sqlx::query_as(
            "SELECT DISTINCT ON (k.objective, k.key_result, s.span) \
               k.objective, k.key_result, s.at, s.score \
             FROM UNNEST($1::text[], $2::text[]) AS k(objective, key_result) \
             CROSS JOIN LATERAL ( \
               SELECT at, score, date_bin($5 * interval '1 microsecond', at, $3) AS span \
               FROM kr_scores \
               WHERE objective = k.objective AND key_result = k.key_result \
               AND at > $3 AND at <= $4) s \
             ORDER BY k.objective, k.key_result, s.span, s.at DESC",
        )
        .bind(objectives)
        .bind(key_results)
        .bind(from)
        .bind(to)
        .bind(span)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
