//! Time conversions shared by the hub and the store (below both, so neither depends on the
//! other for them).
//!
//! The domain modules never read the clock themselves: callers pass `now` as a
//! [`SystemTime`], and these functions turn it into the two shapes the hub and the store
//! need: integer milliseconds for SQLite columns and ISO-8601 UTC text with millisecond
//! precision (`2026-11-27T22:40:16.123Z`) for JSON bodies, as twin `$metadata.$lastUpdated`
//! is documented (docs/protocol.md §6).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_proto::Iso8601;

/// Milliseconds since the Unix epoch (negative before 1970, saturating far outside).
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use iothub_emulator::timestamp::unix_millis;
/// assert_eq!(unix_millis(UNIX_EPOCH + Duration::from_millis(1_500)), 1_500);
/// ```
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The inverse of [`unix_millis`].
///
/// # Example
/// ```
/// use iothub_emulator::timestamp::{from_unix_millis, unix_millis};
/// assert_eq!(unix_millis(from_unix_millis(1_700_000_000_123)), 1_700_000_000_123);
/// ```
pub fn from_unix_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Formats `t` as ISO-8601 UTC with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`, with
/// [`Iso8601`] (written digit by digit: this runs twice for every telemetry message).
///
/// Times before 1970 are clamped to the epoch (the hub never produces them).
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use iothub_emulator::timestamp::iso8601_millis;
/// let t = UNIX_EPOCH + Duration::from_millis(1_471_940_363_042);
/// assert_eq!(iso8601_millis(t), "2016-08-23T08:19:23.042Z");
/// ```
pub fn iso8601_millis(t: SystemTime) -> String {
    let ms = u64::try_from(unix_millis(t)).unwrap_or(0);
    let mut buf = [0u8; Iso8601::MAX_LEN];
    Iso8601::millis(ms).write(&mut buf).to_owned()
}

/// Parses ISO-8601 UTC text (`YYYY-MM-DDTHH:MM:SS[.fff…]Z` or `+00:00`) with [`Iso8601`];
/// `None` when it is not that, names an impossible date, or lies before 1970.
///
/// # Example
/// ```
/// use iothub_emulator::timestamp::{iso8601_millis, parse_iso8601};
/// let t = parse_iso8601("2026-11-27T23:04:05.678Z").unwrap();
/// assert_eq!(iso8601_millis(t), "2026-11-27T23:04:05.678Z");
/// assert!(parse_iso8601("2026-02-30T00:00:00Z").is_none());
/// ```
pub fn parse_iso8601(text: &str) -> Option<SystemTime> {
    Iso8601::parse(text)
        .ok()
        .map(|t| UNIX_EPOCH + Duration::from_millis(t.unix_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_586_488_273_027, "2020-04-10T03:11:13.027Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(iso8601_millis(from_unix_millis(ms)), text, "{ms}");
        }
    }

    #[test]
    fn millis_round_trip_before_and_after_the_epoch() {
        for ms in [-5_000, -1, 0, 1, 1_700_000_000_000] {
            assert_eq!(unix_millis(from_unix_millis(ms)), ms);
        }
    }
}
