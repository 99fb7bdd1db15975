//! Retry timing: exponential backoff with caller-supplied jitter, honouring `retry-after`.
//!
//! docs/protocol.md §9 and §11: DPS tells the device how long to wait (`retry-after`), and
//! throttled or failing requests (429, 5xx) should be retried with growing, jittered delays
//! so that a fleet does not reconnect in lockstep. The core has no random number generator, so
//! the caller passes a random `u32` (any uniform source; `0` gives the longest delay).

use core::time::Duration;

/// Exponential backoff: `min · 2^attempt`, capped at `max`, minus up to `jitter_percent` %.
///
/// ```
/// use core::time::Duration;
/// use iothub_proto::Backoff;
///
/// let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// assert_eq!(backoff.delay(0, 0), Duration::from_secs(1));
/// assert_eq!(backoff.delay(3, 0), Duration::from_secs(8));
/// assert_eq!(backoff.delay(30, 0), Duration::from_secs(60));
///
/// // 50 % jitter: a random value of u32::MAX takes half of the delay off
/// let jittered = backoff.with_jitter_percent(50);
/// assert_eq!(jittered.delay(3, u32::MAX), Duration::from_secs(4));
///
/// // the server's retry-after is a floor
/// let server = Some(Duration::from_secs(30));
/// assert_eq!(backoff.delay_with_retry_after(0, 0, server), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter_percent: u8,
}

impl Backoff {
    /// 1 s doubling to 60 s with 20 % jitter.
    pub const DEFAULT: Self = Self {
        min: Duration::from_secs(1),
        max: Duration::from_secs(60),
        jitter_percent: 20,
    };

    /// Delays from `min` doubling up to `max`, without jitter. A `max` below `min` acts as `min`.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            jitter_percent: 0,
        }
    }

    /// Takes up to `percent` % (capped at 100) off each delay, scaled by the random value.
    pub const fn with_jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = if percent > 100 { 100 } else { percent };
        self
    }

    /// The delay before retry number `attempt` (0 for the first retry).
    ///
    /// `random` is uniform over `u32`; the delay shrinks linearly from the full backoff at
    /// `0` to `(100 - jitter_percent) %` of it at `u32::MAX`.
    pub fn delay(&self, attempt: u32, random: u32) -> Duration {
        let min = self.min.as_nanos();
        let max = self.max.as_nanos().max(min);
        let factor = 1u128.checked_shl(attempt.min(127)).unwrap_or(u128::MAX);
        let full = min.saturating_mul(factor).min(max);
        // full <= Duration::MAX (~1.8e28 ns), so neither product overflows u128 (~3.4e38).
        let widest = full.saturating_mul(u128::from(self.jitter_percent)) / 100;
        let jitter = widest.saturating_mul(u128::from(random)) / u128::from(u32::MAX);
        nanos(full - jitter.min(full))
    }

    /// [`Self::delay`], but never shorter than the server's `retry_after`.
    pub fn delay_with_retry_after(
        &self,
        attempt: u32,
        random: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let delay = self.delay(attempt, random);
        retry_after.map_or(delay, |server| server.max(delay))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn nanos(n: u128) -> Duration {
    const PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(n / PER_SEC).unwrap_or(u64::MAX);
    // invariant: the remainder is below 10^9 and fits a u32.
    let sub = u32::try_from(n % PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_attempts_saturate_at_max() {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(100));
        assert_eq!(backoff.delay(u32::MAX, 0), Duration::from_secs(100));
        assert_eq!(backoff.delay(64, 0), Duration::from_secs(100));
    }

    #[test]
    fn max_below_min_acts_as_min() {
        let backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(backoff.delay(4, 0), Duration::from_secs(5));
    }

    #[test]
    fn jitter_is_capped_at_the_whole_delay() {
        let backoff =
            Backoff::new(Duration::from_secs(2), Duration::from_secs(2)).with_jitter_percent(200);
        assert_eq!(backoff.delay(0, u32::MAX), Duration::ZERO);
    }

    #[test]
    fn handles_the_largest_durations() {
        let backoff = Backoff::new(Duration::MAX, Duration::MAX).with_jitter_percent(10);
        assert!(backoff.delay(3, 7) <= Duration::MAX);
    }

    #[test]
    fn short_retry_after_does_not_shorten_the_backoff() {
        let backoff = Backoff::new(Duration::from_secs(4), Duration::from_secs(60));
        assert_eq!(
            backoff.delay_with_retry_after(1, 0, Some(Duration::from_secs(1))),
            Duration::from_secs(8)
        );
    }

    proptest::proptest! {
        #[test]
        fn delays_stay_within_the_jitter_band(
            min_ms in 0u64..100_000, max_ms in 0u64..10_000_000, attempt in 0u32..80,
            percent in 0u8..=100, random in proptest::num::u32::ANY,
        ) {
            let plain = Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms));
            let full = plain.delay(attempt, random);
            let jittered = plain.with_jitter_percent(percent).delay(attempt, random);
            proptest::prop_assert!(full <= Duration::from_millis(max_ms.max(min_ms)));
            proptest::prop_assert!(jittered <= full);
            proptest::prop_assert!(jittered.as_nanos() * 100 + 100 >= full.as_nanos() * u128::from(100 - percent));
            proptest::prop_assert!(plain.delay(attempt + 1, random) >= full);
        }
    }
}
