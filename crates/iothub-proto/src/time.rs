//! The crate's notion of time: a caller-supplied monotonic [`Instant`] in milliseconds.
//!
//! The core has no clock (see the crate docs): state machines take `now` as an argument and
//! report deadlines as [`Instant`]s; durations are [`core::time::Duration`].

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the caller's monotonic clock, in milliseconds from an arbitrary origin.
///
/// Map it from whatever clock you have (`std::time::Instant` minus a start point, an RTOS
/// tick counter, `embassy_time::Instant::as_millis`).
///
/// ```
/// use core::time::Duration;
/// use iothub_proto::Instant;
///
/// let start = Instant::from_millis(1_000);
/// let later = start + Duration::from_secs(3);
/// assert_eq!(later.as_millis(), 4_000);
/// assert_eq!(later - start, Duration::from_secs(3));
/// assert_eq!(start.saturating_duration_since(later), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Self = Self(0);

    /// The instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + duration`, saturating at the far future (sub-millisecond parts are dropped).
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;

    /// Saturating, like [`Instant::saturating_add`].
    fn add(self, duration: Duration) -> Self {
        self.saturating_add(duration)
    }
}

impl Sub for Instant {
    type Output = Duration;

    /// Saturating, like [`Instant::saturating_duration_since`].
    fn sub(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addition_saturates_instead_of_overflowing() {
        assert_eq!(
            Instant::from_millis(u64::MAX - 1) + Duration::from_secs(1),
            Instant::from_millis(u64::MAX)
        );
        assert_eq!(
            Instant::ZERO + Duration::MAX,
            Instant::from_millis(u64::MAX)
        );
    }
}
