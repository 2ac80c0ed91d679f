//! The forecast: where the KR's value is heading by the end of its period
//! (SPEC §4). Scoring that value is the key result's business.

use crate::config::objective::KeyResult;
use crate::config::types::Period;
use crate::model::{Sample, Timestamp};

use super::aggregate::Sliding;

/// Fewer points than this in the period give no forecast.
pub(super) const MIN_POINTS: usize = 3;

/// The value the least-squares line through the KR's values in the period
/// reaches at period end; `None` with fewer than [`MIN_POINTS`] points.
///
/// The KR's values in the period are the aggregate evaluated at the ts of
/// each point in [start, t] (for `last`, the points' own values). `samples`
/// are ascending and may start before the period, as windows need them to.
pub(super) fn forecast_value(
    kr: &KeyResult,
    period: &Period,
    samples: &[Sample],
    t: Timestamp,
) -> Option<f64> {
    let first = samples.partition_point(|s| s.ts < period.start);
    let last = samples.partition_point(|s| s.ts <= t);
    if last.saturating_sub(first) < MIN_POINTS {
        return None;
    }
    let since_start = |ts: Timestamp| (ts - period.start).as_seconds_f64();
    let mut sliding = Sliding::new(samples, kr.aggregate, kr.window);
    let points: Vec<(f64, f64)> = samples[first..last]
        .iter()
        .filter_map(|s| Some((since_start(s.ts), sliding.at(s.ts)?)))
        .collect();
    let line = Line::fit(&points)?;
    Some(line.at(since_start(period.end)))
}

/// y = slope · x + intercept.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line {
    slope: f64,
    intercept: f64,
}

impl Line {
    /// The least-squares line through `points`; `None` when the x values
    /// do not vary (or there are none), which leaves the slope undefined.
    fn fit(points: &[(f64, f64)]) -> Option<Line> {
        // Centering on the means keeps the sums small: x is in seconds, so
        // raw Σx² would lose the digits that matter.
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let (sxx, sxy) = points.iter().fold((0.0, 0.0), |(sxx, sxy), &(x, y)| {
            let dx = x - mean_x;
            (sxx + dx * dx, sxy + dx * (y - mean_y))
        });
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        Some(Line {
            slope,
            intercept: mean_y - slope * mean_x,
        })
    }

    fn at(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }
}
