//! The backend-independent half of `write_points`: finding a call's distinct
//! series, caching their database ids, and turning the points into rows
//! that are unique per (series, ts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::SubsecRound;

use crate::model::{Point, Sample, SeriesKey, Timestamp};

/// One point ready to be written, with its series resolved to a database id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Row {
    /// `series.id`.
    pub series_id: i64,
    /// The point's timestamp.
    pub ts: Timestamp,
    /// The point's value.
    pub value: f64,
}

/// A `write_points` call's points grouped by series.
pub(super) struct Batch<'a> {
    points: &'a [Point],
    /// The call's distinct series, in order of first appearance.
    pub series: Vec<&'a Arc<SeriesKey>>,
    /// For each point, the index of its series in `series`.
    point_series: Vec<u32>,
}

impl<'a> Batch<'a> {
    /// Groups `points` by series.
    pub fn new(points: &'a [Point]) -> Self {
        // Points of one series usually share one `Arc`, so most lookups are
        // settled by the pointer (or by the previous point) without hashing
        // the metric name and labels.
        let mut by_ptr: HashMap<*const SeriesKey, u32> = HashMap::new();
        let mut by_key: HashMap<&SeriesKey, u32> = HashMap::new();
        let mut series = Vec::new();
        let mut point_series = Vec::with_capacity(points.len());
        let mut last: Option<(*const SeriesKey, u32)> = None;
        for point in points {
            let ptr = Arc::as_ptr(&point.series);
            let index = match last {
                Some((last_ptr, index)) if last_ptr == ptr => index,
                _ => *by_ptr.entry(ptr).or_insert_with(|| {
                    *by_key.entry(&*point.series).or_insert_with(|| {
                        series.push(&point.series);
                        // More than u32::MAX distinct series cannot fit in
                        // memory as `Point`s, let alone in one call.
                        (series.len() - 1) as u32
                    })
                }),
            };
            last = Some((ptr, index));
            point_series.push(index);
        }
        Self {
            points,
            series,
            point_series,
        }
    }

    /// Each metric of the call with the earliest ts written to it, sorted by
    /// metric: what the call adds to the change feed (`changes.rs`).
    pub fn changes(&self) -> Vec<(&'a str, Timestamp)> {
        let mut earliest: Vec<Option<Timestamp>> = vec![None; self.series.len()];
        for (point, &index) in self.points.iter().zip(&self.point_series) {
            let e = &mut earliest[index as usize];
            *e = Some(e.map_or(point.ts, |t| t.min(point.ts)));
        }
        let mut by_metric: HashMap<&'a str, Timestamp> = HashMap::new();
        for (series, ts) in self.series.iter().zip(earliest) {
            if let Some(ts) = ts {
                let ts = ts.trunc_subsecs(6);
                by_metric
                    .entry(series.metric.as_str())
                    .and_modify(|t| *t = (*t).min(ts))
                    .or_insert(ts);
            }
        }
        let mut out: Vec<(&'a str, Timestamp)> = by_metric.into_iter().collect();
        out.sort();
        out
    }

    /// The rows to write, given the id of each of `self.series`: sorted by
    /// (series_id, ts), one per (series_id, ts), the last occurrence in the
    /// call winning.
    ///
    /// Sorted, because a multi-row upsert may not touch one row twice, and
    /// because inserting in key order keeps the B-tree writes local and makes
    /// concurrent writers lock rows in the same order.
    pub fn rows(&self, ids: &[i64]) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .points
            .iter()
            .zip(&self.point_series)
            .map(|(point, &index)| Row {
                series_id: ids[index as usize],
                // Both databases keep microseconds; truncating here makes
                // points that differ only in nanoseconds the duplicates they
                // will be once stored.
                ts: point.ts.trunc_subsecs(6),
                value: point.value,
            })
            .collect();
        // Stable, so equal keys stay in call order and the last one is the
        // one that arrived last.
        rows.sort_by_key(|row| (row.series_id, row.ts));
        rows.dedup_by(|later, kept| {
            let same = later.series_id == kept.series_id && later.ts == kept.ts;
            if same {
                kept.value = later.value;
            }
            same
        });
        rows
    }
}

/// Series ids already known to be committed, so that steady-state writes
/// never look a series up. It grows with the number of series ever written,
/// which is bounded by the deployment's label cardinality.
#[derive(Default)]
pub(super) struct SeriesCache(Mutex<HashMap<Arc<SeriesKey>, i64>>);

impl SeriesCache {
    /// The cached id of `key`.
    pub fn get(&self, key: &SeriesKey) -> Option<i64> {
        self.map().get(key).copied()
    }

    /// The cached id of each of `keys`, `None` where unknown.
    pub fn get_all(&self, keys: &[&Arc<SeriesKey>]) -> Vec<Option<i64>> {
        let map = self.map();
        keys.iter().map(|key| map.get(&***key).copied()).collect()
    }

    /// Remembers ids. Call only once the rows are committed: an id from a
    /// rolled-back transaction may later belong to another series, or none.
    pub fn insert(&self, entries: impl IntoIterator<Item = (Arc<SeriesKey>, i64)>) {
        self.map().extend(entries);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<SeriesKey>, i64>> {
        // The map is only ever extended with committed ids, so it is valid
        // even if a holder panicked.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The series ids of a list of ranges, as far as the cache knows them:
/// `asked` are the distinct keys still to look up in the database, and
/// [`IdLookup::found`] fills in what it answered (and caches it).
pub(super) struct IdLookup<'a> {
    ids: Vec<Option<i64>>,
    /// The keys the cache does not know, each once.
    pub asked: Vec<&'a SeriesKey>,
    /// For each of `asked`, the positions in `ids` it fills.
    positions: Vec<Vec<usize>>,
}

impl SeriesCache {
    /// Starts a lookup of the ids of `ranges`' series.
    pub(super) fn lookup<'a>(&self, ranges: &'a [super::SeriesRange]) -> IdLookup<'a> {
        let ids: Vec<Option<i64>> = {
            let map = self.map();
            ranges.iter().map(|r| map.get(&r.key).copied()).collect()
        };
        let mut index: HashMap<&SeriesKey, usize> = HashMap::new();
        let mut asked = Vec::new();
        let mut positions: Vec<Vec<usize>> = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            if ids[i].is_none() {
                let k = *index.entry(&r.key).or_insert_with(|| {
                    asked.push(&r.key);
                    positions.push(Vec::new());
                    asked.len() - 1
                });
                positions[k].push(i);
            }
        }
        IdLookup {
            ids,
            asked,
            positions,
        }
    }
}

impl IdLookup<'_> {
    /// The ids, given what the database `found`: (index into `asked`, id)
    /// pairs; those are cached. A key it did not find has no series.
    pub fn found(mut self, cache: &SeriesCache, found: Vec<(i64, i64)>) -> Vec<Option<i64>> {
        let mut known = Vec::with_capacity(found.len());
        for (k, id) in found {
            let k = k as usize;
            for &i in &self.positions[k] {
                self.ids[i] = Some(id);
            }
            known.push((Arc::new(self.asked[k].clone()), id));
        }
        cache.insert(known);
        self.ids
    }
}

/// A series of a [`Batch`] that has no cached id, with the canonical label
/// text the `series` table stores.
pub(super) struct Unknown<'a> {
    /// Index into [`Batch::series`].
    pub index: usize,
    /// The series.
    pub key: &'a Arc<SeriesKey>,
    /// `key.labels_json()`.
    pub labels: String,
}

/// The series of `batch` whose id `ids` lacks, sorted by (metric, labels) so
/// that concurrent writers creating overlapping series lock them in the same
/// order.
pub(super) fn unknown<'a>(batch: &Batch<'a>, ids: &[Option<i64>]) -> Vec<Unknown<'a>> {
    let mut unknown: Vec<Unknown<'a>> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| id.is_none())
        .map(|(index, _)| Unknown {
            index,
            key: batch.series[index],
            labels: batch.series[index].labels_json(),
        })
        .collect();
    unknown.sort_by(|a, b| (&a.key.metric, &a.labels).cmp(&(&b.key.metric, &b.labels)));
    unknown
}

/// Assigns ids returned by a series insert (`id, metric, labels` rows, in any
/// order) to `ids`.
pub(super) fn assign<'a>(
    unknown: &[Unknown<'a>],
    returned: impl IntoIterator<Item = (i64, String, String)>,
    ids: &mut [Option<i64>],
) {
    let position: HashMap<(&str, &str), usize> = unknown
        .iter()
        .map(|u| ((u.key.metric.as_str(), u.labels.as_str()), u.index))
        .collect();
    for (id, metric, labels) in returned {
        if let Some(&index) = position.get(&(metric.as_str(), labels.as_str())) {
            ids[index] = Some(id);
        }
    }
}

/// `ids` with every series resolved, or the database's failure to return one.
pub(super) fn resolved(batch: &Batch<'_>, ids: Vec<Option<i64>>) -> Result<Vec<i64>, sqlx::Error> {
    ids.into_iter()
        .enumerate()
        .map(|(index, id)| {
            id.ok_or_else(|| {
                sqlx::Error::Protocol(format!(
                    "inserting series {} returned no id",
                    batch.series[index]
                ))
            })
        })
        .collect()
}

/// `load_many`'s answer: each series ascending by ts, whatever order the
/// database returned rows across series in.
pub(super) fn sorted(mut series: Vec<Vec<Sample>>) -> Vec<Vec<Sample>> {
    for samples in &mut series {
        if !samples.is_sorted_by_key(|s| s.ts) {
            samples.sort_by_key(|s| s.ts);
        }
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn point(series: &Arc<SeriesKey>, secs: i64, value: f64) -> Point {
        Point {
            series: series.clone(),
            ts: Utc.timestamp_opt(secs, 0).unwrap(),
            value,
        }
    }

    #[test]
    fn groups_by_value_not_pointer_and_keeps_last_duplicate() {
        let a1 = Arc::new(SeriesKey::new("a", Default::default()));
        let a2 = Arc::new(SeriesKey::new("a", Default::default()));
        let b = Arc::new(SeriesKey::new("b", Default::default()));
        let points = [
            point(&a1, 2, 1.0),
            point(&b, 1, 2.0),
            point(&a2, 2, 3.0),
            point(&a1, 1, 4.0),
        ];
        let batch = Batch::new(&points);
        assert_eq!(batch.series.len(), 2);
        let rows = batch.rows(&[10, 20]);
        let got: Vec<(i64, i64, f64)> = rows
            .iter()
            .map(|r| (r.series_id, r.ts.timestamp(), r.value))
            .collect();
        assert_eq!(got, vec![(10, 1, 4.0), (10, 2, 3.0), (20, 1, 2.0)]);
        let changes: Vec<(&str, i64)> = batch
            .changes()
            .into_iter()
            .map(|(m, ts)| (m, ts.timestamp()))
            .collect();
        assert_eq!(changes, vec![("a", 1), ("b", 1)]);
    }
}
