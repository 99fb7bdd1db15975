//! The HTTP-like status codes IoT Hub and DPS put in response topics.
//!
//! docs/protocol.md §6 (twin), §7 (methods) and §9 (DPS): the status is an integer segment such
//! as `$iothub/twin/res/204/…`. Classification follows azure-sdk-for-c `az_iot_common.h`:
//! 2xx succeeds, 429 is throttling, 429 and 5xx are worth retrying, and 400 or above is an error.

use core::fmt;

/// A response status such as `200`, `204`, `429`.
///
/// ```
/// use iothub_proto::Status;
///
/// assert!(Status::NO_CONTENT.is_success());
/// assert!(Status(429).is_throttled() && Status(429).is_retriable());
/// assert!(Status(503).is_retriable() && Status(503).is_error());
/// assert!(!Status(400).is_retriable() && Status(400).is_error());
/// assert_eq!(Status(202).to_string(), "202");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(pub u16);

impl Status {
    /// `200`: twin GET succeeded; DPS registration finished.
    pub const OK: Self = Self(200);
    /// `202`: DPS registration still in progress (poll again).
    pub const ACCEPTED: Self = Self(202);
    /// `204`: twin reported patch accepted.
    pub const NO_CONTENT: Self = Self(204);
    /// `400`: malformed request.
    pub const BAD_REQUEST: Self = Self(400);
    /// `401`: authentication failed.
    pub const UNAUTHORIZED: Self = Self(401);
    /// `404`: not found.
    pub const NOT_FOUND: Self = Self(404);
    /// `429`: throttled.
    pub const TOO_MANY_REQUESTS: Self = Self(429);
    /// `500`: server error.
    pub const INTERNAL_SERVER_ERROR: Self = Self(500);
    /// `503`: service unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// `504`: gateway timeout.
    pub const GATEWAY_TIMEOUT: Self = Self(504);

    /// The numeric code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// 2xx.
    pub const fn is_success(self) -> bool {
        matches!(self.0, 200..=299)
    }

    /// 429 or 5xx: the same request may succeed later.
    pub const fn is_retriable(self) -> bool {
        self.is_throttled() || matches!(self.0, 500..=599)
    }

    /// 429 Too Many Requests.
    pub const fn is_throttled(self) -> bool {
        self.0 == 429
    }

    /// 400 or above.
    pub const fn is_error(self) -> bool {
        self.0 >= 400
    }
}

impl From<u16> for Status {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_boundaries() {
        assert!(!Status(199).is_success());
        assert!(Status(299).is_success() && !Status(300).is_success());
        assert!(!Status(428).is_retriable() && !Status(430).is_retriable());
        assert!(
            Status(500).is_retriable() && Status(599).is_retriable() && !Status(600).is_retriable()
        );
        assert!(!Status(399).is_error() && Status(65535).is_error());
        assert!(!Status(503).is_throttled());
    }
}
