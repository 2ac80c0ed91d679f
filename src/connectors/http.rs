//! `type: http`: GET or POST a URL on schedule and pick points out of the
//! JSON answer with JSON pointers (SPEC §3).
//!
//! `extract.items` points at the array of items (absent: the document is
//! one item); in each item `value`, `ts` (absent: the tick), `metric` (a
//! pointer, or a literal name) and each label are pointers. An item that is
//! not a point is rejected and counted; an answer that is not JSON, or
//! whose items pointer (or every item) fails, fails the run with a message
//! naming the URL and the pointer.

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use crate::config::connector::{FieldRef, HttpMethod, HttpSource};
use crate::ingest::{limits, Interner, PointError, RejectReason};
use crate::model::{Labels, Point, SeriesKey, Timestamp};

use super::guard::Guard;
use super::pull::{json_label, json_number, json_ts, kind, reject, Pull, PullError, Pulled, Run};
use super::request;

/// An `http` connector.
pub struct HttpPull {
    source: HttpSource,
    client: reqwest::Client,
    guard: Option<Guard>,
    target: String,
}

impl HttpPull {
    /// A connector for `source`; `guard` for one registered over the API.
    pub fn new(source: HttpSource, guard: Option<Guard>) -> Self {
        for (k, v) in &source.request.headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err() || HeaderValue::from_str(v).is_err() {
                tracing::warn!(url = %crate::secrets::redact(&source.request.url), header = %k, "invalid HTTP header name or value: it is not sent");
            }
        }
        let client = request::client(
            guard.as_ref(),
            request::port_of(&source.request.url),
            source.ca.as_ref(),
        );
        Self {
            target: crate::secrets::redact(&source.request.url),
            source,
            client,
            guard,
        }
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let r = &self.source.request;
        let mut b = match r.method {
            HttpMethod::Get => self.client.get(&r.url),
            HttpMethod::Post => self.client.post(&r.url),
        };
        let mut has_type = false;
        for (k, v) in &r.headers {
            // A bad header is skipped here; `new` reported it once.
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                has_type |= k == CONTENT_TYPE;
                b = b.header(k, v);
            }
        }
        if let Some(body) = &r.body {
            if !has_type && serde_json::from_str::<Value>(body).is_ok() {
                b = b.header(CONTENT_TYPE, "application/json");
            }
            b = b.body(body.clone());
        }
        b
    }
}

#[async_trait]
impl Pull for HttpPull {
    fn target(&self) -> &str {
        &self.target
    }

    async fn pull(&mut self, run: &Run) -> Result<Pulled, PullError> {
        let url = self.target.clone();
        let answer = request::send(|| self.request(), self.guard.as_ref(), &url, run).await?;
        if !answer.status.is_success() {
            return Err(PullError::Status {
                target: url,
                status: answer.status.as_u16(),
                body: answer.describe(),
            });
        }
        let doc: Value =
            serde_json::from_slice(&answer.body).map_err(|e| PullError::BadResponse {
                target: url.clone(),
                message: format!("the response ({}) is not JSON: {e}", answer.describe()),
            })?;
        extract(&self.source, &doc, run.tick).map_err(|message| PullError::BadResponse {
            target: url,
            message,
        })
    }
}

/// Picks the points out of `doc`. Fails when the items pointer does not
/// lead to an array, or when there are items and none is a point.
pub(crate) fn extract(source: &HttpSource, doc: &Value, tick: Timestamp) -> Result<Pulled, String> {
    let ex = &source.extract;
    let items: Vec<&Value> = match &ex.items {
        None => vec![doc],
        Some(p) => match doc.pointer(p) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => {
                return Err(format!(
                    "extract.items pointer {p:?} leads to {}, not an array",
                    kind(other)
                ))
            }
            None => return Err(format!("extract.items pointer {p:?} matches nothing")),
        },
    };
    let mut interner = Interner::default();
    let mut pulled = Pulled::default();
    for (i, item) in items.iter().enumerate() {
        match point(source, item, tick, &mut interner) {
            Ok(p) => pulled.points.push(p),
            Err(mut e) => {
                if ex.items.is_some() {
                    e.message = format!("item {i}: {}", e.message);
                }
                pulled.rejected.push(e);
            }
        }
    }
    if pulled.points.is_empty() {
        if let Some(first) = pulled.rejected.first() {
            let more = match pulled.rejected.len() {
                1 => String::new(),
                n => format!(" (and {} more items)", n - 1),
            };
            return Err(format!("no point could be read: {}{more}", first.message));
        }
    }
    Ok(pulled)
}

fn point(
    source: &HttpSource,
    item: &Value,
    tick: Timestamp,
    interner: &mut Interner,
) -> Result<Point, PointError> {
    use RejectReason::*;
    let ex = &source.extract;
    let at = |field: &str, p: &str, reason: RejectReason| {
        item.pointer(p).ok_or_else(|| {
            reject(
                reason,
                format!("extract.{field} pointer {p:?} matches nothing"),
            )
        })
    };
    let metric = match &ex.metric {
        FieldRef::Literal(m) => m.clone(),
        FieldRef::Pointer(p) => match at("metric", p, InvalidMetric)? {
            Value::String(m) => {
                limits::check_metric(m).map_err(|e| {
                    reject(InvalidMetric, format!("extract.metric pointer {p:?}: {e}"))
                })?;
                m.clone()
            }
            other => {
                return Err(reject(
                    InvalidMetric,
                    format!(
                        "extract.metric pointer {p:?} leads to {}, not a metric name",
                        kind(other)
                    ),
                ))
            }
        },
    };
    let value = json_number(at("value", &ex.value, InvalidValue)?).map_err(|e| {
        reject(
            InvalidValue,
            format!("extract.value pointer {:?}: {e}", ex.value),
        )
    })?;
    let ts = match &ex.ts {
        None => tick,
        Some(p) => json_ts(at("ts", p, InvalidTs)?)
            .map_err(|e| reject(InvalidTs, format!("extract.ts pointer {p:?}: {e}")))?,
    };
    let mut labels = Labels::new();
    for (name, p) in &ex.labels {
        // Label names follow the metric-name rule.
        if !crate::model::is_valid_metric_name(name) {
            return Err(reject(
                InvalidLabels,
                format!("extract.labels: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
            ));
        }
        // A label whose pointer matches nothing is absent, like an empty
        // CSV cell: optional attributes are common in APIs.
        if let Some(v) = item.pointer(p) {
            let v = json_label(v).map_err(|e| {
                reject(
                    InvalidLabels,
                    format!("extract.labels.{name} pointer {p:?}: {e}"),
                )
            })?;
            if let Some(v) = v {
                labels.insert(name.clone(), v);
            }
        }
    }
    limits::check_point(&metric, &labels, ts, value)?;
    Ok(Point {
        series: interner.intern(SeriesKey::new(metric, labels)),
        ts,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::connector::{Extract, HttpRequest};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn source(items: Option<&str>, metric: FieldRef) -> HttpSource {
        HttpSource {
            request: HttpRequest {
                method: HttpMethod::Get,
                url: "http://x/".into(),
                headers: Default::default(),
                body: None,
            },
            extract: Extract {
                items: items.map(String::from),
                metric,
                ts: Some("/date".into()),
                value: "/rate".into(),
                labels: [("plan".to_string(), "/plan".to_string())].into(),
            },
            ca: None,
        }
    }

    fn tick() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    #[test]
    fn items_become_points_and_bad_items_are_rejected_with_their_pointer() {
        let s = source(Some("/data"), FieldRef::Literal("activation_rate".into()));
        let doc = json!({"data": [
            {"date": "2026-11-20T00:00:00Z", "rate": 0.41, "plan": "free"},
            {"date": 1_795_000_000, "rate": "0.5"},
            {"date": "2026-11-21T00:00:00Z", "rate": null, "plan": "pro"},
            {"date": "yesterday", "rate": 1, "plan": "pro"},
            {"date": "2026-11-21T00:00:00Z", "rate": 1, "plan": {"a": 1}},
            {"date": "2026-11-21T00:00:00Z", "rate": 1, "plan": "p".repeat(1025)},
            {"date": -1, "rate": 1, "plan": "pro"},
        ]});
        let got = extract(&s, &doc, tick()).unwrap();
        assert_eq!(got.points.len(), 2);
        assert_eq!(got.points[0].series.labels.get("plan").unwrap(), "free");
        assert!(got.points[1].series.labels.is_empty(), "absent label");
        assert_eq!(got.points[1].value, 0.5);
        let reasons: Vec<_> = got.rejected.iter().map(|e| e.reason.as_str()).collect();
        // The same limits as every path: a label value past 1,024 bytes, a
        // ts before 1970.
        assert_eq!(
            reasons,
            [
                "invalid_value",
                "invalid_ts",
                "invalid_labels",
                "invalid_labels",
                "invalid_ts"
            ]
        );
        assert!(got.rejected[0]
            .message
            .starts_with("item 2: extract.value pointer \"/rate\""));
    }

    #[test]
    fn a_pointer_that_fails_everywhere_fails_the_run_naming_it() {
        let s = source(Some("/data"), FieldRef::Pointer("/name".into()));
        let e = extract(&s, &json!({"rows": []}), tick()).unwrap_err();
        assert!(
            e.contains("extract.items pointer \"/data\" matches nothing"),
            "{e}"
        );
        let e = extract(&s, &json!({"data": {"a": 1}}), tick()).unwrap_err();
        assert!(e.contains("an object, not an array"), "{e}");
        let e = extract(&s, &json!({"data": [{"rate": 1}, {"rate": 2}]}), tick()).unwrap_err();
        assert!(
            e.contains("extract.metric pointer \"/name\" matches nothing"),
            "{e}"
        );
        assert!(e.contains("and 1 more"), "{e}");
        assert!(extract(&s, &json!({"data": []}), tick())
            .unwrap()
            .points
            .is_empty());
    }

    #[test]
    fn a_document_without_items_pointer_is_one_item_and_ts_defaults_to_the_tick() {
        let mut s = source(None, FieldRef::Pointer("/name".into()));
        s.extract.ts = None;
        let got = extract(&s, &json!({"name": "m", "rate": 2}), tick()).unwrap();
        assert_eq!(got.points[0].ts, tick());
        assert_eq!(got.points[0].series.metric, "m");
    }
}
