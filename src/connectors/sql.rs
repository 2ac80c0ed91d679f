//! `type: sql`: a query against a PostgreSQL or MySQL/MariaDB source
//! database (SPEC §3).
//!
//! Columns: `ts` (timestamptz, timestamp as UTC, date as midnight UTC,
//! Unix seconds, or RFC 3339 text), `value` (any integer or float type;
//! cast PostgreSQL's `numeric` with `::float8`; MySQL's `DECIMAL` is read
//! as it is), optionally `metric`; every other column is a label (text,
//! integer or boolean; NULL means absent). The watermark, when the query
//! uses it, is the latest ts the connector stored (1970-01-01T00:00:00Z
//! before its first point), so `WHERE ts > $1` (PostgreSQL) or
//! `WHERE ts > ?` (MySQL, where every `?` binds it) pulls incrementally,
//! across restarts.
//!
//! The query runs in a read-only transaction with a statement timeout of
//! the connector's timeout, over one connection kept between runs. TLS
//! follows the DSN (`sslmode`/`sslrootcert`, `ssl-mode`/`ssl-ca`; see
//! [`crate::tls`]). Rows of either database are read through [`SourceRow`]:
//! the column semantics are one piece of code.

mod mysql;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use sqlx::mysql::{MySqlPool, MySqlSslMode};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{Column, Row, TypeInfo};

use crate::config::connector::SqlSource;
use crate::ingest::{limits, Interner, PointError, RejectReason};
use crate::model::{
    is_valid_label_name, is_valid_metric_name, parse_timestamp, unix_seconds, Labels, Point,
    SeriesKey, Timestamp,
};

use super::guard::Guard;
use super::pull::{reject, Pull, PullError, Pulled, Run};

/// A `sql` connector.
pub struct SqlPull {
    source: SqlSource,
    target: String,
    timeout: Duration,
    pool: Option<Pool>,
    guard: Option<Guard>,
}

/// The connection to the source, by database.
#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

impl SqlPull {
    /// A connector for `source`; it connects at its first run. With a
    /// `guard` (a connector registered over the API), the host is resolved
    /// and checked first, and the connection goes to the checked address.
    pub fn new(source: SqlSource, timeout: Duration, guard: Option<Guard>) -> Self {
        let target = redact(&source.dsn);
        Self {
            source,
            target,
            timeout,
            pool: None,
            guard,
        }
    }

    async fn pool(&mut self) -> Result<Pool, PullError> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let dsn = &self.source.dsn;
        let invalid = |e: sqlx::Error| PullError::Unreachable {
            target: self.target.clone(),
            message: format!("invalid dsn: {e}"),
        };
        // With verify-full (VERIFY_IDENTITY) the certificate must match
        // the name, so a rebound name cannot pass; otherwise the checked
        // address is the one connected to.
        let pool = if dsn.starts_with("mysql://") {
            let mut options = crate::tls::mysql_options(dsn).map_err(invalid)?;
            let by_name = matches!(options.get_ssl_mode(), MySqlSslMode::VerifyIdentity);
            let (host, port) = (options.get_host().to_string(), options.get_port());
            if let Some(ip) = self.checked_address(&host, port, by_name).await? {
                options = options.host(&ip);
            }
            Pool::MySql(mysql::pool(options, self.timeout))
        } else {
            let mut options = crate::tls::pg_options(dsn).map_err(invalid)?;
            let by_name = matches!(options.get_ssl_mode(), PgSslMode::VerifyFull);
            let (host, port) = (options.get_host().to_string(), options.get_port());
            if let Some(ip) = self.checked_address(&host, port, by_name).await? {
                options = options.host(&ip);
            }
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(self.timeout)
                    .connect_lazy_with(options),
            )
        };
        self.pool = Some(pool.clone());
        Ok(pool)
    }

    /// With a guard: `host` resolved and checked, and the address to
    /// connect to instead of the name (`None` when the name is kept because
    /// TLS checks it, `by_name`). Without a guard, `None`.
    async fn checked_address(
        &self,
        host: &str,
        port: u16,
        by_name: bool,
    ) -> Result<Option<String>, PullError> {
        let Some(guard) = &self.guard else {
            return Ok(None);
        };
        let unreachable = |message: String| PullError::Unreachable {
            target: self.target.clone(),
            message,
        };
        if host.starts_with('/') {
            return Err(unreachable(
                "a connector registered over the API cannot use a Unix socket".into(),
            ));
        }
        let addr = guard.resolve(host, port).await.map_err(unreachable)?[0];
        Ok((!by_name).then(|| addr.ip().to_string()))
    }

    fn unreachable(&self, e: &sqlx::Error) -> PullError {
        PullError::Unreachable {
            target: self.target.clone(),
            message: crate::tls::describe(e).unwrap_or_else(|| e.to_string()),
        }
    }
}

/// The watermark before a connector's first point.
fn epoch() -> Timestamp {
    Utc.timestamp_opt(0, 0).single().expect("the epoch exists")
}

#[async_trait]
impl Pull for SqlPull {
    fn target(&self) -> &str {
        &self.target
    }

    async fn pull(&mut self, run: &Run) -> Result<Pulled, PullError> {
        let pool = self.pool().await?;
        let query = &self.source.query;
        let watermark = run.watermark.unwrap_or_else(epoch);
        let metric = self.source.metric.as_deref();
        let converted = match &pool {
            Pool::Postgres(pool) => {
                let watermark = uses_watermark(query).then_some(watermark);
                fetch(pool, query, watermark, self.timeout)
                    .await
                    .map(|rows| convert(metric, &rows))
            }
            Pool::MySql(pool) => mysql::fetch(pool, query, watermark, self.timeout)
                .await
                .map(|rows| convert(metric, &rows)),
        };
        let converted = converted.map_err(|e| match e {
            Failed::Connect(e) => self.unreachable(&e),
            Failed::Query(e) => PullError::Query {
                target: self.target.clone(),
                message: super::request::clip(
                    &match &e {
                        sqlx::Error::Database(d) => d.message().to_string(),
                        other => other.to_string(),
                    },
                    300,
                ),
            },
        })?;
        converted.map_err(|message| PullError::BadResponse {
            target: self.target.clone(),
            message,
        })
    }
}

enum Failed {
    Connect(sqlx::Error),
    Query(sqlx::Error),
}

/// Runs `query` (binding `watermark` as `$1` when given) in a read-only
/// transaction bounded by `timeout`. (`sqlx::raw_sql` on a transaction
/// inside `#[async_trait]` trips a limit of the compiler's lifetime
/// inference, hence `set_config` rather than `SET LOCAL`.)
async fn fetch(
    pool: &PgPool,
    query: &str,
    watermark: Option<Timestamp>,
    timeout: Duration,
) -> Result<Vec<PgRow>, Failed> {
    let mut tx = pool.begin().await.map_err(Failed::Connect)?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(Failed::Query)?;
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(timeout.as_millis().max(1).to_string())
        .execute(&mut *tx)
        .await
        .map_err(Failed::Query)?;
    let mut q = sqlx::query(query);
    if let Some(w) = watermark {
        q = q.bind(w);
    }
    let rows = q.fetch_all(&mut *tx).await.map_err(Failed::Query)?;
    // Read-only: nothing to commit.
    let _ = tx.rollback().await;
    Ok(rows)
}

/// Whether the query has a `$1` parameter (binding one it lacks is an error).
fn uses_watermark(query: &str) -> bool {
    query.match_indices("$1").any(|(i, _)| {
        !query[i + 2..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// A DSN as messages show it: without its query string (which may carry
/// `password=`), its password masked and known secrets replaced, by the
/// one redaction ([`crate::secrets::redact`]).
pub(crate) fn redact(dsn: &str) -> String {
    crate::secrets::redact(dsn.split('?').next().unwrap_or_default())
}

/// What okrd reads a column as, whichever database it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A point in time (timestamptz, MySQL's TIMESTAMP).
    Instant,
    /// A date and time without a zone, taken as UTC.
    DateTime,
    /// A date, taken as midnight UTC.
    Date,
    /// An integer.
    Int,
    /// A floating-point (or MySQL decimal) number.
    Float,
    /// Text.
    Text,
    /// A boolean.
    Bool,
}

/// One cell, read as its column's [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Instant(Timestamp),
    DateTime(NaiveDateTime),
    Date(NaiveDate),
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// `v` as a cell, NULL when absent.
fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
    v.map_or(Cell::Null, f)
}

/// A result row of a source database: what its column types are to okrd,
/// and its cells read by their database's own types. The one place where
/// PostgreSQL and MySQL differ in reading results.
pub(crate) trait SourceRow: Row {
    /// The kind of a column whose type the database names `type_name`;
    /// `None` for a type okrd does not read.
    fn kind(type_name: &str) -> Option<Kind>;

    /// Cell `i`, of a column whose type is `type_name` (of kind `kind`).
    fn cell(&self, i: usize, type_name: &str, kind: Kind) -> Result<Cell, sqlx::Error>;
}

impl SourceRow for PgRow {
    fn kind(type_name: &str) -> Option<Kind> {
        Some(match type_name {
            "TIMESTAMPTZ" => Kind::Instant,
            "TIMESTAMP" => Kind::DateTime,
            "DATE" => Kind::Date,
            "INT2" | "INT4" | "INT8" => Kind::Int,
            "FLOAT4" | "FLOAT8" => Kind::Float,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Kind::Text,
            "BOOL" => Kind::Bool,
            _ => return None,
        })
    }

    fn cell(&self, i: usize, type_name: &str, kind: Kind) -> Result<Cell, sqlx::Error> {
        Ok(match kind {
            Kind::Instant => or_null(self.try_get(i)?, Cell::Instant),
            Kind::DateTime => or_null(self.try_get(i)?, Cell::DateTime),
            Kind::Date => or_null(self.try_get(i)?, Cell::Date),
            Kind::Int => match type_name {
                "INT2" => or_null(self.try_get::<Option<i16>, _>(i)?, |v| Cell::Int(v.into())),
                "INT4" => or_null(self.try_get::<Option<i32>, _>(i)?, |v| Cell::Int(v.into())),
                _ => or_null(self.try_get(i)?, Cell::Int),
            },
            Kind::Float => match type_name {
                "FLOAT4" => or_null(self.try_get::<Option<f32>, _>(i)?, |v| {
                    Cell::Float(v.into())
                }),
                _ => or_null(self.try_get(i)?, Cell::Float),
            },
            Kind::Text => or_null(self.try_get(i)?, Cell::Text),
            Kind::Bool => or_null(self.try_get(i)?, Cell::Bool),
        })
    }
}

/// The role of each column, decided once per run from the first row.
enum Role {
    Ts,
    Value,
    Metric,
    Label(String),
}

/// A column: its role, its type as the database names it, and its kind.
struct ColumnPlan<'a> {
    role: Role,
    type_name: &'a str,
    kind: Kind,
}

/// The points of a result set. Column problems (a missing `ts` or `value`,
/// an unsupported type) fail the run; bad cells reject their row.
pub(crate) fn convert<R: SourceRow>(metric: Option<&str>, rows: &[R]) -> Result<Pulled, String> {
    let mut pulled = Pulled::default();
    let Some(first) = rows.first() else {
        return Ok(pulled);
    };
    let names = || {
        first
            .columns()
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for needed in ["ts", "value"] {
        if !first.columns().iter().any(|c| c.name() == needed) {
            return Err(format!(
                "the query returns no `{needed}` column (columns: {})",
                names()
            ));
        }
    }
    let has_metric_column = first.columns().iter().any(|c| c.name() == "metric");
    if metric.is_none() && !has_metric_column {
        return Err(
            "the query returns no `metric` column and the connector sets no `metric`".into(),
        );
    }
    let mut columns = Vec::with_capacity(first.columns().len());
    for c in first.columns() {
        let role = match c.name() {
            "ts" => Role::Ts,
            "value" => Role::Value,
            "metric" => Role::Metric,
            other => Role::Label(other.to_string()),
        };
        let type_name = c.type_info().name();
        let kind = R::kind(type_name).filter(|k| match role {
            Role::Ts => *k != Kind::Bool,
            Role::Value => matches!(k, Kind::Int | Kind::Float),
            Role::Metric => *k == Kind::Text,
            Role::Label(_) => matches!(k, Kind::Text | Kind::Int | Kind::Bool),
        });
        let Some(kind) = kind else {
            let name = c.name();
            let hint = if type_name == "NUMERIC" {
                format!(": cast it, e.g. `{name}::float8`")
            } else {
                String::new()
            };
            return Err(format!(
                "column `{name}` has type {type_name}, which okrd does not read{hint}"
            ));
        };
        columns.push(ColumnPlan {
            role,
            type_name,
            kind,
        });
    }
    let mut interner = Interner::default();
    for (i, row) in rows.iter().enumerate() {
        match point(metric, &columns, row, &mut interner) {
            Ok(p) => pulled.points.push(p),
            Err(mut e) => {
                e.message = format!("row {i}: {}", e.message);
                pulled.rejected.push(e);
            }
        }
    }
    Ok(pulled)
}

fn point<R: SourceRow>(
    metric: Option<&str>,
    columns: &[ColumnPlan<'_>],
    row: &R,
    interner: &mut Interner,
) -> Result<Point, PointError> {
    use RejectReason::*;
    let mut ts = None;
    let mut value = None;
    let mut row_metric = None;
    let mut labels = Labels::new();
    for (i, c) in columns.iter().enumerate() {
        let read = |reason| {
            row.cell(i, c.type_name, c.kind)
                .map_err(|e| reject(reason, e.to_string()))
        };
        match &c.role {
            Role::Ts => ts = Some(read_ts(read(InvalidTs)?).map_err(|e| reject(InvalidTs, e))?),
            Role::Value => {
                let v = number(read(InvalidValue)?);
                value = Some(v.ok_or_else(|| reject(InvalidValue, "value is NULL"))?);
            }
            Role::Metric => {
                if let Cell::Text(m) = read(InvalidMetric)? {
                    row_metric = Some(m);
                }
            }
            Role::Label(name) => {
                if !is_valid_label_name(name) {
                    return Err(reject(
                        InvalidLabels,
                        format!("column {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                    ));
                }
                let v = match read(InvalidLabels)? {
                    Cell::Bool(b) => Some(b.to_string()),
                    Cell::Int(v) => Some(v.to_string()),
                    Cell::Text(t) => Some(t),
                    _ => None,
                };
                if let Some(v) = v {
                    labels.insert(name.clone(), v);
                }
            }
        }
    }
    let metric = match row_metric.as_deref().or(metric) {
        Some(m) if is_valid_metric_name(m) => m.to_string(),
        Some(m) => {
            return Err(reject(
                InvalidMetric,
                format!("metric {m:?} is not [a-zA-Z_][a-zA-Z0-9_]*"),
            ))
        }
        None => return Err(reject(InvalidMetric, "metric is NULL")),
    };
    let value = value.ok_or_else(|| reject(InvalidValue, "no value"))?;
    let ts = ts.ok_or_else(|| reject(InvalidTs, "no ts"))?;
    limits::check_point(&metric, &labels, ts, value)?;
    Ok(Point {
        series: interner.intern(SeriesKey::new(metric, labels)),
        ts,
        value,
    })
}

fn read_ts(cell: Cell) -> Result<Timestamp, String> {
    match cell {
        Cell::Instant(t) => Ok(t),
        Cell::DateTime(t) => Ok(t.and_utc()),
        Cell::Date(d) => Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()),
        Cell::Text(t) => parse_timestamp(&t),
        Cell::Int(v) => unix_seconds(v as f64),
        Cell::Float(v) => unix_seconds(v),
        Cell::Null => Err("ts is NULL".to_string()),
        Cell::Bool(_) => Err("ts is a boolean".to_string()),
    }
}

fn number(cell: Cell) -> Option<f64> {
    match cell {
        Cell::Int(v) => Some(v as f64),
        Cell::Float(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_watermark_parameter() {
        assert!(uses_watermark("SELECT * FROM t WHERE ts > $1"));
        assert!(uses_watermark("SELECT * FROM t WHERE ts > $1::timestamptz"));
        assert!(!uses_watermark("SELECT 1"));
        assert!(!uses_watermark("SELECT $10"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://reader:s3cret@db:5432/warehouse?sslmode=disable"),
            "postgres://reader:***@db:5432/warehouse"
        );
        assert_eq!(redact("postgres://reader@db/w"), "postgres://reader@db/w");
    }
}
