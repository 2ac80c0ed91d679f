//! `type: webhook`: POSTs the [`AlertEvent`] as JSON (the documented,
//! versioned body), with an `Idempotency-Key` header of the delivery id.

use std::collections::BTreeMap;

use super::{check_response, SendError};
use crate::alerts::event::AlertEvent;

/// Sends one event.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    event: &AlertEvent,
) -> Result<(), SendError> {
    let mut req = http.post(url).json(event);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(id) = event.id {
        req = req.header("Idempotency-Key", format!("okrd-{id}"));
    }
    check_response("webhook", req.send().await)
        .await
        .map(|_| ())
}
