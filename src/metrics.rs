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

use std::sync::Arc;

use crate::scorecard::{KeyResultRow, ObjectiveRow, Scorecard};
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
        self.exposition(Arc::new(card.clone()), confidences.clone())
            .collect()
    }

    /// [`Metrics::render_with`] a chunk at a time, for a response body to
    /// stream: a scrape of 10,000 KRs holds one chunk of text, not 15 MB.
    pub fn exposition(&self, card: Arc<Scorecard>, confidences: Confidences) -> Exposition {
        let mut families = self.registry.gather();
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("encoding to memory cannot fail");
        Exposition {
            health: Some(String::from_utf8(out).expect("the text format is UTF-8")),
            card,
            confidences,
            family: 0,
            next: 0,
            started: false,
        }
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

/// Rows one chunk of the exposition writes: a few hundred KB of text.
const CHUNK_ROWS: usize = 1_000;

/// The text exposition of the service-health registry and a scorecard, in
/// chunks: the registry's, then each KR and objective gauge family
/// [`CHUNK_ROWS`] rows at a time, written straight from the scorecard (no
/// metric objects are built per scrape, so one of 10,000 KRs costs text,
/// not a registry of 150,000 gauges).
pub struct Exposition {
    /// The registry's text, until it is taken.
    health: Option<String>,
    card: Arc<Scorecard>,
    confidences: Confidences,
    /// The family being written, in [`FAMILIES`].
    family: usize,
    /// Its next row.
    next: usize,
    /// Whether its header is written.
    started: bool,
}

impl Iterator for Exposition {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if let Some(health) = self.health.take() {
            return Some(health);
        }
        while let Some(def) = FAMILIES.get(self.family) {
            let mut f = Family {
                name: def.name,
                samples: String::new(),
            };
            let (rows, end) = match def.rows {
                Rows::KeyResults(write) => {
                    let krs = &self.card.key_results;
                    let end = (self.next + CHUNK_ROWS).min(krs.len());
                    for r in &krs[self.next.min(end)..end] {
                        write(r, &self.confidences, &mut f);
                    }
                    (krs.len(), end)
                }
                Rows::Objectives(write) => {
                    let objectives = &self.card.objectives;
                    let end = (self.next + CHUNK_ROWS).min(objectives.len());
                    for o in &objectives[self.next.min(end)..end] {
                        write(o, &mut f);
                    }
                    (objectives.len(), end)
                }
            };
            let mut chunk = String::new();
            if !f.samples.is_empty() && !self.started {
                self.started = true;
                let name = def.name;
                chunk = format!("# HELP {name} {}\n# TYPE {name} gauge\n", def.help);
            }
            chunk.push_str(&f.samples);
            if end >= rows {
                (self.family, self.next, self.started) = (self.family + 1, 0, false);
            } else {
                self.next = end;
            }
            if !chunk.is_empty() {
                return Some(chunk);
            }
        }
        None
    }
}

impl futures_core::Stream for Exposition {
    type Item = Result<String, std::convert::Infallible>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(Iterator::next(self.get_mut()).map(Ok))
    }
}

/// A gauge family of the scorecard: its name, help, and how each row
/// writes its samples.
struct FamilyDef {
    name: &'static str,
    help: &'static str,
    rows: Rows,
}

enum Rows {
    KeyResults(fn(&KeyResultRow, &Confidences, &mut Family)),
    Objectives(fn(&ObjectiveRow, &mut Family)),
}

/// The scorecard's gauge families, in name order.
const FAMILIES: [FamilyDef; 13] = [
    FamilyDef {
        name: "okrd_guardrail_degraded",
        help: "1 while the counter metric is degraded: worse than W ago by more than its tolerance (test: welch, by the lower confidence bound of the two windows' difference).",
        rows: Rows::KeyResults(|r, _, f| {
            for c in &r.counters {
                let [k, o] = kr(r);
                f.sample(
                    &[("counter_metric", &c.metric), k, o],
                    if c.degraded { 1.0 } else { 0.0 },
                );
            }
        }),
    },
    FamilyDef {
        name: "okrd_key_result_confidence",
        help: "The confidence (0.0 to 1.0) of the key result's latest check-in: a person's word, never part of the score; absent without a check-in.",
        rows: Rows::KeyResults(|r, confidences, f| {
            let key = (r.objective.clone(), r.key_result.clone());
            if let Some(c) = confidences.get(&key) {
                f.sample(&kr(r), *c);
            }
        }),
    },
    FamilyDef {
        name: "okrd_key_result_expected_score",
        help: "The score expected by now: elapsed fraction of the period (x0.7 for aspirational KRs).",
        rows: Rows::KeyResults(|r, _, f| f.sample(&kr(r), r.expected)),
    },
    FamilyDef {
        name: "okrd_key_result_forecast_probability",
        help: "Probability, by Student's t around the least-squares line through the period's points, that the value at period end meets the target (a maintain KR: its threshold); absent with fewer than 3 points.",
        rows: Rows::KeyResults(|r, _, f| {
            if let Some(p) = r.forecast_probability {
                f.sample(&kr(r), p);
            }
        }),
    },
    FamilyDef {
        name: "okrd_key_result_info",
        help: "Key result metadata; always 1.",
        rows: Rows::KeyResults(|r, _, f| {
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
        }),
    },
    FamilyDef {
        name: "okrd_key_result_progress",
        help: "Key result progress from baseline to target, unclamped (1 = target reached).",
        rows: Rows::KeyResults(|r, _, f| {
            if let Some(p) = r.progress {
                f.sample(&kr(r), p);
            }
        }),
    },
    FamilyDef {
        name: "okrd_key_result_revision",
        help: "The revision of the key result's definition in force (0: never revised while its period ran).",
        rows: Rows::KeyResults(|r, _, f| f.sample(&kr(r), r.revision as f64)),
    },
    FamilyDef {
        name: "okrd_key_result_score",
        help: "Key result score, 0.0 to 1.0.",
        rows: Rows::KeyResults(|r, _, f| f.sample(&kr(r), r.score)),
    },
    FamilyDef {
        name: "okrd_key_result_status",
        help: "1 for the key result's current status, 0 for the others.",
        rows: Rows::KeyResults(|r, _, f| {
            let [k, o] = kr(r);
            for s in Status::ALL {
                let on = if s.as_str() == r.status { 1.0 } else { 0.0 };
                f.sample(&[k, o, ("status", s.as_str())], on);
            }
        }),
    },
    FamilyDef {
        name: "okrd_key_result_target",
        help: "The key result's target (threshold for maintain KRs).",
        rows: Rows::KeyResults(|r, _, f| f.sample(&kr(r), r.target)),
    },
    FamilyDef {
        name: "okrd_key_result_value",
        help: "The key result's current aggregate value.",
        rows: Rows::KeyResults(|r, _, f| {
            if let Some(v) = r.value {
                f.sample(&kr(r), v);
            }
        }),
    },
    FamilyDef {
        name: "okrd_objective_rollup_score",
        help: "Objective roll-up: the unweighted mean of its own score (when it has key results) and the roll-ups of the objectives aligned to it.",
        rows: Rows::Objectives(|o, f| f.sample(&[("objective", &o.id), ("team", &o.team)], o.rollup)),
    },
    FamilyDef {
        name: "okrd_objective_score",
        help: "Objective score: weighted average of its key results' scores (an objective without key results of its own: its roll-up).",
        rows: Rows::Objectives(|o, f| f.sample(&[("objective", &o.id), ("team", &o.team)], o.score)),
    },
];

/// One gauge family's samples being written.
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
