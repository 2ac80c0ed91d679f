//! The schema migrations, embedded in the binary so that `okrd` needs no
//! files besides its config to create or upgrade its database.
//!
//! Each backend has its own SQL (under `migrations/<backend>/`) describing the
//! same logical schema. A migration, once released, is never edited: sqlx
//! stores its checksum and refuses to start against a changed one.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Database, Pool};

use super::StoreError;

/// One embedded migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

/// The SQLite migrations, in version order.
pub(super) const SQLITE: &[Embedded] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "connectors",
        include_str!("../../migrations/sqlite/0002_connectors.sql"),
    ),
    (
        3,
        "alerts",
        include_str!("../../migrations/sqlite/0003_alerts.sql"),
    ),
    (
        4,
        "dead_letters",
        include_str!("../../migrations/sqlite/0004_dead_letters.sql"),
    ),
    (
        5,
        "series_labels_hash",
        include_str!("../../migrations/sqlite/0005_series_labels_hash.sql"),
    ),
    (
        6,
        "change_feed",
        include_str!("../../migrations/sqlite/0006_change_feed.sql"),
    ),
    (
        7,
        "alert_reference_window",
        include_str!("../../migrations/sqlite/0007_alert_reference_window.sql"),
    ),
    (
        8,
        "revisions_check_ins",
        include_str!("../../migrations/sqlite/0008_revisions_check_ins.sql"),
    ),
];

/// The PostgreSQL migrations, in version order.
pub(super) const POSTGRES: &[Embedded] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "connectors",
        include_str!("../../migrations/postgres/0002_connectors.sql"),
    ),
    (
        3,
        "alerts",
        include_str!("../../migrations/postgres/0003_alerts.sql"),
    ),
    (
        4,
        "dead_letters",
        include_str!("../../migrations/postgres/0004_dead_letters.sql"),
    ),
    (
        5,
        "series_labels_hash",
        include_str!("../../migrations/postgres/0005_series_labels_hash.sql"),
    ),
    (
        6,
        "change_feed",
        include_str!("../../migrations/postgres/0006_change_feed.sql"),
    ),
    (
        7,
        "alert_reference_window",
        include_str!("../../migrations/postgres/0007_alert_reference_window.sql"),
    ),
    (
        8,
        "revisions_check_ins",
        include_str!("../../migrations/postgres/0008_revisions_check_ins.sql"),
    ),
];

/// Adapts an embedded list to sqlx's runtime migrator; `sqlx::migrate!` would
/// do the same at compile time but needs sqlx's `macros` feature.
#[derive(Debug)]
struct Source(&'static [Embedded]);

impl MigrationSource<'static> for Source {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// Applies the pending migrations of `set` to the database behind `pool` and
/// returns the names (`0001_init`) of those this call applied, in order;
/// empty when the schema was already current.
pub(super) async fn run<DB>(
    pool: &Pool<DB>,
    set: &'static [Embedded],
) -> Result<Vec<String>, StoreError>
where
    DB: Database,
    DB::Connection: Migrate,
{
    let migrator = Migrator::new(Source(set)).await?;
    let before: BTreeSet<i64> = {
        // The connection goes back to the pool before the migrator takes
        // one: an in-memory SQLite pool has exactly one.
        let mut conn = pool.acquire().await?;
        // Listing the applied versions needs the bookkeeping table, which the
        // migrator would create anyway.
        conn.ensure_migrations_table().await?;
        conn.list_applied_migrations()
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect()
    };
    migrator.run(pool).await?;
    // A concurrent migrator may have applied some of these; either way the
    // schema is now current, which is what callers rely on.
    Ok(set
        .iter()
        .filter(|(version, _, _)| !before.contains(version))
        .map(|(version, description, _)| format!("{version:04}_{description}"))
        .collect())
}
