//! `type: email`: a plain-text and HTML message through SMTP (lettre,
//! over rustls). `smtps://` is TLS from the first byte; `smtp://` upgrades
//! with STARTTLS when the relay offers it, `?tls=required` sends nothing in
//! clear, `?tls=none` never upgrades. The relay's certificate is checked
//! against Mozilla's roots, or only the notifier's `ca_file`; `username`
//! and `password` log in (AUTH PLAIN or LOGIN, as the relay offers).

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{SendError, SEND_TIMEOUT};
use crate::alerts::event::AlertEvent;
use crate::config::service::{Smtp, SmtpTls};
use crate::store::AlertState;
use crate::tls::CaFile;

fn num(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The (subject, plain text, HTML) of an event.
pub fn render(e: &AlertEvent) -> (String, String, String) {
    let state = if e.revision.is_some() {
        "REVISED"
    } else if e.status == AlertState::Resolved {
        "RESOLVED"
    } else {
        "FIRING"
    };
    let subject = format!("[okrd {state}] {}", e.summary);
    let kr = &e.key_result;
    let mut rows = vec![
        ("Team".to_string(), e.team.clone()),
        (
            "Objective".to_string(),
            format!("{} ({})", e.objective.title, e.objective.id),
        ),
        (
            "Key result".to_string(),
            format!("{} ({})", kr.title, kr.id),
        ),
        (
            kr.metric.clone(),
            format!(
                "{} (score {}, change over the window {})",
                num(kr.value),
                num(Some(kr.score)),
                num(kr.score_delta)
            ),
        ),
    ];
    if let Some(c) = &e.counter_metric {
        rows.push((
            c.metric.clone(),
            format!(
                "{} (reference {}, change {}; {} is better, tolerance {}, window {})",
                num(c.value),
                num(c.reference),
                num(c.delta),
                c.better,
                c.tolerance,
                c.window
            ),
        ));
    }
    if let Some(d) = &e.dependency {
        rows.push((
            "Depends on".into(),
            format!(
                "{} ({}, team {}): {} (score {})",
                d.title,
                d.id,
                d.team,
                d.status,
                num(Some(d.score))
            ),
        ));
    }
    if let Some(r) = &e.revision {
        rows.push((
            "Revision".into(),
            format!("{} (easier: {})", r.revision, r.easier),
        ));
        for c in &r.changes {
            rows.push((c.field.clone(), format!("{} → {}", c.from, c.to)));
        }
    }
    rows.push(("Since".into(), e.fired_at.to_rfc3339()));
    let mut text = format!("{}\n\n", e.summary);
    for (k, v) in &rows {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!(
        "\nKey result: {}\nStatus page: {}\n",
        e.links.api, e.links.status_page
    ));
    let mut html = format!("<p><strong>{}</strong></p><table>", escape(&e.summary));
    for (k, v) in &rows {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape(k),
            escape(v)
        ));
    }
    html.push_str(&format!(
        "</table><p><a href=\"{}\">Key result</a> · <a href=\"{}\">Status page</a></p>",
        escape(&e.links.api),
        escape(&e.links.status_page)
    ));
    (subject, text, html)
}

/// Sends one event through `smtp`, logging in with `login`, trusting only
/// `ca` when given.
pub async fn send(
    smtp: &Smtp,
    login: Option<&(String, String)>,
    ca: Option<&CaFile>,
    from: &str,
    to: &[String],
    event: &AlertEvent,
) -> Result<(), SendError> {
    let (subject, text, html) = render(event);
    let from: Mailbox = from
        .parse()
        .map_err(|e| SendError::permanent(format!("email: invalid from {from:?}: {e}")))?;
    let mut builder = Message::builder().from(from).subject(subject);
    for addr in to {
        let mailbox: Mailbox = addr
            .parse()
            .map_err(|e| SendError::permanent(format!("email: invalid to {addr:?}: {e}")))?;
        builder = builder.to(mailbox);
    }
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| SendError::permanent(format!("email: {e}")))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .timeout(Some(SEND_TIMEOUT))
        .tls(tls(smtp, ca)?);
    if let Some((user, password)) = login {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    let transport = builder.build();
    transport.send(message).await.map(|_| ()).map_err(|e| {
        let message = format!("email via {}: {}", smtp.url, crate::tls::explain(&e));
        if e.is_permanent() {
            SendError::permanent(message)
        } else {
            SendError::retry(message)
        }
    })
}

/// The TLS of a send: how (by the URL) and whom to trust.
fn tls(smtp: &Smtp, ca: Option<&CaFile>) -> Result<Tls, SendError> {
    if smtp.tls == SmtpTls::Never {
        return Ok(Tls::None);
    }
    let mut params = TlsParameters::builder(smtp.host.clone());
    if let Some(ca) = ca {
        params = params.certificate_store(CertificateStore::None);
        for der in ca.certs() {
            let cert = Certificate::from_der(der.to_vec())
                .map_err(|e| SendError::permanent(format!("email: ca_file: {e}")))?;
            params = params.add_root_certificate(cert);
        }
    }
    let params = params
        .build_rustls()
        .map_err(|e| SendError::permanent(format!("email: TLS settings: {e}")))?;
    Ok(match smtp.tls {
        SmtpTls::Implicit => Tls::Wrapper(params),
        SmtpTls::Required => Tls::Required(params),
        SmtpTls::Opportunistic | SmtpTls::Never => Tls::Opportunistic(params),
    })
}
