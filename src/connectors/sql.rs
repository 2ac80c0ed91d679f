//! `type: sql`: a query against a PostgreSQL source database (SPEC §3).
//!
//! Columns: `ts` (timestamptz, timestamp as UTC, date as midnight UTC,
//! Unix seconds, or RFC 3339 text), `value` (any integer or float type;
//! cast `numeric` with `::float8`), optionally `metric`; every other column
//! is a label (text, integer or boolean; NULL means absent). `$1`, when the
//! query uses it, binds the connector's watermark: the latest ts it stored
//! (1970-01-01T00:00:00Z before its first point), so `WHERE ts > $1` pulls
//! incrementally, across restarts.
//!
//! The query runs in a read-only transaction with a `statement_timeout` of
//! the connector's timeout, over one connection kept between runs.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
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
    pool: Option<PgPool>,
    guard: Option<Guard>,
}

impl SqlPull {
    /// A connector for `source`; it connects at its first run. With a
    /// `guard` (a connector registered over the API), the host is resolved
    /// and checked first, and the connection goes to the checked address.
    pub fn new(source: SqlSource, timeout: Duration, guard: Option<Guard>) -> Self {
        let target = crate::secrets::redact(&redact(&source.dsn));
        Self {
            source,
            target,
            timeout,
            pool: None,
            guard,
        }
    }

    async fn pool(&mut self) -> Result<PgPool, PullError> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let unreachable = |message: String| PullError::Unreachable {
            target: self.target.clone(),
            message,
        };
        let mut options = PgConnectOptions::from_str(&self.source.dsn)
            .map_err(|e| unreachable(format!("invalid dsn: {e}")))?;
        if let Some(guard) = &self.guard {
            let host = options.get_host().to_string();
            if host.starts_with('/') {
                return Err(unreachable(
                    "a connector registered over the API cannot use a Unix socket".into(),
                ));
            }
            let addr = guard
                .resolve(&host, options.get_port())
                .await
                .map_err(unreachable)?[0];
            // With verify-full the certificate must match the name, so a
            // rebound name cannot pass; otherwise the checked address is
            // the one connected to.
            if !matches!(options.get_ssl_mode(), PgSslMode::VerifyFull) {
                options = options.host(&addr.ip().to_string());
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.timeout)
            .connect_lazy_with(options);
        self.pool = Some(pool.clone());
        Ok(pool)
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
        let watermark =
            uses_watermark(&self.source.query).then(|| run.watermark.unwrap_or_else(epoch));
        let rows = fetch(&pool, &self.source.query, watermark, self.timeout)
            .await
            .map_err(|e| match e {
                Failed::Connect(e) => PullError::Unreachable {
                    target: self.target.clone(),
                    message: e.to_string(),
                },
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
        convert(self.source.metric.as_deref(), &rows).map_err(|message| PullError::BadResponse {
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

/// `postgres://user:secret@host/db` without the password, for messages.
pub(crate) fn redact(dsn: &str) -> String {
    let Some(scheme_end) = dsn.find("://").map(|i| i + 3) else {
        return dsn.to_string();
    };
    let rest = &dsn[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:***@{}{}",
                &dsn[..scheme_end],
                &authority[at + 1..],
                &rest[authority_end..]
            ),
            None => dsn.to_string(),
        },
        None => dsn.to_string(),
    }
    .split('?')
    .next()
    .unwrap_or_default()
    .to_string()
}

/// The role of each column, decided once per run from the first row.
enum Role {
    Ts,
    Value,
    Metric,
    Label(String),
}

/// The points of a result set. Column problems (a missing `ts` or `value`,
/// an unsupported type) fail the run; bad cells reject their row.
pub(crate) fn convert(metric: Option<&str>, rows: &[PgRow]) -> Result<Pulled, String> {
    let mut pulled = Pulled::default();
    let Some(first) = rows.first() else {
        return Ok(pulled);
    };
    let columns: Vec<(Role, &str)> = first
        .columns()
        .iter()
        .map(|c| {
            let role = match c.name() {
                "ts" => Role::Ts,
                "value" => Role::Value,
                "metric" => Role::Metric,
                other => Role::Label(other.to_string()),
            };
            (role, c.type_info().name())
        })
        .collect();
    for needed in ["ts", "value"] {
        if !first.columns().iter().any(|c| c.name() == needed) {
            return Err(format!(
                "the query returns no `{needed}` column (columns: {})",
                first
                    .columns()
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let has_metric_column = first.columns().iter().any(|c| c.name() == "metric");
    if metric.is_none() && !has_metric_column {
        return Err(
            "the query returns no `metric` column and the connector sets no `metric`".into(),
        );
    }
    for (role, ty) in &columns {
        let supported = match role {
            Role::Ts => is_ts_type(ty),
            Role::Value => is_number_type(ty),
            Role::Metric => is_text_type(ty),
            Role::Label(_) => is_text_type(ty) || is_integer_type(ty) || *ty == "BOOL",
        };
        if !supported {
            let name = match role {
                Role::Ts => "ts",
                Role::Value => "value",
                Role::Metric => "metric",
                Role::Label(l) => l,
            };
            let hint = if *ty == "NUMERIC" {
                format!(": cast it, e.g. `{name}::float8`")
            } else {
                String::new()
            };
            return Err(format!(
                "column `{name}` has type {ty}, which okrd does not read{hint}"
            ));
        }
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

fn is_ts_type(ty: &str) -> bool {
    matches!(ty, "TIMESTAMPTZ" | "TIMESTAMP" | "DATE") || is_number_type(ty) || is_text_type(ty)
}

fn is_integer_type(ty: &str) -> bool {
    matches!(ty, "INT2" | "INT4" | "INT8")
}

fn is_number_type(ty: &str) -> bool {
    is_integer_type(ty) || matches!(ty, "FLOAT4" | "FLOAT8")
}

fn is_text_type(ty: &str) -> bool {
    matches!(ty, "TEXT" | "VARCHAR" | "BPCHAR" | "NAME")
}

fn point(
    metric: Option<&str>,
    columns: &[(Role, &str)],
    row: &PgRow,
    interner: &mut Interner,
) -> Result<Point, PointError> {
    use RejectReason::*;
    let mut ts = None;
    let mut value = None;
    let mut row_metric = None;
    let mut labels = Labels::new();
    for (i, (role, ty)) in columns.iter().enumerate() {
        let cell = |reason| move |e: sqlx::Error| reject(reason, e.to_string());
        match role {
            Role::Ts => ts = Some(read_ts(row, i, ty).map_err(|e| reject(InvalidTs, e))?),
            Role::Value => {
                let v = read_number(row, i, ty).map_err(cell(InvalidValue))?;
                value = Some(v.ok_or_else(|| reject(InvalidValue, "value is NULL"))?);
            }
            Role::Metric => {
                row_metric = row
                    .try_get::<Option<String>, _>(i)
                    .map_err(cell(InvalidMetric))?
            }
            Role::Label(name) => {
                if !is_valid_label_name(name) {
                    return Err(reject(
                        InvalidLabels,
                        format!("column {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                    ));
                }
                let v = read_label(row, i, ty).map_err(cell(InvalidLabels))?;
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

fn read_ts(row: &PgRow, i: usize, ty: &str) -> Result<Timestamp, String> {
    let null = || "ts is NULL".to_string();
    let e = |e: sqlx::Error| e.to_string();
    match ty {
        "TIMESTAMPTZ" => row
            .try_get::<Option<DateTime<Utc>>, _>(i)
            .map_err(e)?
            .ok_or_else(null),
        "TIMESTAMP" => Ok(row
            .try_get::<Option<NaiveDateTime>, _>(i)
            .map_err(e)?
            .ok_or_else(null)?
            .and_utc()),
        "DATE" => Ok(row
            .try_get::<Option<NaiveDate>, _>(i)
            .map_err(e)?
            .ok_or_else(null)?
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()),
        t if is_text_type(t) => parse_timestamp(
            &row.try_get::<Option<String>, _>(i)
                .map_err(e)?
                .ok_or_else(null)?,
        ),
        _ => unix_seconds(read_number(row, i, ty).map_err(e)?.ok_or_else(null)?),
    }
}

fn read_number(row: &PgRow, i: usize, ty: &str) -> Result<Option<f64>, sqlx::Error> {
    Ok(match ty {
        "INT2" => row.try_get::<Option<i16>, _>(i)?.map(f64::from),
        "INT4" => row.try_get::<Option<i32>, _>(i)?.map(f64::from),
        "INT8" => row.try_get::<Option<i64>, _>(i)?.map(|v| v as f64),
        "FLOAT4" => row.try_get::<Option<f32>, _>(i)?.map(f64::from),
        _ => row.try_get::<Option<f64>, _>(i)?,
    })
}

fn read_label(row: &PgRow, i: usize, ty: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(match ty {
        "BOOL" => row.try_get::<Option<bool>, _>(i)?.map(|b| b.to_string()),
        t if is_integer_type(t) => read_number(row, i, t)?.map(|v| (v as i64).to_string()),
        _ => row.try_get::<Option<String>, _>(i)?,
    })
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
