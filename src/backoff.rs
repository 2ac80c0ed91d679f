//! Exponential backoff, the one kind okrd uses: a first wait that doubles
//! up to a cap. Pull requests, Kafka writes and restarts step through it
//! ([`Backoff::next_delay`]); alert deliveries, whose attempt count is
//! stored, ask for the wait of attempt n ([`Backoff::nth`]) with jitter
//! ([`jitter`]). Small enough not to warrant a crate (backon's retry
//! combinators would wrap loops that also select on shutdown and budgets).

use std::time::Duration;

/// A doubling wait from `first`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first.min(max),
        }
    }

    /// The wait to take now; the one after is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// The next wait, without taking it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }

    /// The wait before attempt `attempt + 1` (`attempt` 0: the first wait).
    pub fn nth(&self, attempt: u32) -> Duration {
        self.first
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// `wait` spread by ±`spread` (a fraction) from `seed`, so that failed
/// senders do not retry in step.
pub fn jitter(wait: Duration, spread: f64, seed: u32) -> Duration {
    let unit = f64::from(seed % 1000) / 1000.0 - 0.5; // [-0.5, 0.5)
    wait.mul_f64(1.0 + 2.0 * spread * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let waits: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_millis(500));
        assert_eq!(b.nth(0), Duration::from_millis(500));
        assert_eq!(b.nth(2), Duration::from_secs(2));
        assert_eq!(b.nth(40), Duration::from_secs(3));
        assert_eq!(
            jitter(Duration::from_secs(16), 0.25, 500),
            Duration::from_secs(16)
        );
        assert_eq!(
            jitter(Duration::from_secs(16), 0.25, 0),
            Duration::from_secs(12)
        );
    }
}
