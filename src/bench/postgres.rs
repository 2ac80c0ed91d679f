//! The PostgreSQL side of the bench: a fresh database per phase, row
//! counts, and the reference — PostgreSQL's own binary COPY of the same
//! rows into the same `points` table.

use std::time::Instant;

use anyhow::Context as _;
use sqlx::{Connection, PgConnection};

use super::dataset::Dataset;

/// A PostgreSQL server, reached through its admin URL
/// (`postgres://USER@HOST:PORT/postgres`), where databases `okrd_bench_*`
/// are created and dropped.
pub struct Server {
    admin: String,
}

impl Server {
    /// The server at `admin`.
    pub fn new(admin: &str) -> Self {
        Self {
            admin: admin.to_string(),
        }
    }

    /// Drops and creates database `okrd_bench_{pid}_{name}`, with okrd's
    /// schema; returns its URL, in plaintext (`sslmode=disable`) unless the
    /// admin URL says otherwise. The bench's process id in the name keeps
    /// two benches on one server (two developers on one machine) from
    /// dropping each other's databases.
    pub async fn fresh(&self, name: &str) -> anyhow::Result<String> {
        let db = database(name);
        let mut conn = PgConnection::connect(&self.admin)
            .await
            .with_context(|| format!("connecting to {}", self.admin))?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let (admin, query) = self.admin.split_once('?').unwrap_or((&self.admin, ""));
        let (base, _) = admin
            .rsplit_once('/')
            .context("the PostgreSQL URL names no database")?;
        let query = match query {
            q if q.contains("sslmode=") => q.to_string(),
            "" => "sslmode=disable".to_string(),
            q => format!("{q}&sslmode=disable"),
        };
        let url = format!("{base}/{db}?{query}");
        crate::store::migrate(&url).await?;
        Ok(url)
    }

    /// `url` (of [`Server::fresh`]) over TLS, verified as `verify-full`
    /// against the server's own certificate (`ssl_cert_file`; Debian's
    /// snakeoil names `localhost`, so 127.0.0.1 becomes `localhost`);
    /// `None` when the server has TLS off.
    pub async fn tls(&self, url: &str) -> anyhow::Result<Option<String>> {
        let mut conn = PgConnection::connect(&self.admin).await?;
        let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut conn).await?;
        let cert: String = sqlx::query_scalar("SHOW ssl_cert_file")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        if ssl != "on" {
            return Ok(None);
        }
        let base = url.split('?').next().unwrap_or(url);
        Ok(Some(format!(
            "{}?sslmode=verify-full&sslrootcert={cert}",
            base.replacen("@127.0.0.1", "@localhost", 1)
        )))
    }

    /// Drops database `okrd_bench_{pid}_{name}`.
    pub async fn drop(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            database(name)
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

/// The name of this bench's database `name`.
fn database(name: &str) -> String {
    format!("okrd_bench_{}_{name}", std::process::id())
}

/// Rows in `points` at `url`.
pub async fn count_points(url: &str) -> anyhow::Result<i64> {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        let n = sqlx::query_scalar("SELECT count(*) FROM points")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        return Ok(n);
    }
    let mut conn = PgConnection::connect(url).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM points")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

/// Times PostgreSQL's binary COPY of `dataset`'s rows into the empty
/// `points` table at `url`: the rows are encoded before the clock starts,
/// and the clock stops at the commit. Returns rows/s.
pub async fn copy_rate(url: &str, dataset: &Dataset) -> anyhow::Result<f64> {
    let rows = dataset.copy_rows();
    let mut conn = PgConnection::connect(url).await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY points (series_id, ts, value) FROM STDIN WITH (FORMAT binary)")
        .await?;
    for chunk in rows.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    let copied = copy.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    conn.close().await?;
    anyhow::ensure!(
        copied as usize == dataset.points,
        "COPY stored {copied} rows of {}",
        dataset.points
    );
    Ok(dataset.points as f64 / seconds)
}
