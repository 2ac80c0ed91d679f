//! An objective's score from its key results' scores (SPEC §4).

use crate::config::objective::Objective;

use super::{KrScore, Status};

/// An objective's score: its KRs' scores averaged by weight, a `no_data` KR
/// counting 0; 0.0 when the total weight is 0.
///
/// `scores` are in the order of `objective.key_results`, one per KR.
pub fn objective_score<'a>(
    objective: &Objective,
    scores: impl IntoIterator<Item = &'a KrScore>,
) -> f64 {
    let (weighted, total) =
        objective
            .key_results
            .iter()
            .zip(scores)
            .fold((0.0, 0.0), |(weighted, total), (kr, s)| {
                let score = if s.status == Status::NoData {
                    0.0
                } else {
                    s.score
                };
                (weighted + kr.weight * score, total + kr.weight)
            });
    if total > 0.0 {
        weighted / total
    } else {
        0.0
    }
}
