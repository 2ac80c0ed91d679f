//! The status page at `/`: the organisation's objectives as a tree (each
//! nested under the objective it aligns to) with score and roll-up, and per
//! key result a score bar against the expected score, the forecast and the
//! probability of meeting the target, the status, the last update, its
//! dependencies with their status, and a sparkline of the score history.
//! Above them: a count per status, filters by team and status, and what is
//! firing now. The page holds at most a page of key results; `?page=N`
//! pages on.
//!
//! A pure renderer: the handler (`pages.rs`) gathers a [`StatusPage`] and
//! [`render`] turns it into one self-contained HTML5 document (inline CSS
//! and SVG, no JavaScript, nothing fetched), so it can be tested without a
//! server and read without a network. It refreshes itself every 30
//! seconds with a `<meta http-equiv="refresh">`. `kr_page.rs` renders a
//! key result's own page with the helpers here.

use std::fmt::{self, Write};

use crate::config::objective::Target;
use crate::definition::Revision;
use crate::model::Timestamp;
use crate::scoring::Status;

/// Everything the status page shows, gathered at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusPage {
    /// When the scores were read; relative times ("3 min ago") count from here.
    pub generated_at: Timestamp,
    /// This page's objectives, parents before children (see
    /// [`ObjectiveView::depth`]).
    pub objectives: Vec<ObjectiveView>,
    /// Counts over every key result the filter selects, on all pages.
    pub summary: Summary,
    /// What the page is filtered by.
    pub filter: Filter,
    /// Every team, for the filter.
    pub teams: Vec<String>,
    /// The alerts firing now that fired last, at most
    /// [`MAX_LISTED_ALERTS`].
    pub alerts: Vec<AlertView>,
    /// How many alerts fire now in all.
    pub alerts_total: usize,
    /// Which page this is (from 1) of how many.
    pub page: (usize, usize),
}

impl StatusPage {
    /// A one-page status page of `objectives`, unfiltered, with its
    /// summary counted from them.
    pub fn new(generated_at: Timestamp, objectives: Vec<ObjectiveView>) -> StatusPage {
        let mut summary = Summary::default();
        for kr in objectives.iter().flat_map(|o| &o.key_results) {
            summary.add(kr);
        }
        StatusPage {
            generated_at,
            objectives,
            summary,
            page: (1, 1),
            ..StatusPage::default()
        }
    }
}

/// How many key results there are, per status, and how many alert.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Key results counted.
    pub total: usize,
    /// Per status, in [`Status::ALL`] order.
    pub by_status: [usize; 5],
    /// Key results with a firing guardrail alert.
    pub alerting: usize,
    /// Objectives counted.
    pub objectives: usize,
}

impl Summary {
    /// Counts one key result.
    pub fn add(&mut self, kr: &KrView) {
        self.count(kr.status, kr.alerting);
    }

    /// Counts one key result of `status`.
    pub fn count(&mut self, status: Status, alerting: bool) {
        self.total += 1;
        if let Some(i) = Status::ALL.iter().position(|s| *s == status) {
            self.by_status[i] += 1;
        }
        self.alerting += usize::from(alerting);
    }
}

/// The page's filters (`?team=`, `?status=`); `None` shows all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    /// Only this team's objectives.
    pub team: Option<String>,
    /// Only key results with this status (and their objectives).
    pub status: Option<Status>,
}

impl Filter {
    /// Whether anything is filtered.
    pub fn is_set(&self) -> bool {
        self.team.is_some() || self.status.is_some()
    }

    /// The query string of this filter on page `page` (1 gives none).
    pub fn query(&self, page: usize) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.team {
            parts.push(format!("team={}", url_escape(t)));
        }
        if let Some(s) = self.status {
            parts.push(format!("status={}", s.as_str()));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&amp;"))
        }
    }
}

/// One objective and its key results.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectiveView {
    /// Objective id.
    pub id: String,
    /// The objective's statement (`objective:` in YAML).
    pub statement: String,
    /// The owning team.
    pub team: String,
    /// The period's label, e.g. `2026-Q4`.
    pub period: String,
    /// Weight-averaged KR score in [0, 1] (without KRs of its own: the
    /// roll-up).
    pub score: f64,
    /// The roll-up over the objectives aligned to it.
    pub rollup: f64,
    /// How deep it sits under the page's first objective: 0, or at most
    /// one more than the objective before it (it nests in that one's tree).
    pub depth: usize,
    /// The objective it aligns to: id and statement.
    pub aligns_to: Option<(String, String)>,
    /// How many objectives align to it.
    pub children: usize,
    /// Whether it has key results of its own (the filter may show none).
    pub has_key_results: bool,
    /// Key results, in the order they are shown.
    pub key_results: Vec<KrView>,
}

/// One key result's row.
#[derive(Debug, Clone, PartialEq)]
pub struct KrView {
    /// Key result id (unique within its objective).
    pub id: String,
    /// The key result's title.
    pub title: String,
    /// Its status.
    pub status: Status,
    /// Score in [0, 1].
    pub score: f64,
    /// Expected score now, in [0, 1]; drawn as a marker on the score bar.
    pub expected: f64,
    /// The KR's current value; `None` without data.
    pub value: Option<f64>,
    /// The target, or the threshold of a maintain KR.
    pub target: Target,
    /// ts of the newest point; `None` when there is none.
    pub updated_at: Option<Timestamp>,
    /// The forecast score at period end; `None` with fewer than 3 points.
    pub forecast: Option<f64>,
    /// The probability that the value at period end meets the target;
    /// `None` with fewer than 3 points.
    pub forecast_probability: Option<f64>,
    /// Score over time, ascending by time.
    pub history: Vec<(Timestamp, f64)>,
    /// Whether a counter metric's guardrail alert is firing.
    pub alerting: bool,
    /// The key results it depends on.
    pub dependencies: Vec<DependencyView>,
    /// Its revisions, oldest first: marked on the history chart.
    pub revisions: Vec<Revision>,
    /// The latest check-in's confidence and note, if any.
    pub check_in: Option<(f64, String)>,
}

/// A key result another depends on, as the dependent's row shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyView {
    /// `objective/kr`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its team.
    pub team: String,
    /// Its status now; `None` before it is scored.
    pub status: Option<Status>,
}

impl DependencyView {
    /// Whether it puts its dependents at risk: `off_track`, `stale` or
    /// `no_data` (SPEC §4, the dependency alert).
    pub fn at_risk(&self) -> bool {
        self.status.is_some_and(Status::endangers_dependents)
    }
}

/// A firing alert, as the alerts panel lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    /// `counter_metric`, `stale_data`, `dependency`, ...
    pub kind: String,
    /// The objective.
    pub objective: String,
    /// The key result.
    pub key_result: String,
    /// Its one line for people.
    pub summary: String,
    /// When it fired.
    pub fired_at: Timestamp,
    /// When it resolved; `None` while firing.
    pub resolved_at: Option<Timestamp>,
}

/// The page's `id` of a key result's row: `kr-{objective}-{kr}`.
pub fn row_id(objective: &str, kr: &str) -> String {
    format!("kr-{objective}-{kr}")
}

/// The address of a key result's own page.
pub fn kr_href(objective: &str, kr: &str) -> String {
    format!("/key-results/{}/{}", url_escape(objective), url_escape(kr))
}

/// Renders the page as a complete HTML5 document.
pub fn render(page: &StatusPage) -> String {
    let mut out = String::with_capacity(16 * 1024);
    write_page(&mut out, page).expect("writing to a String cannot fail");
    out
}

/// Seconds between automatic reloads.
const REFRESH_SECS: u32 = 30;

/// Alerts the panel lists at most; the API lists them all.
pub const MAX_LISTED_ALERTS: usize = 50;

/// Sparkline geometry, in SVG user units (= CSS pixels).
const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 30.0;
const SPARK_PAD: f64 = 3.0;

/// The document's start: `<head>` with the stylesheet, then `<body>`.
pub(super) fn write_head(out: &mut String, title: &str) -> fmt::Result {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(title)
    )
}

/// The document's end: the footer.
pub(super) fn write_footer(out: &mut String, generated_at: Timestamp) -> fmt::Result {
    write!(
        out,
        "<footer>Generated {} by okrd · refreshes every {REFRESH_SECS} s · \
         <a href=\"/\">all objectives</a> · \
         <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/api/v1/key-results\">/api/v1/key-results</a> · \
         <a href=\"/api/v1/alignment\">/api/v1/alignment</a></footer>\n\
         </body>\n</html>\n",
        time_element(generated_at, &absolute(generated_at)),
    )
}

fn write_page(out: &mut String, page: &StatusPage) -> fmt::Result {
    write_head(out, "okrd · key results")?;
    write_header(out, page)?;
    write_filters(out, page)?;
    write_alerts(out, page)?;
    out.push_str("<main>\n");
    if page.objectives.is_empty() {
        if page.filter.is_set() {
            out.push_str("<p class=\"empty\">No objective matches the filter.</p>\n");
        } else {
            out.push_str(
                "<p class=\"empty\">No objectives yet: add YAML files under \
                 <code>config/objectives/</code>.</p>\n",
            );
        }
    }
    // Each objective's section stays open while the objectives aligned to
    // it (deeper, right after it) are written inside.
    let mut open: Vec<usize> = Vec::new();
    for objective in &page.objectives {
        while open.last().is_some_and(|&d| d >= objective.depth) {
            open.pop();
            out.push_str("</div>\n</section>\n");
        }
        write_objective(out, objective, page.generated_at)?;
        out.push_str("<div class=\"aligned\">\n");
        open.push(objective.depth);
    }
    for _ in open {
        out.push_str("</div>\n</section>\n");
    }
    write_pager(out, page)?;
    out.push_str("</main>\n");
    write_footer(out, page.generated_at)
}

/// The page title and a count of key results per status, each a link to
/// the page filtered by it.
fn write_header(out: &mut String, page: &StatusPage) -> fmt::Result {
    let s = &page.summary;
    write!(
        out,
        "<header class=\"top\">\n<h1><a href=\"/\">okrd</a> <span>key results</span></h1>\n\
         <ul class=\"summary\">\n<li class=\"total\"><b>{}</b> key result{}</li>\n",
        s.total,
        if s.total == 1 { "" } else { "s" }
    )?;
    for (status, &n) in Status::ALL.iter().zip(&s.by_status) {
        if n > 0 {
            let filter = Filter {
                status: Some(*status),
                ..page.filter.clone()
            };
            writeln!(
                out,
                "<li class=\"chip s-{}\"><a href=\"/{}\"><b>{n}</b> {}</a></li>",
                status.as_str(),
                filter.query(1),
                label(*status)
            )?;
        }
    }
    if s.alerting > 0 {
        writeln!(
            out,
            "<li class=\"chip alerting\"><b>{}</b> guardrail alert{}</li>",
            s.alerting,
            if s.alerting == 1 { "" } else { "s" }
        )?;
    }
    out.push_str("</ul>\n</header>\n");
    Ok(())
}

/// The filter form (a plain GET form: no script) and what it selected.
fn write_filters(out: &mut String, page: &StatusPage) -> fmt::Result {
    out.push_str("<nav class=\"filters\">\n<form method=\"get\" action=\"/\">\n<label>Team <select name=\"team\">\n<option value=\"\">all teams</option>\n");
    for team in &page.teams {
        let selected = page.filter.team.as_deref() == Some(team.as_str());
        writeln!(
            out,
            "<option value=\"{t}\"{}>{t}</option>",
            if selected { " selected" } else { "" },
            t = esc(team)
        )?;
    }
    out.push_str("</select></label>\n<label>Status <select name=\"status\">\n<option value=\"\">any status</option>\n");
    for status in Status::ALL {
        writeln!(
            out,
            "<option value=\"{}\"{}>{}</option>",
            status.as_str(),
            if page.filter.status == Some(status) {
                " selected"
            } else {
                ""
            },
            label(status)
        )?;
    }
    out.push_str("</select></label>\n<button type=\"submit\">Filter</button>\n");
    if page.filter.is_set() {
        out.push_str("<a class=\"clear\" href=\"/\">clear</a>\n");
    }
    write!(
        out,
        "</form>\n<p class=\"showing\">{} objective{}, {} key result{}",
        page.summary.objectives,
        if page.summary.objectives == 1 {
            ""
        } else {
            "s"
        },
        page.summary.total,
        if page.summary.total == 1 { "" } else { "s" },
    )?;
    if page.page.1 > 1 {
        write!(out, " · page {} of {}", page.page.0, page.page.1)?;
    }
    out.push_str("</p>\n</nav>\n");
    Ok(())
}

/// What is firing now.
fn write_alerts(out: &mut String, page: &StatusPage) -> fmt::Result {
    out.push_str("<section class=\"alerts\" id=\"alerts\">\n<h2>Firing now</h2>\n");
    if page.alerts.is_empty() {
        out.push_str("<p class=\"empty\">No alert is firing.</p>\n</section>\n");
        return Ok(());
    }
    out.push_str("<ul>\n");
    for a in page.alerts.iter().take(MAX_LISTED_ALERTS) {
        writeln!(
            out,
            "<li class=\"alert k-{kind}\"><span class=\"kind\">{kind_label}</span> \
             <a href=\"{href}\">{o}/{kr}</a> {summary} <span class=\"since\">since {since}</span></li>",
            kind = esc(&a.kind),
            kind_label = esc(&a.kind.replace('_', " ")),
            href = kr_href(&a.objective, &a.key_result),
            o = esc(&a.objective),
            kr = esc(&a.key_result),
            summary = esc(&a.summary),
            since = time_element(a.fired_at, &relative(a.fired_at, page.generated_at)),
        )?;
    }
    out.push_str("</ul>\n");
    let listed = page.alerts.len().min(MAX_LISTED_ALERTS);
    let total = page.alerts_total.max(page.alerts.len());
    if total > listed {
        writeln!(
            out,
            "<p class=\"more\">and {} more: <a href=\"/api/v1/alerts\">/api/v1/alerts</a></p>",
            total - listed
        )?;
    }
    out.push_str("</section>\n");
    Ok(())
}

/// Links to the previous and next page, when there are several.
fn write_pager(out: &mut String, page: &StatusPage) -> fmt::Result {
    let (at, of) = page.page;
    if of <= 1 {
        return Ok(());
    }
    out.push_str("<nav class=\"pager\">");
    if at > 1 {
        write!(
            out,
            "<a rel=\"prev\" href=\"/{}\">← previous</a>",
            page.filter.query(at - 1)
        )?;
    }
    write!(out, "<span>page {at} of {of}</span>")?;
    if at < of {
        write!(
            out,
            "<a rel=\"next\" href=\"/{}\">next →</a>",
            page.filter.query(at + 1)
        )?;
    }
    out.push_str("</nav>\n");
    Ok(())
}

/// An objective's section, open: its KRs and, after [`write_page`] closes
/// it, the objectives aligned to it.
fn write_objective(out: &mut String, o: &ObjectiveView, now: Timestamp) -> fmt::Result {
    let score = unit(o.score);
    let aligns = match &o.aligns_to {
        Some((id, statement)) => format!(
            " · aligned to <a href=\"#objective-{id}\" title=\"{statement}\">{id}</a>",
            id = esc(id),
            statement = esc(statement)
        ),
        None => String::new(),
    };
    write!(
        out,
        "<section class=\"objective\" id=\"objective-{id}\" data-depth=\"{depth}\">\n\
         <div class=\"ohead\">\n<div>\n<h2>{statement}</h2>\n\
         <p class=\"meta\"><code>{id}</code> · team <a href=\"/?team={team_q}\"><b>{team}</b></a> · {period}{aligns}</p>\n</div>\n\
         <div class=\"oscore\" title=\"objective score: weighted average of its key results\">\
         <span class=\"num\">{score:.2}</span>\
         <div class=\"bar\"><div class=\"fill\" style=\"width:{pct:.1}%\"></div></div>\
         <span class=\"caption\">{caption}</span></div>\n</div>\n",
        id = esc(&o.id),
        depth = o.depth,
        statement = esc(&o.statement),
        team = esc(&o.team),
        team_q = url_escape(&o.team),
        period = esc(&o.period),
        pct = score * 100.0,
        caption = if o.children > 0 {
            format!(
                "objective score · roll-up <b class=\"rollup\">{:.2}</b> over {} aligned",
                unit(o.rollup),
                o.children
            )
        } else {
            "objective score".to_string()
        },
    )?;
    if o.key_results.is_empty() {
        let why = if !o.has_key_results {
            "No key results of its own: its score is the roll-up of the objectives aligned to it."
        } else {
            "No key result matches the filter."
        };
        writeln!(out, "<p class=\"empty\">{why}</p>")?;
        return Ok(());
    }
    out.push_str(
        "<div class=\"cols\" aria-hidden=\"true\"><span>Key result · value → target</span>\
         <span>Score <i class=\"legend\"></i> expected</span><span>Status</span>\
         <span>Updated</span><span>Score history</span></div>\n<ol class=\"krs\">\n",
    );
    for kr in &o.key_results {
        write_kr(out, &o.id, kr, now)?;
    }
    out.push_str("</ol>\n");
    Ok(())
}

fn write_kr(out: &mut String, objective: &str, kr: &KrView, now: Timestamp) -> fmt::Result {
    let status = kr.status.as_str();
    let score = unit(kr.score);
    let expected = unit(kr.expected);
    let dependency_risk = kr.dependencies.iter().any(DependencyView::at_risk);
    write!(
        out,
        "<li class=\"kr s-{status}{alerting}{dep_class}\" id=\"{row}\" data-status=\"{status}\">\n\
         <div class=\"what\"><div class=\"title\"><a href=\"{href}\">{title}</a></div>\
         <div class=\"sub\"><code>{id}</code> · {value} → {target}{forecast}{tag}{dep_tag}</div>",
        alerting = if kr.alerting { " alerting" } else { "" },
        dep_class = if dependency_risk { " dep-risk" } else { "" },
        row = esc(&row_id(objective, &kr.id)),
        href = kr_href(objective, &kr.id),
        title = esc(&kr.title),
        tag = if kr.alerting {
            " <span class=\"tag-alert\" title=\"a counter metric is degrading while this key \
             result moves\">⚠ counter metric degraded</span>"
        } else {
            ""
        },
        dep_tag = if dependency_risk {
            " <span class=\"tag-alert tag-dep\" title=\"a key result this one depends on is \
             off track, stale or without data\">⚠ dependency at risk</span>"
        } else {
            ""
        },
        id = esc(&kr.id),
        forecast = forecast(kr.forecast, kr.forecast_probability),
        value = kr.value.map_or_else(|| "—".to_string(), number),
        target = target(&kr.target),
    )?;
    write_dependencies(out, &kr.dependencies)?;
    write!(
        out,
        "</div>\n\
         <div class=\"score\"><div class=\"bar\" role=\"img\" \
         aria-label=\"score {score:.2}, expected {expected:.2}\">\
         <div class=\"fill\" style=\"width:{score_pct:.1}%\"></div>\
         <div class=\"expected\" style=\"left:{expected_pct:.1}%\" \
         title=\"expected {expected:.2}\"></div></div>\
         <span class=\"num\">{score:.2}</span></div>\n\
         <div><span class=\"badge s-{status}\">{label}</span></div>\n\
         <div class=\"updated\">{updated}</div>\n<div>",
        score_pct = score * 100.0,
        expected_pct = expected * 100.0,
        label = label(kr.status),
        updated = match kr.updated_at {
            Some(at) => format!("updated {}", time_element(at, &relative(at, now))),
            None => "updated never".to_string(),
        },
    )?;
    write_sparkline(
        out,
        &kr.history,
        &revision_marks(&kr.history, &kr.revisions),
    )?;
    write_check_in(out, kr)?;
    out.push_str("</div>\n</li>\n");
    Ok(())
}

/// "depends on" and each dependency with its status badge.
pub(super) fn write_dependencies(out: &mut String, deps: &[DependencyView]) -> fmt::Result {
    if deps.is_empty() {
        return Ok(());
    }
    out.push_str("<ul class=\"deps\"><li class=\"lead\">depends on</li>");
    for d in deps {
        let (objective, kr) = d.id.split_once('/').unwrap_or((&d.id, ""));
        let (class, text) = match d.status {
            Some(s) => (s.as_str(), label(s)),
            None => ("no_data", "not scored"),
        };
        write!(
            out,
            "<li class=\"dep s-{class}{risk}\" data-dependency=\"{id}\" data-status=\"{class}\">\
             <a href=\"{href}\" title=\"{title} (team {team})\">{id}</a> \
             <span class=\"badge s-{class}\">{text}</span></li>",
            risk = if d.at_risk() { " at-risk" } else { "" },
            id = esc(&d.id),
            href = kr_href(objective, kr),
            title = esc(&d.title),
            team = esc(&d.team),
        )?;
    }
    out.push_str("</ul>");
    Ok(())
}

/// An SVG polyline of the score (0 at the bottom, 1 at the top) over time,
/// or a dashed flat line when there are fewer than two points.
pub(super) fn write_sparkline(
    out: &mut String,
    history: &[(Timestamp, f64)],
    marks: &str,
) -> fmt::Result {
    let open = format!(
        "<svg class=\"spark\" width=\"{SPARK_W}\" height=\"{SPARK_H}\" \
         viewBox=\"0 0 {SPARK_W} {SPARK_H}\" role=\"img\""
    );
    let Some(points) = sparkline_points(history) else {
        let y = SPARK_H - SPARK_PAD;
        return write!(
            out,
            "{open} aria-label=\"no score history yet\"><title>no score history yet</title>\
             <line class=\"placeholder\" x1=\"{SPARK_PAD}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/></svg>",
            x2 = SPARK_W - SPARK_PAD,
        );
    };
    let (first, last) = (history[0].1, history[history.len() - 1].1);
    let summary = format!(
        "score history: {:.2} → {:.2}, {} changes",
        unit(first),
        unit(last),
        history.len()
    );
    let (lx, ly) = points.last().copied().expect("at least two points");
    let coords: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    write!(
        out,
        "{open} aria-label=\"{summary}\"><title>{summary}</title>\
         <line class=\"guide\" x1=\"0\" y1=\"{SPARK_PAD}\" x2=\"{SPARK_W}\" y2=\"{SPARK_PAD}\"/>\
         <line class=\"guide\" x1=\"0\" y1=\"{bottom}\" x2=\"{SPARK_W}\" y2=\"{bottom}\"/>\
         <polyline points=\"{points}\"/><circle cx=\"{lx:.1}\" cy=\"{ly:.1}\" r=\"2.5\"/>{marks}</svg>",
        bottom = SPARK_H - SPARK_PAD,
        points = coords.join(" "),
    )
}

/// A vertical mark on the history chart at each revision within the
/// history's span, titled with what changed (SPEC §4: the status page
/// shows each revision: its time, each field from → to, easier or not).
fn revision_marks(history: &[(Timestamp, f64)], revisions: &[Revision]) -> String {
    let (Some(t0), Some(t1)) = (
        history.iter().map(|h| h.0).min(),
        history.iter().map(|h| h.0).max(),
    ) else {
        return String::new();
    };
    let span = (t1 - t0).num_milliseconds() as f64;
    let inner_w = SPARK_W - 2.0 * SPARK_PAD;
    let mut out = String::new();
    for r in revisions {
        let frac = if span > 0.0 {
            ((r.at - t0).num_milliseconds() as f64 / span).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let x = SPARK_PAD + frac * inner_w;
        let changes: Vec<String> = r
            .changes
            .iter()
            .map(|c| format!("{} {} → {}", c.field, c.from, c.to))
            .collect();
        let _ = write!(
            out,
            "<line class=\"revision{easier}\" x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{SPARK_H}\">\
             <title>revision {n} at {at}{easier_text}: {changes}</title></line>",
            easier = if r.easier { " easier" } else { "" },
            easier_text = if r.easier { " (easier)" } else { "" },
            n = r.revision,
            at = esc(&absolute(r.at)),
            changes = esc(&changes.join(", ")),
        );
    }
    out
}

/// The latest check-in beside the chart: confidence and note.
fn write_check_in(out: &mut String, kr: &KrView) -> fmt::Result {
    let Some((confidence, note)) = &kr.check_in else {
        return Ok(());
    };
    write!(
        out,
        "<div class=\"check-in\" title=\"{note}\">confidence {pct:.0}%</div>",
        note = esc(note),
        pct = unit(*confidence) * 100.0,
    )
}

/// The sparkline's vertices in SVG coordinates, ordered by time; `None` with
/// fewer than two points. Points sharing one timestamp are spread evenly.
pub(super) fn sparkline_points(history: &[(Timestamp, f64)]) -> Option<Vec<(f64, f64)>> {
    if history.len() < 2 {
        return None;
    }
    let mut sorted: Vec<(Timestamp, f64)> = history.to_vec();
    sorted.sort_by_key(|&(ts, _)| ts);
    let t0 = sorted[0].0;
    let span = (sorted[sorted.len() - 1].0 - t0).num_milliseconds() as f64;
    let last = (sorted.len() - 1) as f64;
    let inner_w = SPARK_W - 2.0 * SPARK_PAD;
    let inner_h = SPARK_H - 2.0 * SPARK_PAD;
    Some(
        sorted
            .iter()
            .enumerate()
            .map(|(i, &(ts, score))| {
                let frac = if span > 0.0 {
                    (ts - t0).num_milliseconds() as f64 / span
                } else {
                    i as f64 / last
                };
                (
                    SPARK_PAD + frac * inner_w,
                    SPARK_PAD + (1.0 - unit(score)) * inner_h,
                )
            })
            .collect(),
    )
}

/// " · forecast 0.85, 72% likely": the forecast score at period end beside
/// the probability of meeting the target; nothing without a forecast.
pub(super) fn forecast(score: Option<f64>, probability: Option<f64>) -> String {
    let likely = probability.map(|p| {
        format!(
            "<span class=\"likely\" title=\"probability that the value at period end meets the \
             target\">{:.0}% likely</span>",
            unit(p) * 100.0
        )
    });
    match (score, likely) {
        (None, None) => String::new(),
        (Some(s), None) => format!(" · forecast {:.2}", unit(s)),
        (None, Some(l)) => format!(" · {l}"),
        (Some(s), Some(l)) => format!(" · forecast {:.2}, {l}", unit(s)),
    }
}

/// A status as people read it.
pub(super) fn label(status: Status) -> &'static str {
    match status {
        Status::OnTrack => "on track",
        Status::AtRisk => "at risk",
        Status::OffTrack => "off track",
        Status::Stale => "stale",
        Status::NoData => "no data",
    }
}

/// Where the KR is heading: the target, or `≤ x` / `≥ x` for maintain KRs.
pub(super) fn target(target: &Target) -> String {
    match *target {
        Target::Value(v) => number(v),
        Target::AtMost(v) => format!("≤ {}", number(v)),
        Target::AtLeast(v) => format!("≥ {}", number(v)),
    }
}

/// A value with as many decimals as its size warrants, without trailing zeros.
pub(super) fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_string();
    }
    let a = v.abs();
    let decimals = match a {
        _ if a >= 10_000.0 => 0,
        _ if a >= 100.0 => 1,
        _ if a >= 1.0 => 2,
        _ => 3,
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// A `<time>` element showing `text`, with the exact instant as its
/// machine-readable value and tooltip.
pub(super) fn time_element(at: Timestamp, text: &str) -> String {
    let iso = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("<time datetime=\"{iso}\" title=\"{iso}\">{text}</time>")
}

/// "3 min ago" for recent instants, the date and time for older (or
/// future) ones.
pub(super) fn relative(at: Timestamp, now: Timestamp) -> String {
    let secs = (now - at).num_seconds();
    match secs {
        -59..=59 => "just now".to_string(),
        60..=3_599 => format!("{} min ago", secs / 60),
        3_600..=86_399 => format!("{} h ago", secs / 3_600),
        86_400..=1_209_599 => {
            let days = secs / 86_400;
            format!("{days} day{} ago", if days == 1 { "" } else { "s" })
        }
        _ => absolute(at),
    }
}

pub(super) fn absolute(at: Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Clamps to [0, 1]; NaN counts as 0.
pub(super) fn unit(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

/// Percent-escapes a path segment or query value (everything but
/// unreserved characters).
pub(super) fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole stylesheet. Each status sets `--c`, which the row's stripe,
/// score bar, badge and sparkline all use.
pub(super) const CSS: &str = include_str!("status_page.css");

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;

    fn now() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap()
    }

    fn kr(id: &str, status: Status) -> KrView {
        KrView {
            id: id.into(),
            title: format!("Key result {id}"),
            status,
            score: 0.4,
            expected: 0.5,
            value: Some(0.41),
            target: Target::Value(0.45),
            updated_at: Some(now() - TimeDelta::minutes(3)),
            forecast: None,
            forecast_probability: None,
            history: Vec::new(),
            alerting: false,
            dependencies: Vec::new(),
            revisions: Vec::new(),
            check_in: None,
        }
    }

    fn objective(id: &str, depth: usize, krs: Vec<KrView>) -> ObjectiveView {
        ObjectiveView {
            id: id.into(),
            statement: "Make onboarding effortless".into(),
            team: "growth".into(),
            period: "2026-Q4".into(),
            score: 0.5,
            rollup: 0.5,
            depth,
            has_key_results: !krs.is_empty(),
            key_results: krs,
            ..ObjectiveView::default()
        }
    }

    fn page(krs: Vec<KrView>) -> StatusPage {
        StatusPage::new(now(), vec![objective("onboarding", 0, krs)])
    }

    /// The `<li>` of one key result.
    fn row<'a>(html: &'a str, kr: &str) -> &'a str {
        let start = html
            .find(&format!("id=\"kr-onboarding-{kr}\""))
            .expect("row present");
        let end = start + html[start..].find("</li>").expect("row closed");
        &html[start..end]
    }

    #[test]
    fn is_a_complete_document_without_script_or_external_resources() {
        let html = render(&page(vec![kr("a", Status::OnTrack)]));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
        assert!(html.contains("<title>okrd · key results</title>"));
        assert!(html.contains("<a href=\"/metrics\">"));
        assert!(html.contains("<a href=\"/api/v1/key-results\">"));
        assert!(html.trim_end().ends_with("</html>"));
        let lower = html.to_lowercase();
        for forbidden in ["<script", "src=", "url(", "@import", "<link"] {
            assert!(!lower.contains(forbidden), "{forbidden} in page");
        }
    }

    #[test]
    fn escapes_every_user_string() {
        let mut evil = kr("x\"><b", Status::OnTrack);
        evil.title = "<script>alert('hi') & \"bye\"</script>".into();
        let mut p = page(vec![evil]);
        p.objectives[0].statement = "Grow <b>fast</b>".into();
        p.objectives[0].team = "a&b".into();
        p.objectives[0].period = "'q'".into();
        let html = render(&p);
        assert!(!html.contains("<script"));
        assert!(!html.contains("<b>fast"));
        assert!(
            html.contains("&lt;script&gt;alert(&#39;hi&#39;) &amp; &quot;bye&quot;&lt;/script&gt;")
        );
        assert!(html.contains("Grow &lt;b&gt;fast&lt;/b&gt;"));
        assert!(html.contains("<b>a&amp;b</b>"));
        assert!(html.contains("&#39;q&#39;"));
        assert!(html.contains("id=\"kr-onboarding-x&quot;&gt;&lt;b\""));
    }

    #[test]
    fn every_status_renders_its_badge() {
        let krs = Status::ALL
            .iter()
            .map(|&s| kr(s.as_str(), s))
            .collect::<Vec<_>>();
        let html = render(&page(krs));
        for (status, text) in [
            (Status::OnTrack, "on track"),
            (Status::AtRisk, "at risk"),
            (Status::OffTrack, "off track"),
            (Status::Stale, "stale"),
            (Status::NoData, "no data"),
        ] {
            let name = status.as_str();
            let row = row(&html, name);
            assert!(row.contains(&format!("data-status=\"{name}\"")), "{row}");
            assert!(
                row.contains(&format!("<span class=\"badge s-{name}\">{text}</span>")),
                "{row}"
            );
            // Each status has its own colour rule.
            assert!(CSS.contains(&format!(".s-{name} {{ --c:")), "{name}");
        }
    }

    #[test]
    fn expected_marker_and_fill_sit_at_their_fractions() {
        let mut a = kr("a", Status::AtRisk);
        a.score = 0.25;
        a.expected = 0.5;
        let mut b = kr("b", Status::OnTrack);
        b.score = 1.7; // clamped
        b.expected = -0.2; // clamped
        let html = render(&page(vec![a, b]));
        let a = row(&html, "a");
        assert!(
            a.contains("<div class=\"expected\" style=\"left:50.0%\""),
            "{a}"
        );
        assert!(
            a.contains("<div class=\"fill\" style=\"width:25.0%\">"),
            "{a}"
        );
        assert!(a.contains("<span class=\"num\">0.25</span>"), "{a}");
        let b = row(&html, "b");
        assert!(b.contains("style=\"left:0.0%\""), "{b}");
        assert!(b.contains("style=\"width:100.0%\""), "{b}");
    }

    #[test]
    fn sparkline_scales_score_to_height_and_time_to_width() {
        let t0 = now() - TimeDelta::days(4);
        let history = vec![
            (t0, 0.0),
            (t0 + TimeDelta::days(1), 0.5),
            (t0 + TimeDelta::days(4), 1.0),
        ];
        // x: 3 + fraction of the time span × 114; y: 3 + (1 - score) × 24.
        assert_eq!(
            sparkline_points(&history).unwrap(),
            vec![(3.0, 27.0), (31.5, 15.0), (117.0, 3.0)]
        );
        let mut k = kr("a", Status::OnTrack);
        k.history = history;
        let html = render(&page(vec![k]));
        assert!(html.contains("<polyline points=\"3.0,27.0 31.5,15.0 117.0,3.0\"/>"));
        assert!(html.contains("<circle cx=\"117.0\" cy=\"3.0\""));
    }

    #[test]
    fn sparkline_with_fewer_than_two_points_is_a_placeholder() {
        let mut one = kr("one", Status::OnTrack);
        one.history = vec![(now(), 0.3)];
        let none = kr("none", Status::NoData);
        let html = render(&page(vec![one, none]));
        for id in ["one", "none"] {
            let row = row(&html, id);
            assert!(row.contains("<title>no score history yet</title>"), "{row}");
            assert!(row.contains("class=\"placeholder\""), "{row}");
            assert!(!row.contains("<polyline"), "{row}");
        }
    }

    #[test]
    fn sparkline_spreads_points_sharing_a_timestamp() {
        let pts = sparkline_points(&[(now(), 0.0), (now(), 1.0)]).unwrap();
        assert_eq!(pts, vec![(3.0, 27.0), (117.0, 3.0)]);
    }

    #[test]
    fn updated_is_relative_to_generation_time() {
        let at = |d: TimeDelta| relative(now() - d, now());
        assert_eq!(at(TimeDelta::seconds(20)), "just now");
        assert_eq!(at(TimeDelta::minutes(3)), "3 min ago");
        assert_eq!(at(TimeDelta::hours(5)), "5 h ago");
        assert_eq!(at(TimeDelta::days(1)), "1 day ago");
        assert_eq!(at(TimeDelta::days(3)), "3 days ago");
        assert_eq!(at(TimeDelta::days(30)), "2026-10-16 12:00 UTC");
        assert_eq!(at(TimeDelta::hours(-2)), "2026-11-15 14:00 UTC");

        let mut never = kr("never", Status::NoData);
        never.updated_at = None;
        let html = render(&page(vec![kr("recent", Status::OnTrack), never]));
        assert!(row(&html, "recent").contains(
            "updated <time datetime=\"2026-11-15T11:57:00Z\" \
             title=\"2026-11-15T11:57:00Z\">3 min ago</time>"
        ));
        assert!(row(&html, "never").contains("updated never"));
    }

    #[test]
    fn value_and_target_read_naturally() {
        assert_eq!(number(0.41), "0.41");
        assert_eq!(number(325.73), "325.7");
        assert_eq!(number(300.0), "300");
        assert_eq!(number(0.123456), "0.123");
        assert_eq!(number(-0.0001), "0");
        assert_eq!(number(125_000.4), "125000");
        let mut maintain = kr("p99", Status::OffTrack);
        maintain.value = Some(325.7);
        maintain.target = Target::AtMost(300.0);
        let mut empty = kr("empty", Status::NoData);
        empty.value = None;
        let html = render(&page(vec![kr("a", Status::OnTrack), maintain, empty]));
        assert!(row(&html, "a").contains("<code>a</code> · 0.41 → 0.45"));
        assert!(row(&html, "p99").contains("· 325.7 → ≤ 300"));
        assert!(row(&html, "empty").contains("· — → 0.45"));
    }

    #[test]
    fn alerting_key_results_are_flagged() {
        let mut a = kr("a", Status::OnTrack);
        a.alerting = true;
        let html = render(&page(vec![a, kr("b", Status::OnTrack)]));
        assert!(row(&html, "a").contains("counter metric degraded"));
        assert!(row(&html, "a").starts_with("id=\"kr-onboarding-a\""));
        assert!(html.contains("class=\"kr s-on_track alerting\""));
        assert!(!row(&html, "b").contains("counter metric degraded"));
        assert!(html.contains("<b>1</b> guardrail alert</li>"));
    }

    #[test]
    fn revisions_are_marked_on_the_chart_and_the_check_in_shown() {
        let mut k = kr("a", Status::OnTrack);
        k.history = vec![(now() - TimeDelta::days(2), 0.2), (now(), 0.6)];
        k.revisions = vec![Revision {
            revision: 1,
            at: now() - TimeDelta::days(1),
            changes: vec![crate::definition::FieldChange {
                field: "target".into(),
                from: serde_json::json!({"value": 0.45}),
                to: serde_json::json!({"value": 0.4}),
            }],
            easier: true,
        }];
        k.check_in = Some((0.7, "<on it>".into()));
        let html = render(&page(vec![k]));
        let row = row(&html, "a");
        assert!(
            row.contains("<line class=\"revision easier\" x1=\"60.0\""),
            "{row}"
        );
        assert!(row.contains("revision 1 at"), "{row}");
        assert!(
            row.contains("target {&quot;value&quot;:0.45} → {&quot;value&quot;:0.4}"),
            "{row}"
        );
        assert!(
            row.contains("title=\"&lt;on it&gt;\">confidence 70%"),
            "{row}"
        );
    }

    #[test]
    fn empty_page_says_what_to_do() {
        let html = render(&StatusPage::new(now(), Vec::new()));
        assert!(html.contains("No objectives yet"));
        assert!(html.contains("<b>0</b> key results"));
    }

    /// The ids of the objective sections, each with the ids of the
    /// sections it directly contains, in document order.
    fn nesting(html: &str) -> Vec<(String, Option<String>)> {
        let mut open: Vec<String> = Vec::new();
        let mut out = Vec::new();
        let mut rest = html;
        loop {
            let next_open = rest.find("<section class=\"objective\" id=\"objective-");
            let next_close = rest.find("</section>");
            match (next_open, next_close) {
                (Some(o), c) if c.is_none_or(|c| o < c) => {
                    let at = &rest[o + "<section class=\"objective\" id=\"objective-".len()..];
                    let id = at[..at.find('"').unwrap()].to_string();
                    out.push((id.clone(), open.last().cloned()));
                    open.push(id);
                    rest = at;
                }
                (_, Some(c)) => {
                    open.pop();
                    rest = &rest[c + "</section>".len()..];
                }
                _ => break,
            }
        }
        out
    }

    #[test]
    fn objectives_nest_under_the_objectives_they_align_to() {
        let company = ObjectiveView {
            children: 2,
            rollup: 0.625,
            score: 0.625,
            ..objective("company", 0, vec![])
        };
        let mut a = objective("a", 1, vec![kr("x", Status::OnTrack)]);
        a.aligns_to = Some(("company".into(), "Win".into()));
        let mut a1 = objective("a1", 2, vec![kr("y", Status::OnTrack)]);
        a1.aligns_to = Some(("a".into(), "A".into()));
        let mut b = objective("b", 1, vec![kr("z", Status::OffTrack)]);
        b.aligns_to = Some(("company".into(), "Win".into()));
        let other = objective("other", 0, vec![kr("w", Status::AtRisk)]);
        let html = render(&StatusPage::new(now(), vec![company, a, a1, b, other]));
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            nesting(&html),
            vec![
                ("company".to_string(), None),
                ("a".to_string(), some("company")),
                ("a1".to_string(), some("a")),
                ("b".to_string(), some("company")),
                ("other".to_string(), None),
            ]
        );
        assert!(html.contains("roll-up <b class=\"rollup\">0.62</b> over 2 aligned"));
        assert!(html.contains("No key results of its own: its score is the roll-up"));
        assert!(
            html.contains("aligned to <a href=\"#objective-company\" title=\"Win\">company</a>")
        );
        assert_eq!(
            html.matches("<section").count(),
            html.matches("</section>").count()
        );
    }

    #[test]
    fn a_dependency_at_risk_shows_on_the_key_result_that_needs_it() {
        let mut needs = kr("needs", Status::OnTrack);
        needs.dependencies = vec![
            DependencyView {
                id: "platform/latency".into(),
                title: "Keep p99 under 300 ms".into(),
                team: "platform".into(),
                status: Some(Status::OffTrack),
            },
            DependencyView {
                id: "platform/uptime".into(),
                title: "Keep uptime".into(),
                team: "platform".into(),
                status: Some(Status::AtRisk),
            },
        ];
        let calm = DependencyView {
            status: Some(Status::AtRisk),
            ..needs.dependencies[1].clone()
        };
        let mut fine = kr("fine", Status::OnTrack);
        fine.dependencies = vec![calm];
        let html = render(&page(vec![needs, fine]));
        let start = html.find("id=\"kr-onboarding-needs\"").unwrap();
        let end = html.find("id=\"kr-onboarding-fine\"").unwrap();
        let needs_row = &html[start..end];
        assert!(needs_row.contains("⚠ dependency at risk"), "{needs_row}");
        assert!(needs_row.contains(
            "<li class=\"dep s-off_track at-risk\" data-dependency=\"platform/latency\" data-status=\"off_track\">"
        ));
        assert!(needs_row.contains("<a href=\"/key-results/platform/latency\""));
        assert!(needs_row.contains("data-dependency=\"platform/uptime\" data-status=\"at_risk\""));
        let fine_row = &html[end..];
        assert!(!fine_row[..fine_row.find("</ol>").unwrap()].contains("dependency at risk"));
    }

    #[test]
    fn filters_and_pages_link_to_each_other() {
        let mut p = page(vec![kr("a", Status::OffTrack)]);
        p.teams = vec!["growth".into(), "a&b".into()];
        p.filter = Filter {
            team: Some("a&b".into()),
            status: Some(Status::OffTrack),
        };
        p.page = (2, 3);
        let html = render(&p);
        assert!(html.contains("<option value=\"a&amp;b\" selected>a&amp;b</option>"));
        assert!(html.contains("<option value=\"off_track\" selected>off track</option>"));
        assert!(html.contains("<a rel=\"prev\" href=\"/?team=a%26b&amp;status=off_track\">"));
        assert!(
            html.contains("<a rel=\"next\" href=\"/?team=a%26b&amp;status=off_track&amp;page=3\">")
        );
        assert!(html.contains("page 2 of 3"));
        assert!(html.contains("<a class=\"clear\" href=\"/\">clear</a>"));
    }

    #[test]
    fn the_alerts_panel_lists_what_fires() {
        let mut p = page(vec![kr("a", Status::OnTrack)]);
        assert!(render(&p).contains("No alert is firing."));
        p.alerts = (0..MAX_LISTED_ALERTS + 2)
            .map(|i| AlertView {
                kind: "dependency".into(),
                objective: "onboarding".into(),
                key_result: format!("k{i}"),
                summary: "<it> is off track".into(),
                fired_at: now() - TimeDelta::minutes(5),
                resolved_at: None,
            })
            .collect();
        let html = render(&p);
        assert_eq!(
            html.matches("<li class=\"alert k-dependency\">").count(),
            MAX_LISTED_ALERTS
        );
        assert!(html.contains(
            "<a href=\"/key-results/onboarding/k0\">onboarding/k0</a> &lt;it&gt; is off track"
        ));
        assert!(html.contains("and 2 more"));
    }
}
