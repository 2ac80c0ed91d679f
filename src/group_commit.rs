//! Group commit: the writes that arrive while one is being committed go to
//! the store together, in one transaction, as soon as it is done.
//!
//! Eight clients pushing 1,000 points each paid a transaction apiece
//! (series lookups, the change-feed rows, a commit each); taken together,
//! the next batch is parsed while the previous one commits, and a busy
//! store sees fewer, larger transactions. A caller is still answered only
//! once its own points are committed, and with its own result: a combined
//! write that fails is retried one caller at a time, so that one caller's
//! bad points fail only that caller.
//!
//! The first caller to find no write under way leads: it spawns the task
//! that writes every waiting batch until none is left, so that a caller
//! that goes away (a client hanging up) cannot strand the others.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::model::{Point, SeriesKey};
use crate::store::{no_progress, Store, StoreError};

/// The most points one combined transaction takes; a batch larger than
/// this on its own still goes whole.
const MAX_POINTS: usize = 50_000;

/// The writes waiting for the store, and whether a task is writing them.
#[derive(Default)]
pub struct GroupCommit {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    writing: bool,
}

/// One caller's points and where its answer goes.
struct Waiting {
    points: Vec<Point>,
    done: oneshot::Sender<Result<usize, StoreError>>,
}

impl GroupCommit {
    /// Writes `points` with whatever else is waiting; returns how many
    /// distinct (series, ts) points of these the store now holds, once they
    /// are committed.
    pub async fn write(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        points: &[Point],
    ) -> Result<usize, StoreError> {
        let (done, answer) = oneshot::channel();
        let lead = {
            let mut queue = self.lock();
            queue.waiting.push(Waiting {
                points: points.to_vec(),
                done,
            });
            !std::mem::replace(&mut queue.writing, true)
        };
        if lead {
            tokio::spawn(Arc::clone(self).write_all(Arc::clone(store)));
        }
        // The writer answers every batch it takes; it drops the sender
        // without an answer only if it panicked.
        answer
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes waiting batches, as many as fit in one transaction at a
    /// time, until none is left.
    async fn write_all(self: Arc<Self>, store: Arc<dyn Store>) {
        // Whatever happens here, the next caller can lead again.
        struct Idle<'a>(&'a GroupCommit);
        impl Drop for Idle<'_> {
            fn drop(&mut self) {
                self.0.lock().writing = false;
            }
        }
        let idle = Idle(&self);
        loop {
            let taken = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    std::mem::forget(idle);
                    return;
                }
                let mut total = 0;
                let n = queue
                    .waiting
                    .iter()
                    .take_while(|w| {
                        total += w.points.len();
                        total <= MAX_POINTS || total == w.points.len()
                    })
                    .count()
                    .max(1);
                queue.waiting.drain(..n).collect::<Vec<_>>()
            };
            commit(store.as_ref(), taken).await;
        }
    }
}

/// Writes `taken` in one transaction and answers each; if that fails,
/// writes each alone, so that each gets its own result.
async fn commit(store: &dyn Store, mut taken: Vec<Waiting>) {
    if taken.len() == 1 {
        let w = taken.pop().expect("one batch");
        let _ = w
            .done
            .send(store.write_points(&w.points, &no_progress).await);
        return;
    }
    let all: Vec<Point> = taken
        .iter()
        .flat_map(|w| w.points.iter().cloned())
        .collect();
    match store.write_points(&all, &no_progress).await {
        Ok(_) => {
            for w in taken {
                let stored = distinct(&w.points);
                let _ = w.done.send(Ok(stored));
            }
        }
        Err(_) => {
            for w in taken {
                let _ = w
                    .done
                    .send(store.write_points(&w.points, &no_progress).await);
            }
        }
    }
}

/// How many distinct (series, ts) points `points` holds, as the store
/// counts them (a series' points share one `Arc` in every source's batch).
fn distinct(points: &[Point]) -> usize {
    let mut seen: HashSet<(*const SeriesKey, i64)> = HashSet::with_capacity(points.len());
    let mut n = 0;
    for p in points {
        if seen.insert((Arc::as_ptr(&p.series), p.ts.timestamp_micros())) {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::store::SqliteStore;

    fn points(series: &Arc<SeriesKey>, n: i64, value: f64) -> Vec<Point> {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        (0..n)
            .map(|i| Point {
                series: series.clone(),
                ts: t0 + TimeDelta::seconds(i),
                value,
            })
            .collect()
    }

    /// Writers at once: each answered with its own count once its points
    /// are stored; a writer whose points the store refuses (NaN breaks
    /// `value NOT NULL`) fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_each_get_their_own_answer() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let commits = Arc::new(GroupCommit::default());
        let series: Vec<Arc<SeriesKey>> = (0..10)
            .map(|i| Arc::new(SeriesKey::new(format!("m{i}"), BTreeMap::new())))
            .collect();
        let mut batches: Vec<Vec<Point>> = (0..8)
            .map(|i| points(&series[i], 1_000, i as f64))
            .collect();
        // Batch 8 holds a duplicate (series, ts): 999 distinct points.
        let mut dup = points(&series[8], 999, 8.0);
        dup.push(dup[10].clone());
        batches.push(dup);
        // Batch 9 holds a value the store cannot keep.
        batches.push(points(&series[9], 5, f64::NAN));
        let barrier = Arc::new(tokio::sync::Barrier::new(batches.len()));
        let tasks: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let (commits, store, barrier) = (commits.clone(), store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    commits.write(&store, &batch).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap().map_err(|e| e.to_string()));
        }
        for (i, answer) in answers.iter().enumerate().take(8) {
            assert_eq!(answer, &Ok(1_000), "batch {i}");
        }
        assert_eq!(answers[8], Ok(999));
        assert!(
            answers[9].as_ref().is_err_and(|e| e.contains("NOT NULL")),
            "{:?}",
            answers[9]
        );
        let from = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        for (i, key) in series.iter().enumerate() {
            let stored = store.load_series(key, from, to).await.unwrap();
            let want = [
                1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 999, 0,
            ][i];
            assert_eq!(stored.len(), want, "series {i}");
        }
        // Idle again: the next write leads and is answered.
        assert_eq!(
            commits
                .write(&store, &points(&series[0], 3, 1.0))
                .await
                .unwrap(),
            3
        );
    }
}
