//! The scorer: reads each key result's series from the store and runs the
//! pure scoring functions over them. The one place scores are computed.

use serde::Serialize;

use crate::config::Objective;
use crate::model::{SeriesKey, Timestamp};
use crate::scoring::{self, KrScore, Margins};
use crate::store::{Store, StoreError};

/// Every objective's and key result's score at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    /// Objective scores, in config order.
    pub objectives: Vec<ObjectiveRow>,
    /// Key result scores, grouped by objective, in config order.
    pub key_results: Vec<KeyResultRow>,
}

/// An objective's score, as `okrd score --format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveRow {
    /// Objective id.
    pub id: String,
    /// Weight-averaged KR score.
    pub score: f64,
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
    /// The full evaluation, for explanations.
    #[serde(skip)]
    pub detail: KrScore,
}

/// Scores every key result of `objectives` at `now`.
pub async fn score_all(
    store: &dyn Store,
    objectives: &[Objective],
    now: Timestamp,
    margins: Margins,
) -> Result<Scorecard, StoreError> {
    let mut card = Scorecard {
        objectives: Vec::with_capacity(objectives.len()),
        key_results: Vec::new(),
    };
    for objective in objectives {
        let mut scores = Vec::with_capacity(objective.key_results.len());
        for kr in &objective.key_results {
            let key = SeriesKey::new(kr.metric.clone(), kr.labels.clone());
            let from = scoring::data_from(kr, &objective.period);
            let to = scoring::evaluation_time(&objective.period, now);
            let samples = store.load_series(&key, from, to).await?;
            let s = scoring::score_key_result(kr, &objective.period, &samples, now, margins);
            card.key_results.push(KeyResultRow {
                objective: objective.id.clone(),
                key_result: kr.id.clone(),
                value: s.value,
                baseline: s.baseline,
                target: s.target,
                progress: s.progress,
                score: s.score,
                expected: s.expected,
                status: s.status.as_str(),
                forecast: s.forecast,
                detail: s.clone(),
            });
            scores.push(s);
        }
        card.objectives.push(ObjectiveRow {
            id: objective.id.clone(),
            score: scoring::objective_score(objective, &scores),
        });
    }
    Ok(card)
}
