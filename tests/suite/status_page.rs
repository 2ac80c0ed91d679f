//! The status page as a person sees it: rendered, served over HTTP, loaded in
//! headless Chromium, and judged from the DOM and from the screenshot.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use chrono::{TimeDelta, TimeZone, Utc};
use okrd::api::status_page::{render, KrView, ObjectiveView, StatusPage};
use okrd::config::objective::Target;
use okrd::model::Timestamp;
use okrd::scoring::Status;

use crate::common::browser;

/// The badge colours of the stylesheet, as the screenshot should show them.
const ON_TRACK_GREEN: [u8; 3] = [0x1a, 0x7f, 0x37];
const AT_RISK_AMBER: [u8; 3] = [0xd9, 0x9a, 0x00];
const OFF_TRACK_RED: [u8; 3] = [0xcf, 0x22, 0x2e];
const STALE_GREY: [u8; 3] = [0x6e, 0x77, 0x81];

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap()
}

/// A daily score history over the last `days` days, moving linearly from
/// `from` to `to` with a little deterministic wobble.
fn history(days: i64, from: f64, to: f64) -> Vec<(Timestamp, f64)> {
    (0..=days)
        .map(|d| {
            let f = d as f64 / days as f64;
            let wobble = if d % 3 == 1 { -0.02 } else { 0.0 };
            let ts = now() - TimeDelta::days(days - d);
            (ts, (from + (to - from) * f + wobble).clamp(0.0, 1.0))
        })
        .collect()
}

fn sample() -> StatusPage {
    StatusPage::new(
        now(),
        vec![
            ObjectiveView {
                id: "onboarding".into(),
                statement: "Make onboarding effortless for new teams".into(),
                team: "growth".into(),
                period: "2026-Q4".into(),
                score: 0.51,
                rollup: 0.51,
                has_key_results: true,
                key_results: vec![
                    KrView {
                        id: "activation".into(),
                        title: "Raise 7-day activation of free teams from 32% to 45%".into(),
                        status: Status::OnTrack,
                        score: 0.69,
                        expected: 0.49,
                        value: Some(0.41),
                        target: Target::Value(0.45),
                        updated_at: Some(now() - TimeDelta::minutes(3)),
                        forecast: None,
                        forecast_probability: None,
                        history: history(45, 0.05, 0.69),
                        alerting: true,
                        dependencies: Vec::new(),
                        revisions: Vec::new(),
                        check_in: None,
                    },
                    KrView {
                        id: "onboarding-latency".into(),
                        title: "Keep onboarding API p99 at or under 300 ms".into(),
                        status: Status::OffTrack,
                        score: 0.0,
                        expected: 0.49,
                        value: Some(325.7),
                        target: Target::AtMost(300.0),
                        updated_at: Some(now() - TimeDelta::minutes(1)),
                        forecast: None,
                        forecast_probability: None,
                        history: vec![
                            (now() - TimeDelta::days(40), 1.0),
                            (now() - TimeDelta::days(12), 1.0),
                            (now() - TimeDelta::days(11), 0.0),
                            (now() - TimeDelta::days(6), 1.0),
                            (now() - TimeDelta::days(5), 0.0),
                        ],
                        alerting: false,
                        dependencies: Vec::new(),
                        revisions: Vec::new(),
                        check_in: None,
                    },
                    KrView {
                        id: "time-to-value".into(),
                        title: "Cut time to first dashboard from 3 days to 1 & keep it there"
                            .into(),
                        status: Status::AtRisk,
                        score: 0.33,
                        expected: 0.49,
                        value: Some(2.34),
                        target: Target::Value(1.0),
                        updated_at: Some(now() - TimeDelta::hours(5)),
                        forecast: None,
                        forecast_probability: None,
                        history: history(30, 0.1, 0.33),
                        alerting: false,
                        dependencies: Vec::new(),
                        revisions: Vec::new(),
                        check_in: None,
                    },
                ],
                ..ObjectiveView::default()
            },
            ObjectiveView {
                id: "retention".into(),
                statement: "Teams that start with us stay with us".into(),
                team: "lifecycle".into(),
                period: "2026-Q4".into(),
                score: 0.28,
                rollup: 0.28,
                has_key_results: true,
                key_results: vec![
                    KrView {
                        id: "retention-d30".into(),
                        title: "Lift 30-day team retention from 61% to 70%".into(),
                        status: Status::Stale,
                        score: 0.56,
                        expected: 0.34,
                        value: Some(0.66),
                        target: Target::Value(0.70),
                        updated_at: Some(now() - TimeDelta::days(4)),
                        forecast: None,
                        forecast_probability: None,
                        history: history(20, 0.3, 0.56),
                        alerting: false,
                        dependencies: Vec::new(),
                        revisions: Vec::new(),
                        check_in: None,
                    },
                    KrView {
                        id: "nps".into(),
                        title: "Reach an NPS of at least 40 among admins".into(),
                        status: Status::NoData,
                        score: 0.0,
                        expected: 0.34,
                        value: None,
                        target: Target::AtLeast(40.0),
                        updated_at: None,
                        forecast: None,
                        forecast_probability: None,
                        history: Vec::new(),
                        alerting: false,
                        dependencies: Vec::new(),
                        revisions: Vec::new(),
                        check_in: None,
                    },
                ],
                ..ObjectiveView::default()
            },
        ],
    )
}

/// Serves `html` at `/` (and 404 elsewhere) on 127.0.0.1 from a background
/// thread, for as long as the test process lives; returns the page's URL.
fn serve(html: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request);
            let (status, body) = if head.starts_with("GET / ") {
                ("200 OK", html.as_str())
            } else {
                ("404 Not Found", "not found")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// Pixels within a small distance of `colour` in an RGB(A) image.
fn count_near(pixels: &[[u8; 3]], colour: [u8; 3]) -> usize {
    pixels
        .iter()
        .filter(|p| (0..3).all(|i| p[i].abs_diff(colour[i]) <= 12))
        .count()
}

/// Where a human can look at the screenshot after the test.
fn kept_screenshot() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("status-page.png")
}

#[test]
fn status_page_shows_every_key_result_in_a_browser() {
    let page = sample();
    let url = serve(render(&page));
    let Some(loaded) = browser::load(&url) else {
        return;
    };

    // The DOM: every key result's row, title and status.
    let dom = &loaded.dom;
    assert!(!dom.contains("<script"), "the page has no JavaScript");
    for objective in &page.objectives {
        assert!(dom.contains(&objective.statement), "{}", objective.id);
        for kr in &objective.key_results {
            let row = format!("id=\"kr-{}-{}\"", objective.id, kr.id);
            let at = dom
                .find(&row)
                .unwrap_or_else(|| panic!("no row {row} in the DOM:\n{dom}"));
            let end = at + dom[at..].find("</li>").expect("row closed");
            let html = &dom[at..end];
            assert!(
                html.contains(&format!("data-status=\"{}\"", kr.status.as_str())),
                "{row}: {html}"
            );
            let title = kr.title.replace('&', "&amp;");
            assert!(html.contains(&title), "{row} lacks its title: {html}");
            assert!(html.contains("class=\"expected\""), "{row}: {html}");
            assert!(html.contains("<svg class=\"spark\""), "{row}: {html}");
        }
    }
    assert!(dom.contains("updated never"));
    assert!(dom.contains("3 min ago"));

    // The screenshot: the right size, keep a copy, and not blank.
    let bytes = std::fs::read(&loaded.screenshot).expect("read screenshot");
    let kept = kept_screenshot();
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(&kept, &bytes).expect("keep screenshot");
    let (width, height, pixels) = browser::decode_png(&bytes);
    assert_eq!((width, height), (browser::WIDTH, browser::HEIGHT));

    let mut distinct: Vec<[u8; 3]> = pixels.iter().map(|p| p.map(|c| c >> 4)).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() >= 30,
        "a blank-looking screenshot: {} distinct colours ({})",
        distinct.len(),
        kept.display()
    );

    // Each status colour covers at least a badge's worth of pixels (a badge
    // is about 84×20; bars, stripes and sparklines add to it).
    for (name, colour) in [
        ("on_track green", ON_TRACK_GREEN),
        ("at_risk amber", AT_RISK_AMBER),
        ("off_track red", OFF_TRACK_RED),
        ("stale grey", STALE_GREY),
    ] {
        let n = count_near(&pixels, colour);
        assert!(
            n >= 1_000,
            "only {n} pixels of the {name} in the screenshot ({})",
            kept.display()
        );
    }
}
