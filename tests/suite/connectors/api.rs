//! Registering connectors over REST: the token, validation with the YAML
//! messages, 409 against a connector file, persistence across a restart,
//! and removal.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use super::fixture::Fixture;
use super::{connector, get_json, kr_value, objective, Deployment, TOKEN};
use crate::common::http::{self, delete};
use crate::common::wait::{eventually, holds_for};

async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let answer = http::post(url, token, body).await;
    let value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    (answer.status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_registered_over_rest_run_persist_and_can_be_removed() {
    let f = Fixture::start().await;
    let now = Utc::now();
    let ts = (now - chrono::TimeDelta::hours(2)).to_rfc3339();
    *f.seen.json.lock().unwrap() = json!({"rows": [{"t": ts, "v": 0.7, "team": "a"}]});
    let d = Deployment::new();
    d.connector_file("demo", "name: from-file\ntype: synthetic\n");
    let mut server = d.start(
        Some(TOKEN),
        &[objective("reg", "signup_rate", "{ team: a }", now)],
        None,
        &[("FIXTURE_PATH", "/json")],
    );
    let url = server.url("/api/v1/connectors");
    let body = json!({
        "name": "signups",
        "type": "http",
        "schedule": "@every 1s",
        "request": {"url": format!("{}${{FIXTURE_PATH}}", f.base)},
        "extract": {"items": "/rows", "metric": "signup_rate", "ts": "/t", "value": "/v", "labels": {"team": "/team"}}
    })
    .to_string();

    assert_eq!(
        post(&url, None, &body).await.0,
        401,
        "writes need the token"
    );

    let (status, answer) = post(
        &url,
        Some(TOKEN),
        r#"{"name": "bad", "type": "http", "schedule": "every minute", "request": {"url": "ftp://x"}, "extract": {"metric": "m", "value": "rate"}}"#,
    )
    .await;
    assert_eq!(status, 400);
    let errors: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // The same file:line:column: key: message form as connector files.
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("body:1:") && e.contains("schedule: invalid schedule")),
        "{errors:?}"
    );
    // Once it deserializes, every remaining problem is reported at once.
    let (status, answer) = post(
        &url,
        Some(TOKEN),
        r#"{"name": "bad", "type": "http", "schedule": "@every 1m", "request": {"url": "ftp://x"}, "extract": {"metric": "m", "value": "rate"}}"#,
    )
    .await;
    assert_eq!(status, 400);
    let errors = answer["errors"].to_string();
    assert!(
        errors.contains("extract.value: invalid JSON pointer"),
        "{errors}"
    );
    assert!(errors.contains("request.url: invalid url"), "{errors}");

    let clash = body.replace("\"signups\"", "\"from-file\"");
    let (status, answer) = post(&url, Some(TOKEN), &clash).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("demo.yaml"),
        "{answer}"
    );

    let (status, answer) = post(&url, Some(TOKEN), &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["origin"], "api");

    // It runs: the KR is scored from its points.
    let v = eventually(
        Duration::from_secs(30),
        "the API connector's points scored",
        || kr_value(&server, "reg"),
    )
    .await;
    assert_eq!(v, 0.7);
    let c = connector(&server, "signups").await.unwrap();
    assert_eq!(
        (c["origin"].as_str(), c["type"].as_str()),
        (Some("api"), Some("http"))
    );
    assert!(c["registered_at"].is_string());
    let file = connector(&server, "from-file").await.unwrap();
    assert_eq!(file["origin"], "yaml");

    // A connector file added while okrd runs is picked up by the reload.
    d.connector_file(
        "later",
        &format!(
            "name: later\ntype: http\nschedule: \"@every 1s\"\nrequest: {{ url: \"{}\" }}\nextract: {{ items: /rows, metric: later_metric, value: /v }}\n",
            f.url("/json")
        ),
    );
    eventually(
        Duration::from_secs(30),
        "the new file's connector to run",
        || async {
            connector(&server, "later")
                .await
                .filter(|c| c["origin"] == "yaml" && c["points_ingested"].as_u64() >= Some(1))
        },
    )
    .await;
    std::fs::remove_file(d.connectors_dir().join("later.yaml")).unwrap();
    eventually(
        Duration::from_secs(30),
        "the removed file's connector to go",
        || async { connector(&server, "later").await.is_none().then_some(()) },
    )
    .await;

    // Registering the name again replaces it.
    assert_eq!(post(&url, Some(TOKEN), &body).await.0, 200);

    // A restart keeps it, and it keeps running.
    server = server.restart(&[("FIXTURE_PATH", "/json")]);
    let before = f.hits("/json");
    eventually(
        Duration::from_secs(30),
        "runs after the restart",
        || async { (f.hits("/json") > before + 1).then_some(()) },
    )
    .await;
    let c = connector(&server, "signups").await.unwrap();
    assert_eq!(c["origin"], "api");
    assert!(c["points_ingested"].as_u64().unwrap() >= 2);

    let one = get_json(&server.url("/api/v1/connectors/signups")).await;
    assert_eq!(one["name"], "signups");
    assert_eq!(
        delete(&server.url("/api/v1/connectors/from-file"), Some(TOKEN)).await,
        409
    );
    assert_eq!(
        delete(&server.url("/api/v1/connectors/signups"), None).await,
        401
    );
    assert_eq!(
        delete(&server.url("/api/v1/connectors/signups"), Some(TOKEN)).await,
        204
    );
    assert_eq!(
        delete(&server.url("/api/v1/connectors/signups"), Some(TOKEN)).await,
        404
    );
    assert!(connector(&server, "signups").await.is_none());
    // Its runs stop (the scheduler looks for registrations every second,
    // and a run that had started may finish), and stay stopped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = f.hits("/json");
    holds_for(
        Duration::from_secs(3),
        "no run of a removed connector",
        || async { f.hits("/json") == after },
    )
    .await;
}
