//! The service configuration (`config/okrd.yaml`, SPEC §2).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::connector::load_ca_file;
use super::destinations::Destinations;
use super::error::Diagnostics;
use super::types::{ByteSize, HumanDuration};
use super::yaml::{Kind, Node};
use crate::tls::CaFile;

/// The validated service configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Directory of objective files.
    pub objectives_dir: PathBuf,
    /// Directory of connector files.
    pub connectors_dir: PathBuf,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// When set, writes need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest accepted request body; larger requests get 413.
    pub max_body: usize,
    /// Bounds on connections and requests.
    pub limits: HttpLimits,
    /// Environment variables a connector registered over the API may read
    /// as `${VAR}` (`http.connector_env`).
    pub connector_env: Vec<String>,
    /// Where connectors registered over the API may connect
    /// (`http.connector_destinations`).
    pub connector_destinations: Destinations,
    /// Periodic recompute interval.
    pub scoring_interval: Duration,
    /// Status margin below expected for `at_risk`.
    pub at_risk_margin: f64,
    /// Status margin below expected for `off_track`.
    pub off_track_margin: f64,
    /// Teams and the notifiers they are told through.
    pub teams: BTreeMap<String, Team>,
    /// Declared notifiers by name.
    pub notifiers: BTreeMap<String, Notifier>,
    /// Base URL of this okrd as its users reach it, for links in alerts.
    pub external_url: String,
    /// While an alert fires, it is re-sent this often.
    pub repeat_interval: Duration,
    /// Firing alerts are re-posted to Alertmanager this often.
    pub alertmanager_resend: Duration,
    /// Delivery attempts before a notification is marked failed.
    pub max_attempts: u32,
}

/// Bounds on what the HTTP server holds for its clients (`http.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// Bytes of request bodies buffered at once across all requests; past
    /// it a request gets 503 with `Retry-After`.
    pub max_buffered: usize,
    /// Connections open at once; past it new ones wait in the kernel's
    /// backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this; also how long an idle
    /// keep-alive connection waits for its next request's headers.
    pub header_timeout: Duration,
    /// A request, body included, must be answered within this (408).
    pub request_timeout: Duration,
    /// On shutdown, requests in flight get this long to finish; then the
    /// remaining connections are dropped.
    pub shutdown_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_buffered: 64 << 20,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// A team that owns objectives.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Names of notifiers declared under `notifiers`.
    #[serde(default)]
    pub notify: Vec<String>,
}

/// Where a team's alerts are delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Notifier {
    /// Slack incoming webhook.
    Slack {
        /// The webhook URL.
        url: String,
        /// A private CA to trust instead of the built-in roots.
        ca: Option<CaFile>,
    },
    /// A generic JSON webhook.
    Webhook {
        /// The URL receiving a POST.
        url: String,
        /// Extra request headers.
        headers: BTreeMap<String, String>,
        /// A private CA to trust instead of the built-in roots.
        ca: Option<CaFile>,
    },
    /// Email through SMTP.
    Email {
        /// Recipients.
        to: Vec<String>,
        /// The relay and how TLS is used with it.
        smtp: Smtp,
        /// Sender address.
        from: String,
        /// `username` and `password`, to log in with.
        login: Option<(String, String)>,
        /// A private CA to trust instead of the built-in roots.
        ca: Option<CaFile>,
    },
    /// Prometheus Alertmanager API v2.
    Alertmanager {
        /// Alertmanager base URLs.
        urls: Vec<String>,
        /// A private CA to trust instead of the built-in roots.
        ca: Option<CaFile>,
    },
    /// okrd's own log (the quickstart's notifier).
    Log,
}

impl Notifier {
    /// The private CA it trusts, if any.
    pub fn ca(&self) -> Option<&CaFile> {
        match self {
            Notifier::Slack { ca, .. }
            | Notifier::Webhook { ca, .. }
            | Notifier::Email { ca, .. }
            | Notifier::Alertmanager { ca, .. } => ca.as_ref(),
            Notifier::Log => None,
        }
    }
}

/// An email notifier's relay: `smtp://host[:port][?tls=...]` or
/// `smtps://host[:port]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    /// The URL as written, for messages.
    pub url: String,
    /// The relay's host name (also the name its certificate must carry).
    pub host: String,
    /// Its port: as written, else 465 for `smtps`, 25 for `smtp`.
    pub port: u16,
    /// How TLS is used.
    pub tls: SmtpTls,
}

/// How an email notifier uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://`: STARTTLS when the relay offers it, else in clear.
    Opportunistic,
    /// `smtp://...?tls=required`: STARTTLS, or nothing is sent.
    Required,
    /// `smtp://...?tls=none`: never STARTTLS (a local relay whose
    /// certificate is not to be checked).
    Never,
}

/// Parses an email notifier's `smtp`.
pub fn parse_smtp(url: &str) -> Result<Smtp, String> {
    let bad = |why: &str| {
        format!("invalid smtp url {url:?}: {why} (smtp://HOST:PORT, smtp://HOST:PORT?tls=required or smtps://HOST:PORT)")
    };
    let (implicit, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("smtp://") {
        (false, rest)
    } else {
        return Err(bad("the scheme must be smtp or smtps"));
    };
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    if authority.contains('@') {
        return Err(bad(
            "log in with the notifier's username and password, not in the URL",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad("the port is not a number"))?),
        None => (authority, if implicit { 465 } else { 25 }),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let mut tls = if implicit {
        SmtpTls::Implicit
    } else {
        SmtpTls::Opportunistic
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        tls = match (implicit, pair) {
            (false, "tls=required") => SmtpTls::Required,
            (false, "tls=opportunistic") => SmtpTls::Opportunistic,
            (false, "tls=none") => SmtpTls::Never,
            (true, _) => return Err(bad("smtps is always TLS: it takes no tls parameter")),
            _ => {
                return Err(bad(&format!(
                    "unknown parameter {pair:?} (tls=required, tls=opportunistic or tls=none)"
                )))
            }
        };
    }
    Ok(Smtp {
        url: url.to_string(),
        host: host.to_string(),
        port,
        tls,
    })
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/okrd.db".into(),
            objectives_dir: "config/objectives".into(),
            connectors_dir: "connectors".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token: None,
            max_body: 16 << 20,
            limits: HttpLimits::default(),
            connector_env: Vec::new(),
            connector_destinations: Destinations::public(SocketAddr::from(([127, 0, 0, 1], 9464))),
            scoring_interval: Duration::from_secs(30),
            at_risk_margin: 0.10,
            off_track_margin: 0.25,
            teams: BTreeMap::new(),
            notifiers: BTreeMap::new(),
            external_url: "http://127.0.0.1:9464".into(),
            repeat_interval: Duration::from_secs(4 * 3600),
            alertmanager_resend: Duration::from_secs(60),
            max_attempts: 10,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    objectives: Option<PathBuf>,
    connectors: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    external_url: Option<String>,
    token: Option<String>,
    max_body: Option<ByteSize>,
    max_buffered: Option<ByteSize>,
    max_connections: Option<usize>,
    header_timeout: Option<HumanDuration>,
    request_timeout: Option<HumanDuration>,
    shutdown_timeout: Option<HumanDuration>,
    connector_env: Option<Vec<String>>,
    connector_destinations: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    repeat_interval: Option<HumanDuration>,
    alertmanager_resend: Option<HumanDuration>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScoring {
    interval: Option<HumanDuration>,
    at_risk_margin: Option<f64>,
    off_track_margin: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    #[serde(rename = "type")]
    _type: String,
    url: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    #[serde(rename = "type")]
    _type: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    #[serde(rename = "type")]
    _type: String,
    to: Vec<String>,
    smtp: String,
    from: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    #[serde(rename = "type")]
    _type: String,
    urls: Vec<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(rename = "type")]
    _type: String,
}

/// The top-level keys of the service config: only `OKRD_*` variables under
/// these are overrides (so `OKRD_API_TOKEN`, referenced as `${OKRD_API_TOKEN}`,
/// is not mistaken for one).
pub(super) const SECTIONS: [&str; 7] = [
    "database",
    "paths",
    "http",
    "scoring",
    "alerts",
    "teams",
    "notifiers",
];

/// Validates the service config document (already expanded and overridden).
pub(super) fn load_service(node: &Node, diags: &mut Diagnostics) -> Option<ServiceConfig> {
    let before = diags.error_count();
    match &node.kind {
        Kind::Null => {}
        Kind::Map(entries) => {
            for (key, _) in entries {
                let name = key.as_str().unwrap_or_default();
                if !SECTIONS.contains(&name) {
                    diags.error(
                        key,
                        name,
                        format!(
                            "unknown field `{name}`, expected one of {}",
                            SECTIONS.map(|s| format!("`{s}`")).join(", ")
                        ),
                    );
                }
            }
        }
        _ => {
            diags.error(node, "", "the service config must be a mapping");
            return None;
        }
    }
    // Each section is read on its own, so an error in one does not hide
    // the errors in another.
    let database: RawDatabase = section(node, "database", diags);
    let paths: RawPaths = section(node, "paths", diags);
    let http: RawHttp = section(node, "http", diags);
    let scoring: RawScoring = section(node, "scoring", diags);
    let alerts: RawAlerts = section(node, "alerts", diags);
    let raw_teams: BTreeMap<String, Option<Team>> = section(node, "teams", diags);
    let raw_notifiers: BTreeMap<String, Node> = section(node, "notifiers", diags);
    let d = ServiceConfig::default();
    let at = |path: &[&str]| path.iter().try_fold(node, |n, k| n.get(k)).unwrap_or(node);

    let listen = match http.listen {
        None => d.listen,
        Some(text) => text.parse().unwrap_or_else(|_| {
            diags.error(
                at(&["http", "listen"]),
                "http.listen",
                format!("invalid listen address {text:?}: expected HOST:PORT, e.g. 127.0.0.1:9464"),
            );
            d.listen
        }),
    };
    let connector_destinations = match &http.connector_destinations {
        None => Destinations::public(listen),
        Some(list) => Destinations::parse(list, listen).unwrap_or_else(|e| {
            diags.error(
                at(&["http", "connector_destinations"]),
                "http.connector_destinations",
                e,
            );
            Destinations::public(listen)
        }),
    };
    let connector_env = http.connector_env.clone().unwrap_or_default();
    for (i, name) in connector_env.iter().enumerate() {
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            let n = at(&["http", "connector_env"]);
            diags.error(
                n.items().get(i).unwrap_or(n),
                &format!("http.connector_env[{i}]"),
                format!("{name:?} is not an environment variable name"),
            );
        }
    }
    let dl = HttpLimits::default();
    let limits = HttpLimits {
        max_buffered: http.max_buffered.map_or(dl.max_buffered, |b| b.0),
        max_connections: http.max_connections.unwrap_or(dl.max_connections).max(1),
        header_timeout: http.header_timeout.map_or(dl.header_timeout, |t| t.0),
        request_timeout: http.request_timeout.map_or(dl.request_timeout, |t| t.0),
        shutdown_timeout: http.shutdown_timeout.map_or(dl.shutdown_timeout, |t| t.0),
    };
    for (key, t) in [
        ("header_timeout", limits.header_timeout),
        ("request_timeout", limits.request_timeout),
    ] {
        if t.is_zero() {
            diags.error(
                at(&["http", key]),
                &format!("http.{key}"),
                "a timeout must be longer than zero",
            );
        }
    }
    let max_body = http.max_body.map_or(d.max_body, |b| b.0);
    if max_body > limits.max_buffered {
        diags.error(
            at(&["http", "max_body"]),
            "http.max_body",
            format!(
                "max_body ({max_body} bytes) is larger than max_buffered ({} bytes), so no body that large could ever be read",
                limits.max_buffered
            ),
        );
    }
    if let Some(token) = &http.token {
        crate::secrets::remember(token, "<http.token>");
    }
    let database_url = database.url.unwrap_or(d.database_url);
    if !["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| database_url.starts_with(p))
    {
        diags.error(
            at(&["database", "url"]),
            "database.url",
            format!("unsupported database url {database_url:?}: expected sqlite://PATH or postgres://USER@HOST/DB"),
        );
    }
    let at_risk_margin = scoring.at_risk_margin.unwrap_or(d.at_risk_margin);
    let off_track_margin = scoring.off_track_margin.unwrap_or(d.off_track_margin);
    for (key, v) in [
        ("at_risk_margin", at_risk_margin),
        ("off_track_margin", off_track_margin),
    ] {
        if !(0.0..=1.0).contains(&v) {
            diags.error(
                at(&["scoring", key]),
                &format!("scoring.{key}"),
                "a margin is a score difference between 0.0 and 1.0",
            );
        }
    }
    if at_risk_margin > off_track_margin {
        diags.error(
            at(&["scoring", "off_track_margin"]),
            "scoring.off_track_margin",
            format!("off_track_margin ({off_track_margin}) must not be smaller than at_risk_margin ({at_risk_margin})"),
        );
    }
    let scoring_interval = scoring.interval.map_or(d.scoring_interval, |i| i.0);
    if scoring_interval.is_zero() {
        diags.error(
            at(&["scoring", "interval"]),
            "scoring.interval",
            "interval must be longer than zero",
        );
    }

    let mut notifiers = BTreeMap::new();
    for (name, n) in &raw_notifiers {
        let path = format!("notifiers.{name}");
        if let Some(notifier) = load_notifier(n, &path, diags) {
            notifiers.insert(name.clone(), notifier);
        }
    }
    let teams: BTreeMap<String, Team> = raw_teams
        .into_iter()
        .map(|(name, t)| (name, t.unwrap_or(Team { notify: Vec::new() })))
        .collect();
    for (team, t) in &teams {
        for (i, name) in t.notify.iter().enumerate() {
            if !raw_notifiers.contains_key(name) {
                let n = at(&["teams", team, "notify"]);
                let n = n.items().get(i).unwrap_or(n);
                let known: Vec<_> = raw_notifiers.keys().map(String::as_str).collect();
                diags.error(
                    n,
                    &format!("teams.{team}.notify[{i}]"),
                    format!(
                        "unknown notifier {name:?} (declared: {})",
                        list_or_none(&known)
                    ),
                );
            }
        }
    }

    (diags.error_count() == before).then(|| ServiceConfig {
        database_url,
        objectives_dir: paths.objectives.unwrap_or(d.objectives_dir),
        connectors_dir: paths.connectors.unwrap_or(d.connectors_dir),
        listen,
        token: http.token,
        max_body,
        limits,
        connector_env,
        connector_destinations,
        external_url: http
            .external_url
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{listen}")),
        repeat_interval: alerts.repeat_interval.map_or(d.repeat_interval, |i| i.0),
        alertmanager_resend: alerts
            .alertmanager_resend
            .map_or(d.alertmanager_resend, |i| i.0),
        max_attempts: alerts.max_attempts.unwrap_or(d.max_attempts).max(1),
        scoring_interval,
        at_risk_margin,
        off_track_margin,
        teams,
        notifiers,
    })
}

/// Reads the section `key` of the service config; absent or invalid means
/// its defaults (an invalid one has been reported).
fn section<T: serde::de::DeserializeOwned + Default>(
    root: &Node,
    key: &str,
    diags: &mut Diagnostics,
) -> T {
    match root.get(key) {
        Some(n) if !n.is_null() => diags.deserialize(n, key).unwrap_or_default(),
        _ => T::default(),
    }
}

fn load_notifier(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<Notifier> {
    let kind = type_of(
        node,
        path,
        &["slack", "webhook", "email", "alertmanager", "log"],
        diags,
    )?;
    let key = |k: &str| format!("{path}.{k}");
    let before = diags.error_count();
    let notifier = match kind.as_str() {
        "slack" => {
            let r: RawSlack = diags.deserialize(node, path)?;
            let ca = load_ca_file(node, &key("ca_file"), r.ca_file.as_deref(), diags);
            Notifier::Slack { url: r.url, ca }
        }
        "webhook" => {
            let r: RawWebhook = diags.deserialize(node, path)?;
            let ca = load_ca_file(node, &key("ca_file"), r.ca_file.as_deref(), diags);
            Notifier::Webhook {
                url: r.url,
                headers: r.headers,
                ca,
            }
        }
        "email" => {
            let r: RawEmail = diags.deserialize(node, path)?;
            let ca = load_ca_file(node, &key("ca_file"), r.ca_file.as_deref(), diags);
            let smtp = parse_smtp(&r.smtp).map_err(|message| {
                diags.error(node.get("smtp").unwrap_or(node), &key("smtp"), message)
            });
            let login = match (r.username, r.password) {
                (Some(user), Some(password)) => Some((user, password)),
                (None, None) => None,
                (user, _) => {
                    let (k, missing) = if user.is_some() {
                        ("username", "password")
                    } else {
                        ("password", "username")
                    };
                    diags.error(
                        node.get(k).unwrap_or(node),
                        &key(k),
                        format!("{k} is set without {missing}: both or neither"),
                    );
                    None
                }
            };
            Notifier::Email {
                to: r.to,
                smtp: smtp.ok()?,
                from: r.from,
                login,
                ca,
            }
        }
        "log" => {
            let _: RawLog = diags.deserialize(node, path)?;
            Notifier::Log
        }
        _ => {
            let r: RawAlertmanager = diags.deserialize(node, path)?;
            let ca = load_ca_file(node, &key("ca_file"), r.ca_file.as_deref(), diags);
            Notifier::Alertmanager { urls: r.urls, ca }
        }
    };
    (diags.error_count() == before).then_some(notifier)
}

/// Reads the `type` key of a tagged mapping and checks it against `known`.
pub(super) fn type_of(
    node: &Node,
    path: &str,
    known: &[&str],
    diags: &mut Diagnostics,
) -> Option<String> {
    if !matches!(node.kind, Kind::Map(_)) {
        diags.error(node, path, "expected a mapping with a `type` key");
        return None;
    }
    let Some(t) = node.get("type") else {
        diags.error(
            node,
            path,
            format!("missing field `type` (one of: {})", known.join(", ")),
        );
        return None;
    };
    match t.as_str() {
        Some(s) if known.contains(&s) => Some(s.to_string()),
        _ => {
            diags.error(
                t,
                &format!("{path}.type"),
                format!(
                    "unknown type {:?}: expected one of {}",
                    t.as_str().unwrap_or_default(),
                    known.join(", ")
                ),
            );
            None
        }
    }
}

pub(super) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod smtp_tests {
    use super::*;

    #[test]
    fn smtp_urls_say_how_tls_is_used() {
        let tls = |url: &str| parse_smtp(url).map(|s| (s.host, s.port, s.tls));
        assert_eq!(
            tls("smtp://relay:587"),
            Ok(("relay".into(), 587, SmtpTls::Opportunistic))
        );
        assert_eq!(
            tls("smtp://relay:587?tls=required"),
            Ok(("relay".into(), 587, SmtpTls::Required))
        );
        assert_eq!(
            tls("smtp://localhost?tls=none"),
            Ok(("localhost".into(), 25, SmtpTls::Never))
        );
        assert_eq!(
            tls("smtps://relay"),
            Ok(("relay".into(), 465, SmtpTls::Implicit))
        );
        for bad in [
            "http://relay",
            "smtp://user:pw@relay:587",
            "smtp://relay:587?tls=yes",
            "smtps://relay?tls=required",
            "smtp://relay:x",
        ] {
            assert!(parse_smtp(bad).is_err(), "{bad}");
        }
    }
}
