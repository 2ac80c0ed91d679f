//! `type: prometheus`: a PromQL instant query through Prometheus's HTTP API
//! (`GET /api/v1/query`), evaluated at the tick's time (SPEC §3).
//!
//! Each series of a vector result becomes a point named `metric`, its
//! labels kept without `__name__`; a scalar result is one unlabelled point.
//! A sample that is NaN or infinite is rejected and counted. A query
//! Prometheus refuses fails the run with Prometheus's own error text.

use async_trait::async_trait;
use serde_json::Value;

use crate::config::connector::PrometheusSource;
use crate::ingest::{limits, Interner, PointError, RejectReason};
use crate::model::{is_valid_label_name, Labels, Point, SeriesKey, Timestamp};

use super::guard::Guard;
use super::pull::{json_number, json_ts, reject, Pull, PullError, Pulled, Run};
use super::request;

/// A `prometheus` connector.
pub struct PrometheusPull {
    source: PrometheusSource,
    endpoint: String,
    target: String,
    client: reqwest::Client,
    guard: Option<Guard>,
}

impl PrometheusPull {
    /// A connector for `source`; `guard` for one registered over the API.
    pub fn new(source: PrometheusSource, guard: Option<Guard>) -> Self {
        let endpoint = format!("{}/api/v1/query", source.url.trim_end_matches('/'));
        let client = request::client(
            guard.as_ref(),
            request::port_of(&endpoint),
            source.ca.as_ref(),
        );
        Self {
            source,
            target: crate::secrets::redact(&endpoint),
            endpoint,
            client,
            guard,
        }
    }
}

#[async_trait]
impl Pull for PrometheusPull {
    fn target(&self) -> &str {
        &self.target
    }

    async fn pull(&mut self, run: &Run) -> Result<Pulled, PullError> {
        let time = format!("{:.3}", run.tick.timestamp_millis() as f64 / 1000.0);
        let build = || {
            self.client
                .get(&self.endpoint)
                .query(&[("query", self.source.query.as_str()), ("time", &time)])
        };
        let target = self.target.clone();
        // One attempt more than `send` would make on a 5xx is not needed:
        // Prometheus's own error (a query timeout, say) comes in a 4xx or
        // 5xx JSON answer, read here in either case.
        let answer = request::send(build, self.guard.as_ref(), &target, run).await?;
        let doc: Result<Value, _> = serde_json::from_slice(&answer.body);
        if let Some(message) = doc.as_ref().ok().and_then(prometheus_error) {
            return Err(PullError::Query { target, message });
        }
        if !answer.status.is_success() {
            return Err(PullError::Status {
                target,
                status: answer.status.as_u16(),
                body: answer.describe(),
            });
        }
        let doc = doc.map_err(|e| PullError::BadResponse {
            target: target.clone(),
            message: format!("the response ({}) is not JSON: {e}", answer.describe()),
        })?;
        convert(&self.source.metric, &doc)
            .map_err(|message| PullError::BadResponse { target, message })
    }
}

/// `errorType: error` of a Prometheus error answer.
fn prometheus_error(doc: &Value) -> Option<String> {
    if doc.get("status")?.as_str()? != "error" {
        return None;
    }
    let kind = doc
        .get("errorType")
        .and_then(Value::as_str)
        .unwrap_or("error");
    let text = doc.get("error").and_then(Value::as_str).unwrap_or("");
    Some(format!(
        "prometheus: {}: {}",
        request::clip(kind, 40),
        request::clip(text, 300)
    ))
}

/// The points of a successful query answer.
pub(crate) fn convert(metric: &str, doc: &Value) -> Result<Pulled, String> {
    let data = doc
        .get("data")
        .ok_or("the answer has no `data`: is this a Prometheus /api/v1/query?")?;
    let result_type = data.get("resultType").and_then(Value::as_str).unwrap_or("");
    let result = data
        .get("result")
        .ok_or("the answer has no `data.result`")?;
    let mut interner = Interner::default();
    let mut pulled = Pulled::default();
    match result_type {
        "vector" => {
            let series = result.as_array().ok_or("`data.result` is not an array")?;
            for s in series {
                match sample(metric, s.get("metric"), s.get("value"), &mut interner) {
                    Ok(p) => pulled.points.push(p),
                    Err(e) => pulled.rejected.push(e),
                }
            }
        }
        "scalar" => match sample(metric, None, Some(result), &mut interner) {
            Ok(p) => pulled.points.push(p),
            Err(e) => pulled.rejected.push(e),
        },
        other => {
            return Err(format!(
                "result type {other:?} is not supported: write a query whose result is an instant vector or a scalar"
            ))
        }
    }
    Ok(pulled)
}

fn sample(
    metric: &str,
    labels: Option<&Value>,
    value: Option<&Value>,
    interner: &mut Interner,
) -> Result<Point, PointError> {
    use RejectReason::*;
    let mut set = Labels::new();
    if let Some(map) = labels.and_then(Value::as_object) {
        for (k, v) in map {
            if k == "__name__" {
                continue;
            }
            if !is_valid_label_name(k) {
                return Err(reject(
                    InvalidLabels,
                    format!("label name {k:?} is not [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
            set.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    let series = SeriesKey::new(metric, set);
    let pair = value.and_then(Value::as_array).filter(|a| a.len() == 2);
    let Some(pair) = pair else {
        return Err(reject(
            InvalidShape,
            format!("{series}: a sample is [time, \"value\"]"),
        ));
    };
    let ts: Timestamp =
        json_ts(&pair[0]).map_err(|e| reject(InvalidTs, format!("{series}: {e}")))?;
    let value =
        json_number(&pair[1]).map_err(|e| reject(InvalidValue, format!("{series}: {e}")))?;
    limits::check_point(&series.metric, &series.labels, ts, value)?;
    Ok(Point {
        series: interner.intern(series),
        ts,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vector_series_keep_their_labels_but_not_the_name() {
        let doc = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "app", "plan": "free"}, "value": [1795000000.5, "0.75"]},
            {"metric": {"job": "app", "plan": "pro"}, "value": [1795000000.5, "NaN"]},
        ]}});
        let got = convert("retention_d7", &doc).unwrap();
        assert_eq!(got.points.len(), 1);
        let p = &got.points[0];
        assert_eq!(
            p.series.to_string(),
            "retention_d7{job=\"app\",plan=\"free\"}"
        );
        assert_eq!(
            (p.ts.timestamp_millis(), p.value),
            (1_795_000_000_500, 0.75)
        );
        assert_eq!(got.rejected[0].reason, RejectReason::InvalidValue);
    }

    #[test]
    fn scalars_are_one_point_and_matrices_are_refused() {
        let doc = json!({"status": "success", "data": {"resultType": "scalar", "result": [1795000000, "2"]}});
        let got = convert("m", &doc).unwrap();
        assert_eq!(got.points[0].value, 2.0);
        assert!(got.points[0].series.labels.is_empty());
        let doc = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(convert("m", &doc)
            .unwrap_err()
            .contains("\"matrix\" is not supported"));
    }

    #[test]
    fn prometheus_errors_keep_their_text() {
        let doc =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"});
        assert_eq!(
            prometheus_error(&doc).unwrap(),
            "prometheus: bad_data: parse error at char 5"
        );
    }
}
