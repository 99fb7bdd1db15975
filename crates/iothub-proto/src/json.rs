//! Borrowed, allocation-free reading of JSON payloads (feature `json`): a small validating
//! scanner ([`JsonValue`]) and the few fields the protocol needs, without a DOM.
//!
//! - a desired patch's `$version` and a twin GET body's `desired.$version` /
//!   `reported.$version` (docs/protocol.md §6: ignore patches not newer than the GET);
//! - a DPS response's `operationId`, `status`, `registrationState.{assignedHub, deviceId,
//!   substatus, errorCode, errorMessage}` and a DPS error body's `errorCode` / `message` (§9).
//!
//! Every payload is validated as a whole (RFC 8259 syntax, UTF-8, at most [`MAX_DEPTH`]
//! levels of nesting) before anything is read from it; malformed input is a [`JsonError`],
//! never a panic. Strings are returned as [`JsonText`], the text between the quotes exactly as
//! received; unescape it on demand with [`JsonText::unescape_into`]. Unknown members are
//! skipped.

use core::fmt::{self, Display, Write};

use crate::error::BufferTooSmall;

#[cfg(test)]
mod proptests;
mod scan;

pub use scan::MAX_DEPTH;

/// Why a JSON payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonError {
    /// The unescaped text does not fit the buffer.
    BufferTooSmall(BufferTooSmall),
    /// A string holds an invalid escape sequence.
    InvalidEscape,
    /// The payload is not JSON of the expected shape (syntax, UTF-8, types, or a member
    /// the protocol reads appearing twice).
    Invalid,
    /// Objects and arrays are nested deeper than [`MAX_DEPTH`] levels.
    TooDeep,
}

impl Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall(e) => Display::fmt(e, f),
            Self::InvalidEscape => f.write_str("invalid escape sequence in json string"),
            Self::Invalid => f.write_str("invalid json payload"),
            Self::TooDeep => f.write_str("json payload nested too deeply"),
        }
    }
}

impl core::error::Error for JsonError {}

/// One validated JSON value, borrowed from the payload: its raw text, and ways to look inside.
///
/// [`JsonValue::parse`] checks the whole payload first, so looking members up afterwards
/// cannot fail on syntax; a lookup that does not apply (a key in an array, a number read as
/// text) is simply `None`.
///
/// ```
/// use iothub_proto::json::{JsonKind, JsonValue};
///
/// // a desired-properties patch (docs/protocol.md §6, §8)
/// let patch = JsonValue::parse(br#"{"thermostat1":{"__t":"c","targetTemperature":23.5},"$version":7}"#)?;
/// assert_eq!(patch.get("$version").and_then(|v| v.as_u64()), Some(7));
/// let target = patch.path(&["thermostat1", "targetTemperature"]).unwrap();
/// assert_eq!((target.kind(), target.raw()), (JsonKind::Number, "23.5"));
/// assert!(patch.path(&["thermostat1", "__t"]).and_then(|v| v.as_text()).is_some_and(|t| t.eq_str("c")));
/// assert_eq!(patch.members().count(), 2);
/// assert_eq!(JsonValue::parse(b"{\"a\":1,}").unwrap_err(), iothub_proto::json::JsonError::Invalid);
/// # Ok::<(), iothub_proto::json::JsonError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonValue<'a> {
    /// Always one complete, validated value without surrounding whitespace.
    raw: &'a str,
}

/// What kind of value a [`JsonValue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonKind {
    /// `{…}`
    Object,
    /// `[…]`
    Array,
    /// `"…"`
    String,
    /// A number such as `-1.5e3`.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl<'a> JsonValue<'a> {
    /// Validates a whole payload (one value, optionally surrounded by whitespace) and returns
    /// its value.
    ///
    /// # Errors
    ///
    /// [`JsonError::Invalid`] for anything that is not one well-formed UTF-8 JSON value, and
    /// [`JsonError::TooDeep`] past [`MAX_DEPTH`] levels of nesting.
    pub fn parse(json: &'a [u8]) -> Result<Self, JsonError> {
        let text = crate::text::utf8(json).ok_or(JsonError::Invalid)?;
        let start = scan::skip_whitespace(json, 0);
        let end = scan::value_end(json, start)?;
        if scan::skip_whitespace(json, end) != json.len() {
            return Err(JsonError::Invalid);
        }
        // invariant: the scanner cuts only next to ASCII delimiters, i.e. at char boundaries.
        let raw = text.get(start..end).ok_or(JsonError::Invalid)?;
        Ok(Self { raw })
    }

    /// The value's text exactly as received (for a string, quotes and escapes included).
    pub const fn raw(&self) -> &'a str {
        self.raw
    }

    /// The kind of value, from its first character.
    pub fn kind(&self) -> JsonKind {
        match self.raw.as_bytes().first() {
            Some(b'{') => JsonKind::Object,
            Some(b'[') => JsonKind::Array,
            Some(b'"') => JsonKind::String,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'n') => JsonKind::Null,
            _ => JsonKind::Number,
        }
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.kind() == JsonKind::Null
    }

    /// The members of an object in order, keys still escaped; nothing for other kinds.
    pub fn members(&self) -> Members<'a> {
        let rest = match self.kind() {
            JsonKind::Object => self.raw.get(1..).unwrap_or_default(),
            _ => "",
        };
        Members { rest }
    }

    /// The first member of an object whose (unescaped) key is `key`.
    pub fn get(&self, key: &str) -> Option<JsonValue<'a>> {
        self.members()
            .find(|(name, _)| name.eq_str(key))
            .map(|(_, value)| value)
    }

    /// Follows `keys` through nested objects, e.g. `&["registrationState", "assignedHub"]`.
    pub fn path(&self, keys: &[&str]) -> Option<JsonValue<'a>> {
        keys.iter().try_fold(*self, |value, key| value.get(key))
    }

    /// The content of a string, escapes intact; `None` for other kinds.
    pub fn as_text(&self) -> Option<JsonText<'a>> {
        self.raw
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(JsonText::new)
    }

    /// A non-negative integer without fraction or exponent that fits `u64`; `None` otherwise.
    pub fn as_u64(&self) -> Option<u64> {
        if self.kind() != JsonKind::Number {
            return None;
        }
        self.raw.bytes().try_fold(0u64, |n, b| {
            let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
    }

    /// `true` or `false`; `None` for other kinds.
    pub fn as_bool(&self) -> Option<bool> {
        match self.raw {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

/// The members of a JSON object, from [`JsonValue::members`]: `(key, value)` pairs.
#[derive(Debug, Clone)]
pub struct Members<'a> {
    /// The object's text after `{` or after the previous member.
    rest: &'a str,
}

impl<'a> Iterator for Members<'a> {
    type Item = (JsonText<'a>, JsonValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let member = next_member(self.rest);
        match member {
            Some((key, value, rest)) => {
                self.rest = rest;
                Some((key, value))
            }
            None => {
                self.rest = "";
                None
            }
        }
    }
}

/// Reads `[,] "key" : value` from the text of a validated object.
fn next_member(rest: &str) -> Option<(JsonText<'_>, JsonValue<'_>, &str)> {
    let bytes = rest.as_bytes();
    let mut at = scan::skip_whitespace(bytes, 0);
    if bytes.get(at) == Some(&b',') {
        at = scan::skip_whitespace(bytes, at + 1);
    }
    if bytes.get(at) != Some(&b'"') {
        return None; // `}`: the object is over
    }
    let key_end = scan::string_end(bytes, at).ok()?;
    let key = rest.get(at + 1..key_end - 1)?;
    let colon = scan::skip_whitespace(bytes, key_end);
    let start = scan::skip_whitespace(bytes, colon + 1);
    let end = scan::value_end(bytes, start).ok()?;
    let value = JsonValue {
        raw: rest.get(start..end)?,
    };
    Some((JsonText::new(key), value, rest.get(end..)?))
}

/// Calls `found(i, value)` for each member of `object` whose (unescaped) key is `names[i]`.
///
/// One walk, no intermediate storage: callers store what they need as it comes.
///
/// # Errors
///
/// [`JsonError::Invalid`] when `object` is not an object or a wanted member appears twice
/// (as serde's derived deserializers, which this replaces, refused duplicate fields), and
/// whatever `found` returns.
fn visit<'a>(
    object: JsonValue<'a>,
    names: &[&str],
    found: &mut dyn FnMut(usize, JsonValue<'a>) -> Result<(), JsonError>,
) -> Result<(), JsonError> {
    if object.kind() != JsonKind::Object {
        return Err(JsonError::Invalid);
    }
    let mut seen = 0u32;
    for (key, value) in object.members() {
        if let Some(i) = names.iter().position(|name| key.eq_str(name)) {
            let bit = 1 << i;
            if seen & bit != 0 {
                return Err(JsonError::Invalid);
            }
            seen |= bit;
            found(i, value)?;
        }
    }
    Ok(())
}

/// An optional member's value: `null` reads as `None`, another kind than `T` is invalid.
fn optional<'a, T>(
    value: JsonValue<'a>,
    read: impl FnOnce(&JsonValue<'a>) -> Option<T>,
) -> Result<Option<T>, JsonError> {
    if value.is_null() {
        return Ok(None);
    }
    read(&value).map(Some).ok_or(JsonError::Invalid)
}

/// An optional string member.
fn text(value: JsonValue<'_>) -> Result<Option<JsonText<'_>>, JsonError> {
    optional(value, JsonValue::as_text)
}

/// An optional non-negative integer member that fits `u64`.
fn integer(value: JsonValue<'_>) -> Result<Option<u64>, JsonError> {
    optional(value, JsonValue::as_u64)
}

/// An optional `errorCode`, which must fit `u32`.
fn code_u32(value: JsonValue<'_>) -> Result<Option<u32>, JsonError> {
    optional(value, |v| {
        v.as_u64().and_then(|code| u32::try_from(code).ok())
    })
}

/// The `$version` of an optional object member.
fn version_of(value: JsonValue<'_>) -> Result<Option<u64>, JsonError> {
    let mut version = None;
    if !value.is_null() {
        visit(value, &["$version"], &mut |_, v| {
            version = integer(v)?;
            Ok(())
        })?;
    }
    Ok(version)
}

/// A JSON string's content as received, escapes intact.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use iothub_proto::json::JsonText;
///
/// let text = JsonText::new(r#"say \"hi\"\n"#);
/// let mut buf = [0u8; 16];
/// assert_eq!(text.unescape_into(&mut buf), Ok("say \"hi\"\n"));
/// assert!(text.eq_str("say \"hi\"\n"));
/// assert_eq!(JsonText::new("plain").to_string(), "plain");
/// // a UTF-16 surrogate pair is one character
/// assert!(JsonText::new(r"\ud83d\ude00").eq_str("😀"));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct JsonText<'a>(&'a str);

impl<'a> JsonText<'a> {
    /// Wraps raw (still escaped) string content.
    pub const fn new(raw: &'a str) -> Self {
        Self(raw)
    }

    /// The content exactly as received.
    pub const fn raw(&self) -> &'a str {
        self.0
    }

    /// Unescapes into `buf`.
    ///
    /// # Errors
    ///
    /// [`JsonError::BufferTooSmall`] or [`JsonError::InvalidEscape`].
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, JsonError> {
        let mut len = 0;
        let mut overflow = false;
        for fragment in self.fragments() {
            let mut char_buf = [0u8; 4];
            let piece = fragment?.as_str(&mut char_buf);
            if let Some(dst) = buf.get_mut(len..len + piece.len()) {
                dst.copy_from_slice(piece.as_bytes());
            } else {
                overflow = true;
            }
            len += piece.len();
        }
        if overflow {
            return Err(JsonError::BufferTooSmall(BufferTooSmall { required: len }));
        }
        // invariant: only whole `&str` pieces were copied, so the prefix is UTF-8.
        crate::text::utf8(buf.get(..len).unwrap_or_default()).ok_or(JsonError::InvalidEscape)
    }

    /// Compares the unescaped text with `other` without storing it.
    pub fn eq_str(&self, other: &str) -> bool {
        let mut rest = other;
        for fragment in self.fragments() {
            let mut char_buf = [0u8; 4];
            let Ok(fragment) = fragment else {
                return false;
            };
            match rest.strip_prefix(fragment.as_str(&mut char_buf)) {
                Some(tail) => rest = tail,
                None => return false,
            }
        }
        rest.is_empty()
    }

    fn fragments(&self) -> Fragments<'a> {
        Fragments { rest: self.0 }
    }
}

/// Writes the unescaped text; an invalid escape is written as U+FFFD and ends the text.
impl Display for JsonText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fragment in self.fragments() {
            match fragment {
                Ok(Fragment::Text(text)) => f.write_str(text)?,
                Ok(Fragment::Char(c)) => f.write_char(c)?,
                Err(_) => return f.write_char(char::REPLACEMENT_CHARACTER),
            }
        }
        Ok(())
    }
}

/// A run of unescaped text, or one escaped character.
enum Fragment<'a> {
    Text(&'a str),
    Char(char),
}

impl<'a> Fragment<'a> {
    fn as_str<'s>(&self, buf: &'s mut [u8; 4]) -> &'s str
    where
        'a: 's,
    {
        match self {
            Self::Text(text) => text,
            Self::Char(c) => c.encode_utf8(buf),
        }
    }
}

/// Splits escaped string content into fragments; an invalid escape ends it with an error.
struct Fragments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Fragments<'a> {
    type Item = Result<Fragment<'a>, JsonError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        let plain = rest.bytes().position(|b| b == b'\\').unwrap_or(rest.len());
        if plain > 0 {
            let (text, tail) = rest.split_at_checked(plain)?;
            self.rest = tail;
            return Some(Ok(Fragment::Text(text)));
        }
        Some(match unescape(rest) {
            Some((c, tail)) => {
                self.rest = tail;
                Ok(Fragment::Char(c))
            }
            None => {
                self.rest = "";
                Err(JsonError::InvalidEscape)
            }
        })
    }
}

/// Decodes the escape at the start of `text` (which starts with `\`), RFC 8259 §7, including
/// UTF-16 surrogate pairs; returns the character and the text after the escape.
fn unescape(text: &str) -> Option<(char, &str)> {
    let bytes = text.as_bytes();
    let (c, len) = match *bytes.get(1)? {
        b'"' => ('"', 2),
        b'\\' => ('\\', 2),
        b'/' => ('/', 2),
        b'b' => ('\u{8}', 2),
        b'f' => ('\u{c}', 2),
        b'n' => ('\n', 2),
        b'r' => ('\r', 2),
        b't' => ('\t', 2),
        b'u' => {
            let high = hex4(bytes.get(2..6)?)?;
            if (0xD800..0xDC00).contains(&high) {
                if bytes.get(6..8)? != b"\\u" {
                    return None;
                }
                let low = hex4(bytes.get(8..12)?)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                (char::from_u32(code)?, 12)
            } else {
                // a lone low surrogate is not a character: `from_u32` refuses it
                (char::from_u32(high)?, 6)
            }
        }
        _ => return None,
    };
    Some((c, text.get(len..)?))
}

/// Four hexadecimal digits (either case).
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &d| {
        let value = char::from(d).to_digit(16)?;
        Some(n << 4 | value)
    })
}

/// The top-level `$version` of a desired-properties patch body.
///
/// # Errors
///
/// [`JsonError::Invalid`] when the body is not a JSON object or `$version` is not an integer.
///
/// ```
/// use iothub_proto::json::desired_version;
///
/// assert_eq!(desired_version(br#"{"targetTemperature":23,"$version":3}"#), Ok(Some(3)));
/// assert_eq!(desired_version(br#"{"a":{"b":[1,{"c":null}]}}"#), Ok(None));
/// ```
pub fn desired_version(patch: &[u8]) -> Result<Option<u64>, JsonError> {
    let patch = JsonValue::parse(patch)?;
    if patch.kind() != JsonKind::Object {
        return Err(JsonError::Invalid);
    }
    version_of(patch)
}

/// The `desired.$version` and `reported.$version` of a twin GET body
/// `{"desired":{…,"$version":N},"reported":{…,"$version":M}}`.
///
/// # Errors
///
/// [`JsonError::Invalid`] when the body does not have that shape.
///
/// ```
/// use iothub_proto::json::twin_versions;
///
/// // docs/protocol.md §6, real trace
/// let body = br#"{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}"#;
/// assert_eq!(twin_versions(body), Ok((Some(1), Some(2))));
/// ```
pub fn twin_versions(twin: &[u8]) -> Result<(Option<u64>, Option<u64>), JsonError> {
    let mut versions = (None, None);
    visit(
        JsonValue::parse(twin)?,
        &["desired", "reported"],
        &mut |i, side| {
            let version = version_of(side)?;
            match i {
                0 => versions.0 = version,
                _ => versions.1 = version,
            }
            Ok(())
        },
    )?;
    Ok(versions)
}

/// The fields of a DPS response body the device needs (docs/protocol.md §9).
///
/// ```
/// use iothub_proto::json::{DpsBody, RegistrationStatus};
///
/// let body = br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b","status":"assigning"}"#;
/// let body = DpsBody::parse(body)?;
/// assert!(body.operation_id.is_some_and(|id| id.eq_str("4.d0a671905ea5b2c8.e7173b7b")));
/// assert_eq!(body.status, Some(RegistrationStatus::Assigning));
/// # Ok::<(), iothub_proto::json::JsonError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DpsBody<'a> {
    /// `operationId`: what to poll with.
    pub operation_id: Option<JsonText<'a>>,
    /// `status` (top level, else `registrationState.status`).
    pub status: Option<RegistrationStatus>,
    /// `registrationState.assignedHub`.
    pub assigned_hub: Option<JsonText<'a>>,
    /// `registrationState.deviceId`.
    pub device_id: Option<JsonText<'a>>,
    /// `registrationState.substatus`, e.g. `initialAssignment`.
    pub substatus: Option<JsonText<'a>>,
    /// `errorCode` (error bodies) or `registrationState.errorCode`.
    pub error_code: Option<u32>,
    /// `message` (error bodies) or `registrationState.errorMessage`.
    pub message: Option<JsonText<'a>>,
}

impl<'a> DpsBody<'a> {
    /// Reads a DPS response body. An empty body reads as all fields absent.
    ///
    /// # Errors
    ///
    /// [`JsonError::Invalid`] when the body is not a JSON object of the documented shape.
    pub fn parse(body: &'a [u8]) -> Result<Self, JsonError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let mut out = Self::default();
        let (mut status, mut code, mut state) = (None, None, None);
        let top = JsonValue::parse(body)?;
        let names = [
            "operationId",
            "status",
            "registrationState",
            "errorCode",
            "message",
        ];
        visit(top, &names, &mut |i, value| {
            match i {
                0 => out.operation_id = text(value)?,
                1 => status = text(value)?,
                2 => state = optional(value, |v| Some(*v))?,
                3 => code = code_u32(value)?,
                _ => out.message = text(value)?,
            }
            Ok(())
        })?;
        let (mut state_status, mut state_code, mut state_message) = (None, None, None);
        if let Some(state) = state {
            let names = [
                "assignedHub",
                "deviceId",
                "status",
                "substatus",
                "errorCode",
                "errorMessage",
            ];
            visit(state, &names, &mut |i, value| {
                match i {
                    0 => out.assigned_hub = text(value)?,
                    1 => out.device_id = text(value)?,
                    2 => state_status = text(value)?,
                    3 => out.substatus = text(value)?,
                    4 => state_code = code_u32(value)?,
                    _ => state_message = text(value)?,
                }
                Ok(())
            })?;
        }
        out.status = status
            .or(state_status)
            .map(|s| RegistrationStatus::from_json(&s));
        out.error_code = code.or(state_code);
        out.message = out.message.or(state_message);
        Ok(out)
    }
}

/// A DPS registration `status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegistrationStatus {
    /// `assigned`: done, connect to the assigned hub.
    Assigned,
    /// `assigning`: in progress, poll again.
    Assigning,
    /// `disabled`: the enrollment is disabled.
    Disabled,
    /// `failed`: see the error code and message.
    Failed,
    /// `unassigned`: not yet started.
    Unassigned,
    /// Any other value.
    Unknown,
}

impl RegistrationStatus {
    fn from_json(text: &JsonText<'_>) -> Self {
        [
            ("assigned", Self::Assigned),
            ("assigning", Self::Assigning),
            ("disabled", Self::Disabled),
            ("failed", Self::Failed),
            ("unassigned", Self::Unassigned),
        ]
        .into_iter()
        .find(|(name, _)| text.eq_str(name))
        .map_or(Self::Unknown, |(_, status)| status)
    }
}

#[cfg(test)]
mod tests;
