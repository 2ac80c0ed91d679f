//! Lints: a valid config can still make a poor OKR program. Each warning
//! says in one line why it matters.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{Diagnostic, Diagnostics};
use super::objective::{Better, KeyResult, Objective};
use super::yaml::Span;
use super::{Config, DEFAULT_CONFIG_PATH};
use crate::model::{Labels, SeriesKey, Timestamp};

/// Most objectives a team should hold in one period.
pub const MAX_OBJECTIVES_PER_TEAM: usize = 5;
/// Most key results an objective should hold.
pub const MAX_KEY_RESULTS: usize = 5;

/// First words that make a title a task or deliverable, not an outcome.
const TASK_VERBS: &[&str] = &[
    "launch",
    "build",
    "implement",
    "ship",
    "create",
    "deliver",
    "release",
    "complete",
    "finish",
    "develop",
    "design",
    "write",
    "migrate",
    "deploy",
    "introduce",
    "roll",
    "set",
    "add",
    "publish",
    "redesign",
    "rewrite",
    "integrate",
    "hire",
    "start",
    "run",
];

/// Lints `config` at `now` (a recurring period is the one in force then).
/// `metrics_with_points` is the set of metrics the store has points for,
/// or `None` when the store could not be read.
pub fn lint(
    config: &Config,
    config_file: &str,
    metrics_with_points: Option<&BTreeSet<String>>,
    now: Timestamp,
) -> Vec<Diagnostic> {
    let mut d = Diagnostics::new();
    let top = Span { line: 1, col: 1 };

    let mut per_team: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for o in &config.objectives {
        per_team
            .entry((&o.team, &o.period.label))
            .or_default()
            .push(&o.id);
    }
    for ((team, period), ids) in &per_team {
        if ids.len() > MAX_OBJECTIVES_PER_TEAM {
            let file = config
                .objectives
                .iter()
                .find(|o| o.id == ids[0])
                .map_or("", |o| o.file.as_str());
            d.warn(
                file,
                top,
                "team",
                format!(
                    "team {team} has {} objectives in {period}: aim for 1-3, since focus is what makes OKRs work",
                    ids.len()
                ),
            );
        }
    }

    let declared: BTreeSet<&str> = config
        .connectors
        .iter()
        .flat_map(|c| c.declared_metrics())
        .collect();
    for o in &config.objectives {
        if o.key_results.len() > MAX_KEY_RESULTS {
            d.warn(
                &o.file,
                o.span,
                "key_results",
                format!(
                    "objective {} has {} key results: more than {MAX_KEY_RESULTS} dilutes attention; keep the ones that prove the objective",
                    o.id,
                    o.key_results.len()
                ),
            );
        }
        for (i, kr) in o.key_results.iter().enumerate() {
            let path = format!("key_results[{i}]");
            if kr.counter_metrics.is_empty() {
                d.warn(
                    &o.file,
                    kr.span,
                    &path,
                    format!("key result {} has no counter_metrics: gains can hide their costs (pair it with what must not get worse)", kr.id),
                );
            }
            let first = kr
                .title
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_lowercase();
            if TASK_VERBS.contains(&first.as_str()) {
                d.warn(
                    &o.file,
                    kr.span,
                    &format!("{path}.title"),
                    format!("{:?} reads like a task or deliverable: a key result states a measurable outcome (e.g. \"Raise activation from 32% to 45%\")", kr.title),
                );
            }
            let stored = metrics_with_points.is_some_and(|m| m.contains(&kr.metric));
            if !declared.contains(kr.metric.as_str()) && !stored {
                d.warn(
                    &o.file,
                    kr.span,
                    &format!("{path}.metric"),
                    format!(
                        "metric {} is declared by no connector and has no stored points: this key result can never be scored",
                        kr.metric
                    ),
                );
            }
        }
    }

    pulling_apart(config, &mut d);
    periods_apart(config, now, &mut d);

    for (team, t) in &config.service.teams {
        if t.notify.is_empty() {
            d.warn(
                config_file,
                top,
                &format!("teams.{team}"),
                format!("team {team} has no notifier: its alerts would reach nobody"),
            );
        }
    }
    if config.objectives.is_empty() {
        d.warn(
            if config_file.is_empty() {
                DEFAULT_CONFIG_PATH
            } else {
                config_file
            },
            top,
            "paths.objectives",
            format!(
                "no objectives found in {}",
                config.service.objectives_dir.display()
            ),
        );
    }
    d.into_sorted()
}

/// Two teams' KRs on the same series with opposite `better`: each warning
/// sits on the later KR and names the first one it pulls against.
fn pulling_apart(config: &Config, d: &mut Diagnostics) {
    let mut first: BTreeMap<(&str, &Labels), Vec<(&Objective, &KeyResult)>> = BTreeMap::new();
    for o in &config.objectives {
        for (i, kr) in o.key_results.iter().enumerate() {
            let seen = first.entry((kr.metric.as_str(), &kr.labels)).or_default();
            if let Some((other_o, other)) = seen
                .iter()
                .find(|(other_o, other)| other_o.team != o.team && other.better != kr.better)
            {
                d.warn(
                    &o.file,
                    kr.span,
                    &format!("key_results[{i}].better"),
                    format!(
                        "key result {}/{} (team {}, {} is better) and {}/{} (team {}, {} is better) read the same series {}: these goals pull against each other",
                        o.id,
                        kr.id,
                        o.team,
                        better(kr.better),
                        other_o.id,
                        other.id,
                        other_o.team,
                        better(other.better),
                        SeriesKey::new(kr.metric.clone(), kr.labels.clone()),
                    ),
                );
            }
            seen.push((o, kr));
        }
    }
}

/// A child objective whose period does not overlap its parent's (each the
/// one in force at `now`, for a recurring period).
fn periods_apart(config: &Config, now: Timestamp, d: &mut Diagnostics) {
    let alignment = config.alignment();
    for (i, o) in config.objectives.iter().enumerate() {
        let Some(p) = alignment.parent(i).map(|p| &config.objectives[p]) else {
            continue;
        };
        let (child, parent) = (o.period.at(now), p.period.at(now));
        if child.start >= parent.end || parent.start >= child.end {
            d.warn(
                &o.file,
                o.span,
                "aligns_to",
                format!(
                    "objective {} ({}) aligns to {} ({}), whose period does not overlap its own: align it to an objective of the same period",
                    o.id, child.label, p.id, parent.label
                ),
            );
        }
    }
}

fn better(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher",
        Better::Lower => "lower",
    }
}
