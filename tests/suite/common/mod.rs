//! Helpers shared by the integration tests.

pub mod browser;
pub mod hook;
pub mod http;
pub mod kafka;
pub mod mysql;
pub mod pg;
pub mod process;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod wait;

/// The database a both-stores case runs on: SQLite in a temp dir of its
/// own, or a fresh database on the real PostgreSQL; kept until the case
/// ends, not yet opened (so that cases can test what opening does).
pub struct Backend {
    /// The database URL.
    pub url: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<pg::TestDatabase>,
}

impl Backend {
    /// SQLite in a fresh temp dir.
    pub fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        Backend {
            url: format!("sqlite://{}/okrd.db", dir.path().display()),
            _sqlite_dir: Some(dir),
            _postgres: None,
        }
    }

    /// A fresh PostgreSQL database; `None` (said so) when
    /// `OKRD_TEST_SKIP_POSTGRES=1`.
    pub async fn postgres() -> Option<Backend> {
        if pg::skip() {
            return None;
        }
        let db = pg::fresh_database().await;
        Some(Backend {
            url: db.url().to_string(),
            _sqlite_dir: None,
            _postgres: Some(db),
        })
    }

    /// A fresh PostgreSQL database reached over TLS, verified as
    /// `sslmode=verify-full` against the server's own certificate (see
    /// [`pg::tls_url`]); `None` as for [`Backend::postgres`].
    pub async fn postgres_tls() -> Option<Backend> {
        let mut backend = Self::postgres().await?;
        backend.url = pg::tls_url(&backend.url).await;
        Some(backend)
    }

    /// Whether this is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// Opens (and migrates) the store.
    pub async fn open(&self) -> std::sync::Arc<dyn okrd::store::Store> {
        match okrd::store::open(&self.url).await {
            Ok(store) => store,
            Err(e) => panic!("opening {}: {e}", self.url),
        }
    }

    /// Runs backend-specific SQL on a connection of its own.
    pub async fn exec(&self, sql: &str) {
        use sqlx::Connection;
        if self.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
            conn.close().await.expect("close");
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
            conn.close().await.expect("close");
        }
    }

    /// The `database_url` for a [`server::Server`]: `None` on SQLite, so the
    /// server keeps its file in its own directory.
    pub fn server_url(&self) -> Option<String> {
        (!self.is_sqlite()).then(|| self.url.clone())
    }
}

/// Runs each named `async fn case(backend: Backend)` twice: on SQLite and
/// on a fresh PostgreSQL database (skipped, and said so, with
/// `OKRD_TEST_SKIP_POSTGRES=1`).
#[allow(unused_macros)]
macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::common::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = crate::common::Backend::postgres().await {
                        super::$case(backend).await;
                    }
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;
