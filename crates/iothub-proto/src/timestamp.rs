//! ISO-8601 UTC timestamps (the RFC 3339 profile IoT Hub writes), to and from Unix time.
//!
//! IoT Hub writes times as `2016-08-23T08:19:23.042Z`: twin `$metadata.$lastUpdated`, message
//! `iothub-enqueuedtime`, registry records; devices write `$.ctime` and Plug and Play report
//! times the same way, some at second precision (`docs/protocol.md`, property bags). The
//! crate has no clock: the caller passes the instant as Unix time.

use core::fmt::{self, Display};

use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;

/// A UTC instant written as ISO-8601, with milliseconds or whole seconds.
///
/// Digits are written one by one into a fixed array: no `core::fmt` padding, no allocation.
/// Years past 9999 get as many digits as they need.
///
/// ```
/// use iothub_proto::Iso8601;
///
/// let stamp = Iso8601::millis(1_471_940_363_042);
/// let mut buf = [0u8; Iso8601::MAX_LEN];
/// assert_eq!(stamp.write(&mut buf), "2016-08-23T08:19:23.042Z");
/// assert_eq!(Iso8601::seconds(1_471_940_363).to_string(), "2016-08-23T08:19:23Z");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Iso8601 {
    unix_millis: u64,
    with_millis: bool,
}

impl Iso8601 {
    /// The longest text: a nine-digit year (the largest `u64` milliseconds reach) and
    /// milliseconds.
    pub const MAX_LEN: usize = 29;

    /// `unix_millis` milliseconds after 1970-01-01T00:00:00Z, written with milliseconds
    /// (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
    pub const fn millis(unix_millis: u64) -> Self {
        Self {
            unix_millis,
            with_millis: true,
        }
    }

    /// `unix_secs` seconds after 1970-01-01T00:00:00Z, written without a fraction
    /// (`YYYY-MM-DDTHH:MM:SSZ`). Saturates at the largest instant [`Iso8601::millis`] covers.
    pub const fn seconds(unix_secs: u64) -> Self {
        Self {
            unix_millis: unix_secs.saturating_mul(1000),
            with_millis: false,
        }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.f…]Z` (or `+00:00` for `Z`): UTC only, as service clients
    /// send `expiryTimeUtc`. Digits past milliseconds are dropped; a leap second (`:60`)
    /// counts as the first second of the next minute. The result keeps millisecond precision
    /// when the text had a fraction.
    ///
    /// # Errors
    ///
    /// [`Iso8601Error`] says whether the text is not this format, names an impossible date or
    /// time, or lies before 1970 or beyond what `u64` milliseconds hold.
    ///
    /// ```
    /// use iothub_proto::{Iso8601, Iso8601Error};
    ///
    /// let t = Iso8601::parse("2016-08-23T08:19:23.0429Z").unwrap();
    /// assert_eq!(t.unix_millis(), 1_471_940_363_042);
    /// assert_eq!(t, Iso8601::millis(1_471_940_363_042));
    /// assert_eq!(Iso8601::parse("2016-08-23T08:19:23+00:00"), Ok(Iso8601::seconds(1_471_940_363)));
    /// assert_eq!(Iso8601::parse("2023-02-29T00:00:00Z"), Err(Iso8601Error::InvalidDate));
    /// assert_eq!(Iso8601::parse("yesterday"), Err(Iso8601Error::Malformed));
    /// ```
    pub fn parse(text: &str) -> Result<Self, Iso8601Error> {
        let text = match text.strip_suffix('Z') {
            Some(rest) => rest,
            None => text.strip_suffix("+00:00").ok_or(Iso8601Error::Malformed)?,
        };
        let (date, time) = split(text, b'T')?;
        let (year, month_day) = split(date, b'-')?;
        let (month, day) = split(month_day, b'-')?;
        let (hms, fraction) = match crate::text::split_once_byte(time, b'.') {
            Some((_, "")) => return Err(Iso8601Error::Malformed),
            Some((hms, fraction)) => (hms, Some(fraction)),
            None => (time, None),
        };
        let (hour, minute_second) = split(hms, b':')?;
        let (minute, second) = split(minute_second, b':')?;
        if year.len() < 4 {
            return Err(Iso8601Error::Malformed);
        }
        let year = digits(year)?;
        let [month, day, hour, minute, second] = [month, day, hour, minute, second].map(two_digits);
        let (month, day, hour, minute, second) = (month?, day?, hour?, minute?, second?);
        let millis = match fraction {
            Some(f) => {
                digits(f)?;
                // The first three digits, scaled to milliseconds: ".5" is 500, ".0429" 42.
                let mut millis = 0;
                let mut places = 0;
                for b in f.bytes().take(3) {
                    millis = millis * 10 + u64::from(b - b'0');
                    places += 1;
                }
                for _ in places..3 {
                    millis *= 10;
                }
                millis
            }
            None => 0,
        };
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(Iso8601Error::InvalidDate);
        }
        if year < 1970 {
            return Err(Iso8601Error::OutOfRange);
        }
        let unix_millis = days_from_civil(year, month, day)
            .and_then(|days| days.checked_mul(86_400))
            .and_then(|secs| secs.checked_add(hour * 3600 + minute * 60 + second))
            .and_then(|secs| secs.checked_mul(1000))
            .and_then(|ms| ms.checked_add(millis))
            .ok_or(Iso8601Error::OutOfRange)?;
        Ok(Self {
            unix_millis,
            with_millis: fraction.is_some(),
        })
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn unix_millis(&self) -> u64 {
        self.unix_millis
    }

    /// Writes the text into `buf` (always large enough) and returns it.
    pub fn write<'b>(&self, buf: &'b mut [u8; Self::MAX_LEN]) -> &'b str {
        let len = self.digits(buf);
        // invariant: `digits` writes only ASCII digits and separators into `buf[..len]`.
        crate::text::utf8(buf.get(..len).unwrap_or_default()).unwrap_or_default()
    }

    /// Writes the text into `buf` and returns its length in bytes.
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the length needed when `buf` is shorter.
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }

    /// The text into `out`, right-aligned digits first; returns its length.
    fn digits(&self, out: &mut [u8; Self::MAX_LEN]) -> usize {
        let secs = self.unix_millis / 1000;
        let (year, month, day) = civil_from_days(secs / 86_400);
        let in_day = secs % 86_400;
        let mut at = 0;
        at += put_decimal(&mut out[at..], year, 4);
        for (separator, value) in [
            (b'-', month),
            (b'-', day),
            (b'T', in_day / 3600),
            (b':', in_day % 3600 / 60),
            (b':', in_day % 60),
        ] {
            out[at] = separator;
            at += 1 + put_decimal(&mut out[at + 1..], value, 2);
        }
        if self.with_millis {
            out[at] = b'.';
            at += 1 + put_decimal(&mut out[at + 1..], self.unix_millis % 1000, 3);
        }
        out[at] = b'Z';
        at + 1
    }
}

impl Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for Iso8601 {
    fn write_to(&self, out: &mut dyn Sink) {
        let mut buf = [0u8; Self::MAX_LEN];
        out.put(self.write(&mut buf));
    }
}

/// Why [`Iso8601::parse`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Iso8601Error {
    /// A month, day, hour, minute or second that does not exist (`2023-02-29`, `24:00`).
    InvalidDate,
    /// Not `YYYY-MM-DDTHH:MM:SS[.f…]Z` (or `+00:00`).
    Malformed,
    /// Before 1970 or beyond the year 584 million.
    OutOfRange,
}

impl Display for Iso8601Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidDate => "timestamp names a date or time that does not exist",
            Self::Malformed => "timestamp is not YYYY-MM-DDTHH:MM:SS[.fff]Z",
            Self::OutOfRange => "timestamp is before 1970 or too far in the future",
        })
    }
}

impl core::error::Error for Iso8601Error {}

/// `text` around the first `separator`.
fn split(text: &str, separator: u8) -> Result<(&str, &str), Iso8601Error> {
    crate::text::split_once_byte(text, separator).ok_or(Iso8601Error::Malformed)
}

/// All-digit text as a number.
fn digits(text: &str) -> Result<u64, Iso8601Error> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Iso8601Error::Malformed);
    }
    text.bytes().try_fold(0u64, |n, b| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(Iso8601Error::OutOfRange)
    })
}

/// Exactly two digits as a number.
fn two_digits(text: &str) -> Result<u64, Iso8601Error> {
    if text.len() != 2 {
        return Err(Iso8601Error::Malformed);
    }
    digits(text)
}

/// Days in `month` of `year` (proleptic Gregorian).
fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date on or after it, after Howard Hinnant's
/// `days_from_civil`; `None` when the count overflows.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y % 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
}

/// Writes `value` in decimal, zero-padded to at least `width` digits, at the start of `out`;
/// returns the number of digits. `out` must hold them (the callers' buffer always does).
fn put_decimal(out: &mut [u8], value: u64, width: usize) -> usize {
    let mut digits = 1;
    let mut rest = value / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    let len = digits.max(width);
    let mut v = value;
    for slot in out.iter_mut().take(len).rev() {
        // invariant: `v % 10` is a single decimal digit.
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    len
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days` algorithm (unsigned: no instant before 1970 is written).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::ToString;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn writes_known_instants() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_586_488_273_027, "2020-04-10T03:11:13.027Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "10000-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(Iso8601::millis(ms).to_string(), text, "{ms}");
        }
        assert_eq!(Iso8601::seconds(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Iso8601::seconds(1_586_488_273).to_string(),
            "2020-04-10T03:11:13Z"
        );
    }

    #[test]
    fn the_largest_instant_fits_max_len() {
        let mut buf = [0u8; Iso8601::MAX_LEN];
        let text = Iso8601::millis(u64::MAX).write(&mut buf);
        assert_eq!(text.len(), Iso8601::MAX_LEN);
        assert_eq!(text, "584556019-04-03T14:25:51.615Z");
        assert_eq!(
            Iso8601::seconds(u64::MAX),
            Iso8601 {
                unix_millis: u64::MAX,
                with_millis: false
            }
        );
    }

    #[test]
    fn encode_to_reports_the_length_a_short_buffer_needs() {
        let mut short = [0u8; 23];
        assert_eq!(
            Iso8601::millis(0).encode_to(&mut short),
            Err(BufferTooSmall { required: 24 })
        );
        let mut exact = [0u8; 20];
        assert_eq!(Iso8601::seconds(0).encode_to(&mut exact), Ok(20));
        assert_eq!(&exact, b"1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_what_service_clients_send() {
        let parsed = |text| Iso8601::parse(text).map(|t| t.unix_millis());
        assert_eq!(parsed("2026-11-27T23:04:05.678Z"), Ok(1_795_820_645_678));
        assert_eq!(parsed("2026-11-27T23:04:05.6Z"), Ok(1_795_820_645_600));
        assert_eq!(parsed("2026-11-27T23:04:05.678999Z"), Ok(1_795_820_645_678));
        assert_eq!(parsed("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parsed("1970-01-01T00:00:00+00:00"), Ok(0));
        // A leap second is the first second of the next minute.
        assert_eq!(
            parsed("2016-12-31T23:59:60Z"),
            parsed("2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn refuses_what_is_not_an_utc_instant() {
        for (text, error) in [
            ("yesterday", Iso8601Error::Malformed),
            ("", Iso8601Error::Malformed),
            ("2026-11-27T23:04:05", Iso8601Error::Malformed),
            ("2026-11-27T23:04:05+01:00", Iso8601Error::Malformed),
            ("2026-11-27 23:04:05Z", Iso8601Error::Malformed),
            ("2026-1-27T23:04:05Z", Iso8601Error::Malformed),
            ("26-11-27T23:04:05Z", Iso8601Error::Malformed),
            ("2026-11-27T23:04:05.Z", Iso8601Error::Malformed),
            ("2026-11-27T23:04:05.1xZ", Iso8601Error::Malformed),
            ("+2026-11-27T23:04:05Z", Iso8601Error::Malformed),
            ("2026-13-01T00:00:00Z", Iso8601Error::InvalidDate),
            ("2023-02-29T00:00:00Z", Iso8601Error::InvalidDate),
            ("2026-04-31T00:00:00Z", Iso8601Error::InvalidDate),
            ("2026-11-27T24:00:00Z", Iso8601Error::InvalidDate),
            ("2026-11-27T23:60:00Z", Iso8601Error::InvalidDate),
            ("1969-12-31T23:59:59Z", Iso8601Error::OutOfRange),
            ("99999999999-01-01T00:00:00Z", Iso8601Error::OutOfRange),
            (
                "99999999999999999999999-01-01T00:00:00Z",
                Iso8601Error::OutOfRange,
            ),
        ] {
            assert_eq!(Iso8601::parse(text), Err(error), "{text}");
        }
    }

    proptest! {
        #[test]
        fn parses_back_what_it_writes(ms in proptest::num::u64::ANY, secs in 0..u64::MAX / 1000) {
            prop_assert_eq!(Iso8601::parse(&Iso8601::millis(ms).to_string()), Ok(Iso8601::millis(ms)));
            prop_assert_eq!(Iso8601::parse(&Iso8601::seconds(secs).to_string()), Ok(Iso8601::seconds(secs)));
        }

        #[test]
        fn never_panics_on_near_miss_text(text in "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}T[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,5})?(Z|\\+00:00)?") {
            if let Ok(t) = Iso8601::parse(&text) {
                prop_assert_eq!(Iso8601::parse(&Iso8601::millis(t.unix_millis()).to_string()).map(|t| t.unix_millis()), Ok(t.unix_millis()));
            }
        }

        #[test]
        fn matches_the_padded_core_format_for_any_instant(ms in proptest::num::u64::ANY) {
            let secs = ms / 1000;
            let (y, m, d) = civil_from_days(secs / 86_400);
            let rem = secs % 86_400;
            let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
            let reference = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z", ms % 1000);
            prop_assert_eq!(Iso8601::millis(ms).to_string(), reference);
            let reference = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z");
            prop_assert_eq!(Iso8601::seconds(secs).to_string(), reference);
        }

        #[test]
        fn civil_dates_advance_one_day_at_a_time(days in 0u64..200_000_000) {
            let (y0, m0, d0) = civil_from_days(days);
            let (y1, m1, d1) = civil_from_days(days + 1);
            let next_day = y1 == y0 && m1 == m0 && d1 == d0 + 1;
            let next_month = y1 == y0 && m1 == m0 + 1 && d1 == 1 && d0 >= 28;
            let next_year = y1 == y0 + 1 && m0 == 12 && d0 == 31 && m1 == 1 && d1 == 1;
            prop_assert!(next_day || next_month || next_year, "{:?} -> {:?}", (y0, m0, d0), (y1, m1, d1));
        }
    }
}
