//! Message property bags: the `k1=v1&k2=v2` text at the end of telemetry and C2D topics.
//!
//! docs/protocol.md §4 and §5: keys and values are RFC 3986 percent-encoded; a key with no `=` is a
//! null value and `k=` an empty string; `+` is never a space; system properties start with
//! `$.`, which real traffic spells `%24.` (both are accepted when reading). A leading `?` seen
//! in one documentation example is tolerated.
//!
//! [`PropertyBag`] reads a bag without allocating: keys and values come out as
//! [`Decoded`] views that decode lazily. [`PropertyWriter`] writes one, byte for byte as the
//! Python device SDK does (docs/protocol.md §4).

use core::fmt::{self, Display};

use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;
use crate::percent::{self, Decoded};
use crate::text::split_once_byte;

/// A borrowed, lazily decoded property bag.
///
/// ```
/// use iothub_proto::properties::{PropertyBag, SystemProperty};
///
/// let bag = PropertyBag::parse("%24.mid=m1&%24.ct=application%2Fjson&flag&empty=&a+b=1%202");
/// assert!(bag.get("$.mid").is_some_and(|v| v.is_some_and(|v| v.eq_str("m1"))));
/// assert!(bag.system(SystemProperty::ContentType).is_some_and(|v| v.eq_str("application/json")));
/// assert_eq!(bag.get("flag"), Some(None)); // present, null value
/// assert!(bag.get("empty").is_some_and(|v| v.is_some_and(|v| v.eq_str(""))));
/// assert!(bag.get("a+b").is_some_and(|v| v.is_some_and(|v| v.eq_str("1 2"))));
/// assert_eq!(bag.get("missing"), None);
/// assert_eq!(bag.iter().count(), 5);
/// assert_eq!(bag.application().count(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PropertyBag<'a> {
    raw: &'a str,
}

/// One property: the decoded key and, unless the key had no `=`, the decoded value.
pub type Property<'a> = (Decoded<'a>, Option<Decoded<'a>>);

impl<'a> PropertyBag<'a> {
    /// Wraps the bag text as received; never fails (malformed escapes are kept literally).
    ///
    /// A leading `?` is skipped (docs/protocol.md §5, documentation example).
    pub fn parse(raw: &'a str) -> Self {
        Self {
            raw: raw.strip_prefix('?').unwrap_or(raw),
        }
    }

    /// The bag text exactly as received (after any leading `?`).
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the bag holds no property.
    ///
    /// ```
    /// use iothub_proto::properties::PropertyBag;
    ///
    /// assert!(PropertyBag::parse("").is_empty());
    /// assert!(PropertyBag::parse("?&").is_empty());
    /// assert!(!PropertyBag::parse("a").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Iterates over every property in order; empty `&&` segments are skipped.
    pub fn iter(&self) -> Properties<'a> {
        Properties { rest: self.raw }
    }

    /// Looks `key` up by its *decoded* spelling: `get("$.mid")` finds `%24.mid=` and `$.mid=`.
    ///
    /// Returns `None` when absent, `Some(None)` for a null value (key without `=`).
    pub fn get(&self, key: &str) -> Option<Option<Decoded<'a>>> {
        self.iter().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v)
    }

    /// The value of a well-known system property, treating a null value as absent.
    pub fn system(&self, property: SystemProperty) -> Option<Decoded<'a>> {
        self.get(property.key()).flatten()
    }

    /// The application properties: every key that does not start with `$.` (or `%24.`).
    ///
    /// Hub-added keys such as `iothub-ack` are application-shaped and included; filter them
    /// with [`IOTHUB_ACK`] if needed.
    pub fn application(&self) -> impl Iterator<Item = Property<'a>> + 'a {
        self.iter().filter(|(k, _)| !is_system_key(k))
    }
}

impl<'a> IntoIterator for PropertyBag<'a> {
    type Item = Property<'a>;
    type IntoIter = Properties<'a>;

    fn into_iter(self) -> Properties<'a> {
        self.iter()
    }
}

/// Iterator over the properties of a [`PropertyBag`].
#[derive(Debug, Clone)]
pub struct Properties<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Properties<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (pair, rest) = split_once_byte(self.rest, b'&').unwrap_or((self.rest, ""));
            self.rest = rest;
            if pair.is_empty() {
                continue;
            }
            return Some(match split_once_byte(pair, b'=') {
                Some((key, value)) => (Decoded::new(key), Some(Decoded::new(value))),
                None => (Decoded::new(pair), None),
            });
        }
    }
}

/// Well-known `$.` system properties (docs/protocol.md §4 table, §5 keys).
///
/// The declaration order is the order [`PropertyWriter`] writes them in, which for the
/// properties the Python SDK knows is the Python SDK's order.
///
/// ```
/// use iothub_proto::properties::SystemProperty;
///
/// assert_eq!(SystemProperty::MessageId.key(), "$.mid");
/// assert_eq!(SystemProperty::from_key("$.ct"), Some(SystemProperty::ContentType));
/// assert_eq!(SystemProperty::from_key("mid"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SystemProperty {
    /// `$.on`: output name (modules, IoT Edge).
    OutputName,
    /// `$.mid`: message id.
    MessageId,
    /// `$.to`: destination, set by the hub on C2D messages.
    To,
    /// `$.cid`: correlation id.
    CorrelationId,
    /// `$.uid`: user id.
    UserId,
    /// `$.ct`: content type, e.g. `application/json` (needed for body-based routing).
    ContentType,
    /// `$.ce`: content encoding, e.g. `utf-8`.
    ContentEncoding,
    /// `$.ifid`: legacy interface id.
    InterfaceId,
    /// `$.sub`: Plug and Play component name; the hub adds `dt-subject`.
    ComponentName,
    /// `$.exp`: absolute expiry time (ISO 8601).
    ExpiryTime,
    /// `$.ctime`: creation time as azure-sdk-for-c names it.
    CreationTime,
}

impl SystemProperty {
    /// Every variant, in writing order.
    pub const ALL: [Self; 11] = [
        Self::OutputName,
        Self::MessageId,
        Self::To,
        Self::CorrelationId,
        Self::UserId,
        Self::ContentType,
        Self::ContentEncoding,
        Self::InterfaceId,
        Self::ComponentName,
        Self::ExpiryTime,
        Self::CreationTime,
    ];

    /// The decoded key, e.g. `$.mid`.
    pub const fn key(self) -> &'static str {
        match self {
            Self::OutputName => "$.on",
            Self::MessageId => "$.mid",
            Self::To => "$.to",
            Self::CorrelationId => "$.cid",
            Self::UserId => "$.uid",
            Self::ContentType => "$.ct",
            Self::ContentEncoding => "$.ce",
            Self::InterfaceId => "$.ifid",
            Self::ComponentName => "$.sub",
            Self::ExpiryTime => "$.exp",
            Self::CreationTime => "$.ctime",
        }
    }

    /// Finds the property for a decoded key such as `$.mid`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    /// Finds the property for a received key in either spelling (`$.mid` or `%24.mid`).
    pub fn from_decoded(key: Decoded<'_>) -> Option<Self> {
        Self::ALL.into_iter().find(|p| key.eq_str(p.key()))
    }
}

impl Display for SystemProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The application property IoT Hub treats as the message creation time (docs/protocol.md §4),
/// a UTC time without offset such as `2021-04-21T11:30:16Z`.
pub const CREATION_TIME_UTC: &str = "iothub-creation-time-utc";

/// The acknowledgement mode the hub adds to C2D deliveries (`none|positive|negative|full`).
pub const IOTHUB_ACK: &str = "iothub-ack";

/// Writes a property bag: system properties, then `iothub-creation-time-utc` and `iothub-ack`,
/// then application properties in the order given.
///
/// Encoding follows the Python SDK (`urlencode(..., quote_via=quote)`): keys and values are
/// percent-encoded keeping only RFC 3986 unreserved characters, so `$.` becomes `%24.` and
/// `/` becomes `%2F`. The Python SDK sorts application properties by key; pass them sorted to
/// reproduce its topics exactly. Absent properties are skipped, never written as nulls.
///
/// ```
/// use iothub_proto::properties::PropertyWriter;
///
/// let app = [("alert", "true")];
/// let bag = PropertyWriter::new()
///     .message_id("mid-1")
///     .correlation_id("cid-1")
///     .content_type("application/json")
///     .content_encoding("utf-8")
///     .application(&app);
/// // docs/protocol.md §4 (Python SDK byte for byte)
/// assert_eq!(
///     bag.to_string(),
///     "%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PropertyWriter<'a> {
    system: [Option<&'a str>; SystemProperty::ALL.len()],
    creation_time_utc: Option<&'a str>,
    ack: Option<&'a str>,
    application: &'a [(&'a str, &'a str)],
}

impl<'a> PropertyWriter<'a> {
    /// An empty bag.
    pub const fn new() -> Self {
        Self {
            system: [None; SystemProperty::ALL.len()],
            creation_time_utc: None,
            ack: None,
            application: &[],
        }
    }

    /// Sets any system property.
    pub const fn system(mut self, property: SystemProperty, value: &'a str) -> Self {
        self.system[property as usize] = Some(value);
        self
    }

    /// Sets `$.mid`.
    pub const fn message_id(self, value: &'a str) -> Self {
        self.system(SystemProperty::MessageId, value)
    }

    /// Sets `$.cid`.
    pub const fn correlation_id(self, value: &'a str) -> Self {
        self.system(SystemProperty::CorrelationId, value)
    }

    /// Sets `$.uid`.
    pub const fn user_id(self, value: &'a str) -> Self {
        self.system(SystemProperty::UserId, value)
    }

    /// Sets `$.ct`.
    pub const fn content_type(self, value: &'a str) -> Self {
        self.system(SystemProperty::ContentType, value)
    }

    /// Sets `$.ce`.
    pub const fn content_encoding(self, value: &'a str) -> Self {
        self.system(SystemProperty::ContentEncoding, value)
    }

    /// Sets `$.sub`, the Plug and Play component name (docs/protocol.md §8: one message per
    /// component).
    pub const fn component_name(self, value: &'a str) -> Self {
        self.system(SystemProperty::ComponentName, value)
    }

    /// Sets `$.exp`, the absolute expiry time (ISO 8601).
    pub const fn expiry_time(self, value: &'a str) -> Self {
        self.system(SystemProperty::ExpiryTime, value)
    }

    /// Sets `$.on`, the module output name.
    pub const fn output_name(self, value: &'a str) -> Self {
        self.system(SystemProperty::OutputName, value)
    }

    /// Sets `iothub-creation-time-utc`, e.g. `2021-04-21T11:30:16Z`.
    pub const fn creation_time_utc(mut self, value: &'a str) -> Self {
        self.creation_time_utc = Some(value);
        self
    }

    /// Sets `iothub-ack` (hub side, on C2D deliveries): `none`, `positive`, `negative` or `full`.
    pub const fn ack(mut self, value: &'a str) -> Self {
        self.ack = Some(value);
        self
    }

    /// Sets the application properties, written in this order after the system properties.
    pub const fn application(mut self, properties: &'a [(&'a str, &'a str)]) -> Self {
        self.application = properties;
        self
    }

    /// Whether nothing would be written.
    ///
    /// ```
    /// use iothub_proto::properties::PropertyWriter;
    ///
    /// assert!(PropertyWriter::new().is_empty());
    /// assert!(!PropertyWriter::new().ack("full").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.system.iter().all(Option::is_none)
            && self.creation_time_utc.is_none()
            && self.ack.is_none()
            && self.application.is_empty()
    }

    /// Writes the bag into `buf` without `core::fmt` and returns its length in bytes (the
    /// same text as [`Display`]).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::properties::PropertyWriter;
    ///
    /// let mut buf = [0u8; 64];
    /// let len = PropertyWriter::new().message_id("mid-1").content_type("application/json").encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"%24.mid=mid-1&%24.ct=application%2Fjson");
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl Display for PropertyWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for PropertyWriter<'_> {
    fn write_to(&self, f: &mut dyn Sink) {
        // Plain loops rather than an iterator chain: this is on every telemetry send and the
        // chain costs several hundred bytes of code on a microcontroller.
        let mut first = true;
        for (property, value) in SystemProperty::ALL.iter().zip(&self.system) {
            if let Some(value) = value {
                write_pair(f, &mut first, property.key(), value);
            }
        }
        if let Some(value) = self.creation_time_utc {
            write_pair(f, &mut first, CREATION_TIME_UTC, value);
        }
        if let Some(value) = self.ack {
            write_pair(f, &mut first, IOTHUB_ACK, value);
        }
        for (key, value) in self.application {
            write_pair(f, &mut first, key, value);
        }
    }
}

/// Writes `key=value` percent-encoded, preceded by `&` unless it is the first pair.
fn write_pair(f: &mut dyn Sink, first: &mut bool, key: &str, value: &str) {
    write_pair_bytes(f, first, key.as_bytes(), value.as_bytes());
}

/// [`write_pair`] over bytes (key and value need not be UTF-8: both are percent-encoded).
pub(crate) fn write_pair_bytes(f: &mut dyn Sink, first: &mut bool, key: &[u8], value: &[u8]) {
    if !core::mem::replace(first, false) {
        f.put("&");
    }
    percent::write_encoded_bytes(f, key);
    f.put("=");
    percent::write_encoded_bytes(f, value)
}

fn is_system_key(key: &Decoded<'_>) -> bool {
    let mut bytes = key.bytes();
    bytes.next() == Some(b'$') && bytes.next() == Some(b'.')
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    fn pairs(raw: &str) -> Vec<(String, Option<String>)> {
        PropertyBag::parse(raw)
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(|v| v.to_string())))
            .collect()
    }

    #[test]
    fn key_without_equals_is_null_and_key_with_equals_is_empty() {
        assert_eq!(
            pairs("?prop1&prop2=&prop3=a%20string"),
            [
                ("prop1".into(), None),
                ("prop2".into(), Some(String::new())),
                ("prop3".into(), Some("a string".into()))
            ]
        );
    }

    #[test]
    fn plus_stays_a_plus() {
        assert_eq!(pairs("a+b=c+d"), [("a+b".into(), Some("c+d".into()))]);
    }

    #[test]
    fn literal_dollar_and_escaped_dollar_prefixes_are_the_same_key() {
        let bag = PropertyBag::parse("$.ct=application/json&%24.ce=utf-8");
        assert!(
            bag.system(SystemProperty::ContentType)
                .is_some_and(|v| v.eq_str("application/json"))
        );
        assert!(
            bag.system(SystemProperty::ContentEncoding)
                .is_some_and(|v| v.eq_str("utf-8"))
        );
        assert_eq!(bag.application().count(), 0);
    }

    #[test]
    fn value_may_contain_equals_signs() {
        assert_eq!(pairs("k=a=b"), [("k".into(), Some("a=b".into()))]);
    }

    #[test]
    fn null_system_property_reads_as_absent() {
        let bag = PropertyBag::parse("%24.mid");
        assert_eq!(bag.get("$.mid"), Some(None));
        assert_eq!(bag.system(SystemProperty::MessageId), None);
    }

    #[test]
    fn writer_writes_nothing_for_an_empty_bag() {
        assert_eq!(PropertyWriter::new().to_string(), "");
    }

    #[test]
    fn writer_escapes_application_keys_and_values() {
        let app = [("a b", "x&y=z"), ("k", "")];
        assert_eq!(
            PropertyWriter::new().application(&app).to_string(),
            "a%20b=x%26y%3Dz&k="
        );
    }

    #[test]
    fn writer_puts_creation_time_and_ack_between_system_and_application() {
        let app = [("z", "1")];
        let bag = PropertyWriter::new()
            .application(&app)
            .ack("full")
            .creation_time_utc("2021-04-21T11:30:16Z")
            .expiry_time("2030-01-01T00:00:00")
            .component_name("thermostat1")
            .message_id("m");
        assert_eq!(
            bag.to_string(),
            "%24.mid=m&%24.sub=thermostat1&%24.exp=2030-01-01T00%3A00%3A00&\
             iothub-creation-time-utc=2021-04-21T11%3A30%3A16Z&iothub-ack=full&z=1"
        );
    }

    proptest::proptest! {
        #[test]
        fn written_bags_parse_back(
            mid in proptest::option::of("\\PC*"),
            ct in proptest::option::of("\\PC*"),
            app in proptest::collection::vec(("[^$]\\PC*", "\\PC*"), 0..4),
        ) {
            let app: Vec<(&str, &str)> = app.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut writer = PropertyWriter::new().application(&app);
            if let Some(mid) = &mid { writer = writer.message_id(mid); }
            if let Some(ct) = &ct { writer = writer.content_type(ct); }
            let text = writer.to_string();
            let bag = PropertyBag::parse(&text);
            proptest::prop_assert_eq!(bag.system(SystemProperty::MessageId).map(|v| v.to_string()), mid.clone());
            proptest::prop_assert_eq!(bag.system(SystemProperty::ContentType).map(|v| v.to_string()), ct.clone());
            let read: Vec<(String, Option<String>)> =
                bag.application().map(|(k, v)| (k.to_string(), v.map(|v| v.to_string()))).collect();
            let expected: Vec<(String, Option<String>)> =
                app.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
            proptest::prop_assert_eq!(read, expected);
        }
    }
}
