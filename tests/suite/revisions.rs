//! Revisions and check-ins end to end (SPEC §4 "Revisions and check-ins"),
//! on the real `okrd serve` over SQLite and PostgreSQL: a reload that
//! lowers a target mid-period is one revision, notified once to every
//! notifier type (webhook, Slack, email, Alertmanager), with the history
//! before it unchanged and the rows after it naming it; a change before
//! the period starts is no revision; check-ins need the token and list
//! newest first.

use std::time::Duration;

use chrono::{SubsecRound, TimeDelta, Utc};
use okrd::store::{AlertKey, DefinitionKind, DeliveryStatus, NewDefinition, RevisionNotice};
use serde_json::{json, Value};

use crate::alerts::{alertmanager, am_alerts, receiver, smtp_sink};
use crate::common::http::{self, get_json, get_text, metric, push};
use crate::common::server::{objective_yaml, service_yaml, signal, Server};
use crate::common::wait::{eventually, holds_for};
use crate::common::{both_stores, Backend};

both_stores!(
    a_reload_that_lowers_a_target_mid_period_is_one_revision_notified_once,
    a_change_before_the_period_starts_is_no_revision,
    check_ins_need_the_token_and_list_newest_first,
    instances_racing_record_one_revision_and_queue_its_notice_once,
);

fn detail_url(server: &Server) -> String {
    server.url("/api/v1/key-results/growth/kr")
}

/// Pushes two points and waits for the KR's history to hold them.
async fn scored_with_history(server: &Server) -> Value {
    let ts = Utc::now().trunc_subsecs(0) - TimeDelta::seconds(5);
    let body = json!([
        {"metric": "activation_rate", "ts": (ts - TimeDelta::seconds(60)).to_rfc3339(), "value": 0.35},
        {"metric": "activation_rate", "ts": ts.to_rfc3339(), "value": 0.40},
    ]);
    assert_eq!(push(server, body, None).await.status, 200);
    eventually(Duration::from_secs(10), "the KR's history", || async {
        let d = get_json(&detail_url(server)).await;
        (d["history_status"] == "complete"
            && d["value"] == json!(0.40)
            && d["history"].as_array().is_some_and(|h| h.len() == 2))
        .then_some(d)
    })
    .await
}

async fn a_reload_that_lowers_a_target_mid_period_is_one_revision_notified_once(backend: Backend) {
    let (hooks, seen) = receiver(vec![]).await;
    let (smtp_port, mail) = smtp_sink().await;
    let (forward, _forwarded) = receiver(vec![]).await;
    let am = alertmanager(&forward).await;
    let service = format!(
        "http:\n  listen: 127.0.0.1:0\nscoring:\n  interval: 1s\nteams:\n  growth:\n    notify: [hook, chat, mail, am]\nnotifiers:\n  \
         hook: {{ type: webhook, url: \"{hooks}/hook\" }}\n  \
         chat: {{ type: slack, url: \"{hooks}/slack\" }}\n  \
         mail: {{ type: email, to: [growth@example.com], smtp: \"smtp://127.0.0.1:{smtp_port}\", from: okrd@example.com }}\n  \
         am: {{ type: alertmanager, urls: [\"{}\"] }}\n",
        am.url
    );
    let yaml = objective_yaml("growth", "activation_rate", Utc::now());
    let db = backend.server_url();
    let server = Server::start(
        &service,
        &[("growth.yaml", yaml.clone())],
        db.as_deref(),
        &[],
    );
    let before = scored_with_history(&server).await;
    assert_eq!(
        (before["revision"].clone(), before["revisions"].clone()),
        (json!(0), json!([]))
    );
    let rows_before = before["history"].as_array().unwrap().clone();
    assert!(rows_before.iter().all(|r| r["revision"] == 0));

    // Mid-period, the target moves from 0.50 toward the baseline 0.30.
    assert!(yaml.contains("target: 0.50"));
    std::fs::write(
        server.file("config/objectives/growth.yaml"),
        yaml.replace("target: 0.50", "target: 0.45"),
    )
    .unwrap();
    signal(server.pid(), "HUP");
    let after = eventually(Duration::from_secs(10), "revision 1 in the API", || async {
        let d = get_json(&detail_url(&server)).await;
        (d["revision"] == 1 && d["target"] == json!(0.45)).then_some(d)
    })
    .await;
    let revisions = after["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    let r = &revisions[0];
    assert_eq!(r["revision"], 1);
    assert_eq!(r["easier"], true);
    assert_eq!(
        r["changes"],
        json!([{"field": "target", "from": {"value": 0.5}, "to": {"value": 0.45}}])
    );
    let explanation = after["explanation"]["revision"].as_str().unwrap();
    assert!(
        explanation.starts_with("scored under revision 1 (since "),
        "{explanation}"
    );
    assert!(
        explanation.contains("target {\"value\":0.5} → {\"value\":0.45} (easier)"),
        "{explanation}"
    );

    // The rows before the revision are the same, byte for byte; the row
    // after it (the reload's rescore: score 0.10/0.15) names revision 1.
    let revised_at: chrono::DateTime<Utc> = serde_json::from_value(r["at"].clone()).unwrap();
    let history = get_json(&detail_url(&server)).await["history"]
        .as_array()
        .unwrap()
        .clone();
    let at =
        |row: &Value| serde_json::from_value::<chrono::DateTime<Utc>>(row["at"].clone()).unwrap();
    let (old, new): (Vec<Value>, Vec<Value>) =
        history.into_iter().partition(|row| at(row) < revised_at);
    assert_eq!(
        serde_json::to_string(&old).unwrap(),
        serde_json::to_string(&rows_before).unwrap()
    );
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(
        (new[0]["revision"].clone(), new[0]["value"].clone()),
        (json!(1), json!(0.40))
    );
    assert!((new[0]["score"].as_f64().unwrap() - 0.10 / 0.15).abs() < 1e-12);

    // One notification per notifier: the webhook's and Slack's bodies, the
    // email, and Alertmanager's KeyResultRevised alert.
    let paths = || {
        let mut p: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        p.sort();
        p
    };
    eventually(
        Duration::from_secs(15),
        "the webhook and Slack notices",
        || async { (paths().len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(paths(), ["hook", "slack"]);
    let hook = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| p == "hook")
        .unwrap()
        .1
        .clone();
    assert_eq!(
        (hook["kind"].clone(), hook["event"].clone()),
        (json!("revision"), json!("revision"))
    );
    assert_eq!(hook["revision"]["revision"], 1);
    assert_eq!(hook["revision"]["easier"], true);
    let email = tokio::time::timeout(Duration::from_secs(15), mail)
        .await
        .unwrap()
        .unwrap();
    assert!(
        email.contains("Subject: [okrd REVISED] growth/kr: revision 1 changed target (easier)"),
        "{email}"
    );
    let alerts = eventually(Duration::from_secs(15), "Alertmanager's alert", || async {
        let a = am_alerts(&am.url).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["labels"]["alertname"], "KeyResultRevised");
    assert_eq!(alerts[0]["labels"]["revision"], "1");
    assert_eq!(alerts[0]["labels"]["team"], "growth");
    assert_eq!(alerts[0]["status"]["state"], "active");

    let store = okrd::store::open(&server.database_url).await.unwrap();
    let key = AlertKey {
        objective: "growth".into(),
        key_result: "kr".into(),
        subject: String::new(),
    };
    let sent = || async {
        let d = store.deliveries(&key).await.unwrap();
        let mut got: Vec<(String, String, i64, DeliveryStatus)> = d
            .iter()
            .map(|d| (d.notifier.clone(), d.event.to_string(), d.episode, d.status))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        got
    };
    let want = |n: &str| {
        (
            n.to_string(),
            "revision".to_string(),
            1,
            DeliveryStatus::Sent,
        )
    };
    eventually(Duration::from_secs(10), "every delivery sent", || async {
        (sent().await == [want("am"), want("chat"), want("hook"), want("mail")]).then_some(())
    })
    .await;
    // ...and no more, over further recomputes (every second) and a reload.
    signal(server.pid(), "HUP");
    holds_for(
        Duration::from_secs(3),
        "one notice per notifier",
        || async { sent().await.len() == 4 && paths().len() == 2 },
    )
    .await;
    let stored = store.definitions("growth", "kr").await.unwrap();
    let kinds: Vec<(DefinitionKind, i64)> = stored.iter().map(|d| (d.kind, d.revision)).collect();
    assert_eq!(
        kinds,
        [
            (DefinitionKind::FirstSeen, 0),
            (DefinitionKind::Revision, 1)
        ]
    );
    let text = get_text(&server.url("/metrics")).await;
    assert_eq!(
        metric(
            &text,
            r#"okrd_key_result_revision{key_result="kr",objective="growth"}"#
        ),
        Some(1.0)
    );
}

async fn a_change_before_the_period_starts_is_no_revision(backend: Backend) {
    let (hooks, seen) = receiver(vec![]).await;
    let service = service_yaml("").replace("http://127.0.0.1:9/hook", &format!("{hooks}/hook"));
    let start = (Utc::now() + TimeDelta::days(10)).format("%Y-%m-%d");
    let end = (Utc::now() + TimeDelta::days(100)).format("%Y-%m-%d");
    let yaml = objective_yaml("growth", "activation_rate", Utc::now()).replace(
        &objective_yaml("growth", "activation_rate", Utc::now())
            .lines()
            .find(|l| l.starts_with("period:"))
            .unwrap()
            .to_string(),
        &format!("period: {{ start: {start}, end: {end} }}"),
    );
    let db = backend.server_url();
    let server = Server::start(
        &service,
        &[("growth.yaml", yaml.clone())],
        db.as_deref(),
        &[],
    );
    eventually(Duration::from_secs(10), "the first scorecard", || async {
        let d = get_json(&detail_url(&server)).await;
        (d["target"] == json!(0.5)).then_some(())
    })
    .await;
    let store = okrd::store::open(&server.database_url).await.unwrap();
    // The scorer has recorded the first definition (the API evaluates the
    // live config on its own).
    eventually(
        Duration::from_secs(10),
        "the first definition recorded",
        || async { (store.definitions("growth", "kr").await.unwrap().len() == 1).then_some(()) },
    )
    .await;
    std::fs::write(
        server.file("config/objectives/growth.yaml"),
        yaml.replace("target: 0.50", "target: 0.45"),
    )
    .unwrap();
    signal(server.pid(), "HUP");
    let stored = eventually(
        Duration::from_secs(10),
        "the new definition recorded",
        || async {
            let stored = store.definitions("growth", "kr").await.unwrap();
            (stored.len() == 2).then_some(stored)
        },
    )
    .await;
    let d = eventually(Duration::from_secs(10), "the new target scored", || async {
        let d = get_json(&detail_url(&server)).await;
        (d["target"] == json!(0.45) && d["history_status"] == "complete").then_some(d)
    })
    .await;
    assert_eq!(
        (d["revision"].clone(), d["revisions"].clone()),
        (json!(0), json!([]))
    );
    let kinds: Vec<(DefinitionKind, i64)> = stored.iter().map(|d| (d.kind, d.revision)).collect();
    assert_eq!(
        kinds,
        [
            (DefinitionKind::FirstSeen, 0),
            (DefinitionKind::OutsidePeriod, 0)
        ]
    );
    assert_eq!(store.unnotified_revisions().await.unwrap(), vec![]);
    holds_for(Duration::from_secs(2), "no notice", || async {
        seen.lock().unwrap().is_empty()
    })
    .await;
}

async fn check_ins_need_the_token_and_list_newest_first(backend: Backend) {
    let db = backend.server_url();
    let server = Server::start(
        &service_yaml("  token: s3cret\n"),
        &[(
            "growth.yaml",
            objective_yaml("growth", "activation_rate", Utc::now()),
        )],
        db.as_deref(),
        &[],
    );
    let url = server.url("/api/v1/key-results/growth/kr/check-ins");
    let body = |c: f64, note: &str| json!({"confidence": c, "note": note}).to_string();
    for wrong in [None, Some("nope")] {
        let r = http::post(&url, wrong, body(0.5, "x")).await;
        assert_eq!(r.status, 401, "token {wrong:?}");
    }
    // Reads are open; nothing was stored.
    assert_eq!(
        http::get(&url, None).await.ok_json(),
        json!({"check_ins": []})
    );

    let bad = http::post(&url, Some("s3cret"), body(1.5, "too sure")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["field"], "confidence");
    let bad = http::post(&url, Some("s3cret"), json!({"confidence": 0.5}).to_string()).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("missing field `note`"),
        "{}",
        bad.json()
    );
    let bad = http::post(
        &url,
        Some("s3cret"),
        json!({"confidence": 0.5, "note": "n", "mood": "ok"}).to_string(),
    )
    .await;
    assert_eq!(bad.status, 400);
    let unknown = http::post(
        &server.url("/api/v1/key-results/growth/nope/check-ins"),
        Some("s3cret"),
        body(0.5, "x"),
    )
    .await;
    assert_eq!(unknown.status, 404);

    for (c, note) in [(0.9, "first"), (0.6, "second"), (0.3, "third")] {
        let mut b: Value = serde_json::from_str(&body(c, note)).unwrap();
        if note == "second" {
            b["author"] = json!("ana");
        }
        let r = http::post(&url, Some("s3cret"), b.to_string()).await;
        assert_eq!(r.status, 201, "{}", r.json());
        assert_eq!(r.json()["note"], note);
    }
    let list = http::get(&url, None).await.ok_json();
    let got: Vec<(f64, String, Value)> = list["check_ins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["confidence"].as_f64().unwrap(),
                c["note"].as_str().unwrap().to_string(),
                c["author"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0.3, "third".to_string(), Value::Null),
            (0.6, "second".to_string(), json!("ana")),
            (0.9, "first".to_string(), Value::Null),
        ]
    );
    // The latest is beside the score, and exported; the score is untouched.
    let d = eventually(Duration::from_secs(10), "the KR scored", || async {
        let d = get_json(&detail_url(&server)).await;
        d["status"].is_string().then_some(d)
    })
    .await;
    assert_eq!(d["confidence"], json!(0.3));
    assert_eq!(d["check_in"]["note"], "third");
    assert_eq!(
        (d["status"].clone(), d["score"].clone()),
        (json!("no_data"), json!(0.0))
    );
    // /metrics renders the published scorecard's KRs: wait for it.
    let text = eventually(Duration::from_secs(10), "the KR in /metrics", || async {
        let text = get_text(&server.url("/metrics")).await;
        metric(
            &text,
            r#"okrd_key_result_score{key_result="kr",objective="growth"}"#,
        )
        .is_some()
        .then_some(text)
    })
    .await;
    assert_eq!(
        metric(
            &text,
            r#"okrd_key_result_confidence{key_result="kr",objective="growth"}"#
        ),
        Some(0.3)
    );
}

/// Two instances (two stores on one database) record the same reload at
/// once, then both try to queue its notice: one revision, one notice.
async fn instances_racing_record_one_revision_and_queue_its_notice_once(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    let config = |target: f64| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("objectives")).unwrap();
        std::fs::write(
            dir.path().join("okrd.yaml"),
            format!(
                "paths:\n  objectives: {0}/objectives\n  connectors: {0}/connectors\nteams:\n  growth: {{}}\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("objectives/growth.yaml"),
            objective_yaml("growth", "activation_rate", Utc::now())
                .replace("target: 0.50", &format!("target: {target}")),
        )
        .unwrap();
        okrd::config::load(Some(&dir.path().join("okrd.yaml")), &Default::default()).unwrap()
    };
    let defs = |target: f64| {
        let c = config(target);
        let o = &c.objectives[0];
        vec![NewDefinition {
            objective: o.id.clone(),
            key_result: o.key_results[0].id.clone(),
            definition: okrd::definition::Definition::of(o, &o.key_results[0]),
            running: true,
        }]
    };
    let t0 = Utc::now().trunc_subsecs(6);
    a.record_definitions(&defs(0.5), t0).await.unwrap();
    let t1 = t0 + TimeDelta::seconds(1);
    let (da, db) = (defs(0.45), defs(0.45));
    let (x, y) = tokio::join!(
        a.record_definitions(&da, t1),
        b.record_definitions(&db, t1 + TimeDelta::milliseconds(1)),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let kinds = |rows: &[okrd::store::StoredDefinition]| -> Vec<(i64, DefinitionKind, i64)> {
        rows.iter().map(|r| (r.seq, r.kind, r.revision)).collect()
    };
    let want = [
        (1, DefinitionKind::FirstSeen, 0),
        (2, DefinitionKind::Revision, 1),
    ];
    assert_eq!(kinds(&x[0]), want);
    assert_eq!(
        kinds(&y[0]),
        want,
        "both instances see the one stored timeline"
    );
    assert_eq!(x[0], y[0]);

    let notice = RevisionNotice {
        objective: "growth".into(),
        key_result: "kr".into(),
        revision: 1,
        payload: "{}".into(),
        notifiers: vec!["hook".into(), "chat".into()],
        at: t1,
    };
    let (p, q) = tokio::join!(
        a.queue_revision_notice(&notice),
        b.queue_revision_notice(&notice)
    );
    let mut queued = [p.unwrap(), q.unwrap()];
    queued.sort();
    assert_eq!(queued, [false, true]);
    assert!(
        !a.queue_revision_notice(&notice).await.unwrap(),
        "nor after"
    );
    let key = AlertKey {
        objective: "growth".into(),
        key_result: "kr".into(),
        subject: String::new(),
    };
    let mut notifiers: Vec<String> = a
        .deliveries(&key)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.notifier)
        .collect();
    notifiers.sort();
    assert_eq!(notifiers, ["chat", "hook"]);
    assert_eq!(a.unnotified_revisions().await.unwrap(), vec![]);
}
