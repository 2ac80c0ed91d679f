//! A fresh PostgreSQL database per test.
//!
//! The server is the one at `OKRD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), reached as a user allowed
//! to create databases. Tests that need it fail when it is unreachable, unless
//! `OKRD_TEST_SKIP_POSTGRES=1`, in which case [`skip`] says so and they
//! return early:
//!
//! ```ignore
//! if pg::skip() { return; }
//! let db = pg::fresh_database().await;
//! let store = okrd::store::open(db.url()).await.unwrap();
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// The variable naming the server's admin URL.
pub const URL_VAR: &str = "OKRD_TEST_POSTGRES_URL";

/// The admin URL used when [`URL_VAR`] is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The variable that, set to `1`, skips PostgreSQL tests.
pub const SKIP_VAR: &str = "OKRD_TEST_SKIP_POSTGRES";

/// Prefix of every test database's name; the rest is
/// `<unix seconds>_<pid>_<counter>`, so that stale ones can be recognised.
const PREFIX: &str = "okrd_test_";

/// Test databases older than this are left over from killed runs.
const STALE_AFTER_SECS: u64 = 3600;

/// Whether PostgreSQL tests should be skipped (`OKRD_TEST_SKIP_POSTGRES=1`);
/// prints a note when they are, so a skip is never silent.
pub fn skip() -> bool {
    let skip = std::env::var(SKIP_VAR).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{SKIP_VAR}=1: skipping a PostgreSQL test");
    }
    skip
}

/// The server's admin URL.
pub fn admin_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// An empty database created for one test, dropped (with any connections
/// still open to it) when this guard is dropped.
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// The database's URL, for `okrd::store::open`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop cannot await, and blocking inside the test's runtime could
        // deadlock it, so the drop gets a thread and a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                drop_database(&mut admin, &name).await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            // Not fatal: the next run's sweep removes it.
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: thread panicked",
                self.name
            ),
        }
    }
}

/// Creates an empty, uniquely named database and returns its guard.
///
/// Panics with instructions when the server is unreachable. The first call in
/// a process also drops test databases older than an hour.
pub async fn fresh_database() -> TestDatabase {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SWEPT: OnceLock<()> = OnceLock::new();

    let admin_url = admin_url();
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "PostgreSQL is unreachable at {admin_url} ({e}). Start it, point {URL_VAR} at a \
             server where this user may create databases, or set {SKIP_VAR}=1 to skip the \
             PostgreSQL tests."
        ),
    };
    let now = unix_now();
    if SWEPT.set(()).is_ok() {
        sweep(&mut admin, now).await;
    }
    let name = format!(
        "{PREFIX}{now}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    if let Err(e) = sqlx::raw_sql(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut admin)
        .await
    {
        panic!("cannot create test database {name} at {admin_url}: {e}");
    }
    let _ = admin.close().await;
    TestDatabase {
        url: with_database(&admin_url, &name),
        name,
        admin_url,
    }
}

/// Drops the test databases whose creation time, encoded in their name, is
/// over an hour ago: those of runs that were killed before their guards ran.
async fn sweep(admin: &mut PgConnection, now: u64) {
    let names: Vec<String> =
        match sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&mut *admin)
            .await
        {
            Ok(names) => names,
            Err(e) => {
                eprintln!("cannot list stale test databases: {e}");
                return;
            }
        };
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > STALE_AFTER_SECS) {
            if let Err(e) = drop_database(admin, &name).await {
                eprintln!("cannot drop stale test database {name}: {e}");
            }
        }
    }
}

async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), String> {
    // FORCE: the store's pool may not have closed its connections yet.
    sqlx::raw_sql(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
        .execute(admin)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `url` with its database (the path) replaced by `name`, query kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The certificate the server presents, from `ssl_cert_file` (Debian's
/// snakeoil certificate: self-signed, for `localhost`), to verify it by.
/// Panics, naming the script that turns TLS on, when the server has it off.
pub async fn server_certificate() -> std::path::PathBuf {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("connect");
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        ssl, "on",
        "PostgreSQL has TLS off: scripts/test turns it on (through scripts/ensure-postgres.sh)"
    );
    let file: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    // A relative path is relative to the data directory; Debian's is absolute.
    file.into()
}

/// `url` as a TLS connection verified as libpq's `verify-full` does: to
/// `localhost` (the name in the local server's certificate, instead of
/// 127.0.0.1), trusting only the server's own certificate.
pub async fn tls_url(url: &str) -> String {
    let cert = server_certificate().await;
    let url = url.replacen("@127.0.0.1", "@localhost", 1);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}sslmode=verify-full&sslrootcert={}",
        cert.display()
    )
}

/// How many connections to database `name` there are now, and how many of
/// them are encrypted (`pg_stat_ssl`).
pub async fn connections_encrypted(name: &str) -> (i64, i64) {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("connect");
    let counts = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
    )
    .bind(name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    counts
}
