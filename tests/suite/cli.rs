//! The `okrd` binary end to end: `check` output (golden files), lints,
//! `ingest` of a CSV and `score` at a fixed time, on SQLite and PostgreSQL.
//!
//! Golden files live in tests/golden; `UPDATE_GOLDEN=1 cargo test --test cli`
//! rewrites them, and the diff is reviewed like code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::pg;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary, run in `dir`, with no `OKRD_*` variable from the caller's
/// environment leaking in.
fn okrd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_okrd"));
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("OKRD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run okrd")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "output differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn check_reports_every_error_with_position_and_path() {
    let out = okrd(&repo().join("tests/fixtures/broken"), &["check"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    golden("check_broken.txt", &stdout(&out));
}

#[test]
fn check_lints_okr_practice_and_strict_fails_on_warnings() {
    let dir = repo().join("tests/fixtures/lint");
    let out = okrd(&dir, &["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    golden("check_lint.txt", &stdout(&out));
    let strict = okrd(&dir, &["check", "--strict"], &[]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        !dir.join("data").exists(),
        "check must not create the SQLite database"
    );
}

#[test]
fn check_accepts_the_example_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/okrd.db", tmp.path().display());
    let out = okrd(
        &repo(),
        &["check", "--strict"],
        &[("OKRD_DATABASE__URL", &url)],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("config ok: 5 objectives, 6 key results, 1 connector; 0 warnings")
    );
}

#[test]
fn environment_overrides_reach_the_config_and_are_validated() {
    let out = okrd(&repo(), &["check"], &[("OKRD_HTTP__LISTEN", "nowhere")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        "config/okrd.yaml: error: http.listen: invalid listen address \"nowhere\": expected HOST:PORT, e.g. 127.0.0.1:9464 (set by OKRD_HTTP__LISTEN)"
    );
}

#[test]
fn missing_config_file_means_defaults_but_a_named_one_must_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let out = okrd(tmp.path(), &["check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("config ok: 0 objectives"));
    let out = okrd(tmp.path(), &["check", "--config", "nope.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("nope.yaml: error: cannot read config file"));
}

/// Ingests examples/points.csv into `url`, scores at a fixed time, and
/// compares the JSON with the golden file and with values computed here
/// from the CSV itself.
fn ingest_and_score(url: &str) {
    let env = [("OKRD_DATABASE__URL", url)];
    let out = okrd(&repo(), &["ingest", "examples/points.csv"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ingested 354 points (354 distinct, 6 series)"),
        "{}",
        stdout(&out)
    );
    // Ingesting again changes nothing: points are keyed by (series, ts).
    let again = okrd(&repo(), &["ingest", "examples/points.csv"], &env);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));

    let out = okrd(
        &repo(),
        &["score", "--at", "2026-11-15T00:00:00Z", "--format", "json"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    golden("score_example.json", &stdout(&out));

    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kr = |id: &str| {
        json["key_results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_result"] == id)
            .unwrap()
            .clone()
    };
    // activation: `last` of the free plan's series at the newest ts <= at.
    let csv = std::fs::read_to_string(repo().join("examples/points.csv")).unwrap();
    let free: f64 = csv
        .lines()
        .find(|l| l.starts_with("activation_rate,2026-11-14T12:00:00Z") && l.ends_with(",free"))
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let activation = kr("activation");
    assert_eq!(activation["value"].as_f64().unwrap(), free);
    let progress = (free - 0.32) / (0.45 - 0.32);
    assert!((activation["progress"].as_f64().unwrap() - progress).abs() < 1e-12);
    let expected = 45.0 / 92.0; // 45 of Q4's 92 days have passed
    assert!((activation["expected"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_eq!(activation["status"], "on_track");
    // A maintain KR has no baseline or progress.
    let latency = kr("onboarding-latency");
    assert!(latency["baseline"].is_null() && latency["progress"].is_null());
    assert_eq!(latency["score"], 0.0, "p99 above 300 ms on the 14th");
}

#[test]
fn ingest_then_score_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    ingest_and_score(&format!("sqlite://{}/data/okrd.db", tmp.path().display()));
}

#[tokio::test]
async fn ingest_then_score_on_postgres() {
    if pg::skip() {
        return;
    }
    let db = pg::fresh_database().await;
    let url = db.url().to_string();
    tokio::task::spawn_blocking(move || ingest_and_score(&url))
        .await
        .unwrap();
}

/// The same over TLS (`sslmode=verify-full`), and while the commands run
/// every connection of theirs to the database is encrypted.
#[tokio::test]
async fn ingest_then_score_on_postgres_over_tls() {
    if pg::skip() {
        return;
    }
    let db = pg::fresh_database().await;
    let url = pg::tls_url(db.url()).await;
    let name = db.name().to_string();
    // Sample the server's view of the database's connections while the
    // commands run; every one seen must be encrypted.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut seen, mut encrypted) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let (c, e) = pg::connections_encrypted(&name).await;
                seen += c;
                encrypted += e;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (seen, encrypted)
        })
    };
    tokio::task::spawn_blocking(move || ingest_and_score(&url))
        .await
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, encrypted) = watcher.await.unwrap();
    assert!(seen > 0, "no connection of the commands was seen");
    assert_eq!(
        encrypted, seen,
        "{encrypted} of {seen} connections encrypted"
    );
}

/// A wrong CA is refused, saying so, and the password is not printed.
#[tokio::test]
async fn a_wrong_ca_is_refused_with_a_clear_error() {
    if pg::skip() {
        return;
    }
    let db = pg::fresh_database().await;
    let certs = crate::common::tls::certs();
    let url = pg::tls_url(&db.url().replacen("postgres@", "postgres:s3cret-pw@", 1))
        .await
        .replace(
            &pg::server_certificate().await.display().to_string(),
            &certs.ca.display().to_string(),
        );
    let out = tokio::task::spawn_blocking(move || {
        okrd(&repo(), &["score"], &[("OKRD_DATABASE__URL", url.as_str())])
    })
    .await
    .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("not signed by a trusted CA"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

#[test]
fn a_file_with_a_bad_row_is_rejected_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("points.csv");
    std::fs::write(
        &csv,
        "metric,ts,value,plan\nactivation_rate,2026-10-02T00:00:00Z,0.33,free\nactivation_rate,yesterday,0.34,free\nactivation_rate,2026-10-04T00:00:00Z,NaN,free\n",
    )
    .unwrap();
    let url = format!("sqlite://{}/okrd.db", tmp.path().display());
    let env = [("OKRD_DATABASE__URL", url.as_str())];
    let out = okrd(&repo(), &["ingest", csv.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("points.csv:3: invalid timestamp \"yesterday\""),
        "{err}"
    );
    assert!(
        err.contains("points.csv:4: value \"NaN\" is not a finite number"),
        "{err}"
    );
    assert!(
        err.contains("rejected: 2 bad rows; nothing was written"),
        "{err}"
    );

    // The good row before the bad ones was not written either.
    let out = okrd(
        &repo(),
        &["score", "--at", "2026-10-05T00:00:00Z", "--format", "json"],
        &env,
    );
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let activation = &json["key_results"][0];
    assert_eq!(activation["key_result"], "activation");
    assert_eq!(activation["status"], "no_data");
    assert!(activation["value"].is_null());
}

#[test]
fn score_prints_a_table() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/okrd.db", tmp.path().display());
    let env = [("OKRD_DATABASE__URL", url.as_str())];
    assert!(okrd(&repo(), &["ingest", "examples/points.csv"], &env)
        .status
        .success());
    let out = okrd(&repo(), &["score", "--at", "2026-11-15T00:00:00Z"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    golden("score_example_table.txt", &stdout(&out));
}

/// `okrd diff` over the two fixture deployments in tests/fixtures/diff
/// (base: main, new: a pull request) and one store, in JSON and as a table.
#[test]
fn diff_shows_changed_added_and_removed_key_results() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/okrd.db", tmp.path().display());
    let env = [("OKRD_DATABASE__URL", url.as_str())];
    assert!(okrd(&repo(), &["ingest", "examples/points.csv"], &env)
        .status
        .success());
    let new = repo().join("tests/fixtures/diff/new");
    let at = "2026-11-15T00:00:00Z";
    let out = okrd(
        &new,
        &["diff", "../base", "--at", at, "--format", "json"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    golden("diff.json", &stdout(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let changed: Vec<(&str, bool)> = json["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key_result"].as_str().unwrap(),
                c["easier"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            ("activation", true),
            ("onboarding-latency", false),
            ("weekly-active-teams", true)
        ]
    );
    assert_eq!(json["added"][0]["key_result"], "tickets");
    assert_eq!(json["removed"][0]["key_result"], "pro-activation");

    let out = okrd(&new, &["diff", "../base", "--at", at], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    golden("diff_table.txt", &stdout(&out));

    // A deployment against itself: nothing to say.
    let out = okrd(&new, &["diff", ".", "--at", at, "--format", "json"], &env);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (
            json["changed"].clone(),
            json["added"].clone(),
            json["removed"].clone()
        ),
        (
            serde_json::json!([]),
            serde_json::json!([]),
            serde_json::json!([])
        )
    );
}
