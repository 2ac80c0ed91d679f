//! The MySQL/MariaDB side of `type: sql` (`mysql://` DSNs): the connection,
//! the read-only transaction with its statement timeout, the `?`
//! watermark, and how MySQL's column types are read. The column semantics
//! are the parent module's.
//!
//! Every `?` of the query binds the watermark (`?` inside quotes or
//! comments is text). The statement timeout is MariaDB's
//! `max_statement_time` or MySQL's `max_execution_time`, by what the server
//! says it is. The session's time zone is UTC (see [`crate::tls::mysql_options`]),
//! so a `TIMESTAMP` column is read as the instant it is, and a `DATETIME`
//! is taken as UTC.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::Row;

use super::{or_null, Cell, Failed, Kind, SourceRow};
use crate::model::Timestamp;

/// The source's connection (one, kept between runs), made at first use.
pub(super) fn pool(options: MySqlConnectOptions, timeout: Duration) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_lazy_with(options)
}

/// Runs `query`, each `?` bound to `watermark`, in a read-only transaction
/// whose statements may each take `timeout`.
pub(super) async fn fetch(
    pool: &MySqlPool,
    query: &str,
    watermark: Timestamp,
    timeout: Duration,
) -> Result<Vec<MySqlRow>, Failed> {
    let mut tx = pool
        .begin_with("START TRANSACTION READ ONLY")
        .await
        .map_err(Failed::Connect)?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut *tx)
        .await
        .map_err(Failed::Query)?;
    let limit = if version.contains("MariaDB") {
        format!(
            "SET SESSION max_statement_time = {:.3}",
            timeout.as_secs_f64().max(0.001)
        )
    } else {
        format!(
            "SET SESSION max_execution_time = {}",
            timeout.as_millis().max(1)
        )
    };
    sqlx::query(&limit)
        .execute(&mut *tx)
        .await
        .map_err(Failed::Query)?;
    let mut q = sqlx::query(query);
    for _ in 0..placeholders(query) {
        q = q.bind(watermark);
    }
    let rows = q.fetch_all(&mut *tx).await.map_err(Failed::Query)?;
    // Read-only: nothing to commit.
    let _ = tx.rollback().await;
    Ok(rows)
}

/// How many `?` parameters `query` has: those outside quoted strings,
/// quoted names and comments.
fn placeholders(query: &str) -> usize {
    let b = query.as_bytes();
    let mut n = 0;
    let mut i = 0;
    let skip_to = |from: usize, end: &[u8]| {
        b[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(b.len(), |p| from + p + end.len())
    };
    while i < b.len() {
        match b[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != quote {
                    if b[i] == b'\\' && quote != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'#' => i = skip_to(i, b"\n"),
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_to(i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_to(i + 2, b"*/"),
            b'?' => {
                n += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    n
}

fn decode_error(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

impl SourceRow for MySqlRow {
    fn kind(type_name: &str) -> Option<Kind> {
        let integer = type_name.strip_suffix(" UNSIGNED").unwrap_or(type_name);
        Some(match type_name {
            "TIMESTAMP" => Kind::Instant,
            "DATETIME" => Kind::DateTime,
            "DATE" => Kind::Date,
            _ if matches!(
                integer,
                "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT"
            ) =>
            {
                Kind::Int
            }
            "FLOAT" | "DOUBLE" | "DECIMAL" => Kind::Float,
            "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" => {
                Kind::Text
            }
            "BOOLEAN" => Kind::Bool,
            _ => return None,
        })
    }

    fn cell(&self, i: usize, type_name: &str, kind: Kind) -> Result<Cell, sqlx::Error> {
        Ok(match kind {
            Kind::Instant => or_null(self.try_get(i)?, Cell::Instant),
            Kind::DateTime => or_null(self.try_get::<Option<NaiveDateTime>, _>(i)?, Cell::DateTime),
            Kind::Date => or_null(self.try_get::<Option<NaiveDate>, _>(i)?, Cell::Date),
            Kind::Int if type_name.ends_with("UNSIGNED") => {
                match self.try_get::<Option<u64>, _>(i)? {
                    None => Cell::Null,
                    Some(v) => Cell::Int(i64::try_from(v).map_err(|_| {
                        decode_error(format!("{v} is larger than a signed 64-bit integer"))
                    })?),
                }
            }
            Kind::Int => or_null(self.try_get(i)?, Cell::Int),
            // A decimal travels as its digits; okrd reads it as a float.
            Kind::Float if type_name == "DECIMAL" => {
                match self.try_get_unchecked::<Option<String>, _>(i)? {
                    None => Cell::Null,
                    Some(text) => Cell::Float(
                        text.parse()
                            .map_err(|_| decode_error(format!("{text:?} is not a number")))?,
                    ),
                }
            }
            Kind::Float if type_name == "FLOAT" => {
                or_null(self.try_get::<Option<f32>, _>(i)?, |v| {
                    Cell::Float(v.into())
                })
            }
            Kind::Float => or_null(self.try_get(i)?, Cell::Float),
            // Text of any collation, binary ones included.
            Kind::Text => or_null(self.try_get_unchecked(i)?, Cell::Text),
            Kind::Bool => or_null(self.try_get(i)?, Cell::Bool),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_question_mark_outside_quotes_and_comments_is_the_watermark() {
        assert_eq!(placeholders("SELECT * FROM t WHERE ts > ?"), 1);
        assert_eq!(
            placeholders("SELECT * FROM t WHERE updated > ? OR created > ?"),
            2
        );
        assert_eq!(
            placeholders("SELECT 'why?' AS `q?`, \"it\\\"s?\" FROM t -- later?\nWHERE ts > ? /* or ? */ # and ?"),
            1
        );
        assert_eq!(placeholders("SELECT 1"), 0);
    }

    #[test]
    fn mysql_types_are_read_as_their_kinds() {
        assert_eq!(MySqlRow::kind("TIMESTAMP"), Some(Kind::Instant));
        assert_eq!(MySqlRow::kind("BIGINT UNSIGNED"), Some(Kind::Int));
        assert_eq!(MySqlRow::kind("DECIMAL"), Some(Kind::Float));
        assert_eq!(MySqlRow::kind("BOOLEAN"), Some(Kind::Bool));
        assert_eq!(MySqlRow::kind("JSON"), None);
    }
}
