//! Exponential backoff with jitter for retried calls: attempt `n` (from 0)
//! waits a random time in [½·d, d] where d = base·2ⁿ, capped. The jitter
//! keeps peers that failed together from retrying in lockstep.
use std::time::Duration;

/// No retry waits longer than this, whatever the attempt.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max_retries: u32,
}

impl Backoff {
    /// The delay before retry `attempt` (0 = first retry), given a
    /// uniform `unit` in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(MAX_DELAY);
        full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// Whether a call that failed `attempts` times may be retried.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts <= self.max_retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_and_a_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max_retries: 3,
        };
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(600));
        assert_eq!(b.delay(40, 1.0), MAX_DELAY);
        assert!(b.may_retry(3));
        assert!(!b.may_retry(4));
    }
}
