//! An objective's score from its key results' scores, and its roll-up over
//! the objectives aligned to it (SPEC §4).

use crate::config::objective::Objective;
use crate::config::Alignment;

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

/// Each objective's roll-up (SPEC §4), by position in config order: the
/// unweighted mean of its own score, when it has key results of its own,
/// and the roll-ups of the objectives aligned to it. `scores` are the
/// objectives' own scores ([`objective_score`]); an objective without key
/// results takes its roll-up as its score, which this also returns, in
/// place, in `scores`.
pub fn rollups(objectives: &[Objective], alignment: &Alignment, scores: &mut [f64]) -> Vec<f64> {
    let mut rollup = vec![0.0; objectives.len()];
    // Children come after their parent in the tree: backwards, every
    // child's roll-up is known before its parent's.
    for &(o, _) in alignment.tree().iter().rev() {
        let own = (!objectives[o].key_results.is_empty()).then_some(scores[o]);
        let children = alignment.children(o).iter().map(|&c| rollup[c]);
        let (sum, n) = own
            .into_iter()
            .chain(children)
            .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        rollup[o] = if n > 0 { sum / n as f64 } else { 0.0 };
        if own.is_none() {
            scores[o] = rollup[o];
        }
    }
    rollup
}
