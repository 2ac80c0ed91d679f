//! A local webhook receiver: every body okrd delivers to it, in order.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The bodies a [`receiver`] has been sent.
pub type Bodies = Arc<Mutex<Vec<Value>>>;

/// Starts a receiver on 127.0.0.1; returns its URL (`…/hook`) and what it
/// receives. It runs as long as the test's runtime.
pub async fn receiver() -> (String, Bodies) {
    use axum::extract::State;
    let seen: Bodies = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(seen): State<Bodies>, body: axum::Json<Value>| async move {
                    seen.lock().unwrap().push(body.0);
                    "ok"
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The `event` field of each body, in order.
pub fn events(bodies: &Bodies) -> Vec<String> {
    bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["event"].as_str().unwrap_or("?").to_string())
        .collect()
}
