//! Wall-clock helpers shared by the twin, C2D and DPS domains.
//!
//! The domain modules never read the clock themselves: callers pass `now` as a
//! [`SystemTime`] (STYLE.md §12 rule 1), and these functions turn it into the two shapes the
//! hub needs: integer milliseconds for SQLite columns and ISO-8601 UTC text with millisecond
//! precision (`2026-11-27T22:40:16.123Z`) for JSON bodies, as twin `$metadata.$lastUpdated`
//! is documented (PROTOCOL.md §6).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (negative before 1970, saturating far outside).
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use iothub_emulator::hub::timestamp::unix_millis;
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
/// use iothub_emulator::hub::timestamp::{from_unix_millis, unix_millis};
/// assert_eq!(unix_millis(from_unix_millis(1_700_000_000_123)), 1_700_000_000_123);
/// ```
pub fn from_unix_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Formats `t` as ISO-8601 UTC with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// Times before 1970 are clamped to the epoch (the hub never produces them).
///
/// # Example
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use iothub_emulator::hub::timestamp::iso8601_millis;
/// let t = UNIX_EPOCH + Duration::from_millis(1_471_940_363_042);
/// assert_eq!(iso8601_millis(t), "2016-08-23T08:19:23.042Z");
/// ```
pub fn iso8601_millis(t: SystemTime) -> String {
    let ms = unix_millis(t).max(0);
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // Written digit by digit: this runs twice for every telemetry message (stamp and log
    // encoding), and `format!` with padding cost about 5 % of a connection task's time.
    let mut out = String::with_capacity(24);
    for (value, width, then) in [
        (y, 4, '-'),
        (m, 2, '-'),
        (d, 2, 'T'),
        (rem / 3600, 2, ':'),
        ((rem % 3600) / 60, 2, ':'),
        (rem % 60, 2, '.'),
        (millis, 3, 'Z'),
    ] {
        push_padded(&mut out, value, width);
        out.push(then);
    }
    out
}

/// Appends `value` (not negative) in decimal, zero-padded to at least `width` digits.
fn push_padded(out: &mut String, value: i64, width: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut v = value.unsigned_abs();
    loop {
        start -= 1;
        // invariant: `v % 10` is a single decimal digit.
        digits[start] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in (digits.len() - start)..width {
        out.push('0');
    }
    out.extend(digits[start..].iter().map(|&b| char::from(b)));
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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

    proptest::proptest! {
        #[test]
        fn matches_the_padded_format_for_any_instant(ms in 0i64..400_000_000_000_000) {
            let (days, rem, millis) = (ms / 1000 / 86_400, ms / 1000 % 86_400, ms % 1000);
            let (y, m, d) = civil_from_days(days);
            let reference = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60
            );
            proptest::prop_assert_eq!(iso8601_millis(from_unix_millis(ms)), reference);
        }
    }

    #[test]
    fn millis_round_trip_before_and_after_the_epoch() {
        for ms in [-5_000, -1, 0, 1, 1_700_000_000_000] {
            assert_eq!(unix_millis(from_unix_millis(ms)), ms);
        }
    }
}
