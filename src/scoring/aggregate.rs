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
    let mut values = window.iter().map(|s| s.value);
    match agg {
        _ if window.is_empty() => None,
        Aggregate::Last => values.next_back(),
        Aggregate::Avg => Some(values.sum::<f64>() / window.len() as f64),
        Aggregate::Sum => Some(values.sum()),
        Aggregate::Min => values.reduce(f64::min),
        Aggregate::Max => values.reduce(f64::max),
        Aggregate::Count => Some(window.len() as f64),
    }
}

/// The window's exclusive lower bound, t - window; `None` when unbounded.
fn window_start(t: Timestamp, window: Option<Duration>) -> Option<Timestamp> {
    // A window reaching past the representable range holds every point.
    t.checked_sub_signed(TimeDelta::from_std(window?).ok()?)
}

/// Evaluates one aggregate at a non-decreasing sequence of instants.
///
/// The forecast evaluates the aggregate at every point of the period;
/// rescanning each window would be O(n·k). Instead both window bounds only
/// move forward: sums come from prefix sums and min/max from a monotonic
/// deque, so each evaluation costs amortized O(1). Results agree with
/// [`aggregate`] up to float rounding.
pub(super) struct Sliding<'a> {
    samples: &'a [Sample],
    agg: Aggregate,
    window: Option<Duration>,
    /// `prefix[i]` is the sum of the first `i` values (sum and avg only).
    prefix: Vec<f64>,
    /// Indices in the window whose values strictly improve from front to
    /// back, so the front is the window's min (or max).
    extremes: VecDeque<usize>,
    start: usize,
    end: usize,
}

impl<'a> Sliding<'a> {
    /// An evaluator over ascending `samples`.
    pub(super) fn new(samples: &'a [Sample], agg: Aggregate, window: Option<Duration>) -> Self {
        let prefix = match agg {
            Aggregate::Sum | Aggregate::Avg => std::iter::once(0.0)
                .chain(samples.iter().scan(0.0, |sum, s| {
                    *sum += s.value;
                    Some(*sum)
                }))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            samples,
            agg,
            window,
            prefix,
            extremes: VecDeque::new(),
            start: 0,
            end: 0,
        }
    }

    /// value(t); `t` must not be earlier than the previous call's.
    pub(super) fn at(&mut self, t: Timestamp) -> Option<f64> {
        while self.end < self.samples.len() && self.samples[self.end].ts <= t {
            self.push(self.end);
            self.end += 1;
        }
        match (self.agg, window_start(t, self.window)) {
            (Aggregate::Last, _) => self.start = self.end.saturating_sub(1),
            (_, Some(after)) => {
                while self.start < self.end && self.samples[self.start].ts <= after {
                    self.start += 1;
                }
            }
            (_, None) => {}
        }
        while self.extremes.front().is_some_and(|&i| i < self.start) {
            self.extremes.pop_front();
        }

        let len = self.end - self.start;
        let sum = || self.prefix[self.end] - self.prefix[self.start];
        match self.agg {
            _ if len == 0 => None,
            Aggregate::Last => Some(self.samples[self.end - 1].value),
            Aggregate::Avg => Some(sum() / len as f64),
            Aggregate::Sum => Some(sum()),
            Aggregate::Min | Aggregate::Max => {
                self.extremes.front().map(|&i| self.samples[i].value)
            }
            Aggregate::Count => Some(len as f64),
        }
    }

    /// The indices of the samples that fed the last [`Sliding::at`].
    pub(super) fn fed(&self) -> Range<usize> {
        self.start..self.end
    }

    fn push(&mut self, index: usize) {
        let value = self.samples[index].value;
        let outranks = |other: f64| match self.agg {
            Aggregate::Min => other < value,
            _ => other > value,
        };
        if !matches!(self.agg, Aggregate::Min | Aggregate::Max) {
            return;
        }
        // An older value the new one ties or beats can never be the extreme again.
        while let Some(&back) = self.extremes.back() {
            if outranks(self.samples[back].value) {
                break;
            }
            self.extremes.pop_back();
        }
        self.extremes.push_back(index);
    }
}
