//! Configuration: the service config, objectives and connectors, loaded and
//! validated once, at the edge.
//!
//! Loading reads every file, reports every problem of the run together
//! (file:line:column, key path, message), and hands the rest of okrd typed
//! values only: durations, schedules, periods and tolerances are parsed here.
//!
//! - `yaml.rs`: YAML into a tree of positioned nodes.
//! - `de.rs`: serde over that tree, errors stamped with position and path.
//! - `env.rs`: `${VAR}` expansion and `OKRD_*` overrides on the tree.
//! - `service.rs`, `objective.rs`, `connector.rs`: the three file kinds.
//! - `types.rs`: durations, tolerances, schedules, periods.
//! - `alignment.rs`: `aligns_to` and `depends_on` checked across objectives,
//!   and the organisation's shape they give ([`Alignment`]).
//! - `destinations.rs`: where API-registered connectors may connect.
//! - `lint.rs`: warnings about OKR practice (`okrd check`).
//! - `error.rs`: diagnostics.

pub mod alignment;
pub mod connector;
pub mod de;
pub mod destinations;
mod env;
pub mod error;
pub mod lint;
pub mod objective;
pub mod service;
pub mod types;
pub mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use alignment::Alignment;
pub use connector::Connector;
pub use error::{Diagnostic, Diagnostics, Severity};
pub use objective::{KeyResult, Objective};
pub use service::ServiceConfig;

use yaml::{Kind, Node, Span};

/// Where the service config is read from when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/okrd.yaml";

/// Everything okrd is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service config (defaults when the file is absent).
    pub service: ServiceConfig,
    /// All objectives, in file order.
    pub objectives: Vec<Objective>,
    /// All connectors defined in files.
    pub connectors: Vec<Connector>,
    /// The shape `objectives` give, built once with them.
    alignment: Arc<Alignment>,
}

impl Config {
    /// A config of these parts; their [`Alignment`] is built here, once.
    pub fn new(
        service: ServiceConfig,
        objectives: Vec<Objective>,
        connectors: Vec<Connector>,
    ) -> Config {
        let alignment = Arc::new(Alignment::new(&objectives));
        Config {
            service,
            objectives,
            connectors,
            alignment,
        }
    }

    /// This config with other objectives (and their alignment).
    pub fn with_objectives(self, objectives: Vec<Objective>) -> Config {
        Config::new(self.service, objectives, self.connectors)
    }

    /// How the objectives align and depend on each other.
    pub fn alignment(&self) -> &Alignment {
        &self.alignment
    }
}

/// The environment, as a snapshot, so loading is a pure function of it.
pub type Env = BTreeMap<String, String>;

/// The process environment.
pub fn process_env() -> Env {
    std::env::vars().collect()
}

/// Loads and validates everything. `config_path` is `None` for the default
/// location, where a missing file means all defaults; an explicitly named
/// file must exist. Returns every error of the run when any.
pub fn load(config_path: Option<&Path>, env: &Env) -> Result<Config, Vec<Diagnostic>> {
    load_in(Path::new(""), config_path, env)
}

/// [`load`] for the deployment in `dir` (`okrd diff`'s base): the config
/// file and the objective and connector directories it names are found
/// relative to `dir` instead of the working directory.
pub fn load_in(
    dir: &Path,
    config_path: Option<&Path>,
    env: &Env,
) -> Result<Config, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new();
    let path =
        dir.join(config_path.map_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH), Path::to_path_buf));
    let file = path.display().to_string();
    diags.set_file(&file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config_path.is_none() => None,
        Err(e) => {
            diags.error_at(Span::default(), "", format!("cannot read config file: {e}"));
            return Err(diags.into_sorted());
        }
    };
    let mut root = match text.as_deref().map(|t| parse_single(t, &mut diags)) {
        Some(Some(root)) => root,
        Some(None) => return Err(diags.into_sorted()),
        None => Node::new(Kind::Null, Span { line: 1, col: 1 }),
    };
    env::expand(&mut root, "", env, None, &mut diags);
    env::apply_overrides(&mut root, env, &service::SECTIONS, &mut diags);
    let service = service::load_service(&root, &mut diags);
    let defaults = ServiceConfig::default();
    let (objectives_dir, connectors_dir) = service
        .as_ref()
        .map_or((&defaults.objectives_dir, &defaults.connectors_dir), |s| {
            (&s.objectives_dir, &s.connectors_dir)
        });
    let (objectives_dir, connectors_dir) = (&dir.join(objectives_dir), &dir.join(connectors_dir));

    // Read from the tree, so objectives are checked against the declared
    // teams even when the service config has errors of its own.
    let declared_teams: Vec<&str> = match root.get("teams").map(|t| &t.kind) {
        Some(Kind::Map(entries)) => entries.iter().filter_map(|(k, _)| k.as_str()).collect(),
        _ => Vec::new(),
    };
    let mut objectives = Vec::new();
    let mut objective_ids: HashMap<String, String> = HashMap::new();
    let mut references = alignment::References::default();
    for source in files(objectives_dir, &mut diags) {
        for (file, doc) in documents(&source, env, &mut diags) {
            diags.set_file(&file);
            references.add(&file, &doc);
            // Cross-file checks read the raw document, so they are reported
            // even when the objective has other errors.
            let mut usable = true;
            if let Some(id_node) = doc.get("id") {
                let id = id_node.as_str().unwrap_or_default().to_string();
                if let Some(first) = objective_ids.get(&id) {
                    diags.error(
                        id_node,
                        "id",
                        format!("duplicate objective id {id:?} (also in {first})"),
                    );
                    usable = false;
                } else {
                    objective_ids.insert(id, file.clone());
                }
            }
            if let Some(team_node) = doc.get("team") {
                let team = team_node.as_str().unwrap_or_default();
                if !declared_teams.contains(&team) {
                    let known: Vec<_> = declared_teams.clone();
                    diags.error(
                        team_node,
                        "team",
                        format!(
                            "unknown team {team:?}: declare it under `teams:` in {} (declared: {})",
                            path.display(),
                            service::list_or_none(&known)
                        ),
                    );
                    usable = false;
                }
            }
            if let Some(objective) = objective::load_objective(&doc, &mut diags) {
                if usable {
                    objectives.push(objective);
                }
            }
        }
    }
    references.check(&mut diags);

    let mut connectors: Vec<Connector> = Vec::new();
    let mut connector_names: HashMap<String, String> = HashMap::new();
    for source in files(connectors_dir, &mut diags) {
        for (file, doc) in documents(&source, env, &mut diags) {
            diags.set_file(&file);
            let items: Vec<(String, &Node)> = match &doc.kind {
                Kind::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("[{i}]"), n))
                    .collect(),
                Kind::Null => continue,
                _ => vec![(String::new(), &doc)],
            };
            for (path, node) in items {
                if let Some(name_node) = node.get("name") {
                    let name = name_node.as_str().unwrap_or_default().to_string();
                    if let Some(first) = connector_names.get(&name) {
                        let key = if path.is_empty() {
                            "name".to_string()
                        } else {
                            format!("{path}.name")
                        };
                        diags.error(
                            name_node,
                            &key,
                            format!("duplicate connector name {name:?} (also in {first})"),
                        );
                        continue;
                    }
                    connector_names.insert(name, format!("{file}:{}", name_node.span.line));
                }
                if let Some(c) = connector::load_connector(node, &path, &mut diags) {
                    connectors.push(c);
                }
            }
        }
    }

    match service {
        Some(service) if diags.error_count() == 0 => {
            Ok(Config::new(service, objectives, connectors))
        }
        _ => Err(diags.into_sorted()),
    }
}

/// Validates one connector given as text, exactly like one in
/// `connectors/*.yaml`: how a connector registered over the API (its JSON
/// body, which is YAML) is checked. `${VAR}` is expanded from `env`; with
/// `allowed` (`http.connector_env`, for a connector registered over the
/// API) it may name only the variables listed there.
/// `file` names the source in the errors.
pub fn load_connector_text(
    text: &str,
    file: &str,
    env: &Env,
    allowed: Option<&[String]>,
) -> Result<Connector, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new();
    diags.set_file(file);
    let Some(mut doc) = parse_single(text, &mut diags) else {
        return Err(diags.into_sorted());
    };
    if !matches!(doc.kind, Kind::Map(_)) {
        diags.error(
            &doc,
            "",
            "expected one connector: an object with name, type, ...",
        );
        return Err(diags.into_sorted());
    }
    env::expand(&mut doc, "", env, allowed, &mut diags);
    match connector::load_connector(&doc, "", &mut diags) {
        Some(c) if diags.error_count() == 0 => Ok(c),
        _ => Err(diags.into_sorted()),
    }
}

/// Parses a file that holds exactly one YAML document.
fn parse_single(text: &str, diags: &mut Diagnostics) -> Option<Node> {
    let mut docs = parse_all(text, diags)?;
    if docs.len() > 1 {
        diags.error(
            &docs[1],
            "",
            "expected one YAML document, found several (`---`)",
        );
        return None;
    }
    docs.pop()
}

fn parse_all(text: &str, diags: &mut Diagnostics) -> Option<Vec<Node>> {
    match yaml::parse(text) {
        Ok(docs) => Some(docs),
        Err(e) => {
            diags.error_at(e.span, "", format!("invalid YAML: {}", e.message));
            None
        }
    }
}

/// Every `*.yaml`/`*.yml` file in `dir`, sorted by name. A missing
/// directory holds nothing.
fn files(dir: &Path, diags: &mut Diagnostics) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            diags.set_file(dir.display().to_string());
            diags.error_at(Span::default(), "", format!("cannot read directory: {e}"));
            return Vec::new();
        }
    };
    files.sort();
    files
}

/// The documents of one YAML file of [`files`], `${VAR}` expanded, named by
/// the file. One file's tree is held at a time: a config of 10,000 KRs is
/// never parsed whole before it is loaded.
fn documents(path: &Path, env: &Env, diags: &mut Diagnostics) -> Vec<(String, Node)> {
    let file = path.display().to_string();
    diags.set_file(&file);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            diags.error_at(Span::default(), "", format!("cannot read file: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for mut doc in parse_all(&text, diags).unwrap_or_default() {
        env::expand(&mut doc, "", env, None, diags);
        out.push((file.clone(), doc));
    }
    out
}
