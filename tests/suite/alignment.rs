//! Alignment and dependencies (SPEC §4, §5) with real `okrd serve`
//! processes:
//! - the example deployment: `GET /api/v1/alignment` gives the tree and the
//!   cross-team dependency, roll-ups agree between the API and /metrics,
//!   and Chromium shows the tree, a key result's page and a filtered page;
//! - the dependency alert on SQLite and PostgreSQL: exactly one delivery
//!   per transition (no data, on track, off track, on track again), none
//!   repeated across a restart.

use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};

use crate::common::server::Server;
use crate::common::wait::{eventually, holds_for};
use crate::common::{both_stores, browser, hook, http, Backend};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's own objectives and demo connector, served on port 0.
fn example_deployment() -> Server {
    let service = format!(
        "paths:\n  objectives: {}\n  connectors: {}\nhttp:\n  listen: 127.0.0.1:0\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [log]\n  platform:\n    notify: [log]\nnotifiers:\n  log: {{ type: log }}\n",
        repo().join("config/objectives").display(),
        repo().join("connectors").display(),
    );
    Server::start(&service, &[], None, &[])
}

async fn ready(server: &Server) {
    eventually(Duration::from_secs(30), "the first scorecard", || async {
        let answer = http::try_get(&server.url("/readyz")).await?;
        (answer.status == 200).then_some(())
    })
    .await;
}

/// The status of `onboarding/activation` in the KR API.
async fn activation_status(server: &Server) -> String {
    let krs = http::get_json(&server.url("/api/v1/key-results")).await;
    krs["key_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["objective"] == "onboarding" && k["key_result"] == "activation")
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_deployment_shows_its_tree_through_the_api_and_metrics() {
    let server = example_deployment();
    ready(&server).await;
    let alignment = http::get_json(&server.url("/api/v1/alignment")).await;
    let shape: Vec<(String, Value, Value)> = alignment["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["aligns_to"].clone(),
                o["children"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (
                "company-customer-value".to_string(),
                Value::Null,
                json!(["onboarding", "retention"])
            ),
            (
                "onboarding".to_string(),
                json!("company-customer-value"),
                json!([])
            ),
            (
                "retention".to_string(),
                json!("company-customer-value"),
                json!([])
            ),
            ("checkout".to_string(), Value::Null, json!([])),
            ("checkout-welch".to_string(), Value::Null, json!([])),
        ]
    );
    assert_eq!(
        alignment["dependencies"],
        json!([{
            "from": "retention/weekly-active-teams",
            "to": "onboarding/activation",
            "status": activation_status(&server).await,
        }])
    );

    // The company objective has no key results: its score is its roll-up,
    // the mean of its two children's (each a leaf: its own score).
    let by_id = |id: &str| {
        alignment["objectives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap()
            .clone()
    };
    let (company, onboarding, retention) = (
        by_id("company-customer-value"),
        by_id("onboarding"),
        by_id("retention"),
    );
    for leaf in [&onboarding, &retention] {
        assert_eq!(leaf["rollup"], leaf["score"], "{leaf}");
    }
    let mean =
        (onboarding["rollup"].as_f64().unwrap() + retention["rollup"].as_f64().unwrap()) / 2.0;
    let rollup = company["rollup"].as_f64().unwrap();
    assert!((rollup - mean).abs() < 1e-12, "{rollup} != {mean}");
    assert_eq!(company["score"], company["rollup"]);

    // /metrics says the same (its text is the shortest round-trip form of
    // the same f64); okrd score's JSON is the scorecard's.
    let metrics = http::get_text(&server.url("/metrics")).await;
    let exported = http::metric(
        &metrics,
        "okrd_objective_rollup_score{objective=\"company-customer-value\",team=\"platform\"}",
    )
    .expect("the roll-up is exported");
    assert!((exported - rollup).abs() < 1e-9, "{exported} != {rollup}");
    let objectives = http::get_json(&server.url("/api/v1/objectives")).await;
    let listed = objectives["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "company-customer-value")
        .unwrap();
    assert_eq!(listed["key_results"], json!([]));
    assert!(listed["rollup"].as_f64().is_some());
}

/// The ids of the objective sections that `section`'s own section contains
/// directly or deeper, in the DOM `dom`.
fn nested_in(dom: &str, section: &str) -> Vec<String> {
    let open = format!("<section class=\"objective\" id=\"objective-{section}\"");
    let start = dom.find(&open).unwrap_or_else(|| panic!("no {section}"));
    // Walk to the matching </section>.
    let mut depth = 0;
    let mut at = start;
    let mut inside = Vec::new();
    loop {
        let next_open = dom[at + 1..].find("<section").map(|i| i + at + 1);
        let next_close = dom[at + 1..].find("</section>").map(|i| i + at + 1);
        match (next_open, next_close) {
            (Some(o), Some(c)) if o < c => {
                depth += 1;
                let id = &dom[o..];
                if let Some(rest) = id.strip_prefix("<section class=\"objective\" id=\"objective-")
                {
                    inside.push(rest[..rest.find('"').unwrap()].to_string());
                }
                at = o;
            }
            (_, Some(c)) => {
                if depth == 0 {
                    return inside;
                }
                depth -= 1;
                at = c;
            }
            _ => panic!("unclosed section {section}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_page_shows_the_tree_a_kr_page_and_a_filtered_page_in_a_browser() {
    let server = example_deployment();
    ready(&server).await;

    let Some(tree) = browser::load_async(server.url("/")).await else {
        return;
    };
    let dom = &tree.dom;
    assert!(!dom.contains("<script"));
    assert_eq!(
        nested_in(dom, "company-customer-value"),
        ["onboarding", "retention"]
    );
    assert_eq!(nested_in(dom, "onboarding"), Vec::<String>::new());
    // The dependency, with its status, on the KR that needs it.
    let status = activation_status(&server).await;
    let row_at = dom.find("id=\"kr-retention-weekly-active-teams\"").unwrap();
    let row = &dom[row_at..row_at + dom[row_at..].find("</ol>").unwrap()];
    assert!(
        row.contains(&format!(
            "data-dependency=\"onboarding/activation\" data-status=\"{status}\""
        )),
        "{row}"
    );
    assert!(dom.contains("id=\"alerts\""), "the alerts panel");
    assert!(dom.contains("roll-up <b class=\"rollup\">"));

    // A key result's page: the chart against the expected score, its
    // dependency and the explanation.
    let Some(kr_page) =
        browser::load_async(server.url("/key-results/retention/weekly-active-teams")).await
    else {
        return;
    };
    let dom = &kr_page.dom;
    assert!(dom.contains("<svg class=\"chart\""), "{dom}");
    assert!(dom.contains("class=\"expected-line\""));
    assert!(dom.contains("<div id=\"depends-on\">"));
    assert!(dom.contains("data-dependency=\"onboarding/activation\""));
    assert!(dom.contains("<dt>Score</dt>"));
    assert!(dom.contains("<dt>Series</dt><dd>weekly_active_teams</dd>"));
    let Some(depended_on) =
        browser::load_async(server.url("/key-results/onboarding/activation")).await
    else {
        return;
    };
    assert!(depended_on
        .dom
        .contains("<li class=\"lead\">needed by</li>"));
    assert!(depended_on
        .dom
        .contains("data-dependency=\"retention/weekly-active-teams\""));

    // Filtered by team: growth's objectives only, flat.
    let Some(growth) = browser::load_async(server.url("/?team=growth")).await else {
        return;
    };
    let dom = &growth.dom;
    assert!(dom.contains("id=\"objective-onboarding\""));
    assert!(dom.contains("id=\"objective-checkout\""));
    assert!(!dom.contains("id=\"objective-retention\""));
    assert!(!dom.contains("id=\"objective-company-customer-value\""));
    assert!(dom.contains("<option value=\"growth\" selected=\"\">growth</option>"));

    // A bad filter is a clear error, not an empty page.
    let bad = http::get(&server.url("/?status=great"), None).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text.contains("unknown status \\\"great\\\""),
        "{}",
        bad.text
    );
    let missing = http::get(&server.url("/key-results/onboarding/nope"), None).await;
    assert_eq!(missing.status, 404);
}

/// Growth's `signup/conversion` depends on platform's `api/latency`
/// (maintain: at most 300 ms).
fn dependency_deployment(hook: &str) -> (String, Vec<(&'static str, String)>) {
    let now = Utc::now();
    let start = (now - TimeDelta::days(30)).format("%Y-%m-%d");
    let end = (now + TimeDelta::days(60)).format("%Y-%m-%d");
    let service = format!(
        "http:\n  listen: 127.0.0.1:0\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook]\n  platform:\n    notify: [log]\nnotifiers:\n  hook: {{ type: webhook, url: \"{hook}\" }}\n  log: {{ type: log }}\n"
    );
    let api = format!(
        "id: api\nobjective: A fast API\nteam: platform\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n  - id: latency\n    title: Keep API p99 at or under 300 ms\n    metric: api_p99_ms\n    target: {{ at_most: 300 }}\n"
    );
    let signup = format!(
        "id: signup\nobjective: More teams sign up\nteam: growth\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n  - id: conversion\n    title: Raise signup conversion from 2% to 4%\n    metric: signup_conversion\n    baseline: 0.02\n    target: 0.04\n    depends_on: [api/latency]\n"
    );
    (service, vec![("api.yaml", api), ("signup.yaml", signup)])
}

async fn latency(server: &Server, value: f64) {
    let ts = Utc::now().to_rfc3339();
    http::push(
        server,
        json!([
            {"metric": "api_p99_ms", "ts": ts, "value": value},
            {"metric": "signup_conversion", "ts": ts, "value": 0.03},
        ]),
        None,
    )
    .await
    .assert_ok();
}

async fn dependency_alert_fires_and_resolves_once(backend: Backend) {
    let (url, seen) = hook::receiver().await;
    let (service, objectives) = dependency_deployment(&url);
    let server = Server::start(&service, &objectives, Some(&backend.url), &[]);
    ready(&server).await;
    // No data yet is at risk too (SPEC: off_track, stale or no_data).
    eventually(Duration::from_secs(20), "the no_data firing", || async {
        (seen.lock().unwrap().len() == 1).then_some(())
    })
    .await;
    assert_eq!(seen.lock().unwrap()[0]["dependency"]["status"], "no_data");
    // On track (a maintain KR within its threshold): resolved.
    latency(&server, 200.0).await;
    eventually(Duration::from_secs(20), "the resolution", || async {
        (seen.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(hook::events(&seen), ["firing", "resolved"]);

    // Off track (0 < expected 1/3 − 0.25): one firing delivery to growth.
    latency(&server, 450.0).await;
    eventually(Duration::from_secs(20), "the firing delivery", || async {
        (seen.lock().unwrap().len() == 3).then_some(())
    })
    .await;
    let firing = seen.lock().unwrap()[2].clone();
    assert_eq!(firing["kind"], "dependency");
    assert_eq!(firing["event"], "firing");
    assert_eq!(firing["team"], "growth");
    assert_eq!(firing["objective"]["id"], "signup");
    assert_eq!(firing["key_result"]["id"], "conversion");
    assert_eq!(
        firing["dependency"],
        json!({
            "id": "api/latency",
            "title": "Keep API p99 at or under 300 ms",
            "team": "platform",
            "value": 450.0,
            "score": 0.0,
            "status": "off_track",
        })
    );
    assert_eq!(
        firing["summary"],
        "signup/conversion: api/latency (team platform), which it depends on, is off_track (score 0)"
    );

    // A restart decides from the stored alert: no second firing.
    let server = server.restart(&[]);
    ready(&server).await;
    holds_for(
        Duration::from_secs(3),
        "no second firing across a restart",
        || async { hook::events(&seen) == ["firing", "resolved", "firing"] },
    )
    .await;
    let alerts = http::get_json(&server.url("/api/v1/alerts")).await;
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(alerts["alerts"][0]["kind"], "dependency");
    assert_eq!(alerts["alerts"][0]["dependency"], "api/latency");
    assert_eq!(alerts["alerts"][0]["counter_metric"], Value::Null);

    // Back on track: one resolved delivery, and nothing after.
    latency(&server, 250.0).await;
    eventually(Duration::from_secs(20), "the resolved delivery", || async {
        (seen.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    holds_for(
        Duration::from_secs(3),
        "one delivery per transition",
        || async { hook::events(&seen) == ["firing", "resolved", "firing", "resolved"] },
    )
    .await;
    let resolved = seen.lock().unwrap()[3].clone();
    assert_eq!(resolved["kind"], "dependency");
    assert_eq!(resolved["dependency"]["status"], "on_track");
}

both_stores!(dependency_alert_fires_and_resolves_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_receives_the_dependency_alert_with_its_labels() {
    // Alertmanager's own notifications go nowhere here: the test reads
    // what it holds.
    let am = crate::alerts::alertmanager("http://127.0.0.1:9").await;
    let (service, objectives) = dependency_deployment("http://127.0.0.1:9/unused");
    let service = service.replace("notify: [hook]", "notify: [am]")
        + &format!("  am: {{ type: alertmanager, urls: [\"{}\"] }}\n", am.url);
    let server = Server::start(&service, &objectives, None, &[]);
    ready(&server).await;
    // No data for the KR depended on: at risk from the first scorecard.
    let alerts = eventually(Duration::from_secs(20), "Alertmanager's alert", || async {
        let alerts = crate::alerts::am_alerts(&am.url).await;
        (!alerts.is_empty()).then_some(alerts)
    })
    .await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let labels = &alerts[0]["labels"];
    assert_eq!(
        labels,
        &json!({
            "alertname": "KeyResultDependencyAtRisk",
            "objective": "signup",
            "key_result": "conversion",
            "dependency": "api/latency",
            "team": "growth",
            "severity": "warning",
        })
    );
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert_eq!(alerts[0]["annotations"]["dependency_status"], "no_data");
    assert_eq!(alerts[0]["annotations"]["dependency_team"], "platform");
    // Back on track: the resolution ends it.
    latency(&server, 200.0).await;
    eventually(Duration::from_secs(20), "the alert to end", || async {
        crate::alerts::am_alerts(&am.url)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}
