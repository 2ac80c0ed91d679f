//! `type: alertmanager`: `POST /api/v2/alerts` to every configured URL.
//! Labels are stable (`alertname`, `objective`, `key_result`,
//! `counter_metric` or `dependency`, `team`, `severity`), values go in
//! annotations. A
//! firing alert is sent with `endsAt` = now + 4 × the resend interval and
//! re-sent every interval by the outbox's refresher; a resolution is sent
//! with `endsAt` = now. A 400 can be a partial success (Alertmanager drops
//! invalid alerts and keeps the rest), so it is logged, not retried.

use std::time::Duration;

use serde_json::{json, Value};

use super::{check_response, SendError};
use crate::alerts::event::AlertEvent;
use crate::model::Timestamp;
use crate::store::{AlertKind, AlertState};

/// `alertname` of counter-metric alerts.
pub const COUNTER_ALERTNAME: &str = "KeyResultCounterMetricDegraded";
/// `alertname` of stale-data alerts.
pub const STALE_ALERTNAME: &str = "KeyResultDataStale";
/// `alertname` of dependency alerts.
pub const DEPENDENCY_ALERTNAME: &str = "KeyResultDependencyAtRisk";
/// `alertname` of revision notices: an alert that starts at the revision
/// and ends by itself a day later ([`REVISION_ACTIVE`]), never refreshed.
pub const REVISION_ALERTNAME: &str = "KeyResultRevised";
/// How long a revision notice stays active in Alertmanager.
pub const REVISION_ACTIVE: chrono::TimeDelta = chrono::TimeDelta::days(1);

fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// The Alertmanager alert for `e` as of `now`.
pub fn alert(e: &AlertEvent, now: Timestamp, ends_after: Duration) -> Value {
    if let Some(r) = &e.revision {
        return revision_alert(e, r);
    }
    let resolved = e.status == AlertState::Resolved;
    let ends_at = if resolved {
        now
    } else {
        now + chrono::TimeDelta::from_std(ends_after).unwrap_or(chrono::TimeDelta::minutes(4))
    };
    let alertname = match e.kind {
        AlertKind::CounterMetric => COUNTER_ALERTNAME,
        AlertKind::StaleData => STALE_ALERTNAME,
        AlertKind::Dependency => DEPENDENCY_ALERTNAME,
        AlertKind::Revision => REVISION_ALERTNAME,
    };
    let mut labels = json!({
        "alertname": alertname,
        "objective": e.objective.id,
        "key_result": e.key_result.id,
        "team": e.team,
        "severity": "warning",
    });
    if let Some(c) = &e.counter_metric {
        labels["counter_metric"] = json!(c.metric);
    }
    if let Some(d) = &e.dependency {
        labels["dependency"] = json!(d.id);
    }
    let kr = &e.key_result;
    let mut annotations = json!({
        "summary": e.summary,
        "description": format!("{}: {}", e.objective.title, kr.title),
        "key_result_value": num(kr.value),
        "key_result_score": num(Some(kr.score)),
        "key_result_score_delta": num(kr.score_delta),
        "key_result_status": kr.status,
    });
    if let Some(c) = &e.counter_metric {
        annotations["counter_metric_value"] = json!(num(c.value));
        annotations["counter_metric_reference"] = json!(num(c.reference));
        annotations["counter_metric_delta"] = json!(num(c.delta));
        annotations["tolerance"] = json!(c.tolerance);
        annotations["window"] = json!(c.window);
    }
    if let Some(d) = &e.dependency {
        annotations["dependency_status"] = json!(d.status);
        annotations["dependency_score"] = json!(num(Some(d.score)));
        annotations["dependency_team"] = json!(d.team);
    }
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": e.fired_at,
        "endsAt": ends_at,
        "generatorURL": e.links.api,
    })
}

/// A revision notice: `KeyResultRevised`, labelled with its revision so
/// that each revision is its own alert, active from the revision for
/// [`REVISION_ACTIVE`]; the changed fields in annotations.
fn revision_alert(e: &AlertEvent, r: &crate::definition::Revision) -> Value {
    let changes: Vec<String> = r
        .changes
        .iter()
        .map(|c| format!("{}: {} → {}", c.field, c.from, c.to))
        .collect();
    json!({
        "labels": {
            "alertname": REVISION_ALERTNAME,
            "objective": e.objective.id,
            "key_result": e.key_result.id,
            "team": e.team,
            "revision": r.revision.to_string(),
            "severity": "info",
        },
        "annotations": {
            "summary": e.summary,
            "description": format!("{}: {}", e.objective.title, e.key_result.title),
            "changes": changes.join("; "),
            "easier": r.easier.to_string(),
        },
        "startsAt": r.at,
        "endsAt": r.at + REVISION_ACTIVE,
        "generatorURL": e.links.api,
    })
}

/// Posts `alerts` to every URL; fails (retryable) if any URL fails.
pub async fn post_alerts(
    http: &reqwest::Client,
    urls: &[String],
    alerts: &[Value],
) -> Result<(), SendError> {
    let mut failures = Vec::new();
    for url in urls {
        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        match check_response(
            "alertmanager",
            http.post(&endpoint).json(alerts).send().await,
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.message.contains("HTTP 400") => {
                tracing::warn!(url = %endpoint, error = %e, "Alertmanager rejected some alerts (a possible partial success)");
            }
            Err(e) => failures.push(e),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => Err(SendError {
            retryable: failures.iter().any(|f| f.retryable),
            message: failures
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// Sends one event.
pub async fn send(
    http: &reqwest::Client,
    urls: &[String],
    event: &AlertEvent,
    ends_after: Duration,
) -> Result<(), SendError> {
    post_alerts(http, urls, &[alert(event, event.at, ends_after)]).await
}
