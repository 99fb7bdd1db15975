//! Borrowed extraction of the few JSON fields the protocol needs, without a DOM
//! (feature `json`, built on `serde-json-core`).
//!
//! - a desired patch's `$version` and a twin GET body's `desired.$version` /
//!   `reported.$version` (PROTOCOL.md §6: ignore patches not newer than the GET);
//! - a DPS response's `operationId`, `status`, `registrationState.{assignedHub, deviceId,
//!   substatus, errorCode, errorMessage}` and a DPS error body's `errorCode` / `message` (§9).
//!
//! Strings are returned as [`JsonText`], the text between the quotes exactly as received;
//! unescape it on demand with [`JsonText::unescape_into`]. Unknown fields are skipped.

use core::fmt::{self, Display, Write};

use serde::Deserialize;
use serde_json_core::str::{EscapedStr, EscapedStringFragment};

use crate::error::BufferTooSmall;

/// Why a JSON payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonError {
    /// The unescaped text does not fit the buffer.
    BufferTooSmall(BufferTooSmall),
    /// A string holds an invalid escape sequence.
    InvalidEscape,
    /// The payload is not JSON of the expected shape (syntax, types or nesting).
    Invalid,
}

impl Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall(e) => e.fmt(f),
            Self::InvalidEscape => f.write_str("invalid escape sequence in json string"),
            Self::Invalid => f.write_str("invalid json payload"),
        }
    }
}

impl core::error::Error for JsonError {}

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
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub struct JsonText<'a>(#[serde(borrow)] EscapedStrWrapper<'a>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(transparent)]
struct EscapedStrWrapper<'a>(#[serde(borrow)] &'a str);

impl<'a> JsonText<'a> {
    /// Wraps raw (still escaped) string content.
    pub const fn new(raw: &'a str) -> Self {
        Self(EscapedStrWrapper(raw))
    }

    /// The content exactly as received.
    pub const fn raw(&self) -> &'a str {
        self.0.0
    }

    /// Unescapes into `buf`.
    ///
    /// # Errors
    ///
    /// [`JsonError::BufferTooSmall`] or [`JsonError::InvalidEscape`].
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, JsonError> {
        let mut len = 0;
        let mut overflow = false;
        self.for_each_fragment(|piece| {
            if let Some(dst) = buf.get_mut(len..len + piece.len()) {
                dst.copy_from_slice(piece.as_bytes());
            } else {
                overflow = true;
            }
            len += piece.len();
        })?;
        if overflow {
            return Err(JsonError::BufferTooSmall(BufferTooSmall { required: len }));
        }
        // invariant: only whole `&str` pieces were copied, so the prefix is UTF-8.
        core::str::from_utf8(&buf[..len]).map_err(|_| JsonError::InvalidEscape)
    }

    /// Compares the unescaped text with `other` without storing it.
    pub fn eq_str(&self, other: &str) -> bool {
        let mut rest = other;
        let mut equal = true;
        let walked = self.for_each_fragment(|piece| match rest.strip_prefix(piece) {
            Some(tail) if equal => rest = tail,
            _ => equal = false,
        });
        walked.is_ok() && equal && rest.is_empty()
    }

    fn for_each_fragment(&self, mut piece: impl FnMut(&str)) -> Result<(), JsonError> {
        for fragment in EscapedStr(self.raw()).fragments() {
            match fragment.map_err(|_| JsonError::InvalidEscape)? {
                EscapedStringFragment::NotEscaped(text) => piece(text),
                EscapedStringFragment::Escaped(c) => piece(c.encode_utf8(&mut [0u8; 4])),
            }
        }
        Ok(())
    }
}

/// Writes the unescaped text; an invalid escape is written as U+FFFD.
impl Display for JsonText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fragment in EscapedStr(self.raw()).fragments() {
            match fragment {
                Ok(EscapedStringFragment::NotEscaped(text)) => f.write_str(text)?,
                Ok(EscapedStringFragment::Escaped(c)) => f.write_char(c)?,
                Err(_) => return f.write_char(char::REPLACEMENT_CHARACTER),
            }
        }
        Ok(())
    }
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
    Ok(parse::<Versioned>(patch)?.version)
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
/// // PROTOCOL.md §6, real trace
/// let body = br#"{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}"#;
/// assert_eq!(twin_versions(body), Ok((Some(1), Some(2))));
/// ```
pub fn twin_versions(twin: &[u8]) -> Result<(Option<u64>, Option<u64>), JsonError> {
    let twin = parse::<TwinBody>(twin)?;
    Ok((
        twin.desired.and_then(|d| d.version),
        twin.reported.and_then(|r| r.version),
    ))
}

/// The fields of a DPS response body the device needs (PROTOCOL.md §9).
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
        let raw = parse::<RawDpsBody<'a>>(body)?;
        let state = raw.registration_state.unwrap_or_default();
        Ok(Self {
            operation_id: raw.operation_id,
            status: raw
                .status
                .or(state.status)
                .map(|s| RegistrationStatus::from_json(&s)),
            assigned_hub: state.assigned_hub,
            device_id: state.device_id,
            substatus: state.substatus,
            error_code: raw.error_code.or(state.error_code),
            message: raw.message.or(state.error_message),
        })
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

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, JsonError> {
    serde_json_core::from_slice(body)
        .map(|(value, _)| value)
        .map_err(|_| JsonError::Invalid)
}

#[derive(Deserialize)]
struct Versioned {
    #[serde(rename = "$version")]
    version: Option<u64>,
}

#[derive(Deserialize)]
struct TwinBody {
    desired: Option<Versioned>,
    reported: Option<Versioned>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDpsBody<'a> {
    #[serde(borrow)]
    operation_id: Option<JsonText<'a>>,
    #[serde(borrow)]
    status: Option<JsonText<'a>>,
    #[serde(borrow)]
    registration_state: Option<RawRegistrationState<'a>>,
    error_code: Option<u32>,
    #[serde(borrow)]
    message: Option<JsonText<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRegistrationState<'a> {
    #[serde(borrow)]
    assigned_hub: Option<JsonText<'a>>,
    #[serde(borrow)]
    device_id: Option<JsonText<'a>>,
    #[serde(borrow)]
    status: Option<JsonText<'a>>,
    #[serde(borrow)]
    substatus: Option<JsonText<'a>>,
    error_code: Option<u32>,
    #[serde(borrow)]
    error_message: Option<JsonText<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md §9, final `RegistrationOperationStatus`.
    const ASSIGNED: &[u8] = br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b-0000","status":"assigned","registrationState":{"x509":{},"registrationId":"paho-sample-device1",
 "createdDateTimeUtc":"2020-04-10T03:11:13.0276997Z","assignedHub":"contoso.azure-devices.net",
 "deviceId":"paho-sample-device1","status":"assigned","substatus":"initialAssignment",
 "lastUpdatedDateTimeUtc":"2020-04-10T03:11:13.2096201Z","etag":"IjYx"}}"#;

    #[test]
    fn reads_the_assigned_registration() {
        let body = DpsBody::parse(ASSIGNED).unwrap();
        assert_eq!(body.status, Some(RegistrationStatus::Assigned));
        assert!(
            body.assigned_hub
                .unwrap()
                .eq_str("contoso.azure-devices.net")
        );
        assert!(body.device_id.unwrap().eq_str("paho-sample-device1"));
        assert!(body.substatus.unwrap().eq_str("initialAssignment"));
        assert_eq!(body.error_code, None);
    }

    #[test]
    fn reads_the_error_body() {
        let body =
            br#"{"errorCode":401002,"trackingId":"t","message":"Invalid certificate.","timestampUtc":"2020-04-10"}"#;
        let body = DpsBody::parse(body).unwrap();
        assert_eq!(body.error_code, Some(401002));
        assert!(body.message.unwrap().eq_str("Invalid certificate."));
        assert_eq!(body.status, None);
    }

    #[test]
    fn reads_a_failed_registration_state() {
        let body = br#"{"operationId":"o","status":"failed","registrationState":{"registrationId":"r","status":"failed","errorCode":400209,"errorMessage":"Custom allocation failed with status code: 400"}}"#;
        let body = DpsBody::parse(body).unwrap();
        assert_eq!(body.status, Some(RegistrationStatus::Failed));
        assert_eq!(body.error_code, Some(400209));
        assert!(
            body.message
                .unwrap()
                .eq_str("Custom allocation failed with status code: 400")
        );
    }

    #[test]
    fn escaped_strings_stay_raw_until_unescaped() {
        let body = DpsBody::parse(br#"{"message":"a \"quoted\" \u00e9"}"#).unwrap();
        let message = body.message.unwrap();
        assert_eq!(message.raw(), r#"a \"quoted\" \u00e9"#);
        assert!(message.eq_str("a \"quoted\" é"));
        assert!(!message.eq_str("a \"quoted\" "));
        let mut small = [0u8; 4];
        assert_eq!(
            message.unescape_into(&mut small),
            Err(JsonError::BufferTooSmall(BufferTooSmall { required: 13 }))
        );
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert_eq!(DpsBody::parse(b"[1,2]"), Err(JsonError::Invalid));
        assert_eq!(
            desired_version(b"{\"$version\":\"3\"}"),
            Err(JsonError::Invalid)
        );
        assert_eq!(twin_versions(b"{"), Err(JsonError::Invalid));
    }

    #[test]
    fn unknown_status_values_are_kept_as_unknown() {
        let body = DpsBody::parse(br#"{"status":"migrating"}"#).unwrap();
        assert_eq!(body.status, Some(RegistrationStatus::Unknown));
    }
}
