//! A fresh MySQL/MariaDB database per test, for the `sql` connector's
//! MySQL sources: on the server at `OKRD_TEST_MYSQL_URL` (default the local
//! MariaDB, `mysql://root@127.0.0.1:3306`, which `scripts/test` starts with
//! TLS on), as a user that may create databases and users.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, MySqlConnection};

/// The variable naming the server's admin URL.
pub const URL_VAR: &str = "OKRD_TEST_MYSQL_URL";

/// The admin URL used when [`URL_VAR`] is unset.
pub const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306";

/// The server's admin URL, without a database.
pub fn admin_url() -> String {
    std::env::var(URL_VAR)
        .unwrap_or_else(|_| DEFAULT_URL.to_string())
        .trim_end_matches('/')
        .to_string()
}

async fn admin() -> MySqlConnection {
    let url = admin_url();
    MySqlConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "MySQL/MariaDB is unreachable at {url} ({e}): scripts/test starts the local \
             MariaDB (through scripts/ensure-mariadb.sh), or point {URL_VAR} at a server"
        )
    })
}

/// Runs `sql` (one or more statements) as the admin user.
pub async fn exec(sql: &str) {
    let mut c = admin().await;
    sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
    let _ = c.close().await;
}

/// A database created for one test, dropped with this guard.
pub struct MySqlDatabase {
    name: String,
}

impl MySqlDatabase {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL as the admin user.
    pub fn url(&self) -> String {
        format!("{}/{}", admin_url(), self.name)
    }
}

impl Drop for MySqlDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread and a runtime of its own, as Drop cannot await.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(exec(&format!("DROP DATABASE IF EXISTS `{name}`")));
        })
        .join();
    }
}

/// Creates an empty, uniquely named database.
pub async fn fresh_database() -> MySqlDatabase {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "okrd_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    exec(&format!("CREATE DATABASE `{name}`")).await;
    MySqlDatabase { name }
}

/// The certificate the server presents (`ssl_cert`: Debian's snakeoil,
/// self-signed, for `localhost`); panics, naming the script that turns TLS
/// on, when the server has it off.
pub async fn server_certificate() -> std::path::PathBuf {
    let mut c = admin().await;
    let (have, cert): (String, Option<String>) = sqlx::query_as("SELECT @@have_ssl, @@ssl_cert")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
    assert_eq!(
        have, "YES",
        "MariaDB has TLS off: scripts/test turns it on (through scripts/ensure-mariadb.sh)"
    );
    cert.expect("ssl_cert is set").into()
}
