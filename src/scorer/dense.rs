//! The scorer cache's two columns, dense where the data lets them be:
//! timestamps a whole number of seconds from the series' first as 4-byte
//! offsets, and values a 4-byte float holds exactly in 4 bytes. Anything
//! else takes 8 bytes, the column converted the first time a point needs
//! it; nothing is ever rounded. Hourly points of whole numbers take 8 bytes
//! a point instead of 16.

/// Unix microseconds, ascending.
#[derive(Debug, Clone)]
pub enum Times {
    /// Each is `base` plus a whole number of seconds.
    Seconds { base: i64, offsets: Vec<u32> },
    /// As they are.
    Micros(Vec<i64>),
}

const SECOND: i64 = 1_000_000;

impl Times {
    /// Empty, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Times::Seconds {
            base: 0,
            offsets: Vec::with_capacity(n),
        }
    }

    /// The `i`th timestamp.
    pub fn get(&self, i: usize) -> i64 {
        match self {
            Times::Seconds { base, offsets } => base + i64::from(offsets[i]) * SECOND,
            Times::Micros(v) => v[i],
        }
    }

    /// How many leading timestamps `pred` holds for (it holds for a prefix).
    pub fn partition_point(&self, pred: impl Fn(i64) -> bool) -> usize {
        match self {
            Times::Seconds { base, offsets } => {
                offsets.partition_point(|o| pred(base + i64::from(*o) * SECOND))
            }
            Times::Micros(v) => v.partition_point(|t| pred(*t)),
        }
    }

    pub fn truncate(&mut self, n: usize) {
        match self {
            Times::Seconds { offsets, .. } => offsets.truncate(n),
            Times::Micros(v) => v.truncate(n),
        }
    }

    /// Forgets the first `n`.
    pub fn drain_front(&mut self, n: usize) {
        match self {
            Times::Seconds { offsets, .. } => drop(offsets.drain(..n)),
            Times::Micros(v) => drop(v.drain(..n)),
        }
    }

    /// Room for `n` more, and at most a sixteenth more than needed.
    pub fn reserve(&mut self, n: usize) {
        match self {
            Times::Seconds { offsets, .. } => offsets.reserve_exact(n.max(offsets.len() / 16)),
            Times::Micros(v) => v.reserve_exact(n.max(v.len() / 16)),
        }
    }

    /// Appends `t`, no earlier than the last.
    pub fn push(&mut self, t: i64) {
        if let Times::Seconds { base, offsets } = self {
            if offsets.is_empty() {
                *base = t;
            }
            let d = t - *base;
            if d >= 0 && d % SECOND == 0 {
                if let Ok(offset) = u32::try_from(d / SECOND) {
                    offsets.push(offset);
                    return;
                }
            }
            let mut micros = Vec::with_capacity(offsets.capacity().max(offsets.len() + 1));
            micros.extend(offsets.iter().map(|o| *base + i64::from(*o) * SECOND));
            *self = Times::Micros(micros);
        }
        if let Times::Micros(v) = self {
            v.push(t);
        }
    }
}

/// Values, as pushed.
#[derive(Debug, Clone)]
pub enum Values {
    /// Each exactly an `f32`.
    Narrow(Vec<f32>),
    /// As they are.
    Wide(Vec<f64>),
}

impl Values {
    /// Empty, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Values::Narrow(Vec::with_capacity(n))
    }

    /// The `i`th value.
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Values::Narrow(v) => f64::from(v[i]),
            Values::Wide(v) => v[i],
        }
    }

    pub fn truncate(&mut self, n: usize) {
        match self {
            Values::Narrow(v) => v.truncate(n),
            Values::Wide(v) => v.truncate(n),
        }
    }

    /// Forgets the first `n`.
    pub fn drain_front(&mut self, n: usize) {
        match self {
            Values::Narrow(v) => drop(v.drain(..n)),
            Values::Wide(v) => drop(v.drain(..n)),
        }
    }

    /// Room for `n` more, and at most a sixteenth more than needed.
    pub fn reserve(&mut self, n: usize) {
        match self {
            Values::Narrow(v) => v.reserve_exact(n.max(v.len() / 16)),
            Values::Wide(v) => v.reserve_exact(n.max(v.len() / 16)),
        }
    }

    /// Appends `value`.
    pub fn push(&mut self, value: f64) {
        if let Values::Narrow(v) = self {
            let narrow = value as f32;
            // Bit-exact: -0.0 stays -0.0, and anything an f32 would
            // round widens the column.
            if f64::from(narrow).to_bits() == value.to_bits() {
                v.push(narrow);
                return;
            }
            let mut wide = Vec::with_capacity(v.capacity().max(v.len() + 1));
            wide.extend(v.iter().map(|x| f64::from(*x)));
            *self = Values::Wide(wide);
        }
        if let Values::Wide(v) = self {
            v.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_stay_narrow_and_anything_else_widens_without_loss() {
        let base = 1_790_812_800 * SECOND + 250_000;
        let mut times = Times::with_capacity(4);
        for h in 0..3 {
            times.push(base + h * 3600 * SECOND);
        }
        assert!(matches!(times, Times::Seconds { .. }), "{times:?}");
        assert_eq!(times.partition_point(|t| t <= base + 3600 * SECOND), 2);
        times.push(base + 3 * 3600 * SECOND + 1);
        assert!(
            matches!(times, Times::Micros(_)),
            "a sub-second step widens"
        );
        let got: Vec<i64> = (0..4).map(|i| times.get(i)).collect();
        assert_eq!(
            got,
            [0, 1, 2]
                .map(|h| base + h * 3600 * SECOND)
                .into_iter()
                .chain([base + 3 * 3600 * SECOND + 1])
                .collect::<Vec<_>>()
        );
        // An offset past u32's seconds (136 years) widens too.
        let mut far = Times::with_capacity(2);
        far.push(0);
        far.push((i64::from(u32::MAX) + 1) * SECOND);
        assert!(matches!(far, Times::Micros(_)));
        assert_eq!(far.get(1), (i64::from(u32::MAX) + 1) * SECOND);
        // Emptied, a column starts again from its next timestamp.
        let mut again = Times::with_capacity(2);
        again.push(10 * SECOND);
        again.truncate(0);
        again.push(3);
        again.push(3 + SECOND);
        assert!(matches!(again, Times::Seconds { .. }));
        assert_eq!((again.get(0), again.get(1)), (3, 3 + SECOND));

        let mut values = Values::with_capacity(4);
        for v in [1.0, -0.0, 0.5, 16_777_216.0] {
            values.push(v);
        }
        assert!(matches!(values, Values::Narrow(_)), "{values:?}");
        assert_eq!(values.get(1).to_bits(), (-0.0f64).to_bits());
        values.push(0.1);
        assert!(matches!(values, Values::Wide(_)), "0.1 is no f32");
        let got: Vec<f64> = (0..5).map(|i| values.get(i)).collect();
        assert_eq!(got, [1.0, -0.0, 0.5, 16_777_216.0, 0.1]);
        let mut wide = Values::with_capacity(1);
        wide.push(f64::MAX);
        assert!(matches!(wide, Values::Wide(_)), "out of f32's range");
        assert_eq!(wide.get(0), f64::MAX);
    }
}
