//! The points table as a TimescaleDB hypertable, when the extension is there.
//!
//! PostgreSQL keeps `points` a plain table, keyed by (series_id, ts). When
//! the server offers TimescaleDB (the `timescale/timescaledb` image of the
//! compose stack does), opening the store turns it into a hypertable of
//! 7-day chunks with a compression policy; everything else about the store
//! is unchanged, since a hypertable answers the same SQL. Without the
//! extension the table stays plain and the store works as before.
//!
//! Compression is segmented by series and ordered by time, the way the
//! scorer reads (one series over a time range). Chunks are compressed once
//! all their data is [`COMPRESS_AFTER`] old: far beyond the late points okrd
//! expects (a connector's catch-up, a corrected day), so writes almost always
//! land in uncompressed chunks. A write into a compressed chunk still works
//! (TimescaleDB 2.11 and later decompress the affected segment to check the
//! primary key, for plain inserts and for `ON CONFLICT` upserts alike); it is
//! only slower.
//!
//! The SQL is the interface TimescaleDB documents since 2.13
//! (`create_hypertable` with `by_range`, and the compression settings and
//! policy, which later versions keep as the columnstore's older names). An
//! older extension is left alone, and so is a server where the extension is
//! available but cannot be created (not in `shared_preload_libraries`, or
//! not permitted): the table stays plain, and [`PointsLayout::Plain`] says
//! why. Once it has been decided to convert, a failing step is an error.

use sqlx::postgres::PgPool;
use sqlx::Connection;

use super::StoreError;

/// Size of a chunk: a week of points for every series.
pub const CHUNK_INTERVAL: &str = "7 days";

/// Age past which a chunk is compressed.
pub const COMPRESS_AFTER: &str = "30 days";

/// The oldest extension version whose interface this module uses.
const MIN_VERSION: (u32, u32) = (2, 13);

/// Serialises the conversion between instances opening the same database.
const LOCK_KEY: i64 = 0x6f6b_7264_7473_6462; // "okrdtsdb"

/// What the points table is, after [`enable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointsLayout {
    /// A TimescaleDB hypertable with a compression policy.
    Hypertable {
        /// The extension's version, e.g. `2.17.2`.
        version: String,
    },
    /// A plain table, and why TimescaleDB was not used.
    Plain {
        /// Why, for the log (e.g. "the timescaledb extension is not available").
        reason: String,
    },
}

/// What the server says about the extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Extension {
    /// The version installed in this database, if it is.
    pub installed: Option<String>,
    /// The version `CREATE EXTENSION` would install, if the server has it.
    pub available: Option<String>,
}

/// What [`enable`] does about the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Convert with the extension at `version`, creating it first if `create`.
    Convert { version: String, create: bool },
    /// Keep the plain table, for this reason.
    Plain(String),
}

/// Whether to convert. Not reading `shared_preload_libraries` (it is for
/// superusers only): creating an available extension that is not preloaded
/// fails, and [`enable`] then keeps the plain table.
pub(super) fn plan(ext: &Extension) -> Plan {
    let (version, create) = match (&ext.installed, &ext.available) {
        (Some(v), _) => (v.clone(), false),
        (None, Some(v)) => (v.clone(), true),
        (None, None) => return Plan::Plain("the timescaledb extension is not available".into()),
    };
    match parse_version(&version) {
        Some(v) if v >= MIN_VERSION => Plan::Convert { version, create },
        _ => Plan::Plain(format!(
            "timescaledb {version} is older than {}.{}, whose hypertable interface okrd uses",
            MIN_VERSION.0, MIN_VERSION.1
        )),
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Makes `points` a compressed hypertable when the server has TimescaleDB;
/// leaves it a plain table otherwise. Idempotent: a database already
/// converted is only checked. Called after the migrations.
pub async fn enable(pool: &PgPool) -> Result<PointsLayout, StoreError> {
    let ext = inspect(pool).await.map_err(step("inspect the extension"))?;
    let (version, create) = match plan(&ext) {
        Plan::Convert { version, create } => (version, create),
        Plan::Plain(reason) => return Ok(PointsLayout::Plain { reason }),
    };
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    if create {
        // In a savepoint, so that a refusal (not preloaded, not permitted)
        // leaves the transaction usable and the table plain.
        let mut savepoint = tx.begin().await?;
        match sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .execute(&mut *savepoint)
            .await
        {
            Ok(_) => savepoint.commit().await?,
            Err(e) => {
                savepoint.rollback().await?;
                tx.rollback().await?;
                return Ok(PointsLayout::Plain {
                    reason: format!("the timescaledb extension could not be created: {e}"),
                });
            }
        }
    }
    // (compression enabled?) for points, if it is a hypertable.
    let state: Option<(bool,)> = sqlx::query_as(
        "SELECT compression_enabled FROM timescaledb_information.hypertables \
         WHERE hypertable_schema = current_schema() AND hypertable_name = 'points'",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(step("read the hypertables"))?;
    if state.is_none() {
        let sql = format!(
            "SELECT create_hypertable('points', by_range('ts', INTERVAL '{CHUNK_INTERVAL}'), \
             if_not_exists => TRUE, migrate_data => TRUE)"
        );
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .map_err(step("create the points hypertable"))?;
    }
    // Compression settings cannot change once chunks are compressed, so
    // they are set once, when compression is first enabled.
    if !state.is_some_and(|(compressed,)| compressed) {
        sqlx::raw_sql(
            "ALTER TABLE points SET (timescaledb.compress, \
             timescaledb.compress_segmentby = 'series_id', \
             timescaledb.compress_orderby = 'ts')",
        )
        .execute(&mut *tx)
        .await
        .map_err(step("enable compression on points"))?;
    }
    let sql = format!(
        "SELECT add_compression_policy('points', compress_after => INTERVAL '{COMPRESS_AFTER}', \
         if_not_exists => TRUE)"
    );
    sqlx::raw_sql(&sql)
        .execute(&mut *tx)
        .await
        .map_err(step("add the compression policy"))?;
    tx.commit().await?;
    Ok(PointsLayout::Hypertable { version })
}

async fn inspect(pool: &PgPool) -> Result<Extension, sqlx::Error> {
    let (installed, available) = sqlx::query_as(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), \
                (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')",
    )
    .fetch_one(pool)
    .await?;
    Ok(Extension {
        installed,
        available,
    })
}

fn step(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Timescale { step: what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_converts_only_with_a_recent_enough_extension() {
        let convert = |v: &str, create| Plan::Convert {
            version: v.into(),
            create,
        };
        let plain = |r: &str| Plan::Plain(r.into());
        let too_old = |v: &str| {
            plain(&format!(
                "timescaledb {v} is older than 2.13, whose hypertable interface okrd uses"
            ))
        };
        let cases = [
            // (installed, available) -> plan
            (
                (None, None),
                plain("the timescaledb extension is not available"),
            ),
            ((None, Some("2.17.2")), convert("2.17.2", true)),
            ((Some("2.13.0"), Some("2.17.2")), convert("2.13.0", false)),
            ((Some("2.14.1"), None), convert("2.14.1", false)),
            ((Some("2.19.0-dev"), None), convert("2.19.0-dev", false)),
            ((Some("3.0.0"), None), convert("3.0.0", false)),
            ((Some("2.12.2"), Some("2.17.2")), too_old("2.12.2")),
            ((None, Some("2.9.1")), too_old("2.9.1")),
            ((Some("1.7.5"), None), too_old("1.7.5")),
            ((Some("garbage"), None), too_old("garbage")),
        ];
        for ((installed, available), want) in cases {
            let ext = Extension {
                installed: installed.map(String::from),
                available: available.map(String::from),
            };
            assert_eq!(plan(&ext), want, "{ext:?}");
        }
    }
}
