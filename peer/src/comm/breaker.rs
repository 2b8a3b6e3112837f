//! A circuit breaker per peer (Fowler's pattern): after `threshold`
//! consecutive failures calls to the peer fail fast for `reset`; then one
//! probe call is let through (half-open), whose outcome closes or reopens
//! the circuit. Pure state; the manager drives it with a clock.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What the breaker says about a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (closed circuit).
    Call,
    /// Go ahead: this call is the half-open probe. Its outcome must be
    /// reported, or the circuit stays half-open.
    Probe,
    /// Fail fast; the circuit may half-open after `retry_in`.
    Refuse { retry_in: Duration },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    reset: Duration,
    failures: u32,
    state: BreakerState,
    /// When the circuit last opened (clock time).
    opened_at: Duration,
    /// A half-open probe is under way; others are refused meanwhile.
    probing: bool,
}

impl Breaker {
    /// `threshold` of 0 disables the breaker (it never opens).
    pub fn new(threshold: u32, reset: Duration) -> Self {
        Breaker {
            threshold,
            reset,
            failures: 0,
            state: BreakerState::Closed,
            opened_at: Duration::ZERO,
            probing: false,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Decides a call at `now`; may move Open → HalfOpen (returned as the
    /// second value when it does).
    pub fn admit(&mut self, now: Duration) -> (Admission, Option<BreakerState>) {
        match self.state {
            BreakerState::Closed => (Admission::Call, None),
            BreakerState::Open => {
                let elapsed = now.saturating_sub(self.opened_at);
                if elapsed < self.reset {
                    return (
                        Admission::Refuse {
                            retry_in: self.reset - elapsed,
                        },
                        None,
                    );
                }
                self.state = BreakerState::HalfOpen;
                self.probing = true;
                (Admission::Probe, Some(BreakerState::HalfOpen))
            }
            BreakerState::HalfOpen if self.probing => (
                Admission::Refuse {
                    retry_in: Duration::ZERO,
                },
                None,
            ),
            BreakerState::HalfOpen => {
                self.probing = true;
                (Admission::Probe, None)
            }
        }
    }

    /// The peer answered. Returns the new state if it changed.
    pub fn succeeded(&mut self) -> Option<BreakerState> {
        self.failures = 0;
        self.probing = false;
        (self.state != BreakerState::Closed).then(|| {
            self.state = BreakerState::Closed;
            BreakerState::Closed
        })
    }

    /// The peer could not be reached. Returns the new state if it changed.
    pub fn failed(&mut self, now: Duration) -> Option<BreakerState> {
        self.probing = false;
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.threshold > 0 && self.failures >= self.threshold,
            BreakerState::Open => false,
        };
        if open {
            self.state = BreakerState::Open;
            self.opened_at = now;
            return Some(BreakerState::Open);
        }
        None
    }

    /// The probe was abandoned without an outcome (cancelled call).
    pub fn abandoned(&mut self) {
        self.probing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESET: Duration = Duration::from_secs(60);
    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let mut b = Breaker::new(3, RESET);
        assert_eq!(b.failed(secs(1)), None);
        assert_eq!(b.failed(secs(2)), None);
        // A success in between resets the count.
        assert_eq!(b.succeeded(), None);
        assert_eq!(b.failed(secs(3)), None);
        assert_eq!(b.failed(secs(4)), None);
        assert_eq!(b.failed(secs(5)), Some(BreakerState::Open));
        assert_eq!(b.admit(secs(6)).0, Admission::Refuse { retry_in: secs(59) });
    }

    #[test]
    fn half_open_probe_closes_or_reopens() {
        let mut b = Breaker::new(1, RESET);
        assert_eq!(b.failed(secs(0)), Some(BreakerState::Open));
        assert_eq!(
            b.admit(secs(60)),
            (Admission::Probe, Some(BreakerState::HalfOpen))
        );
        // Only one probe at a time.
        assert!(matches!(b.admit(secs(60)).0, Admission::Refuse { .. }));
        assert_eq!(b.failed(secs(61)), Some(BreakerState::Open));
        assert!(matches!(b.admit(secs(100)).0, Admission::Refuse { .. }));
        assert_eq!(b.admit(secs(121)).0, Admission::Probe);
        assert_eq!(b.succeeded(), Some(BreakerState::Closed));
        assert_eq!(b.admit(secs(122)).0, Admission::Call);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let mut b = Breaker::new(1, RESET);
        b.failed(secs(0));
        assert_eq!(b.admit(secs(60)).0, Admission::Probe);
        b.abandoned();
        assert_eq!(b.admit(secs(60)).0, Admission::Probe);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let mut b = Breaker::new(0, RESET);
        for i in 0..100 {
            assert_eq!(b.failed(secs(i)), None);
        }
        assert_eq!(b.admit(secs(100)).0, Admission::Call);
    }
}
