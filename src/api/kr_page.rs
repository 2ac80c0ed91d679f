//! A key result's own page at `/key-results/{objective}/{kr}`: its score
//! and status, how the score was computed (the explanation the API gives),
//! a chart of its score history against the expected score over the
//! period, the key results it depends on and those that depend on it, with
//! their status, and the alerts about it.
//!
//! A pure renderer like `status_page.rs`, whose stylesheet and helpers it
//! uses; the handler in `pages.rs` gathers the [`KrPage`].

use std::fmt::{self, Write};

use super::status_page::{
    absolute, esc, forecast, label, number, relative, target, time_element, unit,
    write_dependencies, write_footer, write_head, AlertView, DependencyView, KrView,
};
use crate::model::Timestamp;

/// Everything a key result's page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct KrPage {
    /// When it was gathered.
    pub generated_at: Timestamp,
    /// The objective's id, statement, team and period label.
    pub objective: (String, String, String, String),
    /// The key result, its full score history and its dependencies.
    pub kr: KrView,
    /// The key results that depend on this one.
    pub dependents: Vec<DependencyView>,
    /// The period's start and (exclusive) end.
    pub period: (Timestamp, Timestamp),
    /// The expected score at the period's end: 1, or 0.7 for an
    /// aspirational KR.
    pub expected_at_end: f64,
    /// The explanation, as (what, how) lines.
    pub explanation: Vec<(String, String)>,
    /// Its latest check-ins, newest first: when, confidence, note, author.
    pub check_ins: Vec<(Timestamp, f64, String, Option<String>)>,
    /// Alerts about it: firing, and resolved within the last day.
    pub alerts: Vec<AlertView>,
}

/// Chart geometry, in SVG user units.
const CHART_W: f64 = 960.0;
const CHART_H: f64 = 260.0;
const LEFT: f64 = 36.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// Renders the page as a complete HTML5 document.
pub fn render(page: &KrPage) -> String {
    let mut out = String::with_capacity(32 * 1024);
    write_page(&mut out, page).expect("writing to a String cannot fail");
    out
}

fn write_page(out: &mut String, page: &KrPage) -> fmt::Result {
    let kr = &page.kr;
    let (objective, statement, team, period) = &page.objective;
    write_head(out, &format!("okrd · {objective}/{}", kr.id))?;
    let status = kr.status.as_str();
    write!(
        out,
        "<header class=\"top\">\n<h1><a href=\"/\">okrd</a> <span>key result</span></h1>\n</header>\n\
         <main class=\"krpage s-{status}\" id=\"kr-page\" data-status=\"{status}\">\n\
         <section class=\"what\">\n<h2>{title}</h2>\n\
         <p class=\"meta\"><code>{objective}/{id}</code> · objective \
         <a href=\"/#objective-{objective}\">{statement}</a> · team \
         <a href=\"/?team={team}\"><b>{team}</b></a> · {period}</p>\n\
         <dl>\n<dt>Score</dt><dd><span class=\"num\" id=\"score\">{score:.2}</span> \
         (expected {expected:.2}) <span class=\"badge s-{status}\">{label}</span></dd>\n\
         <dt>Value → target</dt><dd>{value} → {target}{forecast}</dd>\n\
         <dt>Updated</dt><dd>{updated}</dd>\n</dl>\n</section>\n",
        title = esc(&kr.title),
        objective = esc(objective),
        id = esc(&kr.id),
        statement = esc(statement),
        team = esc(team),
        period = esc(period),
        score = unit(kr.score),
        expected = unit(kr.expected),
        label = label(kr.status),
        value = kr.value.map_or_else(|| "—".to_string(), number),
        target = target(&kr.target),
        forecast = forecast(kr.forecast, kr.forecast_probability),
        updated = match kr.updated_at {
            Some(at) => time_element(at, &relative(at, page.generated_at)),
            None => "never".to_string(),
        },
    )?;
    out.push_str(
        "<section class=\"history\">\n<h2>Score history against the expected score</h2>\n",
    );
    write_chart(out, page)?;
    out.push_str("</section>\n<section class=\"dependencies\">\n<h2>Dependencies</h2>\n");
    if kr.dependencies.is_empty() && page.dependents.is_empty() {
        out.push_str(
            "<p class=\"empty\">It depends on no key result, and none depends on it.</p>\n",
        );
    }
    if !kr.dependencies.is_empty() {
        out.push_str("<div id=\"depends-on\">");
        write_dependencies(out, &kr.dependencies)?;
        out.push_str("</div>\n");
    }
    if !page.dependents.is_empty() {
        out.push_str("<div id=\"dependents\">");
        let mut list = String::new();
        write_dependencies(&mut list, &page.dependents)?;
        out.push_str(&list.replacen("depends on", "needed by", 1));
        out.push_str("</div>\n");
    }
    write_revisions(out, page)?;
    write_check_ins(out, page)?;
    out.push_str(
        "</section>\n<section class=\"explanation\">\n<h2>How the score was computed</h2>\n<dl>\n",
    );
    for (what, how) in &page.explanation {
        writeln!(out, "<dt>{}</dt><dd>{}</dd>", esc(what), esc(how))?;
    }
    out.push_str("</dl>\n</section>\n<section class=\"alerts\" id=\"alerts\">\n<h2>Alerts</h2>\n");
    if page.alerts.is_empty() {
        out.push_str("<p class=\"empty\">No alert about it in the last day.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for a in &page.alerts {
            let state = match a.resolved_at {
                None => format!(
                    "firing since {}",
                    time_element(a.fired_at, &relative(a.fired_at, page.generated_at))
                ),
                Some(r) => format!(
                    "resolved {}",
                    time_element(r, &relative(r, page.generated_at))
                ),
            };
            writeln!(
                out,
                "<li class=\"alert k-{kind}{firing}\"><span class=\"kind\">{kind_label}</span> \
                 {summary} <span class=\"since\">{state}</span></li>",
                kind = esc(&a.kind),
                firing = if a.resolved_at.is_none() {
                    " firing"
                } else {
                    ""
                },
                kind_label = esc(&a.kind.replace('_', " ")),
                summary = esc(&a.summary),
            )?;
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n</main>\n");
    write_footer(out, page.generated_at)
}

/// Each revision of its definition: when, each field from → to, easier.
fn write_revisions(out: &mut String, page: &KrPage) -> fmt::Result {
    out.push_str(
        "</section>\n<section class=\"revisions\" id=\"revisions\">\n<h2>Revisions</h2>\n",
    );
    if page.kr.revisions.is_empty() {
        out.push_str("<p class=\"empty\">Its definition has not changed during the period.</p>\n");
        return Ok(());
    }
    out.push_str("<ol>\n");
    for r in &page.kr.revisions {
        let changes: Vec<String> = r
            .changes
            .iter()
            .map(|c| format!("{} {} → {}", c.field, c.from, c.to))
            .collect();
        writeln!(
            out,
            "<li class=\"revision{easier}\" data-revision=\"{n}\">revision {n}, {at}: {changes}{easier_text}</li>",
            easier = if r.easier { " easier" } else { "" },
            n = r.revision,
            at = time_element(r.at, &absolute(r.at)),
            changes = esc(&changes.join(", ")),
            easier_text = if r.easier { " <b>(easier)</b>" } else { "" },
        )?;
    }
    out.push_str("</ol>\n");
    Ok(())
}

/// The latest check-ins: a person's confidence and note, never the score.
fn write_check_ins(out: &mut String, page: &KrPage) -> fmt::Result {
    out.push_str(
        "</section>\n<section class=\"check-ins\" id=\"check-ins\">\n<h2>Check-ins</h2>\n",
    );
    if page.check_ins.is_empty() {
        out.push_str("<p class=\"empty\">No check-in yet.</p>\n");
        return Ok(());
    }
    out.push_str("<ul>\n");
    for (at, confidence, note, author) in &page.check_ins {
        writeln!(
            out,
            "<li>{when}: confidence {pct:.0}%{by} · {note}</li>",
            when = time_element(*at, &relative(*at, page.generated_at)),
            pct = unit(*confidence) * 100.0,
            by = author
                .as_deref()
                .map_or(String::new(), |a| format!(" ({})", esc(a))),
            note = esc(note),
        )?;
    }
    out.push_str("</ul>\n");
    Ok(())
}

/// The score history as a line over the whole period, the expected score
/// as a dashed line from 0 at the start to its end value, gridlines at
/// each quarter of the score, and the period's dates below.
fn write_chart(out: &mut String, page: &KrPage) -> fmt::Result {
    let (start, end) = page.period;
    let span = (end - start).num_milliseconds().max(1) as f64;
    let (w, h) = (CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM);
    let x =
        |t: Timestamp| LEFT + ((t - start).num_milliseconds() as f64 / span).clamp(0.0, 1.0) * w;
    let y = |score: f64| TOP + (1.0 - unit(score)) * h;
    let history = &page.kr.history;
    let summary = match (history.first(), history.last()) {
        (Some(a), Some(b)) => format!(
            "score history: {:.2} → {:.2}, {} changes",
            unit(a.1),
            unit(b.1),
            history.len()
        ),
        _ => "no score history yet".to_string(),
    };
    write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" \
         aria-label=\"{summary}\"><title>{summary}</title>"
    )?;
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{x2}\" y2=\"{yy:.1}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{q}</text>",
            yy = y(q),
            x2 = CHART_W - RIGHT,
            tx = LEFT - 6.0,
            ty = y(q) + 4.0,
        )?;
    }
    write!(
        out,
        "<line class=\"expected-line\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\">\
         <title>expected score</title></line>",
        x1 = x(start),
        y1 = y(0.0),
        x2 = x(end),
        y2 = y(page.expected_at_end),
    )?;
    if history.len() >= 2 {
        let points: Vec<String> = history
            .iter()
            .map(|&(t, s)| format!("{:.1},{:.1}", x(t), y(s)))
            .collect();
        write!(
            out,
            "<polyline class=\"score\" points=\"{}\"/>",
            points.join(" ")
        )?;
    }
    for r in &page.kr.revisions {
        write!(
            out,
            "<line class=\"revision{}\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\">\
             <title>revision {}</title></line>",
            if r.easier { " easier" } else { "" },
            r.revision,
            x = x(r.at),
            bottom = CHART_H - BOTTOM,
        )?;
    }
    if let Some(&(t, s)) = history.last() {
        write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"var(--c)\"/>",
            x(t),
            y(s)
        )?;
    }
    writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{by}\">{from}</text>\
         <text x=\"{rx}\" y=\"{by}\" text-anchor=\"end\">{to}</text></svg>",
        by = CHART_H - 6.0,
        rx = CHART_W - RIGHT,
        from = esc(&absolute(start)),
        to = esc(&absolute(end)),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::config::objective::Target;
    use crate::scoring::Status;

    fn page() -> KrPage {
        let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
        KrPage {
            generated_at: now,
            objective: (
                "onboarding".into(),
                "Make <onboarding> effortless".into(),
                "growth".into(),
                "2026-Q4".into(),
            ),
            kr: KrView {
                id: "activation".into(),
                title: "Raise activation".into(),
                status: Status::OnTrack,
                score: 0.6,
                expected: 0.5,
                value: Some(0.4),
                target: Target::Value(0.45),
                updated_at: Some(now),
                forecast: None,
                forecast_probability: None,
                history: vec![(start, 0.0), (start + TimeDelta::days(46), 0.6)],
                alerting: false,
                dependencies: vec![DependencyView {
                    id: "platform/latency".into(),
                    title: "Keep p99 low".into(),
                    team: "platform".into(),
                    status: Some(Status::Stale),
                }],
                revisions: vec![],
                check_in: None,
            },
            dependents: vec![],
            period: (start, end),
            expected_at_end: 0.7,
            explanation: vec![(
                "formula".into(),
                "progress = (0.4 - 0.32) / (0.45 - 0.32)".into(),
            )],
            check_ins: vec![(now, 0.7, "on <track>".into(), Some("ana".into()))],
            alerts: vec![],
        }
    }

    #[test]
    fn the_chart_spans_the_period_with_the_expected_line_from_zero() {
        let html = render(&page());
        // The expected line: from (start, 0) to (end, 0.7).
        let y0 = TOP + CHART_H - TOP - BOTTOM;
        let y07 = TOP + 0.3 * (CHART_H - TOP - BOTTOM);
        assert!(
            html.contains(&format!(
                "<line class=\"expected-line\" x1=\"{LEFT:.1}\" y1=\"{y0:.1}\" x2=\"{:.1}\" y2=\"{y07:.1}\">",
                CHART_W - RIGHT
            )),
            "{html}"
        );
        // The score line: 46 of 92 days is the middle.
        let mid = LEFT + 0.5 * (CHART_W - LEFT - RIGHT);
        let y06 = TOP + 0.4 * (CHART_H - TOP - BOTTOM);
        assert!(html.contains(&format!(
            "<polyline class=\"score\" points=\"{LEFT:.1},{y0:.1} {mid:.1},{y06:.1}\"/>"
        )));
    }

    #[test]
    fn shows_dependencies_explanation_and_escapes() {
        let html = render(&page());
        assert!(html.contains("Make &lt;onboarding&gt; effortless"));
        assert!(html.contains("data-dependency=\"platform/latency\" data-status=\"stale\""));
        assert!(html.contains("<dt>formula</dt><dd>progress = (0.4 - 0.32) / (0.45 - 0.32)</dd>"));
        assert!(html.contains("No alert about it in the last day."));
        assert!(html.contains("confidence 70% (ana) · on &lt;track&gt;</li>"));
        assert!(html.contains("Its definition has not changed during the period."));
        assert!(!html.to_lowercase().contains("<script"));
    }
}
