//! The hub's clock, injected so that every expiry (C2D TTL and locks, SAS tokens, DPS
//! operations, retention) can be tested by moving time instead of sleeping.
//!
//! Wall time only: connection keep-alive and direct-method timeouts are measured on tokio's
//! monotonic clock by the transports and the method invoker, whose tests pause and advance
//! tokio's time instead.

use crate::lock::lock;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Where the hub reads the time of day.
pub trait Clock: Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's clock: what a running emulator uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use iothub_emulator::hub::{Clock, ManualClock};
/// let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(90));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }

    /// Sets the clock to `to` (backwards too: a wall clock can be set back).
    pub fn set(&self, to: SystemTime) {
        *lock(&self.now) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *lock(&self.now)
    }
}
