//! `type: slack`: an incoming-webhook message with the same facts as the
//! webhook body, laid out for people.

use serde_json::{json, Value};

use super::{check_response, SendError};
use crate::alerts::event::AlertEvent;
use crate::store::{AlertKind, AlertState, EventName};

fn num(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    })
}

/// The message body.
pub fn message(e: &AlertEvent) -> Value {
    let icon = match e.status {
        AlertState::Resolved => ":white_check_mark:",
        AlertState::Firing => ":warning:",
    };
    let headline = match (e.kind, e.event) {
        (AlertKind::StaleData, EventName::Resolved) => "Data flows again",
        (AlertKind::StaleData, _) => "Key result data stopped arriving",
        (AlertKind::CounterMetric, EventName::Resolved) => "Counter metric recovered",
        (AlertKind::CounterMetric, _) => "Key result moved while its counter metric degraded",
        (AlertKind::Dependency, EventName::Resolved) => "A dependency is back on course",
        (AlertKind::Dependency, _) => "A key result this one depends on is at risk",
        (AlertKind::Revision, _) => match &e.revision {
            Some(r) if r.easier => "Key result revised: made easier",
            _ => "Key result revised",
        },
    };
    let kr = &e.key_result;
    let mut facts = vec![
        format!("*Objective:* {} (`{}`)", e.objective.title, e.objective.id),
        format!("*Key result:* {} (`{}`)", kr.title, kr.id),
        format!(
            "*{}:* {} · score {}{}",
            kr.metric,
            num(kr.value),
            num(Some(kr.score)),
            kr.score_delta
                .map_or(String::new(), |d| format!(" ({:+.3} over the window)", d))
        ),
    ];
    if let Some(c) = &e.counter_metric {
        facts.push(format!(
            "*{}:* {} (reference {}, change {}; {} is better, tolerance {}, window {})",
            c.metric,
            num(c.value),
            num(c.reference),
            c.delta.map_or("n/a".into(), |d| format!("{d:+.4}")),
            c.better,
            c.tolerance,
            c.window
        ));
    }
    if let Some(d) = &e.dependency {
        facts.push(format!(
            "*Depends on:* {} (`{}`, team {}) · {} · score {}",
            d.title,
            d.id,
            d.team,
            d.status,
            num(Some(d.score))
        ));
    }
    if let Some(r) = &e.revision {
        facts.extend(
            r.changes
                .iter()
                .map(|c| format!("*{}:* {} → {}", c.field, c.from, c.to)),
        );
    }
    let icon = if e.revision.is_some() {
        ":pencil2:"
    } else {
        icon
    };
    let text = format!("{icon} *{headline}* — team {}\n{}", e.team, e.summary);
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "text": {"type": "mrkdwn", "text": facts.join("\n")}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{}|Key result> · <{}|status page> · {}", e.links.api, e.links.status_page, e.at.to_rfc3339())}
            ]}
        ]
    })
}

/// Sends one event.
pub async fn send(http: &reqwest::Client, url: &str, event: &AlertEvent) -> Result<(), SendError> {
    check_response("slack", http.post(url).json(&message(event)).send().await)
        .await
        .map(|_| ())
}
