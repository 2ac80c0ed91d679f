//! Notifiers: where a team's alerts go. Each turns an [`AlertEvent`] into
//! its receiver's format and reports whether a failed send is worth
//! retrying.

mod alertmanager;
mod email;
mod log;
mod slack;
mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::config::service::Notifier;
use crate::tls::CaFile;

use super::event::AlertEvent;

pub use alertmanager::{
    alert as alertmanager_alert, post_alerts, COUNTER_ALERTNAME, REVISION_ALERTNAME,
    STALE_ALERTNAME,
};

/// Time allowed for one send.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Whether trying again later may succeed (timeouts, 5xx, 429,
    /// connection errors); a 4xx will not.
    pub retryable: bool,
    /// What happened.
    pub message: String,
}

impl SendError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that will repeat.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

/// Settings shared by all sends.
#[derive(Clone)]
pub struct Senders {
    /// The HTTP client (connection pool) for webhook, Slack, Alertmanager.
    pub http: reqwest::Client,
    /// Clients of the notifiers with a `ca_file`, by its certificates.
    with_ca: Arc<Mutex<HashMap<CaFile, reqwest::Client>>>,
    /// How long Alertmanager keeps a firing alert without a resend.
    pub alertmanager_ends_after: Duration,
}

impl Senders {
    /// Clients with the send timeout.
    pub fn new(alertmanager_resend: Duration) -> Self {
        Self {
            http: http_client(None),
            with_ca: Arc::default(),
            alertmanager_ends_after: alertmanager_resend * 4,
        }
    }

    /// The HTTP client for `notifier`: the shared one, or one trusting its
    /// `ca_file`.
    pub fn http_for(&self, notifier: &Notifier) -> reqwest::Client {
        let Some(ca) = notifier.ca() else {
            return self.http.clone();
        };
        let mut clients = self.with_ca.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(ca.clone())
            .or_insert_with(|| http_client(Some(ca)))
            .clone()
    }

    /// Sends `event` through `notifier`.
    pub async fn send(&self, notifier: &Notifier, event: &AlertEvent) -> Result<(), SendError> {
        let http = || self.http_for(notifier);
        match notifier {
            Notifier::Webhook { url, headers, .. } => {
                webhook::send(&http(), url, headers, event).await
            }
            Notifier::Slack { url, .. } => slack::send(&http(), url, event).await,
            Notifier::Email {
                to,
                smtp,
                from,
                login,
                ca,
            } => email::send(smtp, login.as_ref(), ca.as_ref(), from, to, event).await,
            Notifier::Alertmanager { urls, .. } => {
                alertmanager::send(&http(), urls, event, self.alertmanager_ends_after).await
            }
            Notifier::Log => log::send(event),
        }
    }
}

fn http_client(ca: Option<&CaFile>) -> reqwest::Client {
    crate::tls::http_client(ca)
        .timeout(SEND_TIMEOUT)
        .build()
        .expect("an HTTP client builds")
}

/// Classifies an HTTP response: 2xx is success; 408, 429 and 5xx are worth
/// retrying; other 4xx are not. The message names neither the URL (a Slack
/// webhook's URL is its secret) nor the receiver's body: its status,
/// content type and length.
pub(crate) async fn check_response(
    what: &str,
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, SendError> {
    let r = r.map_err(|e| {
        SendError::retry(format!("{what}: {}", crate::tls::explain(&e.without_url())))
    })?;
    let status = r.status();
    if status.is_success() {
        return Ok(r);
    }
    let content_type: String = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .chars()
        .take(100)
        .filter(|c| !c.is_control())
        .collect();
    let len = r.bytes().await.map_or(0, |b| b.len());
    let message = format!("{what}: HTTP {status} ({content_type}, {len} bytes)");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(SendError::retry(message))
    } else {
        Err(SendError::permanent(message))
    }
}
