//! The compose stack (docker-compose.yml and config/), checked without a
//! Docker engine:
//!
//! - the services are wired to each other: okrd's compose config, loaded by
//!   the real config loader with the container's environment, names the
//!   `postgres`, `kafka` and `alertmanager` services on the ports they
//!   listen on; Prometheus scrapes okrd where it listens; Grafana's data
//!   sources point at Prometheus and Alertmanager; every mounted file, every
//!   `--config` and rule file exists in the repository; the Dockerfile is
//!   multi-stage, runs as a non-root user and copies only what
//!   .dockerignore lets in;
//! - okrd's compose config passes `okrd check --strict`;
//! - the dashboards are valid JSON with panels and provisioned data sources;
//! - every metric the dashboards and Prometheus rules name is in the real
//!   binary's `/metrics` (with a Kafka connector on librdkafka's mock
//!   cluster, a failing pull connector, a rejected push and a failing
//!   notification, so that every family has a series), and every dashboard
//!   query evaluates, with data, in a real Prometheus scraping it.
//!
//! `promtool check config` and `amtool check-config` run in .ci/run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::http::{self, get_text};
use crate::common::kafka::{unique, Kafka};
use crate::common::process::{free_port, spawn_prometheus, Daemon};
use crate::common::server::Server;
use crate::common::wait::until;
use chrono::{TimeDelta, Utc};
use okrd::config::connector::ConnectorKind;
use okrd::config::service::Notifier;
use okrd::config::{Config, Env};
use serde_json::{json, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// The services the issue asks for.
const SERVICES: [&str; 6] = [
    "okrd",
    "postgres",
    "kafka",
    "prometheus",
    "alertmanager",
    "grafana",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    let mut docs =
        YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: bad YAML: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {y:?}"))
}

/// A YAML list of strings, or one string as a list of one.
fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(items) => items.iter().map(scalar).collect(),
        Yaml::BadValue | Yaml::Null => vec![],
        other => vec![scalar(other)],
    }
}

fn scalar(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

// ---------------------------------------------------------------- compose

/// One service of docker-compose.yml, as far as these checks need it.
struct Service {
    name: String,
    y: Yaml,
}

impl Service {
    /// `environment`, as a map or as a list of `K=V`.
    fn env(&self) -> BTreeMap<String, String> {
        match &self.y["environment"] {
            Yaml::Hash(h) => h.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
            Yaml::Array(items) => items
                .iter()
                .map(|i| {
                    let s = scalar(i);
                    let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Container ports published with `ports` (`HOST:CONTAINER[/proto]`),
    /// as (host, container).
    fn ports(&self) -> Vec<(u16, u16)> {
        strings(&self.y["ports"])
            .iter()
            .map(|p| {
                let p = p.split('/').next().unwrap();
                let parts: Vec<&str> = p.split(':').collect();
                let n = parts.len();
                assert!(n >= 2, "{}: port {p:?} should be HOST:CONTAINER", self.name);
                let port = |s: &str| {
                    s.parse::<u16>()
                        .unwrap_or_else(|_| panic!("{}: bad port {p:?}", self.name))
                };
                (port(parts[n - 2]), port(parts[n - 1]))
            })
            .collect()
    }

    fn publishes(&self, container_port: u16) -> bool {
        self.ports().iter().any(|(_, c)| *c == container_port)
    }

    /// `volumes` as (source, target): a bind mount's source starts with
    /// `.` or `/`, a named volume's does not.
    fn mounts(&self) -> Vec<(String, String)> {
        strings(&self.y["volumes"])
            .iter()
            .map(|v| {
                let mut parts = v.split(':');
                let source = parts.next().unwrap().to_string();
                let target = parts
                    .next()
                    .unwrap_or_else(|| panic!("{}: volume {v:?} has no target", self.name));
                (source, target.to_string())
            })
            .collect()
    }

    /// The repository path a container path is mounted from, if any.
    fn host_path(&self, container_path: &str) -> Option<PathBuf> {
        self.mounts()
            .into_iter()
            .filter(|(source, _)| source.starts_with('.'))
            .find_map(|(source, target)| {
                let rest = container_path.strip_prefix(target.trim_end_matches('/'))?;
                if !(rest.is_empty() || rest.starts_with('/')) {
                    return None;
                }
                Some(repo().join(&source).join(rest.trim_start_matches('/')))
            })
    }

    /// `command` as a list of arguments.
    fn command(&self) -> Vec<String> {
        match &self.y["command"] {
            Yaml::String(s) => s.split_whitespace().map(String::from).collect(),
            other => strings(other),
        }
    }

    /// The value of `--flag=value` or `--flag value` in `command`.
    fn flag(&self, flag: &str) -> Option<String> {
        let args = self.command();
        args.iter().enumerate().find_map(|(i, a)| {
            if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                Some(v.to_string())
            } else if a == flag {
                args.get(i + 1).cloned()
            } else {
                None
            }
        })
    }

    fn depends_on(&self) -> Vec<String> {
        match &self.y["depends_on"] {
            Yaml::Hash(h) => h.keys().map(scalar).collect(),
            other => strings(other),
        }
    }
}

struct Compose {
    services: BTreeMap<String, Service>,
    volumes: BTreeSet<String>,
}

impl Compose {
    fn load() -> Compose {
        let doc = yaml("docker-compose.yml");
        let services = doc["services"]
            .as_hash()
            .expect("docker-compose.yml: services")
            .iter()
            .map(|(k, v)| {
                let name = scalar(k);
                (name.clone(), Service { name, y: v.clone() })
            })
            .collect();
        let volumes = doc["volumes"]
            .as_hash()
            .map(|h| h.keys().map(scalar).collect())
            .unwrap_or_default();
        Compose { services, volumes }
    }

    fn service(&self, name: &str) -> &Service {
        self.services
            .get(name)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
    }
}

// ---------------------------------------------------------------- Dockerfile

/// The Dockerfile's final stage, as far as these checks need it.
struct Image {
    stages: usize,
    workdir: String,
    user: Option<String>,
    env: BTreeMap<String, String>,
    /// Sources of `COPY` from the build context (not `--from`), any stage.
    context_copies: Vec<String>,
}

impl Image {
    fn load() -> Image {
        let text = read("Dockerfile");
        // Join continuation lines.
        let joined = text.replace("\\\n", " ");
        let mut image = Image {
            stages: 0,
            workdir: "/".into(),
            user: None,
            env: BTreeMap::new(),
            context_copies: vec![],
        };
        for line in joined.lines().map(str::trim) {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (instr, rest) = line.split_once(' ').unwrap_or((line, ""));
            let rest = rest.trim();
            match instr.to_ascii_uppercase().as_str() {
                "FROM" => {
                    image.stages += 1;
                    image.workdir = "/".into();
                    image.user = None;
                    image.env.clear();
                }
                "WORKDIR" => image.workdir = rest.to_string(),
                "USER" => image.user = Some(rest.to_string()),
                "ENV" => {
                    for kv in rest.split_whitespace() {
                        let (k, v) = kv
                            .split_once('=')
                            .unwrap_or_else(|| panic!("Dockerfile: write ENV as K=V: {line}"));
                        image.env.insert(k.to_string(), v.to_string());
                    }
                }
                "COPY" if !rest.contains("--from=") => {
                    let args: Vec<&str> = rest
                        .split_whitespace()
                        .filter(|a| !a.starts_with("--"))
                        .collect();
                    let sources = &args[..args.len() - 1];
                    image
                        .context_copies
                        .extend(sources.iter().map(|s| s.to_string()));
                }
                _ => {}
            }
        }
        image
    }
}

// ---------------------------------------------------------------- okrd config

/// okrd's compose config as the container loads it: the file its command
/// names, with the image's and the service's environment.
fn compose_okrd_config(compose: &Compose, image: &Image) -> (String, Config) {
    let okrd = compose.service("okrd");
    let file = okrd
        .flag("--config")
        .expect("the okrd service names its config with --config");
    let mut env: Env = image.env.clone();
    env.extend(okrd.env());
    // Paths in the config are relative to the working directory, /app,
    // which holds what the repository root holds (config/, connectors/).
    // Cargo runs integration tests in the package root.
    assert_eq!(
        std::env::current_dir().unwrap().canonicalize().unwrap(),
        repo().canonicalize().unwrap(),
        "tests run in the repository root"
    );
    match okrd::config::load(Some(Path::new(&file)), &env) {
        Ok(config) => (file, config),
        Err(diags) => panic!(
            "{file} does not load:\n{}",
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// `scheme://[user[:password]@]host[:port][/path]` split up.
#[derive(Debug, PartialEq)]
struct Url {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
}

fn parse_url(url: &str) -> Url {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo.map(|u| u.split_once(':')) {
        Some(Some((u, p))) => (Some(u.to_string()), Some(p.to_string())),
        Some(None) => (userinfo.map(String::from), None),
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), Some(p.parse().expect("a numeric port"))),
        None => (hostport.to_string(), None),
    };
    Url {
        scheme: scheme.to_string(),
        user,
        password,
        host,
        port,
        path: path.to_string(),
    }
}

// ---------------------------------------------------------------- the tests

#[test]
fn every_service_and_mounted_file_exists() {
    let compose = Compose::load();
    for name in SERVICES {
        compose.service(name);
    }
    let image = compose.service("postgres").y["image"].as_str();
    assert!(
        image.is_some_and(|i| i.starts_with("timescale/timescaledb:")),
        "postgres runs the TimescaleDB image, not {image:?}"
    );
    for service in compose.services.values() {
        for (source, target) in service.mounts() {
            if source.starts_with('.') || source.starts_with('/') {
                assert!(
                    source.starts_with("./"),
                    "{}: bind mount {source} should be relative to the repository",
                    service.name
                );
                let path = repo().join(&source);
                assert!(
                    path.exists(),
                    "{}: {source} (mounted at {target}) is not in the repository",
                    service.name
                );
            } else {
                assert!(
                    compose.volumes.contains(&source),
                    "{}: volume {source} is not declared under volumes:",
                    service.name
                );
            }
        }
        for dep in service.depends_on() {
            assert!(
                compose.services.contains_key(&dep),
                "{} depends on {dep}, which is not a service",
                service.name
            );
        }
        if let Some(build) = service.y["build"].as_str() {
            assert!(
                repo().join(build).join("Dockerfile").is_file(),
                "{}: build context {build} has no Dockerfile",
                service.name
            );
        }
    }
}

#[test]
fn the_image_is_multi_stage_non_root_and_copies_only_what_dockerignore_admits() {
    let image = Image::load();
    assert!(image.stages >= 2, "a multi-stage build");
    let user = image.user.as_deref().expect("the final stage sets USER");
    assert!(
        !["root", "0", "0:0"].contains(&user),
        "the image runs as a non-root user, not {user}"
    );
    assert_eq!(image.workdir, "/app");
    let ignore = read(".dockerignore");
    let admitted: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore excludes everything by default"
    );
    for source in &image.context_copies {
        let source = source.trim_end_matches('/');
        assert!(
            repo().join(source).exists(),
            "Dockerfile copies {source}, which is not in the repository"
        );
        assert!(
            admitted.contains(source),
            "Dockerfile copies {source}, which .dockerignore keeps out of the context"
        );
    }
}

#[test]
fn okrd_reaches_postgres_kafka_and_alertmanager_where_they_listen() {
    let compose = Compose::load();
    let image = Image::load();
    let okrd = compose.service("okrd");
    let (file, config) = compose_okrd_config(&compose, &image);

    // The config file is in the image (COPY config) and mounted over it.
    let in_container = format!("{}/{file}", image.workdir);
    let host = okrd
        .host_path(&in_container)
        .unwrap_or_else(|| panic!("{in_container} is not mounted from the repository"));
    assert_eq!(host, repo().join(&file), "mounted where the image has it");
    for dir in [
        &config.service.objectives_dir,
        &config.service.connectors_dir,
    ] {
        assert!(dir.is_relative(), "{} is relative to /app", dir.display());
        assert!(
            okrd.host_path(&format!("{}/{}", image.workdir, dir.display()))
                .is_some_and(|p| p.is_dir()),
            "{} is mounted from a directory of the repository",
            dir.display()
        );
    }

    // PostgreSQL: the `postgres` service, its port, user, password, database.
    let db = parse_url(&config.service.database_url);
    assert!(db.scheme.starts_with("postgres"), "{db:?}");
    let pg = compose.service(&db.host);
    let pg_env = pg.env();
    let port = db.port.unwrap_or(5432);
    assert_eq!(port, 5432, "PostgreSQL listens on 5432 in its container");
    assert!(pg.publishes(5432), "postgres publishes 5432");
    assert_eq!(
        db.user.as_deref(),
        pg_env.get("POSTGRES_USER").map(|s| s.as_str())
    );
    assert_eq!(
        db.password.as_deref(),
        pg_env.get("POSTGRES_PASSWORD").map(|s| s.as_str())
    );
    assert_eq!(
        Some(db.path.trim_start_matches('/')),
        pg_env.get("POSTGRES_DB").map(|s| s.as_str())
    );
    assert!(
        okrd.depends_on().contains(&db.host),
        "okrd starts after {}",
        db.host
    );

    // HTTP: okrd listens on all interfaces, on the port it publishes.
    let listen = config.service.listen;
    assert!(listen.ip().is_unspecified(), "okrd listens on {listen}");
    assert!(
        okrd.publishes(listen.port()),
        "okrd publishes its port {}",
        listen.port()
    );
    let external = parse_url(&config.service.external_url);
    assert!(
        okrd.ports().iter().any(|(h, _)| Some(*h) == external.port),
        "http.external_url {} is where the host reaches okrd",
        config.service.external_url
    );

    // Kafka: every kafka connector's broker is an advertised listener of
    // the `kafka` service, and a listener it binds.
    let kafka = compose.service("kafka");
    let kafka_env = kafka.env();
    let advertised = &kafka_env["KAFKA_ADVERTISED_LISTENERS"];
    let listeners = &kafka_env["KAFKA_LISTENERS"];
    let mut topics = BTreeSet::new();
    let kafka_connectors: Vec<_> = config
        .connectors
        .iter()
        .filter_map(|c| match &c.kind {
            ConnectorKind::Kafka(k) => Some(k),
            _ => None,
        })
        .collect();
    assert!(
        !kafka_connectors.is_empty(),
        "the compose config has a kafka connector"
    );
    for k in kafka_connectors {
        topics.extend(k.topics.iter().cloned());
        for broker in k.brokers.split(',') {
            let (host, port) = broker.trim().rsplit_once(':').expect("host:port");
            assert_eq!(host, kafka.name, "broker {broker} is the kafka service");
            let listener = advertised
                .split(',')
                .find(|l| l.ends_with(&format!("://{broker}")))
                .unwrap_or_else(|| {
                    panic!("{broker} is not in KAFKA_ADVERTISED_LISTENERS {advertised}")
                });
            let name = listener.split("://").next().unwrap();
            assert!(
                listeners
                    .split(',')
                    .any(|l| l == format!("{name}://:{port}")),
                "listener {name} binds :{port} in KAFKA_LISTENERS {listeners}"
            );
        }
    }
    assert!(
        okrd.depends_on().contains(&kafka.name),
        "okrd starts after kafka"
    );
    // The demo producer writes to a topic okrd consumes, on the same broker.
    let producer = compose.service("demo-producer").command().join(" ");
    let args: Vec<&str> = producer.split_whitespace().collect();
    let values = |flag: &str| -> Vec<&str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1])
            .collect()
    };
    assert!(
        !values("--topic").is_empty(),
        "demo-producer names its topic"
    );
    for topic in values("--topic") {
        assert!(
            topics.contains(topic),
            "demo-producer's topic {topic} is not consumed by okrd ({topics:?})"
        );
    }
    for broker in values("--bootstrap-server") {
        assert!(
            advertised
                .split(',')
                .any(|l| l.ends_with(&format!("://{broker}"))),
            "demo-producer's broker {broker} is an advertised listener"
        );
    }

    // Alertmanager: every alertmanager notifier is the service on 9093, and
    // every team is told through one.
    let am = compose.service("alertmanager");
    let mut am_notifiers = BTreeSet::new();
    for (name, n) in &config.service.notifiers {
        if let Notifier::Alertmanager { urls, .. } = n {
            am_notifiers.insert(name.clone());
            for url in urls {
                let u = parse_url(url);
                assert_eq!(u.host, am.name, "{name}: {url}");
                assert_eq!(u.port, Some(9093), "{name}: {url}");
                assert!(am.publishes(9093));
            }
        }
    }
    for (team, t) in &config.service.teams {
        assert!(
            t.notify.iter().any(|n| am_notifiers.contains(n)),
            "team {team} is routed to Alertmanager"
        );
    }
    let am_config = am
        .flag("--config.file")
        .expect("alertmanager names its config file");
    assert_eq!(
        am.host_path(&am_config),
        Some(repo().join("./config/alertmanager.yml")),
        "alertmanager reads config/alertmanager.yml"
    );
}

#[test]
fn prometheus_scrapes_okrd_and_grafana_reads_prometheus() {
    let compose = Compose::load();
    let image = Image::load();
    let (_, config) = compose_okrd_config(&compose, &image);
    let prom = compose.service("prometheus");
    let prom_file = prom
        .flag("--config.file")
        .expect("prometheus names its config file");
    let host_file = prom
        .host_path(&prom_file)
        .expect("prometheus's config is mounted from the repository");
    assert_eq!(host_file, repo().join("./config/prometheus.yml"));
    let p = yaml("config/prometheus.yml");

    // Scrapes okrd where it listens.
    let jobs = p["scrape_configs"].as_vec().expect("scrape_configs");
    let okrd_job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("okrd"))
        .expect("a scrape job named okrd");
    let targets: Vec<String> = okrd_job["static_configs"]
        .as_vec()
        .expect("static_configs")
        .iter()
        .flat_map(|s| strings(&s["targets"]))
        .collect();
    assert_eq!(
        targets,
        [format!("okrd:{}", config.service.listen.port())],
        "Prometheus scrapes the okrd service on its http.listen port"
    );

    // Sends its alerts to the alertmanager service.
    let am_targets: Vec<String> = p["alerting"]["alertmanagers"]
        .as_vec()
        .expect("alerting.alertmanagers")
        .iter()
        .flat_map(|a| a["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|s| strings(&s["targets"]))
        .collect();
    assert_eq!(am_targets, ["alertmanager:9093"]);
    compose.service("alertmanager");

    // Rule files resolve, in the container, to mounted files of the repo.
    let dir = Path::new(&prom_file).parent().unwrap();
    for rule in strings(&p["rule_files"]) {
        let in_container = dir.join(&rule);
        let host = prom
            .host_path(in_container.to_str().unwrap())
            .unwrap_or_else(|| panic!("rule file {rule} is not mounted"));
        assert!(host.is_file(), "{} exists", host.display());
        assert_eq!(
            host.canonicalize().unwrap(),
            repo().join("config").join(&rule).canonicalize().unwrap(),
            "promtool (in .ci/run) checks the same file"
        );
    }

    // Grafana: its provisioning and dashboards are mounted; its data
    // sources point at the prometheus and alertmanager services.
    let grafana = compose.service("grafana");
    let provisioning = grafana
        .host_path("/etc/grafana/provisioning")
        .expect("grafana's provisioning is mounted");
    let (sources, _) = datasources();
    let urls: BTreeMap<&str, &str> = sources
        .iter()
        .map(|(_, (kind, url))| (kind.as_str(), url.as_str()))
        .collect();
    assert_eq!(urls.get("prometheus"), Some(&"http://prometheus:9090"));
    assert_eq!(urls.get("alertmanager"), Some(&"http://alertmanager:9093"));
    assert!(prom.publishes(9090));
    let providers = yaml("config/grafana/provisioning/dashboards/okrd.yml");
    assert!(provisioning.join("dashboards/okrd.yml").is_file());
    for p in providers["providers"].as_vec().expect("providers") {
        let path = str_of(&p["options"]["path"], "providers[].options.path");
        let host = grafana
            .host_path(path)
            .unwrap_or_else(|| panic!("dashboard path {path} is not mounted"));
        assert_eq!(host, repo().join("./config/grafana/dashboards"));
        assert!(
            !dashboards().is_empty(),
            "{} has dashboards",
            host.display()
        );
    }
    let home = &grafana.env()["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"];
    assert!(
        grafana.host_path(home).is_some_and(|p| p.is_file()),
        "the home dashboard {home} is a mounted file"
    );
}

#[test]
fn the_compose_okrd_config_passes_okrd_check_strict() {
    let compose = Compose::load();
    let image = Image::load();
    let okrd = compose.service("okrd");
    let file = okrd.flag("--config").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_okrd"));
    cmd.args(["check", "--strict", "--config", &file])
        .current_dir(repo());
    for (k, _) in std::env::vars() {
        if k.starts_with("OKRD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(&image.env).envs(okrd.env());
    // The `postgres` host exists only inside compose: check against a
    // SQLite file that does not exist, which `check` reads as empty.
    // (The database URL itself is checked in the test above.)
    cmd.env(
        "OKRD_DATABASE__URL",
        format!("sqlite://{}/none.db", data.path().display()),
    );
    let out = cmd.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "okrd check --strict --config {file}:\n{said}"
    );
    assert!(
        said.contains("config ok:") && said.contains("0 warnings"),
        "{said}"
    );
}

// ---------------------------------------------------------------- dashboards

/// Provisioned data sources: uid -> (type, url), and the names.
fn datasources() -> (BTreeMap<String, (String, String)>, BTreeSet<String>) {
    let dir = repo().join("config/grafana/provisioning/datasources");
    let mut uids = BTreeMap::new();
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(repo())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let doc = yaml(&rel);
        for ds in doc["datasources"].as_vec().expect("datasources") {
            let uid = str_of(&ds["uid"], "datasources[].uid").to_string();
            let kind = str_of(&ds["type"], "datasources[].type").to_string();
            let url = str_of(&ds["url"], "datasources[].url").to_string();
            names.insert(str_of(&ds["name"], "datasources[].name").to_string());
            assert!(
                uids.insert(uid.clone(), (kind, url)).is_none(),
                "duplicate uid {uid}"
            );
        }
    }
    (uids, names)
}

/// Every dashboard: (file name, JSON).
fn dashboards() -> Vec<(String, Value)> {
    let dir = repo().join("config/grafana/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Panels, including those inside rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = vec![];
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// A PromQL expression and where it comes from.
struct Query {
    origin: String,
    expr: String,
    /// Whether it must return data once okrd runs (a panel's query, as
    /// opposed to an alert condition or a filter that may match nothing).
    expect_data: bool,
}

/// Panels whose query is a filter that may legitimately match nothing.
const MAY_BE_EMPTY: &[&str] = &["Degraded now"];

/// Every PromQL expression of the dashboards (panel targets, and the
/// series selector of each `label_values` variable) and of the Prometheus
/// rules.
fn queries() -> Vec<Query> {
    let mut out = vec![];
    for (file, d) in dashboards() {
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(Query {
                        origin: format!("{file}: panel {title:?} {}", t["refId"]),
                        expr: expr.to_string(),
                        expect_data: !MAY_BE_EMPTY.contains(&title),
                    });
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let q = match &v["query"] {
                Value::String(s) => s.clone(),
                Value::Object(o) => o["query"].as_str().unwrap_or_default().to_string(),
                _ => continue,
            };
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(sel, _)| sel.to_string())
                .unwrap_or_else(|| panic!("{file}: variable {}: {q}", v["name"]));
            out.push(Query {
                origin: format!("{file}: variable {}", v["name"]),
                expr: inner,
                expect_data: true,
            });
        }
    }
    let rules = yaml("config/prometheus-rules/okrd.yml");
    for g in rules["groups"].as_vec().expect("groups") {
        for r in g["rules"].as_vec().expect("rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            out.push(Query {
                origin: format!("config/prometheus-rules/okrd.yml: {name}"),
                expr: str_of(&r["expr"], "expr").to_string(),
                expect_data: false,
            });
        }
    }
    out
}

/// The `okrd_*` metric names an expression uses: identifiers outside string
/// literals (label values) that start with `okrd_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for (_, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' && c != '`' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[i..end];
                if word.starts_with("okrd_") {
                    out.insert(word.to_string());
                }
            }
            // A number's digits (and a duration's unit) are not a name.
            c if c.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|&(_, d)| d.is_ascii_alphanumeric() || d == '.')
                {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum by (le) (rate(okrd_recompute_duration_seconds_bucket[5m])))"#
        ),
        ["okrd_recompute_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            r#"okrd_key_result_score{objective=~"okrd_not_a_metric"} * on (objective) group_left (team) okrd_key_result_info"#
        ),
        ["okrd_key_result_info", "okrd_key_result_score"]
    );
    assert_eq!(
        names(r#"sum(okrd_guardrail_degraded) or vector(0) > 1e3 and okrd_x:rate5m"#),
        ["okrd_guardrail_degraded", "okrd_x:rate5m"]
    );
    assert_eq!(
        names(r#"up{job="okrd", instance='okrd_\'x'}"#),
        Vec::<String>::new()
    );
}

#[test]
fn dashboards_have_panels_and_use_provisioned_datasources() {
    let (uids, names) = datasources();
    let all = dashboards();
    assert!(all.len() >= 3, "key results, alerts, service dashboards");
    let mut dashboard_uids = BTreeSet::new();
    for (file, d) in &all {
        let uid = d["uid"].as_str().unwrap_or_else(|| panic!("{file}: uid"));
        assert!(
            dashboard_uids.insert(uid),
            "{file}: duplicate dashboard uid {uid}"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        let real: Vec<_> = panels(d)
            .into_iter()
            .filter(|p| p["type"] != "row")
            .collect();
        assert!(!real.is_empty(), "{file} has panels");
        let mut ids = BTreeSet::new();
        for p in &real {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(p["id"].as_i64()),
                "{file}: {title}: duplicate panel id"
            );
            let targets = p["targets"].as_array().map_or(0, |t| t.len());
            assert!(targets > 0, "{file}: panel {title:?} has no query");
        }
        // Every data source reference, wherever it is, is provisioned.
        let mut refs = vec![];
        collect_datasources(d, &mut refs);
        assert!(!refs.is_empty(), "{file} names its data source");
        for r in refs {
            match r {
                Value::Object(o) => {
                    let uid = o.get("uid").and_then(Value::as_str).unwrap_or("");
                    assert!(
                        uids.contains_key(uid) || uid == "-- Grafana --",
                        "{file}: data source uid {uid:?} is not provisioned ({:?})",
                        uids.keys()
                    );
                    if let (Some(kind), Some((want, _))) =
                        (o.get("type").and_then(Value::as_str), uids.get(uid))
                    {
                        assert_eq!(kind, want, "{file}: data source {uid} type");
                    }
                }
                Value::String(name) => assert!(
                    names.contains(name) || name.starts_with("${"),
                    "{file}: data source {name:?} is not provisioned"
                ),
                _ => {}
            }
        }
    }
    // The `job` a query selects is a job Prometheus scrapes.
    let p = yaml("config/prometheus.yml");
    let jobs: BTreeSet<&str> = p["scrape_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|j| j["job_name"].as_str())
        .collect();
    for q in queries() {
        if let Some(rest) = q.expr.split("job=\"").nth(1) {
            let job = rest.split('"').next().unwrap();
            assert!(
                jobs.contains(job),
                "{}: job {job:?} is not scraped",
                q.origin
            );
        }
    }
}

fn collect_datasources<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                if k == "datasource" {
                    out.push(child);
                } else {
                    collect_datasources(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_datasources(i, out)),
        _ => {}
    }
}

// ------------------------------------------------- against the real /metrics

/// Sample names in a Prometheus text exposition (`_bucket`, `_sum`,
/// `_count` included, as written).
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// A Grafana query as plain PromQL: `$__rate_interval` and friends become
/// durations, a `$variable` its "All" value.
fn as_promql(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "1h"),
    ] {
        e = e.replace(var, value);
    }
    let mut out = String::new();
    let mut rest = e.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let after = after.strip_prefix('{').unwrap_or(after);
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        out.push_str(".+");
        rest = after[len..].strip_prefix('}').unwrap_or(&after[len..]);
    }
    out.push_str(rest);
    out
}

#[test]
fn grafana_variables_become_promql() {
    assert_eq!(
        as_promql(
            r#"sum by (c) (rate(okrd_x{connector=~"$connector", t=~"${team}"}[$__rate_interval]))"#
        ),
        r#"sum by (c) (rate(okrd_x{connector=~".+", t=~".+"}[1m]))"#
    );
}

/// The real binary with a metric source of every kind: a Kafka connector
/// (lag, in-flight, ingest, last success, a rejected message), a pull
/// connector that cannot connect (errors), pushed points (one rejected), and
/// a stale key result whose alert goes to a webhook nobody answers
/// (notifications).
struct Running {
    server: Server,
    _kafka: Kafka,
    _conf: tempfile::TempDir,
}

async fn start_okrd() -> Running {
    let kafka = Kafka::start();
    let topic = kafka.topic(1).await;
    let conf = tempfile::tempdir().unwrap();
    let connectors = conf.path().join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    let group = unique("okrd-stack");
    std::fs::write(
        connectors.join("events.yaml"),
        format!(
            "name: events\ntype: kafka\nbrokers: \"{}\"\ntopics: [{topic}]\ngroup: {group}\nbatch_max_wait: 50ms\nproperties:\n  statistics.interval.ms: \"200\"\n",
            kafka.brokers()
        ),
    )
    .unwrap();
    std::fs::write(
        connectors.join("broken.yaml"),
        format!(
            "name: broken\ntype: http\nschedule: \"@every 1s\"\ntimeout: 2s\nrequest: {{ url: \"http://127.0.0.1:{}/\" }}\nextract: {{ metric: broken, value: /v }}\n",
            free_port()
        ),
    )
    .unwrap();
    let now = Utc::now();
    let ts = |ago: TimeDelta| (now - ago).timestamp();
    let valid: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            json!({"metric": "signups", "ts": ts(TimeDelta::minutes(3 - i)), "value": 40 + i})
                .to_string()
                .into_bytes()
        })
        .collect();
    let mut payloads = valid;
    payloads.push(b"{not json".to_vec());
    kafka.produce(&topic, 1, &payloads).await;

    let service = format!(
        "http:\n  listen: 127.0.0.1:0\npaths:\n  connectors: {}\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: {{ type: webhook, url: \"http://127.0.0.1:{}/hook\" }}\n",
        connectors.display(),
        free_port()
    );
    let start = (now - TimeDelta::days(30)).format("%Y-%m-%d");
    let end = (now + TimeDelta::days(60)).format("%Y-%m-%d");
    let objective = format!(
        "id: growth\nobjective: Grow\nteam: growth\nperiod: {{ start: {start}, end: {end} }}\nkey_results:\n  - id: activation\n    title: Raise activation from 30% to 50%\n    metric: activation_rate\n    baseline: 0.30\n    target: 0.50\n    stale_after: 1h\n    counter_metrics:\n      - {{ metric: tickets, better: lower, tolerance: 5% }}\n"
    );
    let server = Server::start(&service, &[("growth.yaml", objective)], None, &[]);
    // Two hours old: the key result has data, and it is stale.
    let old = (now - TimeDelta::hours(2)).to_rfc3339();
    let ok = http::push(
        &server,
        json!([{"metric": "activation_rate", "ts": old, "value": 0.4}]),
        None,
    )
    .await;
    assert_eq!(ok.status, 200);
    let bad = http::push(
        &server,
        json!([{"metric": "activation_rate", "ts": "never", "value": 1}]),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    Running {
        server,
        _kafka: kafka,
        _conf: conf,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboards_and_rules_use_is_in_the_real_metrics_output() {
    let queries = queries();
    let wanted: BTreeMap<String, String> = queries
        .iter()
        .flat_map(|q| {
            metric_names(&q.expr)
                .into_iter()
                .map(|n| (n, q.origin.clone()))
        })
        .collect();
    for must in [
        "okrd_objective_score",
        "okrd_key_result_score",
        "okrd_key_result_expected_score",
        "okrd_key_result_status",
        "okrd_guardrail_degraded",
        "okrd_points_ingested_total",
        "okrd_connector_last_success_timestamp_seconds",
        "okrd_connector_errors_total",
        "okrd_kafka_consumer_lag",
    ] {
        assert!(wanted.contains_key(must), "no dashboard shows {must}");
    }
    let running = start_okrd().await;
    let server = &running.server;
    let text = until(Duration::from_secs(60), "every name in /metrics", || async {
        let text = get_text(&server.url("/metrics")).await;
        let have = exposed(&text);
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(name, _)| !have.contains(*name))
            .map(|(n, o)| format!("  {n} ({o})"))
            .collect();
        if missing.is_empty() {
            return Ok(text);
        }
        Err(format!(
            "names used by dashboards or rules that okrd's /metrics does not have:\n{}\n--- /metrics\n{text}\n--- log\n{}",
            missing.join("\n"),
            server.log()
        ))
    })
    .await;

    // Every query evaluates in a real Prometheus scraping this okrd, and a
    // panel's query returns data.
    let prom = start_prometheus(server.base.trim_start_matches("http://")).await;
    let client = http::client();
    until(Duration::from_secs(60), "data for every panel", || async {
        let mut problems = vec![];
        for q in &queries {
            let promql = as_promql(&q.expr);
            let v: Value = client
                .get(format!("{}/api/v1/query", prom.url))
                .query(&[("query", promql.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["status"] != "success" {
                panic!("{}: Prometheus rejects {promql}: {v}", q.origin);
            }
            let empty = v["data"]["result"].as_array().is_some_and(|r| r.is_empty());
            if q.expect_data && empty {
                problems.push(format!("{}: no data for {promql}", q.origin));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!("{}\n--- /metrics\n{text}", problems.join("\n")))
    })
    .await;
}

/// Debian's Prometheus scraping okrd (`host:port`) every second, as job
/// `okrd` (the compose stack's job name), once it has scraped twice.
async fn start_prometheus(target: &str) -> Daemon {
    let p = spawn_prometheus("okrd", target);
    let url = format!("{}/api/v1/query", p.url);
    let client = http::client();
    crate::common::wait::eventually(
        Duration::from_secs(90),
        "Prometheus to scrape okrd twice",
        || async {
            let v: Value = client
                .get(&url)
                .query(&[("query", "count_over_time(up{job=\"okrd\"}[1m])")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let n: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
            (n >= 2.0).then_some(())
        },
    )
    .await;
    p
}
