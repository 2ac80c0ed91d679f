//! The live state of a running okrd, shared by the API, the scorer, the
//! reloader, the change feed and the connectors: the current config, the
//! latest scorecard, and which metrics have new points since the last
//! recompute.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::model::{Point, Timestamp};
use crate::scorecard::Scorecard;

/// The services every part of a running okrd shares: the API's state and
/// each connector's context.
#[derive(Clone)]
pub struct Services {
    /// Config, scorecard, what is dirty.
    pub live: Arc<Live>,
    /// Where points are stored.
    pub store: Arc<dyn crate::store::Store>,
    /// Service-health metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Time.
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Services {
    /// The services of one process (or one test).
    pub fn new(
        live: Arc<Live>,
        store: Arc<dyn crate::store::Store>,
        metrics: Arc<crate::metrics::Metrics>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Self {
        Self {
            live,
            store,
            metrics,
            clock,
        }
    }
}

/// What the scorer must recompute.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dirty {
    /// Everything (interval tick, reload, start).
    pub all: bool,
    /// Metrics with new points, each with the earliest ts written: history
    /// from there on is re-scored.
    pub metrics: HashMap<String, Timestamp>,
    /// What the scorer holds cannot be proven current (the change feed was
    /// unreadable for too long): everything is read from the store again.
    pub reload: bool,
}

/// Shared state; cheap to read, written by few.
pub struct Live {
    config: watch::Sender<Arc<Config>>,
    card: RwLock<Arc<Scorecard>>,
    scored: AtomicBool,
    dirty: Mutex<Dirty>,
    wake: Notify,
    published: Notify,
    outbox: Arc<Notify>,
}

impl Live {
    /// Live state for `config`, with an empty scorecard and everything dirty.
    pub fn new(config: Config) -> Self {
        Self {
            config: watch::Sender::new(Arc::new(config)),
            card: RwLock::new(Arc::new(Scorecard::default())),
            scored: AtomicBool::new(false),
            dirty: Mutex::new(Dirty {
                all: true,
                ..Dirty::default()
            }),
            wake: Notify::new(),
            published: Notify::new(),
            outbox: Arc::new(Notify::new()),
        }
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

    /// Replaces the config and has everything recomputed.
    pub fn set_config(&self, config: Config) {
        self.config.send_replace(Arc::new(config));
        self.mark_all();
    }

    /// Sees every config change.
    pub fn watch_config(&self) -> watch::Receiver<Arc<Config>> {
        self.config.subscribe()
    }

    /// The latest scorecard.
    pub fn card(&self) -> Arc<Scorecard> {
        Arc::clone(&self.card.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Publishes a new scorecard, and wakes the alert task.
    pub fn set_card(&self, card: Scorecard) {
        *self.card.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(card);
        self.scored.store(true, Ordering::Release);
        self.published.notify_one();
    }

    /// Whether a scorecard of every KR has been published (`/readyz`).
    pub fn is_scored(&self) -> bool {
        self.scored.load(Ordering::Acquire)
    }

    /// Resolves when a scorecard was published since the last wait
    /// (several publications in between count once).
    pub async fn card_published(&self) {
        self.published.notified().await;
    }

    /// Records that `points` were durably written, and wakes the scorer.
    pub fn points_written(&self, points: &[Point]) {
        self.metrics_written(points.iter().map(|p| (p.series.metric.as_str(), p.ts)));
    }

    /// Records that the metrics of `written` got points at or after each
    /// ts, by this process or (through the change feed) another, and wakes
    /// the scorer.
    pub fn metrics_written<'a>(&self, written: impl IntoIterator<Item = (&'a str, Timestamp)>) {
        let mut any = false;
        {
            let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
            for (metric, ts) in written {
                any = true;
                // A lookup by &str first: no metric name is cloned but the
                // first of each.
                match dirty.metrics.get_mut(metric) {
                    Some(earliest) => *earliest = (*earliest).min(ts),
                    None => {
                        dirty.metrics.insert(metric.to_string(), ts);
                    }
                }
            }
        }
        if any {
            self.wake.notify_one();
        }
    }

    /// Has every KR recomputed, and wakes the scorer.
    pub fn mark_all(&self) {
        self.dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .all = true;
        self.wake.notify_one();
    }

    /// Has everything read from the store again and recomputed: what the
    /// scorer holds may miss another process's points.
    pub fn reload_all(&self) {
        {
            let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
            dirty.all = true;
            dirty.reload = true;
        }
        self.wake.notify_one();
    }

    /// Whether anything is dirty.
    pub fn is_dirty(&self) -> bool {
        let dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        dirty.all || dirty.reload || !dirty.metrics.is_empty()
    }

    /// Takes what is dirty, leaving nothing dirty.
    pub fn take_dirty(&self) -> Dirty {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Notified when alert transitions queued deliveries.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.outbox)
    }

    /// Resolves when something became dirty since the last wait.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}
