//! Exponential backoff with jitter for retrying uploads: the n-th failed attempt waits a random
//! time between half and all of `initial * 2^(n-1)`, capped at `max`, so many devices coming
//! back online do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

/// Retry schedule after failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay bound after the first failure.
    pub initial: Duration,
    /// Largest delay bound.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(10 * 60),
        }
    }
}

impl Backoff {
    /// The upper bound of the delay after `attempts` failures (at least 1).
    pub fn bound(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1u32 << shift)
            .min(self.max)
            .max(Duration::from_millis(1))
    }

    /// A random delay in `[bound / 2, bound]` after `attempts` failures.
    pub fn delay(&self, attempts: u32, rng: &mut impl Rng) -> Duration {
        let hi = u64::try_from(self.bound(attempts).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(hi / 2..=hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_cap_and_jitters() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        assert_eq!(b.bound(0), Duration::from_millis(100));
        assert_eq!(b.bound(1), Duration::from_millis(100));
        assert_eq!(b.bound(3), Duration::from_millis(400));
        assert_eq!(b.bound(10), Duration::from_secs(2));
        assert_eq!(b.bound(u32::MAX), Duration::from_secs(2));
        let mut rng = rand::rng();
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(4, &mut rng)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(400) && *d <= Duration::from_millis(800))
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "jittered");
    }
}
