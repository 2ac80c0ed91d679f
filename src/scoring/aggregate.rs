//! value(t): how a series' points become one number at an instant (SPEC §4).
//!
//! `last` reads the latest point at or before t; the other aggregates read
//! the points in the half-open window (t - window, t]. An aggregate over an
//! empty window is undefined, `count` included: no usable point is no data,
//! not a count of zero.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use chrono::TimeDelta;

use crate::config::objective::Aggregate;
use crate::model::{Sample, Timestamp};

/// An aggregate over ascending `samples` at `t`; `None` when no point is usable.
///
/// `window` is ignored for `last`. A windowed aggregate without a window
/// (config validation never produces one) reads every point at or before `t`.
pub fn aggregate(
    samples: &[Sample],
    agg: Aggregate,
    window: Option<Duration>,
    t: Timestamp,
) -> Option<f64> {
    fold(&samples[feeding(samples, agg, window, t)], agg)
}

/// The indices of the samples that feed value(t).
pub(super) fn feeding(
    samples: &[Sample],
    agg: Aggregate,
    window: Option<Duration>,
    t: Timestamp,
) -> Range<usize> {
    let end = samples.partition_point(|s| s.ts <= t);
    let start = match (agg, window_start(t, window)) {
        (Aggregate::Last, _) => end.saturating_sub(1),
        (_, Some(after)) => samples[..end].partition_point(|s| s.ts <= after),
        (_, None) => 0,
    };
    start..end
}

/// The aggregate of exactly these samples.
pub(super) fn fold(window: &[Sample], agg: Aggregate) -> Option<f64> {
    fold_values(window.iter().map(|s| s.value), agg)
}

/// The aggregate of these values, in order.
fn fold_values(
    values: impl DoubleEndedIterator<Item = f64> + ExactSizeIterator,
    agg: Aggregate,
) -> Option<f64> {
    let len = values.len();
    let mut values = values;
    match agg {
        _ if len == 0 => None,
        Aggregate::Last => values.next_back(),
        Aggregate::Avg => Some(values.sum::<f64>() / len as f64),
        Aggregate::Sum => Some(values.sum()),
        Aggregate::Min => values.reduce(f64::min),
        Aggregate::Max => values.reduce(f64::max),
        Aggregate::Count => Some(len as f64),
    }
}

/// The window's exclusive lower bound, t - window; `None` when unbounded.
fn window_start(t: Timestamp, window: Option<Duration>) -> Option<Timestamp> {
    // A window reaching past the representable range holds every point.
    t.checked_sub_signed(TimeDelta::from_std(window?).ok()?)
}

/// An aggregate's window, owned, moving forward in time: points are
/// pushed in ascending order, and [`Window::slide_to`] drops those that fell
/// out of (t - window, t]. `last` keeps only the latest point.
///
/// The forecast evaluates the aggregate at every point of the period, and
/// score history at every instant its data changed; rescanning each window
/// would be O(n·k). Here sums come from prefix sums and min/max from a
/// monotonic deque, so each evaluation costs amortized O(1), and
/// [`Window::value`] agrees with [`aggregate`] up to float rounding.
/// [`Window::exact`] folds the points held, as [`aggregate`] does.
///
/// The window is owned (it borrows no slice), so a scorer keeps one per
/// key result between recomputes and pushes only the points written since:
/// the prefix sums continue from where they were, so the values are the
/// same bits as one pass over the whole series gives.
#[derive(Debug, Clone)]
pub(super) struct Window {
    agg: Aggregate,
    window: Option<Duration>,
    /// The points in the window, each with the sum of every value pushed
    /// before it (sum and avg only; 0 otherwise).
    points: VecDeque<(Sample, f64)>,
    /// The sum of every value pushed (sum and avg only).
    total: f64,
    /// Points in the window whose values strictly improve from front to
    /// back, so the front is the window's min (or max).
    extremes: VecDeque<Sample>,
    /// The latest point pushed.
    newest: Option<Timestamp>,
}

impl Window {
    /// An empty window of `agg` over `window`.
    pub(super) fn new(agg: Aggregate, window: Option<Duration>) -> Self {
        Self {
            agg,
            window,
            points: VecDeque::new(),
            total: 0.0,
            extremes: VecDeque::new(),
            newest: None,
        }
    }

    /// Adds `s`, no earlier than any point pushed before.
    pub(super) fn push(&mut self, s: Sample) {
        self.newest = Some(s.ts);
        let before = self.total;
        match self.agg {
            Aggregate::Last => self.points.clear(),
            Aggregate::Sum | Aggregate::Avg => self.total += s.value,
            Aggregate::Min | Aggregate::Max => {
                let outranks = |other: f64| match self.agg {
                    Aggregate::Min => other < s.value,
                    _ => other > s.value,
                };
                // An older value the new one ties or beats can never be the
                // extreme again.
                while self.extremes.back().is_some_and(|b| !outranks(b.value)) {
                    self.extremes.pop_back();
                }
                self.extremes.push_back(s);
            }
            Aggregate::Count => {}
        }
        self.points.push_back((s, before));
    }

    /// Drops the points at or before `t` - window: what is held is then
    /// the window of value(t), given every point at or before `t` was
    /// pushed.
    pub(super) fn slide_to(&mut self, t: Timestamp) {
        if self.agg == Aggregate::Last {
            return;
        }
        let Some(after) = window_start(t, self.window) else {
            return;
        };
        while self.points.front().is_some_and(|(s, _)| s.ts <= after) {
            self.points.pop_front();
        }
        while self.extremes.front().is_some_and(|s| s.ts <= after) {
            self.extremes.pop_front();
        }
    }

    /// Pushes the leading points of ascending `rest` at or before `t`,
    /// sliding to each, then slides to `t`; returns how many it pushed.
    pub(super) fn catch_up(&mut self, rest: &[Sample], t: Timestamp) -> usize {
        let n = rest.partition_point(|s| s.ts <= t);
        for s in &rest[..n] {
            self.push(*s);
            self.slide_to(s.ts);
        }
        self.slide_to(t);
        n
    }

    /// The aggregate of the window, from the running sums.
    pub(super) fn value(&self) -> Option<f64> {
        let (_, before) = self.points.front()?;
        let len = self.points.len();
        let sum = || self.total - before;
        match self.agg {
            Aggregate::Last => self.points.back().map(|(s, _)| s.value),
            Aggregate::Avg => Some(sum() / len as f64),
            Aggregate::Sum => Some(sum()),
            Aggregate::Min | Aggregate::Max => self.extremes.front().map(|s| s.value),
            Aggregate::Count => Some(len as f64),
        }
    }

    /// The aggregate of the window, folded from its points as
    /// [`aggregate`] folds them.
    pub(super) fn exact(&self) -> Option<f64> {
        fold_values(self.points.iter().map(|(s, _)| s.value), self.agg)
    }

    /// How many points the window holds.
    pub(super) fn len(&self) -> usize {
        self.points.len()
    }

    /// Its length; `None` for `last` and an unbounded window.
    pub(super) fn length(&self) -> Option<Duration> {
        self.window.filter(|_| self.agg != Aggregate::Last)
    }

    /// The ts of the latest point pushed.
    pub(super) fn newest(&self) -> Option<Timestamp> {
        self.newest
    }
}
