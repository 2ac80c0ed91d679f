//! `okrd serve` end to end: the real binary on port 0, against SQLite and
//! the real PostgreSQL. Pushed points become scores in the API and in
//! /metrics; bad pushes are rejected with nothing stored; auth is enforced;
//! a valid reload is applied and an invalid one refused; SIGTERM loses no
//! accepted point; promtool accepts /metrics; the status page renders in
//! headless Chromium.

use std::time::{Duration, Instant};

use crate::common::http::{self, get_json, get_text, key_result as kr, metric, push};
use crate::common::server::{objective_yaml, service_yaml, signal, Server};
use crate::common::wait::{eventually, holds_for};
use crate::common::{both_stores, Backend};
use chrono::{SubsecRound, TimeDelta, Utc};
use serde_json::{json, Value};

both_stores!(
    pushed_points_become_scores_in_the_api_and_metrics,
    a_bad_push_is_rejected_whole,
    sigterm_loses_no_accepted_point,
    writes_need_the_token_when_one_is_set,
    a_valid_reload_is_applied_and_an_invalid_one_refused,
);

fn start(db: Option<&str>) -> Server {
    let objectives = [(
        "growth.yaml",
        objective_yaml("growth", "activation_rate", Utc::now()),
    )];
    Server::start(&service_yaml(""), &objectives, db, &[])
}

async fn pushed_points_become_scores_in_the_api_and_metrics(backend: Backend) {
    let db = backend.server_url();
    let server = start(db.as_deref());
    // Before any point: no data.
    let list = eventually(Duration::from_secs(10), "the first scorecard", || async {
        let l = get_json(&server.url("/api/v1/key-results")).await;
        kr(&l, "growth").is_some().then_some(l)
    })
    .await;
    assert_eq!(kr(&list, "growth").unwrap()["status"], "no_data");

    let ts = Utc::now().trunc_subsecs(0) - TimeDelta::seconds(5);
    let body = json!({"points": [
        {"metric": "activation_rate", "ts": (ts - TimeDelta::seconds(60)).to_rfc3339(), "value": 0.35},
        {"metric": "activation_rate", "ts": ts.to_rfc3339(), "value": 0.40},
        {"metric": "tickets", "ts": ts.to_rfc3339(), "value": 3.0},
    ]});
    let pushed = Instant::now();
    let r = http::post(&server.url("/api/v1/points"), None, body.to_string()).await;
    assert_eq!((r.status, r.json()), (200, json!({"stored": 3})));

    let row = eventually(
        Duration::from_secs(5),
        "the pushed value in the API",
        || async {
            let l = get_json(&server.url("/api/v1/key-results")).await;
            let row = kr(&l, "growth")?.clone();
            (row["value"] == json!(0.40)).then_some(row)
        },
    )
    .await;
    eprintln!(
        "pushed point visible in the API after {:?}",
        pushed.elapsed()
    );
    assert!(
        (row["progress"].as_f64().unwrap() - 0.5).abs() < 1e-9,
        "{row}"
    );
    assert_eq!(row["score"], row["progress"]);
    assert_eq!(row["team"], "growth");
    assert_eq!(row["title"], "Raise activation_rate from 30% to 50%");
    assert_eq!(row["updated_at"], json!(ts));

    let metrics = get_text(&server.url("/metrics")).await;
    for (series, expected) in [
        (
            r#"okrd_key_result_value{key_result="kr",objective="growth"}"#,
            0.4,
        ),
        (
            r#"okrd_key_result_score{key_result="kr",objective="growth"}"#,
            0.5,
        ),
        (
            r#"okrd_key_result_target{key_result="kr",objective="growth"}"#,
            0.5,
        ),
        (
            r#"okrd_key_result_status{key_result="kr",objective="growth",status="on_track"}"#,
            1.0,
        ),
        (
            r#"okrd_key_result_status{key_result="kr",objective="growth",status="no_data"}"#,
            0.0,
        ),
        (r#"okrd_points_ingested_total{connector="push"}"#, 3.0),
    ] {
        let got = metric(&metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
        assert!(
            (got - expected).abs() < 1e-9,
            "{series} = {got}, expected {expected}"
        );
    }
    // A push records its source's last success like any connector (the one
    // ingest path): within this test's run.
    let pushed = metric(
        &metrics,
        r#"okrd_connector_last_success_timestamp_seconds{connector="push"}"#,
    )
    .unwrap_or_else(|| panic!("no last success for push in\n{metrics}"));
    let now = Utc::now().timestamp() as f64;
    assert!(
        (now - 120.0..=now + 1.0).contains(&pushed),
        "{pushed} vs {now}"
    );

    // The detail explains the score and has the history.
    let detail = get_json(&server.url("/api/v1/key-results/growth/kr")).await;
    let ex = &detail["explanation"];
    assert_eq!(ex["series"], "activation_rate");
    assert_eq!(ex["baseline"]["source"], "configured");
    assert_eq!(ex["points_used"], json!([{"ts": ts, "value": 0.4}]));
    assert!(
        ex["formula"]
            .as_str()
            .unwrap()
            .contains("(0.4 - 0.3) / (0.5 - 0.3) = 0.5"),
        "{ex}"
    );
    // The history, re-scored from the earliest pushed point on: a row at
    // each point (the value changed), none between them.
    let history: Vec<(Value, Value)> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["at"].clone(), h["value"].clone()))
        .collect();
    let earlier = ts - TimeDelta::seconds(60);
    assert_eq!(
        history,
        [(json!(earlier), json!(0.35)), (json!(ts), json!(0.4))],
        "{detail}"
    );

    // A late point, before everything stored: re-scores the past.
    let late = ts - TimeDelta::days(1);
    let body =
        json!({"points": [{"metric": "activation_rate", "ts": late.to_rfc3339(), "value": 0.31}]});
    http::post(&server.url("/api/v1/points"), None, body.to_string())
        .await
        .assert_ok();
    eventually(
        Duration::from_secs(5),
        "history re-scored with the late point",
        || async {
            let d = get_json(&server.url("/api/v1/key-results/growth/kr")).await;
            d["history"]
                .as_array()?
                .iter()
                .any(|h| h["at"] == json!(late) && h["value"] == json!(0.31))
                .then_some(())
        },
    )
    .await;

    assert_eq!(get_text(&server.url("/healthz")).await, "ok\n");
    assert_eq!(get_text(&server.url("/readyz")).await, "ready\n");
    let objectives = get_json(&server.url("/api/v1/objectives")).await;
    assert_eq!(objectives["objectives"][0]["id"], "growth");
    assert!((objectives["objectives"][0]["score"].as_f64().unwrap() - 0.5).abs() < 1e-9);
}

async fn a_bad_push_is_rejected_whole(backend: Backend) {
    let db = backend.server_url();
    let server = Server::start(
        &service_yaml("  max_body: 4KiB\n"),
        &[(
            "growth.yaml",
            objective_yaml("growth", "activation_rate", Utc::now()),
        )],
        db.as_deref(),
        &[],
    );
    let now = Utc::now().trunc_subsecs(0);
    let body = json!({"points": [
        {"metric": "activation_rate", "ts": now.to_rfc3339(), "value": 0.4},
        {"metric": "activation_rate", "ts": "yesterday", "value": 0.4},
        {"metric": "activation_rate", "ts": now.to_rfc3339(), "value": "high"},
    ]});
    let r = http::post(&server.url("/api/v1/points"), None, body.to_string()).await;
    assert_eq!(r.status, 400);
    let err = r.json();
    assert_eq!(
        err["error"],
        "2 of 3 points are invalid; nothing was stored"
    );
    let reasons: Vec<(u64, &str)> = err["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons, vec![(1, "invalid_ts"), (2, "invalid_value")]);

    let r = http::post(&server.url("/api/v1/points"), None, "{not json").await;
    assert_eq!(r.status, 400);
    let big = json!({"points": (0..200).map(|i| json!({"metric": "m", "ts": i, "value": i})).collect::<Vec<_>>()});
    let r = http::post(&server.url("/api/v1/points"), None, big.to_string()).await;
    assert_eq!(r.status, 413, "a body over http.max_body");

    // Nothing from the rejected requests was stored: from the first
    // scorecard on, through recomputes (every 1 s), still no data.
    let status = || async {
        let list = get_json(&server.url("/api/v1/key-results")).await;
        kr(&list, "growth").map(|k| k["status"].clone())
    };
    eventually(Duration::from_secs(10), "the first scorecard", status).await;
    holds_for(Duration::from_millis(2500), "no data", || async {
        status().await == Some(json!("no_data"))
    })
    .await;
    let store = okrd::store::open(&server.database_url).await.unwrap();
    assert!(store.metrics_with_points().await.unwrap().is_empty());
    let metrics = get_text(&server.url("/metrics")).await;
    assert!(
        metrics.contains(r#"okrd_points_rejected_total{connector="push",reason="invalid_ts"} 1"#),
        "{metrics}"
    );
}

async fn sigterm_loses_no_accepted_point(backend: Backend) {
    let db = backend.server_url();
    let mut server = start(db.as_deref());
    let base = Utc::now().trunc_subsecs(0) - TimeDelta::days(1);
    let url = server.url("/api/v1/points");
    const BATCH: i64 = 500;
    // Four clients push batches with distinct timestamps until the server
    // goes away; each remembers the batches it got a 200 for.
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4i64 {
        let url = url.clone();
        let acks = acks.clone();
        clients.push(tokio::spawn(async move {
            let client = http::client();
            let mut accepted = Vec::new();
            for b in 0..10_000i64 {
                let first = (c * 10_000 + b) * BATCH;
                let points: Vec<Value> = (first..first + BATCH)
                    .map(|i| json!({"metric": "activation_rate", "ts": (base + TimeDelta::milliseconds(i)).to_rfc3339(), "value": i}))
                    .collect();
                match client.post(&url).json(&json!({"points": points})).send().await {
                    Ok(r) if r.status() == 200 => {
                        accepted.push(first);
                        acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
            accepted
        }));
    }
    // SIGTERM once a few batches are in, while the clients keep pushing.
    eventually(
        Duration::from_secs(10),
        "8 acknowledged batches",
        || async { (acks.load(std::sync::atomic::Ordering::SeqCst) >= 8).then_some(()) },
    )
    .await;
    signal(server.pid(), "TERM");
    let mut accepted = Vec::new();
    for c in clients {
        accepted.extend(c.await.unwrap());
    }
    let clean_exit = tokio::task::block_in_place(|| server.wait_exit());
    assert!(
        clean_exit,
        "okrd serve exited with an error after SIGTERM:\n{}",
        server.log()
    );

    // Every point of every acknowledged batch is in the store.
    let store = okrd::store::open(&server.database_url).await.unwrap();
    let key = okrd::model::SeriesKey::new("activation_rate", Default::default());
    let stored = store
        .load_series(
            &key,
            base - TimeDelta::seconds(1),
            base + TimeDelta::days(1),
        )
        .await
        .unwrap();
    let stored: std::collections::HashSet<i64> = stored
        .iter()
        .map(|s| (s.ts - base).num_milliseconds())
        .collect();
    for first in &accepted {
        for i in *first..first + BATCH {
            assert!(
                stored.contains(&i),
                "acknowledged point {i} is missing after SIGTERM"
            );
        }
    }
    eprintln!(
        "{} acknowledged batches ({} points) all present after SIGTERM; {} points stored in all",
        accepted.len(),
        accepted.len() as i64 * BATCH,
        stored.len()
    );
}

fn one_point(value: f64) -> Value {
    json!([{"metric": "activation_rate", "ts": Utc::now().trunc_subsecs(0).to_rfc3339(), "value": value}])
}

async fn writes_need_the_token_when_one_is_set(backend: Backend) {
    let db = backend.server_url();
    let objectives = [(
        "growth.yaml",
        objective_yaml("growth", "activation_rate", Utc::now()),
    )];
    // The token comes from the environment, as a deployment would set it.
    let server = Server::start(
        &service_yaml("  token: ${TEST_TOKEN}\n"),
        &objectives,
        db.as_deref(),
        &[("TEST_TOKEN", "s3cret")],
    );
    for wrong in [None, Some("s3cre"), Some("s3cret-and-more")] {
        let r = push(&server, one_point(0.4), wrong).await;
        assert_eq!(r.status, 401, "token {wrong:?}");
    }
    let ok = push(&server, one_point(0.4), Some("s3cret")).await;
    assert_eq!((ok.status, ok.json()), (200, json!({"stored": 1})));
    // Reads stay open.
    assert_eq!(
        http::get(&server.url("/api/v1/key-results"), None)
            .await
            .status,
        200
    );
}

async fn a_valid_reload_is_applied_and_an_invalid_one_refused(backend: Backend) {
    let db = backend.server_url();
    let server = start(db.as_deref());
    let ids = || async {
        let o = get_json(&server.url("/api/v1/objectives")).await;
        o["objectives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids().await, ["growth"]);

    // A new objective file is picked up.
    let dir = server.file("config/objectives");
    std::fs::write(
        dir.join("retention.yaml"),
        objective_yaml("retention", "retention_rate", Utc::now()),
    )
    .unwrap();
    eventually(Duration::from_secs(10), "the new objective", || async {
        (ids().await == ["growth", "retention"]).then_some(())
    })
    .await;
    let krs = eventually(
        Duration::from_secs(5),
        "the new objective's KR scored",
        || async {
            let l = get_json(&server.url("/api/v1/key-results")).await;
            kr(&l, "retention").is_some().then_some(l)
        },
    )
    .await;
    assert_eq!(kr(&krs, "retention").unwrap()["status"], "no_data");

    // An invalid edit is refused with its errors logged; the previous set keeps running.
    let broken = objective_yaml("broken", "m", Utc::now())
        .replace("team: growth", "team: growth\nowner: bob");
    std::fs::write(dir.join("broken.yaml"), broken).unwrap();
    eventually(
        Duration::from_secs(10),
        "the rejected reload in the log",
        || async {
            server
                .log()
                .contains("configuration reload rejected")
                .then_some(())
        },
    )
    .await;
    let log = server.log();
    assert!(
        log.contains("config/objectives/broken.yaml:4:1: error: owner: unknown field `owner`"),
        "{log}"
    );
    assert_eq!(ids().await, ["growth", "retention"]);

    // Fixing it applies it; SIGHUP reloads on demand.
    std::fs::remove_file(dir.join("broken.yaml")).unwrap();
    std::fs::remove_file(dir.join("retention.yaml")).unwrap();
    eventually(Duration::from_secs(10), "the objective removed", || async {
        (ids().await == ["growth"]).then_some(())
    })
    .await;
    signal(server.pid(), "HUP");
    eventually(Duration::from_secs(10), "a SIGHUP reload", || async {
        server.log().contains("SIGHUP: reloading").then_some(())
    })
    .await;
    // A removed KR leaves no series behind, once the scorer has run.
    eventually(
        Duration::from_secs(5),
        "the removed KR gone from /metrics",
        || async {
            (!get_text(&server.url("/metrics"))
                .await
                .contains("retention"))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_wrong_with_metrics() {
    let server = start(None);
    assert_eq!(push(&server, one_point(0.4), None).await.status, 200);
    let bad = json!([{"metric": "activation_rate", "ts": "never", "value": 1}]);
    assert_eq!(push(&server, bad, None).await.status, 400);
    eventually(Duration::from_secs(5), "the score in /metrics", || async {
        let m = get_text(&server.url("/metrics")).await;
        m.contains(r#"okrd_key_result_value{key_result="kr",objective="growth"} 0.4"#)
            .then_some(())
    })
    .await;
    let text = get_text(&server.url("/metrics")).await;
    for name in [
        "okrd_key_result_score",
        "okrd_key_result_progress",
        "okrd_key_result_value",
        "okrd_key_result_target",
        "okrd_key_result_expected_score",
        "okrd_key_result_status",
        "okrd_key_result_info",
        "okrd_objective_score",
        "okrd_guardrail_degraded",
        "okrd_points_ingested_total",
        "okrd_points_rejected_total",
        "okrd_recompute_duration_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing from /metrics:\n{text}"
        );
    }
    let promtool = crate::common::process::which(&["promtool"]);
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing at all: no finding, no warning.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n--- input\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_key_results_in_chromium() {
    let objectives = [
        (
            "growth.yaml",
            objective_yaml("growth", "activation_rate", Utc::now()),
        ),
        (
            "retention.yaml",
            objective_yaml("retention", "retention_rate", Utc::now()),
        ),
    ];
    let server = Server::start(&service_yaml(""), &objectives, None, &[]);
    let now = Utc::now().trunc_subsecs(0);
    let points: Vec<Value> = (0..10)
        .map(|i| json!({"metric": "activation_rate", "ts": (now - TimeDelta::days(10 - i)).to_rfc3339(), "value": 0.30 + 0.01 * i as f64}))
        .collect();
    assert_eq!(push(&server, Value::Array(points), None).await.status, 200);
    eventually(Duration::from_secs(5), "the scored KR", || async {
        let l = get_json(&server.url("/api/v1/key-results")).await;
        (kr(&l, "growth")?["status"] != "no_data").then_some(())
    })
    .await;
    let Some(page) = crate::common::browser::load_async(server.url("/")).await else {
        return;
    };
    for needle in [
        r#"id="kr-growth-kr""#,
        r#"id="kr-retention-kr""#,
        "Raise activation_rate from 30% to 50%",
        "Raise retention_rate from 30% to 50%",
        "Test objective growth",
    ] {
        assert!(
            page.dom.contains(needle),
            "{needle} not on the page:\n{}",
            page.dom
        );
    }
    let png = std::fs::read(&page.screenshot).unwrap();
    let (width, height, pixels) = crate::common::browser::decode_png(&png);
    assert_eq!(
        (width, height),
        (
            crate::common::browser::WIDTH,
            crate::common::browser::HEIGHT
        )
    );
    let distinct: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        distinct.len() > 50,
        "the screenshot looks blank ({} colours)",
        distinct.len()
    );
}

/// `/readyz` answers 503 while the store is unreachable, and recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_store() {
    use sqlx::Connection;
    if crate::common::pg::skip() {
        return;
    }
    let db = crate::common::pg::fresh_database().await;
    let server = start(Some(db.url()));
    // Ready once the first scorecard is published.
    eventually(Duration::from_secs(10), "/readyz to say ready", || async {
        (http::try_get(&server.url("/readyz")).await?.status == 200).then_some(())
    })
    .await;
    assert_eq!(get_text(&server.url("/readyz")).await, "ready\n");
    let mut admin = sqlx::PgConnection::connect(&crate::common::pg::admin_url())
        .await
        .unwrap();
    let cut = format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", db.name());
    sqlx::query(&cut).execute(&mut admin).await.unwrap();
    let kick = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
    sqlx::query(kick)
        .bind(db.name())
        .execute(&mut admin)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "/readyz to report the store gone",
        || async { (http::try_get(&server.url("/readyz")).await?.status == 503).then_some(()) },
    )
    .await;
    let restore = format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", db.name());
    sqlx::query(&restore).execute(&mut admin).await.unwrap();
    eventually(Duration::from_secs(15), "/readyz to recover", || async {
        (http::try_get(&server.url("/readyz")).await?.status == 200).then_some(())
    })
    .await;
}
