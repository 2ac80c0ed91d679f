//! Following the store's change feed (SPEC §6 "Instances agree"): the
//! scorer reads it before every recompute and at least every [`POLL`], and
//! marks the metrics other processes wrote (another instance, `okrd
//! ingest`) dirty, so that they are in this instance's scores within a
//! second.
//!
//! The position read up to is the scorecard's *view*: every change below it
//! is in the scores. Alert transitions carry it, and the store refuses one
//! decided from an older view than the alert's last transition, so an
//! instance that has not yet read a point cannot undo what another decided
//! from it.
//!
//! Failure modes, and what the task does about each:
//! - **The store does not answer** (a restart, a network cut): the feed's
//!   rows wait in the table, so the next read that succeeds reports every
//!   change made meanwhile. Nothing is missed, only late.
//! - **It does not answer for longer than half the feed's retention**:
//!   rows may have been pruned unread, so the task cannot prove the scores
//!   current. It starts again at the feed's end and has everything read
//!   from the store again ([`Live::reload_all`](crate::live::Live::reload_all)).
//! - **A long transaction elsewhere** (PostgreSQL): see `store/changes.rs`;
//!   changes are still read as soon as they commit.
//!
//! The task also prunes rows older than the retention, on every instance
//! (deleting is idempotent).

use std::time::Duration;

use tokio::time::Instant;

use crate::live::Live;
use crate::store::{FeedCursor, Store, CHANGE_RETENTION};

/// How often the feed is read at least: a change is marked within this,
/// and scored after the scorer's debounce.
pub const POLL: Duration = Duration::from_millis(200);

/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A reader of the feed.
pub struct Follower {
    cursor: FeedCursor,
    last_read: Instant,
    next_prune: Instant,
    failing: bool,
}

impl Follower {
    /// Follows the feed from `cursor` (taken before the first scorecard's
    /// reads, so that nothing written in between is missed).
    pub fn new(cursor: FeedCursor) -> Self {
        Self {
            cursor,
            last_read: Instant::now(),
            next_prune: Instant::now(),
            failing: false,
        }
    }

    /// The position read up to: every change below it is marked in `live`.
    pub fn view(&self) -> i64 {
        self.cursor.position
    }

    /// Reads what was written since, marks it dirty in `live`, and prunes
    /// old rows now and then. A failed read is logged once per outage and
    /// leaves the position where it was.
    pub async fn read(&mut self, store: &dyn Store, live: &Live) {
        let gap = self.last_read.elapsed();
        let read = if gap > CHANGE_RETENTION / 2 {
            // Rows may be gone unread: start at the end and reload.
            store.feed_cursor().await.map(|fresh| {
                tracing::warn!(
                    unread_for = ?gap,
                    "the change feed was unreadable for longer than half its retention; reloading every series"
                );
                self.cursor = fresh;
                live.reload_all();
                Vec::new()
            })
        } else {
            store.read_changes(&mut self.cursor).await
        };
        match read {
            Ok(changes) => {
                if self.failing {
                    tracing::info!(after = ?gap, "the change feed is readable again");
                    self.failing = false;
                }
                self.last_read = Instant::now();
                live.metrics_written(changes.iter().map(|c| (c.metric.as_str(), c.earliest)));
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "cannot read the change feed; retrying");
                    self.failing = true;
                }
            }
        }
        if Instant::now() >= self.next_prune {
            self.next_prune = Instant::now() + PRUNE_EVERY;
            if let Err(e) = store.prune_changes().await {
                tracing::debug!(error = %e, "pruning the change feed failed; retrying later");
            }
        }
    }
}
