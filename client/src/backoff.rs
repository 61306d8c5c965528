//! Retry pacing: exponential backoff with jitter and a bounded number of attempts.
//!
//! Every retry loop in the client owns one [`Backoff`] started from a [`BackoffConfig`] policy
//! (PD calls, region errors, waiting for locks). A retry that needs no pause (a NotLeader hint
//! names the new leader) still spends an attempt through [`Backoff::consume`], so no loop can
//! spin forever.

use std::time::Duration;

use rand::Rng;

use crate::errors::{Error, Result};

/// A retry policy: delays grow from `base` to `cap`, doubling per attempt, and at most
/// `max_attempts` retries happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub cap: Duration,
    /// Retries allowed before the last error is returned.
    pub max_attempts: u32,
}

impl Default for BackoffConfig {
    /// The region-error policy of TiKV's clients: 2 ms doubling to 500 ms, 10 retries.
    fn default() -> Self {
        BackoffConfig::new(Duration::from_millis(2), Duration::from_millis(500), 10)
    }
}

impl BackoffConfig {
    /// A fast policy for tests: 1 ms doubling to 50 ms, 20 retries.
    pub fn new_test_config() -> BackoffConfig {
        BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(50), 20)
    }

    /// A policy from its three parameters.
    pub const fn new(base: Duration, cap: Duration, max_attempts: u32) -> BackoffConfig {
        BackoffConfig {
            base,
            cap,
            max_attempts,
        }
    }

    /// Checks the values are usable; `name` prefixes the message.
    pub fn validate(&self, name: &str) -> Result<()> {
        if self.base.is_zero() || self.base > self.cap {
            return Err(Error::Config(format!(
                "{name}: base must be positive and at most cap"
            )));
        }
        if self.max_attempts == 0 {
            return Err(Error::Config(format!(
                "{name}: max-attempts must be positive"
            )));
        }
        Ok(())
    }

    /// Starts a fresh retry sequence.
    pub fn start(&self) -> Backoff {
        Backoff {
            config: *self,
            attempts: 0,
        }
    }
}

/// One retry sequence of a [`BackoffConfig`].
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempts: u32,
}

impl Backoff {
    /// The next delay, or `None` when the attempts are used up. Delays are "equal jitter":
    /// uniform in `[d/2, d]` where `d = min(cap, base * 2^attempt)`, so concurrent clients that
    /// failed together do not retry together.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempts >= self.config.max_attempts {
            return None;
        }
        let exp = self
            .config
            .base
            .saturating_mul(1u32 << self.attempts.min(20))
            .min(self.config.cap);
        self.attempts += 1;
        let half = exp / 2;
        let jitter = rand::thread_rng().gen_range(0..=(exp - half).as_micros() as u64);
        Some(half + Duration::from_micros(jitter))
    }

    /// Spends an attempt without sleeping; false when the attempts are used up.
    pub fn consume(&mut self) -> bool {
        if self.attempts >= self.config.max_attempts {
            return false;
        }
        self.attempts += 1;
        true
    }

    /// Sleeps for the next delay; false (without sleeping) when the attempts are used up.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }

    /// Retries spent so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over, keeping the policy (after progress was made).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_bounded() {
        let cfg = BackoffConfig::new(Duration::from_millis(2), Duration::from_millis(50), 8);
        let mut b = cfg.start();
        let mut delays = Vec::new();
        while let Some(d) = b.next_delay() {
            delays.push(d);
        }
        assert_eq!(delays.len(), 8);
        for (i, d) in delays.iter().enumerate() {
            let full = (Duration::from_millis(2) * (1 << i)).min(Duration::from_millis(50));
            assert!(
                *d >= full / 2 && *d <= full,
                "attempt {i}: {d:?} vs {full:?}"
            );
        }
        assert_eq!(b.next_delay(), None);
        assert!(!b.consume());
        b.reset();
        assert!(b.consume());
        assert_eq!(b.attempts(), 1);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let cfg = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(3), 100);
        let mut b = cfg.start();
        for _ in 0..100 {
            assert!(b.next_delay().unwrap() <= Duration::from_secs(3));
        }
    }

    #[test]
    fn presets_are_valid() {
        BackoffConfig::default().validate("default").unwrap();
        BackoffConfig::new_test_config().validate("test").unwrap();
    }

    #[test]
    fn validate_rejects_bad_policies() {
        let zero = BackoffConfig::new(Duration::ZERO, Duration::from_millis(1), 1);
        assert!(zero.validate("x").is_err());
        let inverted = BackoffConfig::new(Duration::from_secs(2), Duration::from_secs(1), 1);
        assert!(inverted.validate("x").is_err());
        let none = BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(1), 0);
        assert!(none.validate("x").is_err());
        let ok = BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(1), 1);
        assert!(ok.validate("x").is_ok());
    }
}
