//! A Kafka message's payload to points (SPEC §3): one JSON point or an array
//! of them, read as-is or through the connector's JSON-pointer mapping.
//!
//! A message is the unit of acceptance: it yields all its points or none,
//! and a rejected message is dead-lettered whole, with the reason of its
//! first bad item, so that it can be fixed and re-sent as it was.

use serde_json::{Map, Value};

use crate::config::connector::KafkaMapping;
use crate::ingest::{point_from_json, FastReader, Interner, RejectReason};
use crate::model::Point;

/// Reject reason of a payload that is not JSON (or absent).
pub const INVALID_JSON: &str = RejectReason::InvalidJson.as_str();

/// The distinct series remembered for sharing keys; past this the memory is
/// dropped, so a stream of ever-new label values cannot grow it unbounded.
const INTERNER_CAP: usize = 100_000;

/// Why a message yields no points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// A bounded reason, usable as a metric label.
    pub reason: &'static str,
    /// What exactly is wrong, in one phrase.
    pub message: String,
    /// How many points the message held (1 when it is not an array).
    pub items: usize,
}

/// Turns payloads into points, sharing series keys across messages.
#[derive(Debug, Default)]
pub struct Decoder {
    mapping: Option<KafkaMapping>,
    interner: Interner,
    fast: FastReader,
}

impl Decoder {
    /// A decoder for messages shaped as `mapping` says (`None`: SPEC's point
    /// objects).
    pub fn new(mapping: Option<KafkaMapping>) -> Self {
        Self {
            mapping,
            interner: Interner::default(),
            fast: FastReader::default(),
        }
    }

    /// Appends the message's points to `out` and returns how many; on a
    /// rejection `out` is left as it was.
    pub fn decode(
        &mut self,
        payload: Option<&[u8]>,
        out: &mut Vec<Point>,
    ) -> Result<usize, Rejection> {
        if self.interner.len() > INTERNER_CAP {
            self.interner = Interner::default();
        }
        if self.mapping.is_none() {
            if let Some(n) = payload.and_then(|p| self.decode_fast(p, out)) {
                return Ok(n);
            }
        }
        self.decode_general(payload, out)
    }

    /// The general path: a JSON tree, each item read by
    /// [`point_from_json`], which says exactly what is wrong.
    fn decode_general(
        &mut self,
        payload: Option<&[u8]>,
        out: &mut Vec<Point>,
    ) -> Result<usize, Rejection> {
        let Some(payload) = payload.filter(|p| !p.is_empty()) else {
            return Err(Rejection {
                reason: INVALID_JSON,
                message: "empty message: expected a JSON point or an array of points".into(),
                items: 1,
            });
        };
        let doc: Value = crate::ingest::json::parse(payload).map_err(|e| Rejection {
            reason: INVALID_JSON,
            message: format!("not JSON: {e}"),
            items: 1,
        })?;
        let before = out.len();
        let result = match &doc {
            Value::Array(items) => {
                out.reserve(items.len());
                items.iter().enumerate().try_for_each(|(i, item)| {
                    self.push(item, out).map_err(|(reason, message)| Rejection {
                        reason,
                        message: format!("item {i}: {message}"),
                        items: items.len(),
                    })
                })
            }
            item => self.push(item, out).map_err(|(reason, message)| Rejection {
                reason,
                message,
                items: 1,
            }),
        };
        match result {
            Ok(()) => Ok(out.len() - before),
            Err(r) => {
                out.truncate(before);
                Err(r)
            }
        }
    }

    fn push(&mut self, item: &Value, out: &mut Vec<Point>) -> Result<(), (&'static str, String)> {
        let point = match &self.mapping {
            None => point_from_json(item, &mut self.interner),
            Some(m) => {
                if !item.is_object() {
                    return Err((
                        RejectReason::InvalidShape.as_str(),
                        "a point must be a JSON object".into(),
                    ));
                }
                point_from_json(&mapped(item, m), &mut self.interner)
            }
        };
        match point {
            Ok(p) => {
                out.push(p);
                Ok(())
            }
            Err(e) => Err((e.reason.as_str(), e.message)),
        }
    }
}

impl Decoder {
    /// See [`FastReader::read_payload`]; `out` is left as it was on `None`.
    fn decode_fast(&mut self, payload: &[u8], out: &mut Vec<Point>) -> Option<usize> {
        self.fast.read_payload(payload, &mut self.interner, out)
    }
}

/// The point object the mapping's pointers pick out of `item`; a pointer
/// that finds nothing leaves the field out, so the point's own check names
/// what is missing.
fn mapped(item: &Value, m: &KafkaMapping) -> Value {
    let mut obj = Map::new();
    let fields = [
        ("metric", Some(&m.metric)),
        ("ts", Some(&m.ts)),
        ("value", Some(&m.value)),
        ("labels", m.labels.as_ref()),
    ];
    for (field, pointer) in fields {
        if let Some(v) = pointer.and_then(|p| item.pointer(p)) {
            obj.insert(field.to_string(), v.clone());
        }
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(d: &mut Decoder, payload: &str) -> Result<Vec<(String, f64)>, Rejection> {
        let mut out = vec![];
        d.decode(Some(payload.as_bytes()), &mut out)?;
        Ok(out
            .into_iter()
            .map(|p| (p.series.metric.clone(), p.value))
            .collect())
    }

    #[test]
    fn reads_one_point_or_an_array() {
        let mut d = Decoder::default();
        assert_eq!(
            decode(
                &mut d,
                r#"{"metric":"m","ts":"2026-10-01T00:00:00Z","value":1}"#
            ),
            Ok(vec![("m".into(), 1.0)])
        );
        assert_eq!(
            decode(
                &mut d,
                r#"[{"metric":"a","ts":1790812800,"value":1},{"metric":"b","labels":{"plan":"x"},"ts":1790812800,"value":2.5}]"#
            ),
            Ok(vec![("a".into(), 1.0), ("b".into(), 2.5)])
        );
        assert_eq!(decode(&mut d, "[]"), Ok(vec![]));
    }

    #[test]
    fn a_bad_message_yields_nothing_and_says_why() {
        let mut d = Decoder::default();
        let mut out = vec![];
        d.decode(
            Some(br#"{"metric":"m","ts":1790812800,"value":1}"#),
            &mut out,
        )
        .unwrap();
        for (payload, reason, says) in [
            (Some(&b"not json"[..]), INVALID_JSON, "not JSON"),
            (None, INVALID_JSON, "empty message"),
            (Some(&b""[..]), INVALID_JSON, "empty message"),
            (Some(&b"42"[..]), "invalid_shape", "JSON object"),
            (
                Some(&br#"{"metric":"m","ts":1790812800,"value":"NaN"}"#[..]),
                "invalid_value",
                "finite number",
            ),
            (
                Some(&br#"{"metric":"m","ts":"yesterday","value":1}"#[..]),
                "invalid_ts",
                "timestamp",
            ),
            (
                Some(&br#"[{"metric":"m","ts":1790812800,"value":1},{"metric":"m","ts":1790812801}]"#[..]),
                "invalid_value",
                "item 1: missing value",
            ),
        ] {
            let r = d.decode(payload, &mut out).unwrap_err();
            assert_eq!(r.reason, reason, "{payload:?}");
            assert!(r.message.contains(says), "{payload:?}: {}", r.message);
            assert_eq!(out.len(), 1, "a rejected message adds nothing");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        let payloads = [
            r#"{"metric":"m","ts":"2026-10-01T00:00:00Z","value":1}"#,
            r#"{"metric":"m","labels":{"b":"2","a":"1"},"ts":1790812800.25,"value":-0.5}"#,
            r#"{"labels":null,"value":3,"ts":1790812800,"metric":"m"}"#,
            r#"  [{"metric":"a","ts":1790812800,"value":1},{"metric":"a","ts":1790812801,"value":2e3}]"#,
            r#"{"metric":"m","labels":{"plan":"free"},"ts":" 2026-10-01T02:00:00+02:00 ","value":7}"#,
            r#"{"metric":"m","labels":{"plan":"fr\"ee"},"ts":1790812800,"value":1}"#,
            r#"{"metric":"m","ts":"1790812800.5","value":1}"#,
        ];
        for payload in payloads {
            let (mut fast, mut general) = (Decoder::default(), Decoder::default());
            let (mut a, mut b) = (vec![], vec![]);
            let fast_n = fast.decode(Some(payload.as_bytes()), &mut a).unwrap();
            general
                .decode_general(Some(payload.as_bytes()), &mut b)
                .unwrap();
            assert_eq!(fast_n, b.len(), "{payload}");
            for (p, q) in a.iter().zip(&b) {
                assert_eq!(
                    (&p.series, p.ts, p.value),
                    (&q.series, q.ts, q.value),
                    "{payload}"
                );
            }
        }
        // Each bad point takes the general path, which names the reason.
        let mut d = Decoder::default();
        let mut out = vec![];
        for bad in [
            r#"{"metric":"1m","ts":1,"value":1}"#,
            r#"{"metric":"m","labels":{"1a":"x"},"ts":1,"value":1}"#,
            r#"{"metric":"m","labels":{"a":1},"ts":1,"value":1}"#,
            r#"{"metric":"m","ts":1e300,"value":1}"#,
            r#"[{"metric":"m","ts":1,"value":1},{"metric":"m","ts":1,"value":1,"x":2}]"#,
            r#"{"metric":"m","labels":{"a":"1","a":"2"},"ts":1790812800,"value":1}"#,
            r#"{"metric":"m","ts":-1,"value":1}"#,
            &format!(
                r#"{{"metric":"m","labels":{{"a":"{}"}},"ts":1,"value":1}}"#,
                "v".repeat(1025)
            ),
            r#"{"metric":"m","labels":{"a":"1"},"ts":1790812800,"value":1,"ts":2}"#,
        ] {
            assert!(d.decode_fast(bad.as_bytes(), &mut out).is_none(), "{bad}");
            assert!(d.decode(Some(bad.as_bytes()), &mut out).is_err(), "{bad}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn a_mapping_picks_fields_by_pointer() {
        let mut d = Decoder::new(Some(KafkaMapping {
            metric: "/name".into(),
            ts: "/time".into(),
            value: "/v/x".into(),
            labels: Some("/tags".into()),
        }));
        let mut out = vec![];
        d.decode(
            Some(br#"{"name":"m","time":"2026-10-01T00:00:00Z","v":{"x":0.5},"tags":{"plan":"free"},"other":1}"#),
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0].series.labels["plan"], "free");
        assert_eq!(out[0].value, 0.5);
        let r = d
            .decode(Some(br#"{"name":"m","time":1790812800,"v":{}}"#), &mut out)
            .unwrap_err();
        assert_eq!(
            (r.reason, r.message.as_str()),
            ("invalid_value", "missing value")
        );
    }
}
