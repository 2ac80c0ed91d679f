//! The scorer's copy of the series it scores, so that a recompute reads
//! from the store only what changed: the whole of a series the first time,
//! then only the points at or after the earliest one written since.
//!
//! Each cached series holds every stored point from the latest one at or
//! before its `from` on, with no upper bound, so a request for any
//! `from` at or after it is answered exactly as `Store::load_series` would.
//! The scorer asks only for what advancing each KR's running state reads
//! (the windows at its evaluation time, and the points since), and after
//! rescoring every KR it trims each series to what is read next, so the
//! cache holds windows, not periods.
//! Points written mark their metric dirty (`Live`): by this process
//! directly, by another (a second instance, `okrd ingest`) through the
//! change feed (`feed.rs`). That cuts the metric's cached series back to
//! before the earliest new point. When the feed cannot prove it missed
//! nothing, the whole cache is dropped.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

use crate::model::{minus, Sample, SeriesKey, Timestamp};
use crate::store::{SeriesRange, Store, StoreError};

use super::dense::{Times, Values};

/// Loads go this far into the future: points ahead of the evaluation time
/// are kept, for when it catches up with them.
fn far_future() -> Timestamp {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

/// One series' stored points: 8 to 16 bytes each (`dense.rs`).
struct Cached {
    /// Covers every point after this, and the latest one at or before it.
    from: Timestamp,
    /// Unix microseconds, ascending.
    ts: Times,
    values: Values,
    /// Points at or after this were written since the load: reload them.
    stale_from: Option<Timestamp>,
}

impl Cached {
    /// What `load_series(from, to)` returns, for `from >= self.from`.
    fn slice(&self, from: Timestamp, to: Timestamp) -> Vec<Sample> {
        let (from_us, to_us) = (from.timestamp_micros(), to.max(from).timestamp_micros());
        let anchor = self.ts.partition_point(|t| t <= from_us).saturating_sub(1);
        let end = self.ts.partition_point(|t| t <= to_us);
        let start = anchor.min(end);
        (start..end)
            .filter_map(|i| {
                DateTime::from_timestamp_micros(self.ts.get(i))
                    .map(|t| Sample::new(t, self.values.get(i)))
            })
            .collect()
    }

    /// Forgets the points at or after `ts`. The store keeps whole
    /// microseconds (truncated), so a point written at `ts` is stored at
    /// `ts` truncated: that is where the cut goes.
    fn cut(&mut self, ts: Timestamp) {
        let ts = ts.trunc_subsecs(6);
        let keep = self.ts.partition_point(|t| t < ts.timestamp_micros());
        self.ts.truncate(keep);
        self.values.truncate(keep);
        self.stale_from = Some(self.stale_from.map_or(ts, |s| s.min(ts)));
    }

    /// Forgets the points before the latest one at or before `floor`.
    fn trim(&mut self, floor: Timestamp) {
        if floor <= self.from {
            return;
        }
        let anchor = self
            .ts
            .partition_point(|t| t <= floor.timestamp_micros())
            .saturating_sub(1);
        self.ts.drain_front(anchor);
        self.values.drain_front(anchor);
        self.from = floor;
    }

    fn extend(&mut self, samples: &[Sample], after: Option<Timestamp>) {
        self.ts.reserve(samples.len());
        self.values.reserve(samples.len());
        for s in samples {
            if after.is_none_or(|a| s.ts >= a.trunc_subsecs(6)) {
                self.ts.push(s.ts.timestamp_micros());
                self.values.push(s.value);
            }
        }
    }
}

/// The cache.
#[derive(Default)]
pub struct SeriesCache {
    series: HashMap<SeriesKey, Cached>,
}

/// What a load does for one series.
enum Fetch {
    /// Load it whole from `from` on.
    Whole(Timestamp),
    /// Load the points at or after `since` and append them.
    Since(Timestamp),
}

impl SeriesCache {
    /// How many points each series holds, by metric (for tests).
    #[cfg(test)]
    pub fn held(&self) -> std::collections::BTreeMap<String, usize> {
        self.series
            .iter()
            .map(|(k, c)| (k.metric.clone(), c.ts.partition_point(|_| true)))
            .collect()
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Points of `metric` at or after `since` were written.
    pub fn written(&mut self, metrics: &HashMap<String, Timestamp>) {
        if metrics.is_empty() {
            return;
        }
        for (key, cached) in &mut self.series {
            if let Some(since) = metrics.get(&key.metric) {
                cached.cut(*since);
            }
        }
    }

    /// Keeps only the series in `floors`, each only from its floor on:
    /// the points after it and the latest one at or before it. A request
    /// from before a floor loads that series whole again.
    pub fn trim(&mut self, floors: &HashMap<SeriesKey, Timestamp>) {
        self.series.retain(|key, cached| match floors.get(key) {
            Some(floor) => {
                cached.trim(*floor);
                true
            }
            None => false,
        });
    }

    /// `Store::load_many(ranges)`, from the cache where it can, with one
    /// store call for the rest.
    pub async fn load(
        &mut self,
        store: &dyn Store,
        ranges: &[SeriesRange],
    ) -> Result<Vec<Vec<Sample>>, StoreError> {
        let far = far_future();
        let mut fetches: HashMap<&SeriesKey, Fetch> = HashMap::new();
        for r in ranges {
            let fetch = match self.series.get(&r.key) {
                Some(c) if c.from <= r.from => match c.stale_from {
                    None => continue,
                    Some(since) => Fetch::Since(since),
                },
                Some(c) => Fetch::Whole(r.from.min(c.from)),
                None => Fetch::Whole(r.from),
            };
            let merged = match (fetches.remove(&r.key), fetch) {
                (Some(Fetch::Whole(a)), Fetch::Whole(b)) => Fetch::Whole(a.min(b)),
                (Some(Fetch::Whole(a)), _) | (_, Fetch::Whole(a)) => Fetch::Whole(a),
                (_, since) => since,
            };
            fetches.insert(&r.key, merged);
        }
        if !fetches.is_empty() {
            let (keys, requests): (Vec<&SeriesKey>, Vec<SeriesRange>) = fetches
                .iter()
                .map(|(key, fetch)| {
                    let from = match fetch {
                        Fetch::Whole(from) => *from,
                        // The latest point before `since` comes back as the
                        // anchor; it is cached already and skipped.
                        Fetch::Since(since) => minus(*since, Duration::from_micros(1)),
                    };
                    let request = SeriesRange {
                        key: (*key).clone(),
                        from,
                        to: far,
                    };
                    (*key, request)
                })
                .unzip();
            let loaded = store.load_many(&requests).await?;
            for ((key, request), samples) in keys.into_iter().zip(&requests).zip(loaded) {
                match (fetches.get(key), self.series.get_mut(key)) {
                    (Some(Fetch::Since(since)), Some(cached)) => {
                        cached.extend(&samples, Some(*since));
                        cached.stale_from = None;
                    }
                    _ => {
                        let mut cached = Cached {
                            from: request.from,
                            ts: Times::with_capacity(samples.len()),
                            values: Values::with_capacity(samples.len()),
                            stale_from: None,
                        };
                        cached.extend(&samples, None);
                        self.series.insert(key.clone(), cached);
                    }
                }
            }
        }
        Ok(ranges
            .iter()
            .map(|r| {
                self.series
                    .get(&r.key)
                    .map_or_else(Vec::new, |c| c.slice(r.from, r.to))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::*;
    use crate::model::{Labels, Point};
    use crate::store::no_progress;

    fn t(hours: i64) -> Timestamp {
        DateTime::from_timestamp(1_790_812_800, 0).unwrap() + TimeDelta::hours(hours)
    }

    async fn write(store: &dyn Store, key: &Arc<SeriesKey>, hours: &[i64], value: f64) {
        let points: Vec<Point> = hours
            .iter()
            .map(|h| Point {
                series: Arc::clone(key),
                ts: t(*h),
                value,
            })
            .collect();
        store.write_points(&points, &no_progress).await.unwrap();
    }

    /// The cache answers every range exactly as the store does, before and
    /// after new, late and corrected points, for ranges inside and outside
    /// what it holds.
    #[tokio::test]
    async fn answers_as_the_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = crate::store::open(&url).await.unwrap();
        let a = Arc::new(SeriesKey::new("a", Labels::new()));
        let b = Arc::new(SeriesKey::new("b", Labels::new()));
        write(store.as_ref(), &a, &[0, 2, 4, 6, 8], 1.0).await;
        write(store.as_ref(), &b, &[1, 3], 2.0).await;
        let mut cache = SeriesCache::default();
        let check = |ranges: Vec<(Arc<SeriesKey>, i64, i64)>| {
            ranges
                .into_iter()
                .map(|(k, from, to)| SeriesRange {
                    key: (*k).clone(),
                    from: t(from),
                    to: t(to),
                })
                .collect::<Vec<_>>()
        };
        let cases = check(vec![
            (a.clone(), 3, 7),
            (a.clone(), 4, 100),
            (b.clone(), 0, 2),
            (b.clone(), 5, 6),
            (a.clone(), 9, 9),
        ]);
        assert_eq!(
            cache.load(store.as_ref(), &cases).await.unwrap(),
            store.load_many(&cases).await.unwrap()
        );
        // New, late and corrected points: the metric is cut back and
        // reloaded, also when it is marked at a time the store truncates.
        let c = Arc::new(SeriesKey::new("c", Labels::new()));
        let odd = t(3) + TimeDelta::nanoseconds(1_500);
        store
            .write_points(
                &[Point {
                    series: Arc::clone(&c),
                    ts: odd,
                    value: 4.0,
                }],
                &no_progress,
            )
            .await
            .unwrap();
        let c_range = check(vec![(c.clone(), 0, 9)]);
        assert!(cache.load(store.as_ref(), &c_range).await.unwrap()[0].len() == 1);
        write(store.as_ref(), &a, &[5, 10], 3.0).await;
        write(store.as_ref(), &a, &[2], 9.0).await;
        store
            .write_points(
                &[Point {
                    series: Arc::clone(&c),
                    ts: odd + TimeDelta::hours(1),
                    value: 5.0,
                }],
                &no_progress,
            )
            .await
            .unwrap();
        cache.written(&HashMap::from([
            ("a".to_string(), t(2)),
            ("c".to_string(), odd + TimeDelta::hours(1)),
        ]));
        let more = check(vec![
            (a.clone(), 1, 20),
            (a.clone(), 3, 7),
            (b.clone(), 0, 9),
            (c.clone(), 0, 9),
        ]);
        let got = cache.load(store.as_ref(), &more).await.unwrap();
        assert_eq!(got, store.load_many(&more).await.unwrap());
        assert_eq!(got[0].len(), 7, "0 anchor, 2 (corrected), 4, 5, 6, 8, 10");
        assert_eq!(got[0][1].value, 9.0);
        assert_eq!(got[3].len(), 2, "the point written at a sub-microsecond ts");
        // A range starting before what is held loads the series whole.
        let earlier = check(vec![(a.clone(), -5, 3), (b.clone(), -1, 1)]);
        assert_eq!(
            cache.load(store.as_ref(), &earlier).await.unwrap(),
            store.load_many(&earlier).await.unwrap()
        );
        // Trimmed to a floor, a series answers from the floor on, and loads
        // again from before it; a series without a floor is dropped.
        cache.trim(&HashMap::from([((*a).clone(), t(7))]));
        assert_eq!(cache.series.len(), 1);
        assert_eq!(
            cache.series[&*a].ts.partition_point(|_| true),
            3,
            "6 (the anchor), 8, 10"
        );
        let after = check(vec![
            (a.clone(), 7, 20),
            (a.clone(), 9, 9),
            (b.clone(), 0, 9),
        ]);
        assert_eq!(
            cache.load(store.as_ref(), &after).await.unwrap(),
            store.load_many(&after).await.unwrap()
        );
        let before = check(vec![(a.clone(), 1, 20)]);
        assert_eq!(
            cache.load(store.as_ref(), &before).await.unwrap(),
            store.load_many(&before).await.unwrap()
        );
    }
}
