//! The parsers under property tests: for arbitrary input, the fast and the
//! general point readers agree (the fast one takes a body only when the
//! general one takes it with the same points), and neither they, the YAML
//! loaders nor CSV / JSON-lines ingest ever panic.

use std::collections::BTreeMap;

use okrd::ingest::{json, point_from_json, read_points_file, FastReader, Interner};
use okrd::model::Point;
use proptest::prelude::*;
use serde_json::{json, Value};

/// The general path of `POST /api/v1/points`: every point, or `None` when
/// any is rejected or the body is not `{"points": [...]}`.
fn general(body: &[u8]) -> Option<Vec<Point>> {
    let doc = json::parse(body).ok()?;
    let obj = doc.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let mut interner = Interner::default();
    obj.get("points")?
        .as_array()?
        .iter()
        .map(|p| point_from_json(p, &mut interner).ok())
        .collect()
}

fn same(a: &[Point], b: &[Point]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(p, q)| {
            p.series == q.series && p.ts == q.ts && p.value.to_bits() == q.value.to_bits()
        })
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("m".to_string()),
        Just("activation_rate".to_string()),
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        "[a-z0-9:\\-. \"\\\\]{0,6}",
        Just("x".repeat(256)),
    ]
}

fn label_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z\"\\\\é ]{0,8}".prop_map(Value::String),
        Just(Value::String("v".repeat(1025))),
        any::<i32>().prop_map(|n| json!(n)),
        Just(Value::Null),
    ]
}

fn ts() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..4_000_000_000).prop_map(|s| json!(s)),
        (-1e13f64..1e13).prop_map(|s| json!(s)),
        Just(json!("2026-10-01T00:00:00Z")),
        Just(json!(" 2026-10-01T02:00:00+02:00 ")),
        Just(json!("1790812800.5")),
        Just(json!("10000-01-01T00:00:00Z")),
        "[0-9T:\\-Z]{0,12}".prop_map(Value::String),
        Just(json!(null)),
        Just(json!(1e300)),
    ]
}

fn point() -> impl Strategy<Value = Value> {
    (
        name(),
        proptest::option::of(proptest::collection::btree_map(name(), label_value(), 0..4)),
        ts(),
        prop_oneof![
            any::<f64>().prop_map(|v| json!(v)),
            (-1e6f64..1e6).prop_map(|v| json!(v)),
            Just(json!("1")),
            Just(json!(null)),
        ],
        proptest::option::of(Just(json!(1))),
    )
        .prop_map(|(metric, labels, ts, value, extra)| {
            let mut p = serde_json::Map::new();
            p.insert("metric".into(), json!(metric));
            if let Some(l) = labels {
                let l: BTreeMap<String, Value> = l;
                p.insert("labels".into(), json!(l));
            }
            p.insert("ts".into(), ts);
            p.insert("value".into(), value);
            if let Some(x) = extra {
                p.insert("extra".into(), x);
            }
            Value::Object(p)
        })
}

/// Text with a few characters inserted, replaced or deleted at random.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 0..6).prop_map(
        move |edits| {
            let mut chars: Vec<char> = base.chars().collect();
            for (at, op, c) in edits {
                let i = at.index(chars.len() + 1);
                match op {
                    0 => chars.insert(i, c),
                    1 if i < chars.len() => chars[i] = c,
                    _ if i < chars.len() => {
                        chars.remove(i);
                    }
                    _ => {}
                }
            }
            chars.into_iter().collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_fast_reader_takes_a_body_only_as_the_general_path_does(
        points in proptest::collection::vec(point(), 0..5),
        duplicate in proptest::option::of(0usize..5),
    ) {
        let mut body = json!({"points": points}).to_string();
        // A label written twice, which no JSON map can hold.
        if let Some(i) = duplicate {
            if let Some(at) = body.match_indices("\"labels\":{").nth(i).map(|(at, _)| at) {
                let open = at + "\"labels\":{".len();
                body.insert_str(open, "\"dup\":\"1\",\"dup\":\"2\",");
            }
        }
        let fast = FastReader::default().read_push_body(body.as_bytes(), &mut Interner::default());
        let general = general(body.as_bytes());
        if let Some(fast) = &fast {
            prop_assert!(general.as_ref().is_some_and(|g| same(fast, g)), "{body}");
        }
        if duplicate.is_some() && body.contains("\"dup\"") {
            prop_assert!(fast.is_none() && general.is_none(), "{body}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_split_the_readers(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let fast = FastReader::default().read_push_body(&bytes, &mut Interner::default());
        let mut out = Vec::new();
        let _ = FastReader::default().read_payload(&bytes, &mut Interner::default(), &mut out);
        if let Some(fast) = fast {
            prop_assert!(general(&bytes).is_some_and(|g| same(&fast, &g)));
        }
    }

    #[test]
    fn mutated_connector_yaml_never_panics(text in mutated(
        "name: product-analytics\ntype: http\nschedule: \"*/15 * * * *\"\nrequest:\n  method: GET\n  url: https://analytics.example.com/api?x=${A:-1}\n  headers: { Authorization: \"Bearer ${T:-x}\" }\nextract:\n  items: /data\n  metric: activation_rate\n  ts: /date\n  value: /rate\n  labels: { plan: /plan }\n"
    )) {
        let _ = okrd::config::load_connector_text(&text, "fuzz.yaml", &Default::default(), None);
        let _ = okrd::config::load_connector_text(&text, "fuzz.yaml", &Default::default(), Some(&[]));
    }
}

proptest! {
    // Each case writes files and loads a whole deployment.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_objectives_and_service_config_never_panic(
        objective in mutated("id: growth\nobjective: Grow\nteam: growth\nperiod: { start: 2026-10-01, end: 2026-12-31 }\nkey_results:\n  - id: kr\n    title: Raise activation\n    metric: activation_rate\n    labels: { plan: free }\n    aggregate: avg\n    window: 7d\n    baseline: 0.1\n    target: 0.5\n    counter_metrics:\n      - { metric: tickets, better: lower, tolerance: 5% }\n"),
        service in mutated("http:\n  listen: 127.0.0.1:0\n  max_body: 1MiB\n  connector_destinations: [public, 10.0.0.0/8]\nscoring:\n  interval: 30s\nteams:\n  growth:\n    notify: [hook]\nnotifiers:\n  hook: { type: webhook, url: \"http://127.0.0.1:9/hook\" }\n"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("objectives")).unwrap();
        std::fs::write(dir.path().join("objectives/o.yaml"), objective).unwrap();
        let service = format!(
            "{service}\npaths:\n  objectives: {}\n  connectors: {}\n",
            dir.path().join("objectives").display(),
            dir.path().join("none").display()
        );
        std::fs::write(dir.path().join("okrd.yaml"), service).unwrap();
        let _ = okrd::config::load(Some(&dir.path().join("okrd.yaml")), &Default::default());
    }

    #[test]
    fn mutated_csv_and_json_lines_never_panic(
        csv in mutated("metric,ts,value,plan\nactivation_rate,2026-10-01T00:00:00Z,0.5,free\nactivation_rate,1790812800,0.6,\n"),
        lines in mutated("{\"metric\":\"m\",\"labels\":{\"a\":\"1\"},\"ts\":1790812800,\"value\":1}\n{\"metric\":\"m\",\"ts\":\"2026-10-01T00:00:00Z\",\"value\":2}\n"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("p.csv", &csv), ("p.jsonl", &lines)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let _ = read_points_file(&path, &mut |_| {});
        }
    }
}
