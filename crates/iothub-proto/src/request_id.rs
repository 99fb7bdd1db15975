//! Request ids (`$rid`) correlating twin, method and DPS requests with their responses.
//!
//! docs/protocol.md §6-§7: the id is chosen by the requester (integers, UUIDs, words such as
//! `id_one`) and must be echoed verbatim, so a received id is an opaque string. The device
//! side here generates small decimal counters, as azure-sdk-for-c does.

use core::fmt::{self, Display};
use core::hash::{Hash, Hasher};

/// A request id: either opaque received text or a number this side generated.
///
/// A number equals text that spells it in canonical decimal, so a generated id matches the
/// id echoed back in a response topic.
///
/// ```
/// use iothub_proto::{RequestId, RequestIds};
///
/// let mut ids = RequestIds::new();
/// let sent = ids.next_id();
/// assert_eq!(sent.to_string(), "0");
/// assert_eq!(sent, RequestId::new("0"));
/// assert_ne!(sent, RequestId::new("00"));
/// assert_eq!(RequestId::new("1a").as_str(), Some("1a"));
/// ```
#[derive(Debug, Clone, Copy)]
pub enum RequestId<'a> {
    /// Text as received (never percent-decoded: it is echoed back byte for byte).
    Text(&'a str),
    /// A generated number, written in decimal.
    Number(u32),
}

impl<'a> RequestId<'a> {
    /// Wraps received text.
    pub const fn new(text: &'a str) -> Self {
        Self::Text(text)
    }

    /// The text, for an id that was received rather than generated.
    pub const fn as_str(&self) -> Option<&'a str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Number(_) => None,
        }
    }

    /// The number this id spells in canonical decimal, if any.
    ///
    /// ```
    /// use iothub_proto::RequestId;
    ///
    /// assert_eq!(RequestId::new("42").as_number(), Some(42));
    /// assert_eq!(RequestId::new("042").as_number(), None);
    /// assert_eq!(RequestId::Number(7).as_number(), Some(7));
    /// ```
    pub fn as_number(&self) -> Option<u32> {
        match *self {
            Self::Number(n) => Some(n),
            Self::Text(text) => parse_canonical_decimal(text),
        }
    }

    /// Whether the id is empty text.
    pub const fn is_empty(&self) -> bool {
        match self {
            Self::Text(text) => text.is_empty(),
            Self::Number(_) => false,
        }
    }
}

impl From<u32> for RequestId<'_> {
    fn from(n: u32) -> Self {
        Self::Number(n)
    }
}

impl<'a> From<&'a str> for RequestId<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(text)
    }
}

impl PartialEq for RequestId<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Number(a), Self::Number(b)) => a == b,
            (Self::Number(n), Self::Text(t)) | (Self::Text(t), Self::Number(n)) => {
                parse_canonical_decimal(t) == Some(n)
            }
        }
    }
}

impl Eq for RequestId<'_> {}

impl Hash for RequestId<'_> {
    /// Hashes the decimal text, so equal ids hash equally whatever their variant.
    fn hash<H: Hasher>(&self, state: &mut H) {
        match *self {
            Self::Text(text) => text.hash(state),
            Self::Number(n) => {
                let mut digits = [0u8; 10];
                let text = write_decimal(n, &mut digits);
                text.hash(state);
            }
        }
    }
}

impl RequestId<'_> {
    /// Writes the id without consulting the formatter's flags (the encoders never pad), so
    /// topic builders do not link integer padding.
    pub(crate) fn write_plain(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Number(n) => Display::fmt(&crate::text::Decimal(u64::from(*n)), f),
        }
    }
}

impl crate::encode::WriteTo for RequestId<'_> {
    /// The id as [`RequestId::write_plain`] writes it, into a byte-path sink.
    fn write_to(&self, out: &mut dyn crate::encode::Sink) {
        match self {
            Self::Text(text) => out.put(text),
            Self::Number(n) => crate::text::Decimal(u64::from(*n)).write_to(out),
        }
    }
}

impl Display for RequestId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Number(n) => Display::fmt(n, f),
        }
    }
}

/// A wrapping counter generating request ids `0, 1, 2, …`.
///
/// ```
/// use iothub_proto::{RequestId, RequestIds};
///
/// let mut ids = RequestIds::starting_at(u32::MAX);
/// assert_eq!(ids.next_id(), RequestId::Number(u32::MAX));
/// assert_eq!(ids.next_id(), RequestId::Number(0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    next: u32,
}

impl RequestIds {
    /// A counter starting at 0.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// A counter starting at `first` (e.g. a random start to tell connections apart).
    pub const fn starting_at(first: u32) -> Self {
        Self { next: first }
    }

    /// Returns the next id, wrapping after `u32::MAX`.
    pub fn next_id(&mut self) -> RequestId<'static> {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        RequestId::Number(id)
    }
}

fn parse_canonical_decimal(text: &str) -> Option<u32> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn write_decimal(mut n: u32, digits: &mut [u8; 10]) -> &str {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // invariant: only ASCII digits were written.
    crate::text::utf8(digits.get(start..).unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::hash_map::DefaultHasher;
    use std::string::ToString;

    use super::*;

    fn hash_of(id: RequestId<'_>) -> u64 {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn generated_and_received_ids_hash_alike_when_equal() {
        assert_eq!(
            hash_of(RequestId::Number(1234)),
            hash_of(RequestId::new("1234"))
        );
        assert_eq!(hash_of(RequestId::Number(0)), hash_of(RequestId::new("0")));
    }

    #[test]
    fn text_ids_are_opaque() {
        assert_ne!(RequestId::new("+1"), RequestId::Number(1));
        assert_ne!(RequestId::new("1a"), RequestId::Number(26));
        assert_eq!(RequestId::new("id_one"), RequestId::new("id_one"));
    }

    proptest::proptest! {
        #[test]
        fn numbers_equal_their_decimal_text(n in proptest::num::u32::ANY) {
            let text = n.to_string();
            proptest::prop_assert_eq!(RequestId::Number(n), RequestId::new(&text));
            proptest::prop_assert_eq!(RequestId::Number(n).to_string(), text);
        }
    }
}
