//! The scorer's rows: one slot per key result of the config they are laid
//! out for, in config order, and the slots that read each metric, so that
//! a write recomputes only the KRs that read what it wrote, and a publish
//! shares every row it did not recompute (an `Arc` each) instead of
//! cloning the scorecard.

use std::collections::HashMap;
use std::sync::Arc;

use super::timeline::Timeline;
use crate::config::{Config, KeyResult, Objective};
use crate::scorecard::KeyResultRow;
use crate::scoring::Running;

/// One KR's place in the scorer.
#[derive(Debug, Clone, Default)]
pub(super) struct Slot {
    /// Its latest row; `None` until it is first scored.
    pub row: Option<Arc<KeyResultRow>>,
    /// Whether its stored history is known complete since this process
    /// started (checked, and built if missing).
    pub ready: bool,
    /// Its definitions over time, as recorded by the start or reload that
    /// laid the slots out.
    pub timeline: Timeline,
    /// Its running state (baseline, window, the forecast's sums), from
    /// when its history was built on; `None` until then, and after the
    /// scorer could no longer prove it current.
    pub running: Option<Running>,
}

/// The slots of one config.
#[derive(Default)]
pub(super) struct Slots {
    /// The config the slots are laid out for.
    config: Option<Arc<Config>>,
    slots: Vec<Slot>,
    /// Each slot's (objective, key result) indices in `config`.
    positions: Vec<(usize, usize)>,
    /// The slots reading each metric, as their own series or a counter
    /// metric, in slot order.
    readers: HashMap<String, Vec<usize>>,
}

impl Slots {
    /// Lays the slots out for `config` unless they already are, keeping
    /// each KR's slot by its (objective, key result) ids; a KR the config
    /// no longer has is forgotten. Returns whether the layout changed.
    pub fn lay_out(&mut self, config: &Arc<Config>) -> bool {
        if self.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, config)) {
            return false;
        }
        let mut old: HashMap<(&str, &str), Slot> = HashMap::new();
        if let Some(previous) = &self.config {
            for (slot, &(o, k)) in self.slots.drain(..).zip(&self.positions) {
                let objective = &previous.objectives[o];
                old.insert(
                    (objective.id.as_str(), objective.key_results[k].id.as_str()),
                    slot,
                );
            }
        }
        let mut slots = Vec::new();
        let mut positions = Vec::new();
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        for (o, objective) in config.objectives.iter().enumerate() {
            for (k, kr) in objective.key_results.iter().enumerate() {
                let i = slots.len();
                slots.push(
                    old.remove(&(objective.id.as_str(), kr.id.as_str()))
                        .unwrap_or_default(),
                );
                positions.push((o, k));
                let metrics =
                    std::iter::once(&kr.metric).chain(kr.counter_metrics.iter().map(|c| &c.metric));
                for metric in metrics {
                    let list = readers.entry(metric.clone()).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
        }
        drop(old);
        self.slots = slots;
        self.positions = positions;
        self.readers = readers;
        self.config = Some(Arc::clone(config));
        true
    }

    /// Whether the slots are laid out for `config` already.
    pub fn laid_out_for(&self, config: &Arc<Config>) -> bool {
        self.config.as_ref().is_some_and(|c| Arc::ptr_eq(c, config))
    }

    /// The config the slots are laid out for.
    pub fn config(&self) -> Option<&Arc<Config>> {
        self.config.as_ref()
    }

    /// How many KRs there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The objective and key result of slot `i`, in `config` (the one the
    /// slots are laid out for).
    pub fn kr<'c>(&self, config: &'c Config, i: usize) -> (&'c Objective, &'c KeyResult) {
        let (o, k) = self.positions[i];
        let objective = &config.objectives[o];
        (objective, &objective.key_results[k])
    }

    /// The objective and key result of each of `slots`, in `config`.
    pub fn krs<'c>(
        &self,
        config: &'c Config,
        slots: &[usize],
    ) -> Vec<(&'c Objective, &'c KeyResult)> {
        slots.iter().map(|&i| self.kr(config, i)).collect()
    }

    /// The slots that read any of `metrics`, in slot order.
    pub fn readers_of<'m>(&self, metrics: impl IntoIterator<Item = &'m String>) -> Vec<usize> {
        let mut out: Vec<usize> = metrics
            .into_iter()
            .filter_map(|m| self.readers.get(m))
            .flatten()
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn get(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    pub fn get_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[i]
    }

    /// Every slot, in config order.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Slot> {
        self.slots.iter_mut()
    }

    /// The slots whose history is not known complete, in config order.
    pub fn not_ready(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|i| !self.slots[*i].ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KR: its id, its metric, its counter metrics.
    type Kr<'a> = (&'a str, &'a str, &'a [&'a str]);

    fn config(objectives: &[(&str, &[Kr])]) -> Arc<Config> {
        let files: Vec<(String, String)> = objectives
            .iter()
            .map(|(id, krs)| {
                let mut yaml =
                    format!("id: {id}\nobjective: O\nteam: t\nperiod: 2026-Q4\nkey_results:\n");
                for (kr, metric, counters) in *krs {
                    yaml.push_str(&format!(
                        "  - {{ id: {kr}, title: T, metric: {metric}, baseline: 0, target: 1"
                    ));
                    if !counters.is_empty() {
                        yaml.push_str(", counter_metrics: [");
                        for c in *counters {
                            yaml.push_str(&format!(
                                "{{ metric: {c}, better: lower, tolerance: 5% }},"
                            ));
                        }
                        yaml.push(']');
                    }
                    yaml.push_str(" }\n");
                }
                (format!("{id}.yaml"), yaml)
            })
            .collect();
        Arc::new(crate::scorer::tests::load_config(&files))
    }

    #[test]
    fn readers_index_own_and_counter_metrics_and_a_relayout_keeps_slots_by_id() {
        let first = config(&[
            ("a", &[("x", "m1", &["c"]), ("y", "m2", &[])]),
            ("b", &[("z", "m1", &["c", "m2"])]),
        ]);
        let mut slots = Slots::default();
        assert!(slots.lay_out(&first));
        assert!(!slots.lay_out(&first), "the same config: nothing to do");
        assert_eq!(slots.len(), 3);
        let m = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(slots.readers_of(&m(&["m1"])), [0, 2]);
        assert_eq!(slots.readers_of(&m(&["c"])), [0, 2]);
        assert_eq!(slots.readers_of(&m(&["m2"])), [1, 2]);
        assert_eq!(slots.readers_of(&m(&["m2", "c"])), [0, 1, 2]);
        assert_eq!(slots.readers_of(&m(&["other"])), Vec::<usize>::new());
        slots.get_mut(2).ready = true;

        // a/y goes, a/w is new (before a/x); the config is in file order.
        let second = config(&[
            ("b", &[("z", "m1", &[])]),
            ("a", &[("w", "m3", &[]), ("x", "m1", &[])]),
        ]);
        assert!(slots.lay_out(&second));
        let ids: Vec<(String, String, bool)> = (0..slots.len())
            .map(|i| {
                let (o, kr) = slots.kr(&second, i);
                (o.id.clone(), kr.id.clone(), slots.get(i).ready)
            })
            .collect();
        let want = [("a", "w", false), ("a", "x", false), ("b", "z", true)];
        assert_eq!(ids, want.map(|(o, k, r)| (o.to_string(), k.to_string(), r)));
        assert_eq!(slots.readers_of(&m(&["m1"])), [1, 2]);
        assert_eq!(slots.readers_of(&m(&["c"])), Vec::<usize>::new());
        assert_eq!(slots.not_ready().collect::<Vec<_>>(), [0, 1]);
    }
}
