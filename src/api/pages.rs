//! The HTML pages' handlers: `/` (the status page: the objective tree,
//! filtered by `?team=` and `?status=`, a page of key results at a time)
//! and `/key-results/{objective}/{kr}` (a key result's own page). Each
//! gathers its view from the running config, the latest scorecard and the
//! store, and hands it to its pure renderer (`status_page.rs`,
//! `kr_page.rs`).
//!
//! A page costs what it shows, not what the deployment holds: the
//! scorecard is walked once, and the score history of the page's key
//! results (at most [`PAGE_KEY_RESULTS`]) comes in one statement.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::key_results::explain;
use super::kr_page::{self, KrPage};
use super::status_page::{
    self, AlertView, DependencyView, Filter, KrView, ObjectiveView, StatusPage, Summary,
};
use crate::config::objective::KrType;
use crate::config::{Config, KeyResult, Objective};
use crate::live::Services;
use crate::model::Timestamp;
use crate::scorecard::{KeyResultRow, Scorecard};
use crate::scorer;
use crate::scoring::Status;
use crate::store::{AlertRecord, AlertState, CheckIn};

/// Key results one page of `/` shows at most (an objective is never split;
/// one without key results shown counts as one).
pub const PAGE_KEY_RESULTS: usize = 50;

/// Sparkline vertices per key result at most (thinned in the store): more
/// than the sparkline's width in pixels adds bytes, not detail.
const SPARKLINE_POINTS: usize = 120;

/// Check-ins a key result's page lists at most (the newest).
const CHECK_INS: i64 = 20;

/// Alerts resolved this long ago still show on a key result's page.
const RECENT: TimeDelta = TimeDelta::hours(24);

/// `/`'s query: filters and the page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    page: Option<usize>,
}

impl PageQuery {
    fn filter(&self, config: &Config) -> Result<Filter, ApiError> {
        let team = match self.team.as_deref() {
            None | Some("") => None,
            Some(t) if config.service.teams.contains_key(t) => Some(t.to_string()),
            Some(t) => return Err(ApiError::bad_request(format!("unknown team {t:?}"))),
        };
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(
                Status::ALL
                    .into_iter()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "unknown status {s:?}: expected one of on_track, at_risk, off_track, stale, no_data"
                        ))
                    })?,
            ),
        };
        Ok(Filter { team, status })
    }
}

/// One objective the filter selects, with the positions of its KRs shown.
struct Selected {
    objective: usize,
    depth: usize,
    key_results: Vec<usize>,
}

/// `GET /`: the status page.
pub async fn overview(
    State(app): State<Services>,
    Query(query): Query<PageQuery>,
) -> Result<Html<String>, ApiError> {
    let started = std::time::Instant::now();
    let config = app.live.config();
    let card = app.live.card();
    let now = app.clock.now();
    let filter = query.filter(&config)?;
    let alignment = config.alignment();

    let mut summary = Summary::default();
    let mut selected = Vec::new();
    for &(o, depth) in alignment.tree() {
        let objective = &config.objectives[o];
        if filter.team.as_ref().is_some_and(|t| *t != objective.team) {
            continue;
        }
        let first = alignment.first_kr(o);
        let mut key_results = Vec::new();
        for (k, kr) in objective.key_results.iter().enumerate() {
            let Some(row) = card.key_result(first + k, &objective.id, &kr.id) else {
                continue;
            };
            if filter.status.is_some_and(|s| s != row.detail.status) {
                continue;
            }
            summary.count(row.detail.status, alerting(row));
            key_results.push(first + k);
        }
        if filter.status.is_some() && key_results.is_empty() {
            continue;
        }
        summary.objectives += 1;
        selected.push(Selected {
            objective: o,
            depth,
            key_results,
        });
    }

    let pages = paginate(&selected);
    let number = query.page.unwrap_or(1).clamp(1, pages.len().max(1));
    let on_page: &[Selected] = pages.get(number - 1).map_or(&[], |r| &selected[r.clone()]);
    let walked = started.elapsed();
    let mut lines = score_lines(&app, &config, &card, on_page, now).await?;
    // Check-ins are never part of the score: read beside it, one
    // statement, kept for the page's KRs.
    let latest = app.store.latest_check_ins().await?;
    let check_ins: HashMap<(&str, &str), &CheckIn> = latest
        .iter()
        .map(|c| ((c.objective.as_str(), c.key_result.as_str()), c))
        .collect();
    let lines_read = started.elapsed();

    let mut objectives = Vec::with_capacity(on_page.len());
    let (mut base, mut previous) = (usize::MAX, 0);
    for (i, s) in on_page.iter().enumerate() {
        let depth = if filter.team.is_some() || filter.status.is_some() {
            0
        } else {
            base = base.min(s.depth);
            let relative = s.depth - base;
            if i == 0 {
                0
            } else {
                relative.min(previous + 1)
            }
        };
        previous = depth;
        let o = &config.objectives[s.objective];
        let row = card.objective(s.objective, &o.id);
        let key_results = s
            .key_results
            .iter()
            .filter_map(|&flat| {
                let kr = &o.key_results[flat - alignment.first_kr(s.objective)];
                let row = card.key_result(flat, &o.id, &kr.id)?;
                let history = lines.remove(&flat).unwrap_or_default();
                let check_in = check_ins.get(&(o.id.as_str(), kr.id.as_str())).copied();
                Some(kr_view(&config, &card, kr, row, flat, history, check_in))
            })
            .collect();
        objectives.push(ObjectiveView {
            id: o.id.clone(),
            statement: o.objective.clone(),
            team: o.team.clone(),
            period: o.period.at(now).label.clone(),
            score: row.map_or(0.0, |r| r.score),
            rollup: row.map_or(0.0, |r| r.rollup),
            depth,
            aligns_to: alignment.parent(s.objective).map(|p| {
                let parent = &config.objectives[p];
                (parent.id.clone(), parent.objective.clone())
            }),
            children: alignment.children(s.objective).len(),
            has_key_results: !o.key_results.is_empty(),
            key_results,
        });
    }

    let views = started.elapsed();
    let (firing, alerts_total) = app
        .store
        .firing_alerts(status_page::MAX_LISTED_ALERTS as i64)
        .await?;
    let alerts = firing.iter().map(alert_view).collect();
    let alerts_read = started.elapsed();
    let html = status_page::render(&StatusPage {
        generated_at: now,
        objectives,
        summary,
        filter,
        teams: config.service.teams.keys().cloned().collect(),
        alerts,
        alerts_total: usize::try_from(alerts_total).unwrap_or(0),
        page: (number, pages.len().max(1)),
    });
    tracing::debug!(
        walk_ms = walked.as_secs_f64() * 1e3,
        lines_ms = (lines_read - walked).as_secs_f64() * 1e3,
        views_ms = (views - lines_read).as_secs_f64() * 1e3,
        alerts_ms = (alerts_read - views).as_secs_f64() * 1e3,
        render_ms = (started.elapsed() - alerts_read).as_secs_f64() * 1e3,
        bytes = html.len(),
        "status page"
    );
    Ok(Html(html))
}

/// The selection cut into pages of at most [`PAGE_KEY_RESULTS`] key
/// results, whole objectives each.
fn paginate(selected: &[Selected]) -> Vec<std::ops::Range<usize>> {
    let mut pages = Vec::new();
    let (mut start, mut weight) = (0, 0);
    for (i, s) in selected.iter().enumerate() {
        let w = s.key_results.len().max(1);
        if weight > 0 && weight + w > PAGE_KEY_RESULTS {
            pages.push(start..i);
            (start, weight) = (i, 0);
        }
        weight += w;
    }
    if start < selected.len() {
        pages.push(start..selected.len());
    }
    pages
}

/// The sparkline of each KR on the page, by flat position: one statement
/// for all of them, from the earliest period start on the page.
async fn score_lines(
    app: &Services,
    config: &Config,
    card: &Scorecard,
    on_page: &[Selected],
    now: Timestamp,
) -> Result<HashMap<usize, Vec<(Timestamp, f64)>>, ApiError> {
    let mut keys = Vec::new();
    let mut position = HashMap::new();
    for s in on_page {
        let start = config.objectives[s.objective].period.at(now).start;
        for &flat in &s.key_results {
            let Some(row) = card.key_results.get(flat) else {
                continue;
            };
            position.insert(
                (row.objective.clone(), row.key_result.clone()),
                (flat, start),
            );
            keys.push((row.objective.clone(), row.key_result.clone()));
        }
    }
    let Some(since) = position.values().map(|&(_, start)| start).min() else {
        return Ok(HashMap::new());
    };
    let mut lines: HashMap<usize, Vec<(Timestamp, f64)>> = HashMap::new();
    let from = since - TimeDelta::microseconds(1);
    for p in app
        .store
        .score_lines(&keys, from, now, SPARKLINE_POINTS)
        .await?
    {
        if let Some(&(flat, start)) = position.get(&(p.objective, p.key_result)) {
            if p.at >= start {
                lines.entry(flat).or_default().push((p.at, p.score));
            }
        }
    }
    Ok(lines)
}

fn alerting(row: &KeyResultRow) -> bool {
    row.counters.iter().any(|c| c.firing())
}

/// A KR's row on a page, with its dependencies' status.
fn kr_view(
    config: &Config,
    card: &Scorecard,
    kr: &KeyResult,
    row: &KeyResultRow,
    flat: usize,
    history: Vec<(Timestamp, f64)>,
    check_in: Option<&CheckIn>,
) -> KrView {
    let dependencies = config
        .alignment()
        .depends_on(flat)
        .map(|d| dependency_view(config, card, d.to_objective, d.to_index, &d.to))
        .collect();
    KrView {
        id: kr.id.clone(),
        title: kr.title.clone(),
        status: row.detail.status,
        score: row.score,
        expected: row.expected,
        value: row.value,
        target: kr.target,
        updated_at: row.detail.newest_point,
        forecast: row.forecast,
        forecast_probability: row.forecast_probability,
        history,
        alerting: alerting(row),
        dependencies,
        revisions: row.revisions.to_vec(),
        check_in: check_in.map(|c| (c.confidence, c.note.clone())),
    }
}

fn dependency_view(
    config: &Config,
    card: &Scorecard,
    objective: usize,
    flat: usize,
    id: &crate::config::objective::KrRef,
) -> DependencyView {
    let o = &config.objectives[objective];
    let title = o
        .key_results
        .iter()
        .find(|k| k.id == id.key_result)
        .map_or_else(String::new, |k| k.title.clone());
    DependencyView {
        id: id.to_string(),
        title,
        team: o.team.clone(),
        status: card
            .key_result(flat, &id.objective, &id.key_result)
            .map(|r| r.detail.status),
    }
}

fn alert_view(a: &AlertRecord) -> AlertView {
    let details: Value = serde_json::from_str(&a.details).unwrap_or(Value::Null);
    AlertView {
        kind: a.kind.to_string(),
        objective: a.key.objective.clone(),
        key_result: a.key.key_result.clone(),
        summary: details["summary"].as_str().unwrap_or_default().to_string(),
        fired_at: a.fired_at,
        resolved_at: (a.state == AlertState::Resolved)
            .then_some(a.resolved_at)
            .flatten(),
    }
}

/// `GET /key-results/{objective}/{kr}`: a key result's own page.
pub async fn key_result(
    State(app): State<Services>,
    Path((objective_id, kr_id)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let config = app.live.config();
    let card = app.live.card();
    let now = app.clock.now();
    let (oi, objective) = find(&config.objectives, &objective_id)?;
    let Some((k, kr)) = objective
        .key_results
        .iter()
        .enumerate()
        .find(|(_, k)| k.id == kr_id)
    else {
        return Err(ApiError::not_found(format!(
            "objective {objective_id:?} has no key result {kr_id:?}"
        )));
    };
    let alignment = config.alignment();
    let flat = alignment.first_kr(oi) + k;
    let margins = scorer::margins(&config);
    let eval = scorer::evaluate(app.store.as_ref(), objective, kr, now, margins).await?;
    let period = objective.period.at(now);
    let since = period.start - TimeDelta::microseconds(1);
    let history: Vec<(Timestamp, f64)> = app
        .store
        .score_history(&objective.id, &kr.id, since, now)
        .await?
        .iter()
        .map(|h| (h.at, h.score))
        .collect();
    let check_ins = app
        .store
        .check_ins(&objective.id, &kr.id, CHECK_INS)
        .await?;
    let mut view = kr_view(
        &config,
        &card,
        kr,
        &eval.row,
        flat,
        history,
        check_ins.first(),
    );
    // The revisions are the published row's (the scorer keeps them).
    let published = card.key_result(flat, &objective.id, &kr.id);
    view.revisions = published.map_or_else(Vec::new, |r| r.revisions.to_vec());
    let mut explanation = explanation_lines(&explain(objective, kr, &eval, margins));
    explanation.push((
        "Revision".to_string(),
        super::revisions::explain(published.map_or(0, |r| r.revision), &view.revisions),
    ));
    let dependents = alignment
        .dependents(flat)
        .map(|d| dependency_view(&config, &card, d.from_objective, d.from_index, &d.from))
        .collect();
    let alerts = app
        .store
        .alerts_of(&objective.id, &kr.id, now - RECENT)
        .await?
        .iter()
        .map(alert_view)
        .collect();
    Ok(Html(kr_page::render(&KrPage {
        generated_at: now,
        objective: (
            objective.id.clone(),
            objective.objective.clone(),
            objective.team.clone(),
            period.label.clone(),
        ),
        kr: view,
        dependents,
        period: (period.start, period.end),
        expected_at_end: if kr.kind == KrType::Aspirational {
            0.7
        } else {
            1.0
        },
        explanation,
        check_ins: check_ins
            .iter()
            .map(|c| (c.at, c.confidence, c.note.clone(), c.author.clone()))
            .collect(),
        alerts,
    })))
}

fn find<'a>(objectives: &'a [Objective], id: &str) -> Result<(usize, &'a Objective), ApiError> {
    objectives
        .iter()
        .enumerate()
        .find(|(_, o)| o.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no objective {id:?}")))
}

/// The API's explanation (`key_results::explain`) as lines for people.
fn explanation_lines(e: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut lines = vec![
        ("Series".to_string(), text(&e["series"])),
        (
            "Aggregate".to_string(),
            match e["window"].as_str() {
                Some(w) => format!("{} over {w}", text(&e["aggregate"])),
                None => text(&e["aggregate"]),
            },
        ),
        (
            "Points used".to_string(),
            e["points_used"].as_array().map_or(0, Vec::len).to_string(),
        ),
        (
            "Baseline".to_string(),
            match e["baseline"]["value"].as_f64() {
                Some(v) => format!("{v}: {}", text(&e["baseline"]["source"])),
                None => text(&e["baseline"]["source"]),
            },
        ),
        ("Score".to_string(), text(&e["formula"])),
        ("Expected".to_string(), text(&e["expected"])),
        ("Status".to_string(), text(&e["status"])),
        ("Forecast".to_string(), text(&e["forecast"]["formula"])),
    ];
    for c in e["counter_metrics"].as_array().into_iter().flatten() {
        let test = c["test"]["summary"]
            .as_str()
            .map_or(String::new(), |s| format!(": {s}"));
        lines.push((
            format!("Counter metric {}", text(&c["series"])),
            format!(
                "{} ({} is better, tolerance {}, window {}){test}",
                text(&c["state"]),
                text(&c["better"]),
                text(&c["tolerance"]),
                text(&c["window"]),
            ),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selected(krs: &[usize]) -> Vec<Selected> {
        krs.iter()
            .enumerate()
            .map(|(o, &n)| Selected {
                objective: o,
                depth: 0,
                key_results: (0..n).collect(),
            })
            .collect()
    }

    #[test]
    fn pages_hold_whole_objectives_up_to_the_page_size() {
        assert_eq!(PAGE_KEY_RESULTS, 50);
        // 30 + 30 > 50: a page each; 30 + an objective without KRs (1);
        // 60 alone, larger than a page but never split.
        let pages = paginate(&selected(&[30, 30, 30, 0, 60]));
        assert_eq!(pages, vec![0..1, 1..2, 2..4, 4..5]);
        // 10 objectives of 5 fill one page exactly, the 11th starts the next.
        assert_eq!(paginate(&selected(&[5; 11])), vec![0..10, 10..11]);
        assert_eq!(
            paginate(&selected(&[])),
            Vec::<std::ops::Range<usize>>::new()
        );
    }
}
