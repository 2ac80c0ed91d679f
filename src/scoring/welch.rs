//! Welch's t-test for a counter metric (SPEC §4, "Statistics that do not
//! cry wolf"): is the counter metric's window (t − W, t] worse than the
//! window before it, (t − 2W, t − W], by more than the tolerance, beyond
//! what the two windows' noise explains?
//!
//! With d the difference of the windows' means, signed so that positive is
//! worse, the one-sided lower confidence bound of d at level 1 − alpha is
//! d − t(1 − alpha; ν)·se, where se² = s_A²/n_A + s_B²/n_B and ν is the
//! Welch–Satterthwaite degrees of freedom. The counter metric degrades when
//! that bound exceeds the tolerance.
//!
//! Both windows without variance leave se = 0 and ν undefined (0/0): the
//! bound is then d itself, deterministically. One window without variance
//! is no special case: ν is the other window's n − 1.

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::config::objective::Better;
use crate::config::types::Tolerance;

/// A window's points summarised: how many, their mean and their sample
/// variance (divided by n − 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Points in the window.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample variance; 0 for a single point.
    pub variance: f64,
}

impl WindowStats {
    /// The summary of `values`; `None` when there are none. Two passes (the
    /// mean, then squared deviations from it), which keeps the variance
    /// exact for values far from zero.
    pub fn of<I: Iterator<Item = f64> + Clone>(values: I) -> Option<Self> {
        let n = values.clone().count();
        if n == 0 {
            return None;
        }
        let mean = values.clone().sum::<f64>() / n as f64;
        let variance = if n < 2 {
            0.0
        } else {
            values.map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        };
        Some(Self { n, mean, variance })
    }

    /// The sample standard deviation.
    pub fn sd(&self) -> f64 {
        self.variance.sqrt()
    }

    /// The squared standard error of the mean, s²/n.
    fn se2(&self) -> f64 {
        self.variance / self.n as f64
    }
}

/// Welch's test of window `b` (now) against window `a` (before).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// The earlier window, (t − 2W, t − W] (or the one captured at firing).
    pub a: WindowStats,
    /// The current window, (t − W, t].
    pub b: WindowStats,
    /// mean(B) − mean(A), signed so that positive is worse.
    pub d: f64,
    /// The standard error of d.
    pub se: f64,
    /// Welch–Satterthwaite degrees of freedom; `None` when neither window
    /// varies (se = 0).
    pub df: Option<f64>,
    /// The one-sided lower confidence bound of d at level 1 − alpha.
    pub bound: f64,
    /// How much worse d may be: the tolerance, relative ones taken of
    /// |mean(A)|.
    pub allowed: f64,
}

impl Welch {
    /// Tests `b` against `a`. Both need at least two points for their
    /// variances (the caller enforces `min_points`, itself at least 2).
    pub fn test(
        a: WindowStats,
        b: WindowStats,
        better: Better,
        tolerance: Tolerance,
        alpha: f64,
    ) -> Self {
        let d = match better {
            Better::Lower => b.mean - a.mean,
            Better::Higher => a.mean - b.mean,
        };
        let se2 = a.se2() + b.se2();
        let se = se2.sqrt();
        let (df, bound) = if se2 > 0.0 {
            let df = se2 * se2
                / (a.se2().powi(2) / (a.n - 1) as f64 + b.se2().powi(2) / (b.n - 1) as f64);
            (Some(df), d - t_quantile(1.0 - alpha, df) * se)
        } else {
            (None, d)
        };
        let allowed = match tolerance {
            Tolerance::Relative(r) => r * a.mean.abs(),
            Tolerance::Absolute(x) => x,
        };
        Self {
            a,
            b,
            d,
            se,
            df,
            bound,
            allowed,
        }
    }

    /// Whether the bound exceeds the tolerance: the counter metric degraded.
    pub fn degraded(&self) -> bool {
        self.bound > self.allowed
    }
}

/// Student's t distribution with `df` degrees of freedom, standard.
fn students_t(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df).expect("degrees of freedom are positive and finite")
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
pub(super) fn t_quantile(p: f64, df: f64) -> f64 {
    students_t(df).inverse_cdf(p)
}

/// P(T ≤ x) for Student's t with `df` degrees of freedom.
pub(super) fn t_cdf(x: f64, df: f64) -> f64 {
    students_t(df).cdf(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f64]) -> WindowStats {
        WindowStats::of(values.iter().copied()).expect("points")
    }

    /// |got − want| ≤ 1e-9·|want| (absolute near zero).
    fn close(got: f64, want: f64, what: &str) {
        let tol = 1e-9 * want.abs().max(1e-12);
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got:e}, want {want:e}"
        );
    }

    /// Each reference is SciPy 1.17.1's, from /tmp/ref/welch_ref.py:
    ///
    /// ```python
    /// from scipy import stats
    /// import numpy as np
    /// def welch(a, b, better, alpha):
    ///     x, y = (b, a) if better == 'lower' else (a, b)
    ///     r = stats.ttest_ind(x, y, equal_var=False, alternative='greater')
    ///     lo = r.confidence_interval(1 - alpha).low
    ///     d = np.mean(x) - np.mean(y)
    ///     se = d / r.statistic
    ///     q = stats.t.ppf(1 - alpha, r.df)
    ///     print(repr(d), repr(se), repr(r.df), repr(q), repr(lo), repr(d - q*se))
    /// ```
    ///
    /// `lo` is the bound (SciPy's one-sided confidence interval of the
    /// difference), `r.df` the Welch–Satterthwaite degrees of freedom.
    #[test]
    fn matches_scipy_on_fixed_data() {
        struct Case {
            a: &'static [f64],
            b: &'static [f64],
            better: Better,
            alpha: f64,
            d: f64,
            df: f64,
            quantile: f64,
            bound: f64,
        }
        let table = [
            // welch([4.1, 3.9, 4.3, 4.0, 4.2, 3.8], [4.9, 5.2, 4.7, 5.0, 5.3, 4.8], 'lower', 0.05)
            Case {
                a: &[4.1, 3.9, 4.3, 4.0, 4.2, 3.8],
                b: &[4.9, 5.2, 4.7, 5.0, 5.3, 4.8],
                better: Better::Lower,
                alpha: 0.05,
                d: 0.9333333333333336,
                df: 9.575596816976129,
                quantile: 1.8206468095572075,
                bound: 0.7120084366354245,
            },
            // welch([10.2, 9.7, 10.5, 9.9, 10.1, 10.4, 9.8], [9.1, 9.9, 8.7, 9.5, 10.2], 'higher', 0.01)
            Case {
                a: &[10.2, 9.7, 10.5, 9.9, 10.1, 10.4, 9.8],
                b: &[9.1, 9.9, 8.7, 9.5, 10.2],
                better: Better::Higher,
                alpha: 0.01,
                d: 0.605714285714285,
                df: 5.455052933920509,
                quantile: 3.25068489087915,
                bound: -0.34458286741565536,
            },
            // Equal means: d = 0, the bound is −t·se.
            // welch([3.0, 3.4, 2.8, 3.2, 3.1], [3.2, 2.9, 3.3, 3.0, 3.1], 'lower', 0.05)
            Case {
                a: &[3.0, 3.4, 2.8, 3.2, 3.1],
                b: &[3.2, 2.9, 3.3, 3.0, 3.1],
                better: Better::Lower,
                alpha: 0.05,
                d: 0.0,
                df: 7.199999999999999,
                quantile: 1.8866907616907764,
                bound: -0.23107148342826697,
            },
            // No variance in A: ν is B's n − 1.
            // welch([2.0, 2.0, 2.0, 2.0, 2.0], [2.5, 2.7, 2.4, 2.6, 2.8], 'lower', 0.05)
            Case {
                a: &[2.0, 2.0, 2.0, 2.0, 2.0],
                b: &[2.5, 2.7, 2.4, 2.6, 2.8],
                better: Better::Lower,
                alpha: 0.05,
                d: 0.6000000000000001,
                df: 4.0,
                quantile: 2.1318467863266495,
                bound: 0.4492556680937678,
            },
            // welch([0.020, 0.024, 0.017, 0.022, 0.019], [0.023, 0.018, 0.025, 0.021, 0.020], 'lower', 0.05)
            Case {
                a: &[0.020, 0.024, 0.017, 0.022, 0.019],
                b: &[0.023, 0.018, 0.025, 0.021, 0.020],
                better: Better::Lower,
                alpha: 0.05,
                d: 0.0010000000000000044,
                df: 8.000000000000002,
                quantile: 1.8595480375308973,
                bound: -0.0021775970794523664,
            },
        ];
        for (i, c) in table.iter().enumerate() {
            let w = Welch::test(
                stats(c.a),
                stats(c.b),
                c.better,
                Tolerance::Absolute(0.0),
                c.alpha,
            );
            let what = |x: &str| format!("case {i}: {x}");
            if c.d == 0.0 {
                assert!(w.d.abs() < 1e-15, "{}", what("d"));
            } else {
                close(w.d, c.d, &what("d"));
            }
            let df = w.df.expect("the windows vary");
            close(df, c.df, &what("df"));
            close(
                t_quantile(1.0 - c.alpha, df),
                c.quantile,
                &what("t quantile"),
            );
            close(w.bound, c.bound, &what("bound"));
        }
    }

    #[test]
    fn the_bound_against_the_tolerance_decides() {
        let (a, b) = (
            stats(&[4.1, 3.9, 4.3, 4.0, 4.2, 3.8]),
            stats(&[4.9, 5.2, 4.7, 5.0, 5.3, 4.8]),
        );
        // bound 0.7120; relative tolerances are taken of |mean(A)| = 4.05.
        let test = |tolerance| Welch::test(a, b, Better::Lower, tolerance, 0.05);
        let rel = test(Tolerance::Relative(0.05));
        close(rel.allowed, 0.05 * 4.05, "5% of 4.05");
        assert!(rel.degraded());
        // 17.5% of 4.05 = 0.70875 < 0.7120 < 17.6% of 4.05 = 0.7128.
        assert!(test(Tolerance::Relative(0.175)).degraded());
        assert!(!test(Tolerance::Relative(0.176)).degraded());
        assert!(test(Tolerance::Absolute(0.712)).degraded());
        assert!(!test(Tolerance::Absolute(0.7121)).degraded());
        // Better higher: the same rise is an improvement, d < 0.
        let up = Welch::test(a, b, Better::Higher, Tolerance::Absolute(0.0), 0.05);
        close(up.d, -0.9333333333333336, "d");
        assert!(!up.degraded());
        // A relative tolerance of a negative mean is taken of its size.
        let neg = Welch::test(
            stats(&[-4.1, -3.9, -4.3, -4.0, -4.2, -3.8]),
            stats(&[-3.3, -3.1, -3.4, -3.0, -3.2, -3.5]),
            Better::Lower,
            Tolerance::Relative(0.05),
            0.05,
        );
        close(neg.allowed, 0.2025, "5% of |-4.05|");
    }

    #[test]
    fn without_variance_in_either_window_the_bound_is_d() {
        let w = Welch::test(
            stats(&[2.0; 5]),
            stats(&[3.0; 5]),
            Better::Lower,
            Tolerance::Absolute(0.5),
            0.05,
        );
        assert_eq!((w.d, w.se, w.df, w.bound), (1.0, 0.0, None, 1.0));
        assert!(w.degraded());
        let same = Welch::test(
            stats(&[2.0; 5]),
            stats(&[2.0; 5]),
            Better::Lower,
            Tolerance::Absolute(0.0),
            0.05,
        );
        assert_eq!(same.bound, 0.0);
        assert!(
            !same.degraded(),
            "a bound equal to the tolerance does not exceed it"
        );
    }

    #[test]
    fn one_window_without_variance_takes_the_others_degrees_of_freedom() {
        // A is constant; the bound 0.44926 (SciPy, above) against 0.4 and 0.45.
        let (a, b) = (stats(&[2.0; 5]), stats(&[2.5, 2.7, 2.4, 2.6, 2.8]));
        let test = |x| Welch::test(a, b, Better::Lower, Tolerance::Absolute(x), 0.05);
        assert_eq!(test(0.4).df, Some(4.0));
        assert!(test(0.4).degraded());
        assert!(!test(0.45).degraded());
    }

    #[test]
    fn window_stats_are_count_mean_and_sample_variance() {
        assert_eq!(WindowStats::of(std::iter::empty()), None);
        assert_eq!(
            WindowStats::of([7.0].into_iter()),
            Some(WindowStats {
                n: 1,
                mean: 7.0,
                variance: 0.0
            })
        );
        let s = stats(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.n, s.mean), (4, 2.5));
        close(s.variance, 5.0 / 3.0, "variance");
        close(s.sd(), (5.0f64 / 3.0).sqrt(), "sd");
        // Far from zero, the two-pass variance keeps its digits.
        let far = stats(&[1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0]);
        assert_eq!(far.variance, 1.0);
    }
}
