//! A local HTTP server standing in for the third-party endpoints connectors
//! pull from: JSON APIs (good, broken, failing, slow), a Prometheus query
//! API that records the evaluation times asked for, and a metrics exporter
//! for a real Prometheus to scrape.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the fixture serves and what it saw.
#[derive(Default)]
pub struct Seen {
    hits: Mutex<HashMap<String, usize>>,
    arrivals: Mutex<Vec<(String, Instant)>>,
    /// The document `/json` serves.
    pub json: Mutex<Value>,
    /// The value `/metrics` exports as `app_retention_d7_ratio{plan="free"}`.
    pub exported: Mutex<f64>,
    /// `time` of every `/api/v1/query` request.
    pub query_times: Mutex<Vec<String>>,
    gate_open: tokio::sync::watch::Sender<bool>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running fixture server.
pub struct Fixture {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Shared with the handlers.
    pub seen: Arc<Seen>,
}

impl Fixture {
    /// Starts the server on a free port.
    pub async fn start() -> Fixture {
        let seen = Arc::new(Seen::default());
        *seen.exported.lock().unwrap() = 0.42;
        let app = Router::new()
            .route("/json", get(doc))
            .route("/broken", get(broken))
            .route("/always500", get(always_500))
            .route("/flaky/{failures}", get(flaky))
            .route("/missing", get(missing))
            .route("/hang-once", get(hang_once))
            .route("/gate", get(gate))
            .route("/api/v1/query", get(query))
            .route("/metrics", get(exporter))
            .route("/echo", post(echo))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fixture { base, seen }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many requests `path` got.
    pub fn hits(&self, path: &str) -> usize {
        self.seen
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// When each request to `path` arrived.
    pub fn arrivals(&self, path: &str) -> Vec<Instant> {
        let a = self.seen.arrivals.lock().unwrap();
        a.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }

    /// Lets `/gate` requests through (now and from now on).
    pub fn open_gate(&self) {
        self.seen.gate_open.send_replace(true);
    }

    /// The most `/gate` requests ever in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.seen.max_in_flight.load(Ordering::SeqCst)
    }

    /// `/gate` requests in progress now.
    pub fn in_flight(&self) -> usize {
        self.seen.in_flight.load(Ordering::SeqCst)
    }
}

fn hit(seen: &Seen, path: &str) -> usize {
    seen.arrivals
        .lock()
        .unwrap()
        .push((path.to_string(), Instant::now()));
    let mut hits = seen.hits.lock().unwrap();
    let n = hits.entry(path.to_string()).or_default();
    *n += 1;
    *n
}

async fn doc(State(seen): State<Arc<Seen>>) -> Json<Value> {
    hit(&seen, "/json");
    Json(seen.json.lock().unwrap().clone())
}

async fn broken(State(seen): State<Arc<Seen>>) -> Response {
    hit(&seen, "/broken");
    (
        StatusCode::OK,
        "<html><body>Service temporarily moved</body></html>",
    )
        .into_response()
}

async fn always_500(State(seen): State<Arc<Seen>>) -> Response {
    hit(&seen, "/always500");
    (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response()
}

async fn flaky(State(seen): State<Arc<Seen>>, Path(failures): Path<usize>) -> Response {
    let n = hit(&seen, &format!("/flaky/{failures}"));
    if n <= failures {
        (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
    } else {
        Json(seen.json.lock().unwrap().clone()).into_response()
    }
}

async fn missing(State(seen): State<Arc<Seen>>) -> Response {
    hit(&seen, "/missing");
    (StatusCode::NOT_FOUND, "no such report").into_response()
}

async fn hang_once(State(seen): State<Arc<Seen>>) -> Response {
    if hit(&seen, "/hang-once") == 1 {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    Json(seen.json.lock().unwrap().clone()).into_response()
}

async fn gate(State(seen): State<Arc<Seen>>) -> Response {
    hit(&seen, "/gate");
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let mut open = seen.gate_open.subscribe();
    let _ = open.wait_for(|o| *o).await;
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    Json(json!({"value": 1})).into_response()
}

async fn query(
    State(seen): State<Arc<Seen>>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<Value> {
    hit(&seen, "/api/v1/query");
    let time = params.get("time").cloned().unwrap_or_default();
    seen.query_times.lock().unwrap().push(time.clone());
    let t: f64 = time.parse().unwrap_or(0.0);
    Json(
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "fixture"}, "value": [t, "1"]}
        ]}}),
    )
}

/// Answers a POST with what it got: the JSON body's `x` as `value`, and
/// the Authorization and Content-Type headers as labels.
async fn echo(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String) -> Json<Value> {
    hit(&seen, "/echo");
    let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Json(json!({
        "value": doc["x"],
        "auth": header("authorization"),
        "type": header("content-type"),
    }))
}

async fn exporter(State(seen): State<Arc<Seen>>) -> Response {
    hit(&seen, "/metrics");
    let v = *seen.exported.lock().unwrap();
    let text = format!(
        "# HELP app_retention_d7_ratio 7-day retention.\n# TYPE app_retention_d7_ratio gauge\napp_retention_d7_ratio{{plan=\"free\"}} {v}\napp_retention_d7_ratio{{plan=\"pro\"}} {}\n",
        v + 0.2
    );
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}
