//! The forecast: where the KR's value is heading by the end of its period
//! (SPEC §4), and the probability that it meets the target there. Scoring
//! that value is the key result's business.

use crate::config::objective::{Better, Target};

use super::welch::t_cdf;

/// Fewer points than this in the period give no forecast.
pub(super) const MIN_POINTS: usize = 3;

/// The least-squares line through the KR's values in the period, at the
/// period end: its value and how sure it is (SPEC §4, "Forecast
/// probability").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastFit {
    /// Points the line was fitted to.
    pub n: usize,
    /// The line's value at the period end.
    pub value: f64,
    /// The prediction's standard error there,
    /// s·sqrt(1 + 1/n + (x_end − x̄)² / Σ(x − x̄)²); 0 when the points lie on
    /// the line.
    pub se: f64,
    /// Degrees of freedom, n − 2.
    pub df: usize,
    /// The probability that the value at the period end meets the target
    /// (a maintain KR: its threshold), by Student's t with `df` degrees of
    /// freedom; with se = 0 the line decides: 1 or 0.
    pub probability: f64,
}

/// The running least-squares sums of the KR's values in the period: the
/// points (x, y), x the seconds since the period start and y the aggregate
/// at the point's ts (for `last`, the point's own value). Kept up to date
/// one point at a time (Welford's updates of the means and co-moments), so
/// that a scorer extends it with the points written since instead of
/// refitting the period; one pass over the period gives the same bits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Fit {
    n: usize,
    mean_x: f64,
    mean_y: f64,
    /// Σ(x − x̄)².
    sxx: f64,
    /// Σ(x − x̄)(y − ȳ).
    sxy: f64,
    /// Σ(y − ȳ)².
    syy: f64,
}

impl Fit {
    /// Adds the point (`x`, `y`).
    pub(super) fn add(&mut self, x: f64, y: f64) {
        // Updating the means and the centred sums keeps them small: x is in
        // seconds, so raw Σx² would lose the digits that matter.
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        self.mean_x += dx / n;
        let dy = y - self.mean_y;
        self.mean_y += dy / n;
        self.sxx += dx * (x - self.mean_x);
        self.sxy += dx * (y - self.mean_y);
        self.syy += dy * (y - self.mean_y);
    }

    /// The line extended to the period end, `x_end` seconds after its
    /// start; `None` with fewer than [`MIN_POINTS`] points, or when their
    /// x values do not vary.
    pub(super) fn forecast(
        &self,
        target: Target,
        better: Better,
        x_end: f64,
    ) -> Option<ForecastFit> {
        if self.n < MIN_POINTS {
            return None;
        }
        let line = Line::of(self)?;
        let value = line.at(x_end);
        let n = self.n;
        let df = n - 2;
        let se = line.residual_se()
            * (1.0 + 1.0 / n as f64 + (x_end - line.mean_x).powi(2) / line.sxx).sqrt();
        let probability = meets_probability(target, better, value, se, df);
        Some(ForecastFit {
            n,
            value,
            se,
            df,
            probability,
        })
    }
}

/// P(Y ≥ target) (or ≤, as the target reads) for Y = value + se·T, T
/// Student's t with `df` degrees of freedom; with se = 0, whether `value`
/// itself meets it.
fn meets_probability(target: Target, better: Better, value: f64, se: f64, df: usize) -> f64 {
    let (threshold, at_least) = match target {
        Target::AtMost(v) => (v, false),
        Target::AtLeast(v) => (v, true),
        Target::Value(v) => (v, better == Better::Higher),
    };
    if se == 0.0 {
        let met = if at_least {
            value >= threshold
        } else {
            value <= threshold
        };
        return if met { 1.0 } else { 0.0 };
    }
    // Each side from the cdf directly (T is symmetric), not as 1 − the
    // other, so that a tail probability keeps its digits.
    let margin = if at_least {
        value - threshold
    } else {
        threshold - value
    };
    t_cdf(margin / se, df as f64)
}

/// Residuals this small are float rounding, not noise: s = 0, and the line
/// decides. Σ(y − ŷ)² = Syy − Sxy²/Sxx cancels down to rounding (a few
/// ulps of Syy) when the points lie on a line, so a residual sum of squares
/// at most this fraction of Syy (R² ≥ 1 − 1e-12), or at most its square of
/// Σy² (a flat series whose mean rounds), counts as none.
const EXACT_FIT: f64 = 1e-12;

/// y = slope · x + intercept, with what the fit's sums say about its
/// residuals.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Line {
    slope: f64,
    intercept: f64,
    n: usize,
    mean_x: f64,
    /// Σ(x − x̄)².
    sxx: f64,
    /// Σ(y − ŷ)², the residual sum of squares.
    sse: f64,
}

impl Line {
    /// The least-squares line of `fit`'s points; `None` when the x values
    /// do not vary (or there are none), which leaves the slope undefined.
    fn of(fit: &Fit) -> Option<Line> {
        let &Fit {
            n,
            mean_x,
            mean_y,
            sxx,
            sxy,
            syy,
        } = fit;
        if n == 0 || sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        // Σ(y − ŷ)² = Syy − Sxy²/Sxx; clamped, and rounding-sized residuals
        // counted as none.
        let sse = (syy - sxy * sxy / sxx).max(0.0);
        let sum_y2 = syy + n as f64 * mean_y * mean_y;
        let sse = if sse <= EXACT_FIT * syy || sse <= EXACT_FIT * EXACT_FIT * sum_y2 {
            0.0
        } else {
            sse
        };
        Some(Line {
            slope,
            intercept: mean_y - slope * mean_x,
            n,
            mean_x,
            sxx,
            sse,
        })
    }

    fn at(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }

    /// s = sqrt(Σ(y − ŷ)² / (n − 2)); `fit` needs 3 points for it.
    fn residual_se(&self) -> f64 {
        if self.n < 3 {
            return 0.0;
        }
        (self.sse / (self.n - 2) as f64).sqrt()
    }
}
