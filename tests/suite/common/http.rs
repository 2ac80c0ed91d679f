//! HTTP as the cases speak it to `okrd serve` and to the daemons beside it:
//! one client with a timeout, requests with an optional bearer token, and
//! JSON and Prometheus text read back.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::server::Server;

/// The client every case uses: a 10 s timeout, so that a hung server fails
/// the case instead of stalling the run.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON; panics, naming the URL and the body, when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| {
            panic!(
                "{}: a {} answer that is not JSON: {:?}",
                self.url, self.status, self.text
            )
        })
    }

    /// The body as JSON, after asserting a 2xx status.
    pub fn ok_json(&self) -> Value {
        self.assert_ok();
        self.json()
    }

    /// Asserts a 2xx status, with the body in the message.
    pub fn assert_ok(&self) {
        assert!(
            (200..300).contains(&self.status),
            "{}: {} {}",
            self.url,
            self.status,
            self.text
        );
    }
}

/// Sends `method` to `url` with an optional token and JSON body; `None`
/// when the request itself fails (refused, reset, timed out).
pub async fn try_request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Option<Answer> {
    let mut r = client().request(method, url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    let r = r.send().await.ok()?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.ok()?;
    Some(Answer {
        url: url.to_string(),
        status,
        headers,
        text,
    })
}

/// As [`try_request`], panicking when the request fails.
pub async fn request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Answer {
    let what = format!("{method} {url}");
    try_request(method, url, token, body)
        .await
        .unwrap_or_else(|| panic!("{what}: no answer"))
}

/// `GET url` with an optional token.
pub async fn get(url: &str, token: Option<&str>) -> Answer {
    request(Method::GET, url, token, None).await
}

/// `GET url`: its JSON, asserting a 2xx status.
pub async fn get_json(url: &str) -> Value {
    get(url, None).await.ok_json()
}

/// `GET url`: its body, whatever the status.
pub async fn get_text(url: &str) -> String {
    get(url, None).await.text
}

/// `GET url`, or `None` when the request fails.
pub async fn try_get(url: &str) -> Option<Answer> {
    try_request(Method::GET, url, None, None).await
}

/// `GET url`'s JSON, or `None` while the server does not answer it with a
/// 2xx (for polling a server that may be down).
pub async fn try_get_json(url: &str) -> Option<Value> {
    let answer = try_get(url).await?;
    (200..300).contains(&answer.status).then(|| answer.json())
}

/// `GET url`'s body, or `None` while the server does not answer.
pub async fn try_get_text(url: &str) -> Option<String> {
    Some(try_get(url).await?.text)
}

/// `POST url` with a JSON body.
pub async fn post(url: &str, token: Option<&str>, body: impl Into<String>) -> Answer {
    request(Method::POST, url, token, Some(body.into())).await
}

/// `DELETE url`: its status.
pub async fn delete(url: &str, token: Option<&str>) -> u16 {
    request(Method::DELETE, url, token, None).await.status
}

/// `POST /api/v1/points` with `{"points": points}`.
pub async fn push(server: &Server, points: Value, token: Option<&str>) -> Answer {
    let body = json!({ "points": points }).to_string();
    post(&server.url("/api/v1/points"), token, body).await
}

/// The value of one series in Prometheus text output: `series` is the
/// metric name with its labels exactly as printed.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The KR of `objective` in a `GET /api/v1/key-results` answer.
pub fn key_result<'a>(list: &'a Value, objective: &str) -> Option<&'a Value> {
    list["key_results"]
        .as_array()?
        .iter()
        .find(|k| k["objective"] == objective)
}
