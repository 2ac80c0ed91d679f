//! `okrd diff BASE_DIR`: the review check for a change to the objectives
//! (SPEC §5). Run in a deployment (a pull request's checkout); for every
//! KR whose definition differs from the one in the deployment at BASE_DIR
//! (a checkout of main), it prints each changed field (from → to), whether
//! the change is easier, and the KR's score at `--at` (default now) under
//! the base and the new definition, both read from this deployment's
//! store. KRs added and removed are listed too. Exits 0: a review tool
//! reads the JSON and decides.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use super::load_config;
use super::score::Format;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, KeyResult, Objective};
use crate::definition::{self, Definition, FieldChange};
use crate::model::Timestamp;
use crate::scorecard::Scorecard;
use crate::scorer::{margins, score_all};
use crate::store;

/// What `okrd diff` prints as JSON.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The instant scored at.
    pub at: Timestamp,
    /// KRs in both deployments whose definitions differ, in the new
    /// deployment's order.
    pub changed: Vec<Changed>,
    /// KRs only the new deployment has.
    pub added: Vec<Scored>,
    /// KRs only the base deployment has.
    pub removed: Vec<Scored>,
}

/// A KR whose definition changed.
#[derive(Debug, Serialize)]
pub struct Changed {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// Each changed field, from → to.
    pub changes: Vec<FieldChange>,
    /// Whether the change makes the KR easier (SPEC §4).
    pub easier: bool,
    /// The score at `at` under the base definition.
    pub base_score: Option<f64>,
    /// The score at `at` under the new definition.
    pub new_score: Option<f64>,
}

/// A KR added or removed, with its score at `at`.
#[derive(Debug, Serialize)]
pub struct Scored {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// Its score at `at` (under the deployment that has it).
    pub score: Option<f64>,
}

/// Compares this deployment's objectives with BASE_DIR's and prints the
/// report.
pub async fn run(
    config_path: Option<&Path>,
    base_dir: &Path,
    at: Option<Timestamp>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let new = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    // The base's config file is found at the same relative path inside
    // BASE_DIR (an absolute --config names this deployment's file only).
    let base_path = config_path.filter(|p| p.is_relative());
    let base = match config::load_in(base_dir, base_path, &config::process_env()) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!(
                "the base deployment at {} has {} (run `okrd check` there)",
                base_dir.display(),
                super::plural(diags.len(), "config error")
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = store::open(&new.service.database_url)
        .await
        .with_context(|| {
            format!(
                "while opening the store at {}",
                crate::secrets::redact(&new.service.database_url)
            )
        })?;
    let now = at.unwrap_or_else(|| SystemClock.now());
    let base_card = score_all(store.as_ref(), &base, now, margins(&base))
        .await
        .context("while scoring the base definitions")?;
    let new_card = score_all(store.as_ref(), &new, now, margins(&new))
        .await
        .context("while scoring the new definitions")?;
    let report = compare(&base, &new, &base_card, &new_card, now);
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", table(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn krs(config: &Config) -> Vec<(&Objective, &KeyResult)> {
    config
        .objectives
        .iter()
        .flat_map(|o| o.key_results.iter().map(move |kr| (o, kr)))
        .collect()
}

fn scores(card: &Scorecard) -> HashMap<(&str, &str), f64> {
    card.key_results
        .iter()
        .map(|r| ((r.objective.as_str(), r.key_result.as_str()), r.score))
        .collect()
}

/// The report of `base` → `new`, scored by their cards.
pub fn compare(
    base: &Config,
    new: &Config,
    base_card: &Scorecard,
    new_card: &Scorecard,
    at: Timestamp,
) -> Report {
    let base_krs: HashMap<(&str, &str), Definition> = krs(base)
        .into_iter()
        .map(|(o, kr)| ((o.id.as_str(), kr.id.as_str()), Definition::of(o, kr)))
        .collect();
    let new_ids: std::collections::HashSet<(&str, &str)> = krs(new)
        .into_iter()
        .map(|(o, kr)| (o.id.as_str(), kr.id.as_str()))
        .collect();
    let (base_scores, new_scores) = (scores(base_card), scores(new_card));
    let mut report = Report {
        at,
        changed: Vec::new(),
        added: Vec::new(),
        removed: Vec::new(),
    };
    for (o, kr) in krs(new) {
        let key = (o.id.as_str(), kr.id.as_str());
        let to = Definition::of(o, kr);
        match base_krs.get(&key) {
            None => report.added.push(Scored {
                objective: o.id.clone(),
                key_result: kr.id.clone(),
                score: new_scores.get(&key).copied(),
            }),
            Some(from) if *from != to => report.changed.push(Changed {
                objective: o.id.clone(),
                key_result: kr.id.clone(),
                changes: definition::changes(from, &to),
                easier: definition::easier(from, &to),
                base_score: base_scores.get(&key).copied(),
                new_score: new_scores.get(&key).copied(),
            }),
            Some(_) => {}
        }
    }
    for (o, kr) in krs(base) {
        let key = (o.id.as_str(), kr.id.as_str());
        if !new_ids.contains(&key) {
            report.removed.push(Scored {
                objective: o.id.clone(),
                key_result: kr.id.clone(),
                score: base_scores.get(&key).copied(),
            });
        }
    }
    report
}

/// A stored field value for people: `0.4`, `at_most 300`, `5%`, `-`.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) if m.len() == 1 => {
            let (k, x) = m.iter().next().expect("one entry");
            match (k.as_str(), x.as_f64()) {
                ("value" | "absolute", Some(n)) => num(n),
                ("relative", Some(n)) => format!("{}%", num(n * 100.0)),
                (_, Some(n)) => format!("{k} {}", num(n)),
                _ => v.to_string(),
            }
        }
        _ => v.to_string(),
    }
}

fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn score(s: Option<f64>) -> String {
    s.map_or("-".into(), num)
}

/// The report for people.
pub fn table(r: &Report) -> String {
    let mut out = format!("okrd diff at {}\n", r.at.to_rfc3339());
    if r.changed.is_empty() && r.added.is_empty() && r.removed.is_empty() {
        out.push_str("no key result's definition changed\n");
        return out;
    }
    for c in &r.changed {
        out.push_str(&format!(
            "\nchanged {}/{}{}: score {} → {}\n",
            c.objective,
            c.key_result,
            if c.easier { " (EASIER)" } else { "" },
            score(c.base_score),
            score(c.new_score)
        ));
        let width = c.changes.iter().map(|f| f.field.len()).max().unwrap_or(0);
        for f in &c.changes {
            out.push_str(&format!(
                "  {:<width$}  {} → {}\n",
                f.field,
                show(&f.from),
                show(&f.to)
            ));
        }
    }
    for a in &r.added {
        out.push_str(&format!(
            "\nadded {}/{}: score {}\n",
            a.objective,
            a.key_result,
            score(a.score)
        ));
    }
    for a in &r.removed {
        out.push_str(&format!(
            "\nremoved {}/{}: score {}\n",
            a.objective,
            a.key_result,
            score(a.score)
        ));
    }
    out
}
