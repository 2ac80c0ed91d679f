//! The scorecard: every objective's and key result's score at one instant,
//! as the scorer publishes it and its readers (the API, `/metrics`, the
//! alert engine, `okrd score`) take it. A leaf: it names only the pure
//! scoring types, so its readers need not import the scorer.

use std::sync::Arc;

use serde::Serialize;

use crate::definition::Revision;
use crate::scoring::guardrail::CounterState;
use crate::scoring::KrScore;

/// Every objective's and key result's score at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scorecard {
    /// Objective scores, in config order.
    pub objectives: Vec<ObjectiveRow>,
    /// Key result scores, grouped by objective, in config order; each
    /// shared with the scorer, which replaces only the rows it recomputes.
    pub key_results: Vec<Arc<KeyResultRow>>,
    /// The change-feed position the scores hold every change below
    /// (`feed.rs`): alert transitions are decided from it.
    #[serde(skip)]
    pub view: i64,
}

impl Scorecard {
    /// The row of the objective at position `index` of the config, when it
    /// is `id` (a scorecard's rows follow the config it was computed
    /// from; across a reload they may not, and then the id decides).
    pub fn objective(&self, index: usize, id: &str) -> Option<&ObjectiveRow> {
        match self.objectives.get(index) {
            Some(row) if row.id == id => Some(row),
            _ => self.objectives.iter().find(|r| r.id == id),
        }
    }

    /// The row of the KR at flat position `index` of the config
    /// (objectives in order, each one's KRs in order), when it is
    /// `objective/key_result`; like [`Scorecard::objective`].
    pub fn key_result(
        &self,
        index: usize,
        objective: &str,
        key_result: &str,
    ) -> Option<&KeyResultRow> {
        let is = |r: &&Arc<KeyResultRow>| r.objective == objective && r.key_result == key_result;
        match self.key_results.get(index) {
            Some(row) if is(&row) => Some(row),
            _ => self.key_results.iter().find(is),
        }
        .map(Arc::as_ref)
    }
}

/// An objective's score, as `okrd score --format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveRow {
    /// Objective id.
    pub id: String,
    /// Weight-averaged KR score; an objective without key results of its
    /// own scores its roll-up.
    pub score: f64,
    /// The unweighted mean of its own score (when it has key results) and
    /// the roll-ups of the objectives aligned to it.
    pub rollup: f64,
    /// The owning team.
    #[serde(skip)]
    pub team: String,
}

/// A key result's score, as `okrd score --format json` prints it; `None`
/// fields print as `null` where they do not apply.
#[derive(Debug, Clone, Serialize)]
pub struct KeyResultRow {
    /// Objective id.
    pub objective: String,
    /// Key result id.
    pub key_result: String,
    /// The KR's aggregate value.
    pub value: Option<f64>,
    /// The baseline used.
    pub baseline: Option<f64>,
    /// Target, or threshold for maintain KRs.
    pub target: f64,
    /// Unclamped progress.
    pub progress: Option<f64>,
    /// Score in [0, 1].
    pub score: f64,
    /// Expected score now.
    pub expected: f64,
    /// Status name.
    pub status: &'static str,
    /// Forecast score at period end.
    pub forecast: Option<f64>,
    /// The probability that the value at period end meets the target.
    pub forecast_probability: Option<f64>,
    /// The owning team.
    #[serde(skip)]
    pub team: String,
    /// The KR's title.
    #[serde(skip)]
    pub title: String,
    /// The objective's period, as written.
    #[serde(skip)]
    pub period: String,
    /// The full evaluation, for explanations.
    #[serde(skip)]
    pub detail: KrScore,
    /// Each counter metric's guardrail state.
    #[serde(skip)]
    pub counters: Vec<CounterState>,
    /// Whether the KR's score history is still being built (after a start
    /// or a reload that added it): its history is incomplete until then.
    #[serde(skip)]
    pub history_building: bool,
    /// The revision of its definition it was scored under (0: none yet).
    #[serde(skip)]
    pub revision: i64,
    /// Its revisions, oldest first (shared with the scorer).
    #[serde(skip)]
    pub revisions: Arc<Vec<Revision>>,
}
