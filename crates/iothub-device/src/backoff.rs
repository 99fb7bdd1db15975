//! Reconnect delays: `iothub_proto::Backoff` (exponential, capped, jittered) fed with fresh
//! randomness, so a fleet that lost its hub at once does not come back at once (a fleet
//! reconnecting in lockstep overloads a hub; docs/protocol.md §11). The math lives in the
//! protocol core; this file only supplies the jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A backoff policy with its randomness source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff(pub(crate) iothub_proto::Backoff);

impl Backoff {
    /// Delay before reconnect attempt `attempt` (0 = first retry).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        self.0.delay(attempt, random_u32())
    }
}

/// A random `u32` from the standard library's per-instance random hash keys (no RNG crate).
fn random_u32() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    // invariant: the shift leaves 32 bits.
    u32::try_from(hasher.finish() >> 32).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_delays_within_the_policy_bounds() {
        let b = Backoff(
            iothub_proto::Backoff::new(Duration::from_secs(10), Duration::from_secs(60))
                .with_jitter_percent(50),
        );
        let delays: std::collections::HashSet<_> = (0..20).map(|_| b.delay(0)).collect();
        assert!(delays.len() > 10, "{delays:?}");
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_secs(5) && *d <= Duration::from_secs(10))
        );
        assert!(b.delay(10) <= Duration::from_secs(60));
        assert!(b.delay(10) >= Duration::from_secs(30));
    }
}
