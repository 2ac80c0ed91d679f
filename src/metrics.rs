//! Every Prometheus metric okrd exports, declared in this one module (SPEC
//! §5). Service-health metrics live in a registry and are updated where
//! things happen; key-result metrics are rendered from the latest
//! scorecard at scrape time, so a KR removed by a reload leaves no stale
//! series behind. Label values come from bounded sets (config ids, fixed
//! reasons and outcomes).

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::scorecard::{KeyResultRow, Scorecard};
use crate::scoring::Status;

/// Connector name used for points pushed over HTTP.
pub const PUSH_CONNECTOR: &str = "push";

/// okrd's service-health metrics.
pub struct Metrics {
    registry: Registry,
    /// `okrd_points_ingested_total{connector}`.
    pub points_ingested: IntCounterVec,
    /// `okrd_points_rejected_total{connector,reason}`.
    pub points_rejected: IntCounterVec,
    /// `okrd_connector_last_success_timestamp_seconds{connector}`.
    pub connector_last_success: GaugeVec,
    /// `okrd_connector_errors_total{connector,reason}`.
    pub connector_errors: IntCounterVec,
    /// `okrd_kafka_consumer_lag{connector,partition}`.
    pub kafka_consumer_lag: IntGaugeVec,
    /// `okrd_kafka_in_flight_points{connector}`.
    pub kafka_in_flight: IntGaugeVec,
    /// `okrd_recompute_duration_seconds`.
    pub recompute_duration: Histogram,
    /// `okrd_history_pending_key_results`: KRs whose score history is still
    /// being built (after a start, or a reload that added them).
    pub history_pending: IntGauge,
    /// `okrd_notifications_total{notifier,outcome}`.
    pub notifications: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

impl Metrics {
    /// Declares and registers every service-health metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Self {
            points_ingested: counter(
                "okrd_points_ingested_total",
                "Points written to the store, by connector (push: the HTTP API).",
                &["connector"],
            ),
            points_rejected: counter(
                "okrd_points_rejected_total",
                "Points rejected as invalid, by connector and reason.",
                &["connector", "reason"],
            ),
            connector_last_success: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "okrd_connector_last_success_timestamp_seconds",
                        "Unix time of the connector's last successful run.",
                    ),
                    &["connector"],
                )
                .expect("valid metric"),
            ),
            connector_errors: counter(
                "okrd_connector_errors_total",
                "Failed connector runs, by connector and reason.",
                &["connector", "reason"],
            ),
            kafka_consumer_lag: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "okrd_kafka_consumer_lag",
                        "Messages between the last one okrd durably wrote (its stored offset) and the partition's end; partition is topic/number.",
                    ),
                    &["connector", "partition"],
                )
                .expect("valid metric"),
            ),
            kafka_in_flight: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "okrd_kafka_in_flight_points",
                        "Points taken from Kafka and not yet written; consumption pauses at the connector's max_in_flight_points.",
                    ),
                    &["connector"],
                )
                .expect("valid metric"),
            ),
            recompute_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "okrd_recompute_duration_seconds",
                        "Time one recompute of the scorecard took.",
                    )
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            history_pending: register(
                &r,
                IntGauge::new(
                    "okrd_history_pending_key_results",
                    "Key results whose score history is still being built.",
                )
                .expect("valid metric"),
            ),
            notifications: counter(
                "okrd_notifications_total",
                "Alert notifications, by notifier and outcome.",
                &["notifier", "outcome"],
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition: service health plus the KR and
    /// objective metrics of `card`.
    pub fn render(&self, card: &Scorecard) -> String {
        self.render_with(card, &Confidences::new())
    }

    /// [`Metrics::render`], with each KR's latest check-in confidence
    /// (`okrd_key_result_confidence`), which the scorecard does not hold:
    /// a check-in is never part of the score.
    pub fn render_with(&self, card: &Scorecard, confidences: &Confidences) -> String {
        let mut families = self.registry.gather();
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("encoding to memory cannot fail");
        let mut text = String::from_utf8(out).expect("the text format is UTF-8");
        write_scorecard(card, confidences, &mut text);
        text
    }
}

/// The latest check-in's confidence of each KR, by (objective, key result).
pub type Confidences = std::collections::HashMap<(String, String), f64>;

/// A KR's labels. Labels are written sorted by name, as the prometheus
/// crate writes them.
fn kr(r: &KeyResultRow) -> [(&'static str, &str); 2] {
    [
        ("key_result", r.key_result.as_str()),
        ("objective", r.objective.as_str()),
    ]
}

/// Writes the KR and objective gauges of `card` in the text format,
/// straight from the scorecard: no metric objects are built per scrape, so
/// one of 10,000 KRs costs a string, not a registry of 150,000 gauges.
fn write_scorecard(card: &Scorecard, confidences: &Confidences, out: &mut String) {
    let krs = &card.key_results;
    family(
        out,
        "okrd_guardrail_degraded",
        "1 while the counter metric is degraded: worse than W ago by more than its tolerance (test: welch, by the lower confidence bound of the two windows' difference).",
        |f| {
            for r in krs {
                for c in &r.counters {
                    let [k, o] = kr(r);
                    f.sample(
                        &[("counter_metric", &c.metric), k, o],
                        if c.degraded { 1.0 } else { 0.0 },
                    );
                }
            }
        },
    );
    family(
        out,
        "okrd_key_result_confidence",
        "The confidence (0.0 to 1.0) of the key result's latest check-in: a person's word, never part of the score; absent without a check-in.",
        |f| {
            for r in krs {
                let key = (r.objective.clone(), r.key_result.clone());
                if let Some(c) = confidences.get(&key) {
                    f.sample(&kr(r), *c);
                }
            }
        },
    );
    family(
        out,
        "okrd_key_result_expected_score",
        "The score expected by now: elapsed fraction of the period (x0.7 for aspirational KRs).",
        |f| krs.iter().for_each(|r| f.sample(&kr(r), r.expected)),
    );
    family(
        out,
        "okrd_key_result_forecast_probability",
        "Probability, by Student's t around the least-squares line through the period's points, that the value at period end meets the target (a maintain KR: its threshold); absent with fewer than 3 points.",
        |f| {
            for r in krs {
                if let Some(p) = r.forecast_probability {
                    f.sample(&kr(r), p);
                }
            }
        },
    );
    family(
        out,
        "okrd_key_result_info",
        "Key result metadata; always 1.",
        |f| {
            for r in krs {
                let [k, o] = kr(r);
                f.sample(
                    &[
                        k,
                        o,
                        ("period", &r.period),
                        ("team", &r.team),
                        ("title", &r.title),
                    ],
                    1.0,
                );
            }
        },
    );
    family(
        out,
        "okrd_key_result_progress",
        "Key result progress from baseline to target, unclamped (1 = target reached).",
        |f| {
            for r in krs {
                if let Some(p) = r.progress {
                    f.sample(&kr(r), p);
                }
            }
        },
    );
    family(
        out,
        "okrd_key_result_revision",
        "The revision of the key result's definition in force (0: never revised while its period ran).",
        |f| {
            for r in krs {
                f.sample(&kr(r), r.revision as f64);
            }
        },
    );
    family(
        out,
        "okrd_key_result_score",
        "Key result score, 0.0 to 1.0.",
        |f| krs.iter().for_each(|r| f.sample(&kr(r), r.score)),
    );
    family(
        out,
        "okrd_key_result_status",
        "1 for the key result's current status, 0 for the others.",
        |f| {
            for r in krs {
                let [k, o] = kr(r);
                for s in Status::ALL {
                    let on = if s.as_str() == r.status { 1.0 } else { 0.0 };
                    f.sample(&[k, o, ("status", s.as_str())], on);
                }
            }
        },
    );
    family(
        out,
        "okrd_key_result_target",
        "The key result's target (threshold for maintain KRs).",
        |f| krs.iter().for_each(|r| f.sample(&kr(r), r.target)),
    );
    family(
        out,
        "okrd_key_result_value",
        "The key result's current aggregate value.",
        |f| {
            for r in krs {
                if let Some(v) = r.value {
                    f.sample(&kr(r), v);
                }
            }
        },
    );
    family(
        out,
        "okrd_objective_rollup_score",
        "Objective roll-up: the unweighted mean of its own score (when it has key results) and the roll-ups of the objectives aligned to it.",
        |f| {
            for o in &card.objectives {
                f.sample(&[("objective", &o.id), ("team", &o.team)], o.rollup);
            }
        },
    );
    family(
        out,
        "okrd_objective_score",
        "Objective score: weighted average of its key results' scores (an objective without key results of its own: its roll-up).",
        |f| {
            for o in &card.objectives {
                f.sample(&[("objective", &o.id), ("team", &o.team)], o.score);
            }
        },
    );
}

/// One gauge family being written: its samples, then (if any) its header
/// and them appended to the exposition.
struct Family {
    name: &'static str,
    samples: String,
}

impl Family {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        use std::fmt::Write;
        self.samples.push_str(self.name);
        self.samples.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.samples.push(',');
            }
            self.samples.push_str(k);
            self.samples.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.samples.push_str("\\\\"),
                    '"' => self.samples.push_str("\\\""),
                    '\n' => self.samples.push_str("\\n"),
                    c => self.samples.push(c),
                }
            }
            self.samples.push('"');
        }
        let _ = writeln!(self.samples, "}} {value}");
    }
}

fn family(out: &mut String, name: &'static str, help: &str, fill: impl FnOnce(&mut Family)) {
    let mut f = Family {
        name,
        samples: String::new(),
    };
    fill(&mut f);
    if !f.samples.is_empty() {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        out.push_str(&f.samples);
    }
}
