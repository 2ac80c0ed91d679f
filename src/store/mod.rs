//! The time-series store: one [`Store`] trait, implemented for SQLite (the
//! embedded default) and PostgreSQL.
//!
//! Invariants every implementation keeps:
//! - points are keyed by (series, ts); writing a point again replaces its
//!   value, also when both copies are in one call;
//! - one `write_points` call is one transaction: all of it lands or none;
//! - writes are batched: no round trip per point;
//! - migrations are applied by [`open`] before the store is returned.
//!
//! Besides points and score history: KR definitions and revisions
//! (`definitions.rs`) and check-ins (`check_ins.rs`).
//!
//! Rows are read by `#[derive(sqlx::FromRow)]` types shared by both
//! backends: a timestamp column is a [`StoredTime`] (`time.rs`), a fixed
//! vocabulary an enum with its words (`words.rs`).

mod alerts;
mod batch;
mod changes;
mod check_ins;
mod connectors;
mod copy;
mod dead_letters;
mod definitions;
mod history;
mod migrations;
mod postgres;
mod sqlite;
mod time;
mod timescale;
mod words;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{Point, Sample, SeriesKey, Timestamp};
use crate::scoring::Status;

pub use alerts::{
    AlertKey, AlertKind, AlertRecord, AlertState, AlertStore, Delivery, DeliveryOutcome,
    DeliveryStatus, EventName, Transition, TransitionOp,
};
pub use changes::{Change, ChangeFeed, FeedCursor, RETENTION as CHANGE_RETENTION};
pub use check_ins::{CheckIn, CheckInStore, NewCheckIn};
pub use connectors::{ApiConnector, ConnectorState, ConnectorStore, RunOutcome};
pub use dead_letters::{
    DeadLetter, DeadLetterQuery, StoredDeadLetter, MAX_PAYLOAD as MAX_DEAD_LETTER_PAYLOAD,
};
pub use definitions::{
    DefinitionKind, DefinitionStore, NewDefinition, RevisionNotice, StoredDefinition,
};
pub use history::{HistoryRewrite, HistoryStore};
pub use postgres::{encode_copy_rows, PostgresStore};
pub use sqlite::SqliteStore;
pub use time::{NullableTime, StoredTime};
pub use timescale::PointsLayout;

/// Errors at the store's edge.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database url {0:?}: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// Connecting failed: the server is unreachable, refused the login, or
    /// its TLS failed (named in words by [`crate::tls::describe`]).
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// The database URL without its password.
        target: String,
        /// What failed.
        message: String,
    },
    /// The database refused or failed a statement or a connection.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A stored value could not be read as its Rust type: a timestamp out
    /// of range, a word outside its vocabulary.
    #[error("cannot read the stored column {column}: {message}")]
    Decode {
        /// The column, as sqlx names it (`"fired_at"`, or its index).
        column: String,
        /// What is wrong with the value, naming it.
        message: String,
    },
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Preparing the database location failed (e.g. creating its directory).
    #[error("cannot prepare database at {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Turning the points table into a TimescaleDB hypertable failed.
    #[error("cannot set up the TimescaleDB hypertable ({step}): {source}")]
    Timescale {
        /// What was being done, e.g. "create the points hypertable".
        step: &'static str,
        /// The underlying error.
        source: sqlx::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { index, source } => StoreError::Decode {
                column: index,
                message: source.to_string(),
            },
            e => StoreError::Database(e),
        }
    }
}

/// One [`Store::load_series`] request of a [`Store::load_many`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRange {
    /// The series.
    pub key: SeriesKey,
    /// As `load_series`'s `from`.
    pub from: Timestamp,
    /// As `load_series`'s `to`.
    pub to: Timestamp,
}

/// One row of a key result's score history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScoreRecord {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// The evaluation time the row describes.
    #[sqlx(try_from = "StoredTime")]
    pub at: Timestamp,
    /// The KR's value; `None` without data.
    pub value: Option<f64>,
    /// Progress; `None` for maintain KRs and without data.
    pub progress: Option<f64>,
    /// Score in [0, 1].
    pub score: f64,
    /// Expected score at `at`.
    pub expected: f64,
    /// The status (stored as `on_track`, `at_risk`, `off_track`, `stale`, `no_data`).
    pub status: Status,
    /// The revision of the KR's definition the row was computed under (0:
    /// the definition before any revision).
    pub revision: i64,
}

/// One point of a KR's score line (a score-history row's time and score).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScorePoint {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// The evaluation time of the row.
    #[sqlx(try_from = "StoredTime")]
    pub at: Timestamp,
    /// Score in [0, 1].
    pub score: f64,
}

/// The length of each of `points` equal spans of (from, to], in µs (at
/// least 1): how [`Store::score_lines`] thins a line.
fn bucket_us(from: Timestamp, to: Timestamp, points: usize) -> i64 {
    let total = (to - from).num_microseconds().unwrap_or(i64::MAX);
    (total / points.max(1) as i64).max(1)
}

/// A callback told how many points of the current call have been written.
pub type Progress<'a> = &'a (dyn Fn(usize) + Send + Sync);

/// A progress callback that ignores progress.
pub fn no_progress(_: usize) {}

/// The time-series store.
#[async_trait]
pub trait Store:
    ConnectorStore
    + AlertStore
    + ChangeFeed
    + HistoryStore
    + DefinitionStore
    + CheckInStore
    + Send
    + Sync
{
    /// Writes `points` idempotently, in one transaction, in batches; calls
    /// `progress` with the running count of points written. Returns how many
    /// distinct (series, ts) points the call stored.
    async fn write_points(
        &self,
        points: &[Point],
        progress: Progress<'_>,
    ) -> Result<usize, StoreError>;

    /// A series' points for scoring, ascending by ts: the latest point at or
    /// before `from` (if any), then every point with `from < ts <= to`.
    /// An unknown series has no points.
    async fn load_series(
        &self,
        key: &SeriesKey,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Sample>, StoreError>;

    /// [`Store::load_series`] for each of `ranges`, in order, in as few
    /// round trips as the database allows.
    async fn load_many(&self, ranges: &[SeriesRange]) -> Result<Vec<Vec<Sample>>, StoreError> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            out.push(self.load_series(&r.key, r.from, r.to).await?);
        }
        Ok(out)
    }

    /// Names of the metrics that have at least one stored point.
    async fn metrics_with_points(&self) -> Result<BTreeSet<String>, StoreError>;

    /// Appends a score-history row for each of `records`, in one
    /// transaction, unless the newest row at or before its `at` has the same
    /// value, progress, score, status and revision; a row at the same `at` is
    /// replaced. Each record is compared with the rows stored before the
    /// call, so a call holds at most one record per KR (a recompute's).
    /// Returns how many rows were written.
    async fn record_scores(&self, records: &[ScoreRecord]) -> Result<usize, StoreError>;

    /// A KR's score history in (from, to], ascending.
    async fn score_history(
        &self,
        objective: &str,
        key_result: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<ScoreRecord>, StoreError>;

    /// The score lines of many KRs (`(objective, key_result)` pairs) in
    /// (from, to], in one statement, thinned in the database to at most
    /// `points` (+1) per KR: (from, to] cut into `points` equal spans, each
    /// giving its last row. Ordered by KR, then time. What the status page
    /// draws its sparklines from.
    async fn score_lines(
        &self,
        krs: &[(String, String)],
        from: Timestamp,
        to: Timestamp,
        points: usize,
    ) -> Result<Vec<ScorePoint>, StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Statements slower than this are logged by sqlx at debug, never on a
/// user's terminal: sqlx's own default (a WARN with the statement's full
/// SQL) reached `okrd score`'s output on a large store.
const SLOW_STATEMENT: std::time::Duration = std::time::Duration::from_secs(1);

/// `options` with sqlx's slow-statement log at debug (see [`SLOW_STATEMENT`]).
fn quiet<O: sqlx::ConnectOptions>(options: O) -> O {
    options.log_slow_statements(log::LevelFilter::Debug, SLOW_STATEMENT)
}

/// Opens the store at `url` (`sqlite://PATH` or `postgres://...`), creating
/// a SQLite file and its directory on first use, and applies migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(crate::secrets::redact(url)))
    }
}

/// Applies pending migrations to the database at `url`, as [`open`] does, and
/// returns the names of those this call applied (e.g. `["0001_init"]`), empty
/// when the schema was already current. What `okrd migrate` runs.
pub async fn migrate(url: &str) -> Result<Vec<String>, StoreError> {
    if url.starts_with("sqlite:") {
        let (store, applied) = SqliteStore::open_migrated(url).await?;
        store.close().await;
        Ok(applied)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (store, applied) = PostgresStore::open_migrated(url).await?;
        store.close().await;
        Ok(applied)
    } else {
        Err(StoreError::UnsupportedUrl(crate::secrets::redact(url)))
    }
}
