//! Which Kafka offsets may be stored: per partition, only up to the first
//! message that is not yet durably written (STYLE: "only the highest
//! *contiguous* finished offset per partition").
//!
//! Messages are grouped into batches; a batch finishes when its points and
//! dead letters are written. Batches may finish in any order, yet a
//! partition's offset moves only past the batches that finished with every
//! batch before them, so a failure at message N never commits N+1. Pure
//! bookkeeping, no I/O: the consumer loop stores what [`Tracker::finished`]
//! returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A topic and partition.
pub type TopicPartition = (String, i32);

/// The id of a batch, increasing in the order batches were opened.
pub type BatchId = u64;

/// One partition's unfinished stretch: per batch, the last offset it holds
/// of this partition, in the order the messages arrived.
#[derive(Debug, Default)]
struct Pending {
    runs: VecDeque<(BatchId, i64)>,
}

/// The offsets of the assigned partitions that are received but not yet
/// finished.
#[derive(Debug, Default)]
pub struct Tracker {
    partitions: BTreeMap<TopicPartition, Pending>,
    /// Finished batches that some partition still waits behind.
    done: BTreeSet<BatchId>,
}

impl Tracker {
    /// Records that the message at `offset` of `tp` went into `batch`.
    /// Messages of a partition arrive in offset order; the offsets need not
    /// be consecutive (compaction and transaction markers leave gaps).
    pub fn received(&mut self, tp: &TopicPartition, offset: i64, batch: BatchId) {
        let pending = match self.partitions.get_mut(tp) {
            Some(p) => p,
            None => self.partitions.entry(tp.clone()).or_default(),
        };
        match pending.runs.back_mut() {
            Some((b, last)) if *b == batch => *last = offset,
            _ => pending.runs.push_back((batch, offset)),
        }
    }

    /// Records that `batch` is durably written, and returns, for each
    /// partition whose contiguous finished stretch grew, the offset to store:
    /// the next one to consume (last finished + 1).
    pub fn finished(&mut self, batch: BatchId) -> Vec<(TopicPartition, i64)> {
        self.done.insert(batch);
        let mut out = Vec::new();
        for (tp, pending) in &mut self.partitions {
            let mut next = None;
            while let Some(&(b, last)) = pending.runs.front() {
                if !self.done.contains(&b) {
                    break;
                }
                pending.runs.pop_front();
                next = Some(last + 1);
            }
            if let Some(next) = next {
                out.push((tp.clone(), next));
            }
        }
        // A finished batch is forgotten once no partition waits behind it.
        let oldest_waiting = self
            .partitions
            .values()
            .filter_map(|p| p.runs.front().map(|(b, _)| *b))
            .min();
        match oldest_waiting {
            Some(oldest) => self.done = self.done.split_off(&oldest),
            None => self.done.clear(),
        }
        out
    }

    /// Forgets `tp` (revoked): its unfinished messages are redelivered to
    /// whoever consumes it next.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    /// Whether any received message of `tp` is unfinished.
    pub fn is_pending(&self, tp: &TopicPartition) -> bool {
        self.partitions.get(tp).is_some_and(|p| !p.runs.is_empty())
    }

    /// Whether every received message is finished.
    pub fn is_idle(&self) -> bool {
        self.partitions.values().all(|p| p.runs.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn an_offset_moves_only_past_contiguous_finished_batches() {
        let mut t = Tracker::default();
        // Batch 1: offsets 0..=4 of p0; batch 2: 5..=9; batch 3: 10..=11.
        for o in 0..5 {
            t.received(&tp(0), o, 1);
        }
        for o in 5..10 {
            t.received(&tp(0), o, 2);
        }
        for o in 10..12 {
            t.received(&tp(0), o, 3);
        }
        // Batch 2 finishing first must not store anything: 0..=4 are unwritten.
        assert_eq!(t.finished(2), vec![]);
        assert_eq!(t.finished(3), vec![]);
        assert!(t.is_pending(&tp(0)));
        // Batch 1 finishing releases all three at once.
        assert_eq!(t.finished(1), vec![(tp(0), 12)]);
        assert!(t.is_idle());
    }

    #[test]
    fn partitions_advance_independently_and_gaps_are_fine() {
        let mut t = Tracker::default();
        t.received(&tp(0), 100, 1);
        t.received(&tp(1), 7, 1);
        t.received(&tp(0), 105, 2); // a gap: 101..=104 were compacted away
        t.received(&tp(1), 9, 3);
        assert_eq!(t.finished(2), vec![]);
        let mut got = t.finished(1);
        got.sort();
        assert_eq!(got, vec![(tp(0), 106), (tp(1), 8)]);
        assert!(t.is_pending(&tp(1)));
        assert_eq!(t.finished(3), vec![(tp(1), 10)]);
        assert!(t.is_idle());
    }

    #[test]
    fn a_forgotten_partition_ignores_late_finishes() {
        let mut t = Tracker::default();
        t.received(&tp(0), 1, 1);
        t.received(&tp(1), 1, 1);
        t.forget(&tp(0));
        assert_eq!(t.finished(1), vec![(tp(1), 2)]);
        // Re-assigned later: a fresh start, unaffected by old batches.
        t.received(&tp(0), 1, 2);
        assert_eq!(t.finished(1), vec![]);
        assert_eq!(t.finished(2), vec![(tp(0), 2)]);
    }

    #[test]
    fn finished_batches_are_forgotten_once_nobody_waits() {
        let mut t = Tracker::default();
        for b in 1..=1000 {
            t.received(&tp(0), b as i64, b);
            t.finished(b);
        }
        assert!(t.done.is_empty());
        t.received(&tp(0), 2000, 2000);
        t.received(&tp(0), 2001, 2001);
        t.finished(2001);
        assert_eq!(t.done.len(), 1);
    }
}
