//! A KR's definitions over time, as the store recorded them: which
//! definition (and revision) is in force at each instant, so that history
//! is scored under the definition in force then and each row names its
//! revision. Built once per start or reload (from
//! [`DefinitionStore::record_definitions`](crate::store::DefinitionStore)),
//! never per recompute.

use std::sync::Arc;

use crate::config::KeyResult;
use crate::definition::{Definition, Revision};
use crate::model::Timestamp;
use crate::store::StoredDefinition;

/// One stretch of time under one definition.
#[derive(Debug, Clone)]
struct Segment {
    /// In force from (the first segment: since always).
    since: Timestamp,
    /// The revision it is.
    revision: i64,
    /// The KR under it; `None` when it is the KR as configured now.
    kr: Option<Arc<KeyResult>>,
}

/// A KR's definitions over time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Oldest first; empty: always the KR as configured.
    segments: Vec<Segment>,
    /// The KR's revisions, oldest first.
    pub revisions: Arc<Vec<Revision>>,
}

impl Timeline {
    /// The timeline of `stored` (a KR's rows, oldest first) for `current`,
    /// the KR as configured now (the newest row's definition).
    pub fn new(stored: &[StoredDefinition], current: &KeyResult, now_def: &Definition) -> Self {
        let segments = stored
            .iter()
            .map(|row| {
                let def = row.definition();
                Segment {
                    since: row.recorded_at,
                    revision: row.revision,
                    kr: match def {
                        Some(d) if d != *now_def => Some(Arc::new(d.key_result(current))),
                        _ => None,
                    },
                }
            })
            .collect();
        Timeline {
            segments,
            revisions: Arc::new(stored.iter().filter_map(|r| r.as_revision()).collect()),
        }
    }

    /// Where this KR's history may be scored again from its current
    /// series: after the last stretch under a definition that read another
    /// series (another metric or labels). Rows of such a stretch are kept
    /// as they were scored, never re-scored from points of a series they
    /// did not read. `None` when every stretch reads the current series.
    pub fn rescorable_since(&self, current: &KeyResult) -> Option<Timestamp> {
        let elsewhere = |s: &Segment| {
            s.kr.as_ref()
                .is_some_and(|k| k.metric != current.metric || k.labels != current.labels)
        };
        let last = self.segments.iter().rposition(elsewhere)?;
        Some(
            self.segments
                .get(last + 1)
                .map_or(chrono::DateTime::<chrono::Utc>::MAX_UTC, |s| s.since),
        )
    }

    /// Since when the KR as configured now has been in force: after the
    /// last stretch under another definition. `None`: always.
    pub fn current_since(&self) -> Option<Timestamp> {
        let last = self.segments.iter().rposition(|s| s.kr.is_some())?;
        Some(
            self.segments
                .get(last + 1)
                .map_or(chrono::DateTime::<chrono::Utc>::MAX_UTC, |s| s.since),
        )
    }

    /// The revision in force now (the newest).
    pub fn revision(&self) -> i64 {
        self.segments.last().map_or(0, |s| s.revision)
    }

    /// `times` (ascending) split into runs under one definition each: the
    /// revision, the KR to score them as (`current` where it is in force),
    /// and the run.
    pub fn split<'a, 't>(
        &'a self,
        current: &'a KeyResult,
        times: &'t [Timestamp],
    ) -> Vec<(i64, &'a KeyResult, &'t [Timestamp])> {
        if self.segments.is_empty() {
            return vec![(0, current, times)];
        }
        let mut out = Vec::new();
        let mut rest = times;
        for (i, seg) in self.segments.iter().enumerate() {
            let until = self.segments.get(i + 1).map(|next| next.since);
            let n = match until {
                Some(u) => rest.partition_point(|t| *t < u),
                None => rest.len(),
            };
            if n > 0 {
                let kr = seg.kr.as_deref().unwrap_or(current);
                out.push((seg.revision, kr, &rest[..n]));
            }
            rest = &rest[n..];
        }
        out
    }
}
