//! Byte-level encoders, for callers that hold bytes rather than `&str` (the C API in
//! `crates/iothub-c`, where text arrives as pointer and length).
//!
//! The caller's text is taken as `&[u8]` and **need not be UTF-8**: device and module ids,
//! property names and values, SAS resources and policies are percent-encoded byte by byte
//! (RFC 3986 unreserved characters as they are, every other byte as `%XX`, docs/protocol.md
//! §2.1, §4), so what these functions make of the caller's text is always ASCII and can never
//! break the topic or token grammar (`/`, `&`, `=`, `?` are escaped like any other byte). They
//! validate nothing else: IoT Hub validates what it receives, as it does for azure-sdk-for-c,
//! which does not check UTF-8 either.
//!
//! The `&str` encoders of the crate ([`TelemetryTopic`](crate::topic::TelemetryTopic),
//! [`PropertyWriter`](crate::properties::PropertyWriter), [`SasToken`](crate::sas::SasToken))
//! run the same percent-encoding, address and pair code, so for UTF-8 input both produce the
//! same bytes (tested below), and a Rust caller using `&str` does not link this module.
//!
//! Every function writes into `buf` and returns the length written, or [`BufferTooSmall`] with
//! the whole length needed; past the end it only counts, so nothing beyond `buf` is touched.
//!
//! ```
//! use iothub_proto::bytes;
//!
//! let mut bag = [0u8; 64];
//! let mut len = bytes::append_property(&mut bag, 0, b"$.mid", b"mid-1")?;
//! len = bytes::append_property(&mut bag, len, b"unit", b"\xb0C")?; // not UTF-8: escaped
//! assert_eq!(&bag[..len], b"%24.mid=mid-1&unit=%B0C");
//!
//! let mut topic = [0u8; 128];
//! let len = bytes::telemetry_topic(b"dev3", None, &bag[..len], &mut topic)?;
//! assert_eq!(&topic[..len], b"devices/dev3/messages/events/%24.mid=mid-1&unit=%B0C");
//! # Ok::<(), iothub_proto::BufferTooSmall>(())
//! ```

use crate::encode::{ByteSink, Sink};
use crate::error::BufferTooSmall;
use crate::sas::Signature;

/// Writes the telemetry topic `devices/{d}[/modules/{m}]/messages/events/{properties}` into
/// `buf` (docs/protocol.md §4): the ids percent-encoded, then `properties` copied as they
/// are, which is a property bag already encoded, for example by [`append_property`].
///
/// The same text as [`TelemetryTopic`](crate::topic::TelemetryTopic) with a
/// [`PropertyWriter`](crate::properties::PropertyWriter) holding the same pairs.
///
/// # Errors
///
/// [`BufferTooSmall`] with the whole length needed.
///
/// ```
/// use iothub_proto::bytes;
///
/// let mut buf = [0u8; 64];
/// let len = bytes::telemetry_topic(b"d 1", Some(b"m"), b"", &mut buf)?;
/// assert_eq!(&buf[..len], b"devices/d%201/modules/m/messages/events/");
/// # Ok::<(), iothub_proto::BufferTooSmall>(())
/// ```
pub fn telemetry_topic(
    device_id: &[u8],
    module_id: Option<&[u8]>,
    properties: &[u8],
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut sink = ByteSink { buf, len: 0 };
    crate::topic::write_address_bytes(&mut sink, device_id, module_id);
    sink.put("messages/events/");
    sink.put_bytes(properties);
    sink.finish()
}

/// Writes the device's (or module's) C2D subscribe filter
/// `devices/{d}[/modules/{m}]/messages/devicebound/#` into `buf`, the ids percent-encoded:
/// the same text as [`C2dFilter`](crate::topic::C2dFilter).
///
/// # Errors
///
/// [`BufferTooSmall`] with the whole length needed.
///
/// ```
/// use iothub_proto::bytes;
///
/// let mut buf = [0u8; 64];
/// let len = bytes::c2d_subscribe_filter(b"dev3", None, &mut buf)?;
/// assert_eq!(&buf[..len], b"devices/dev3/messages/devicebound/#");
/// # Ok::<(), iothub_proto::BufferTooSmall>(())
/// ```
pub fn c2d_subscribe_filter(
    device_id: &[u8],
    module_id: Option<&[u8]>,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut sink = ByteSink { buf, len: 0 };
    crate::topic::write_address_bytes(&mut sink, device_id, module_id);
    sink.put("messages/devicebound/#");
    sink.finish()
}

/// Appends one property `name=value` (percent-encoded, preceded by `&` unless `len` is 0) to
/// the property bag held in `bag[..len]`, and returns the bag's new length. On error nothing
/// in `bag[..len]` has changed, so the bag is still whole.
///
/// System properties are named by their decoded keys (`$.mid`, `$.ct`, …, see
/// [`SystemProperty::key`](crate::properties::SystemProperty::key)); `$` is written `%24`,
/// as [`PropertyWriter`](crate::properties::PropertyWriter) writes it.
///
/// # Errors
///
/// [`BufferTooSmall`] with the whole length the bag needs after this pair.
///
/// ```
/// use iothub_proto::bytes;
///
/// let mut bag = [0u8; 12];
/// let len = bytes::append_property(&mut bag, 0, b"a b", b"x&y")?;
/// assert_eq!(&bag[..len], b"a%20b=x%26y");
/// assert_eq!(
///     bytes::append_property(&mut bag, len, b"k", b"v"),
///     Err(iothub_proto::BufferTooSmall { required: 15 })
/// );
/// # Ok::<(), iothub_proto::BufferTooSmall>(())
/// ```
pub fn append_property(
    bag: &mut [u8],
    len: usize,
    name: &[u8],
    value: &[u8],
) -> Result<usize, BufferTooSmall> {
    let mut sink = ByteSink { buf: bag, len };
    crate::properties::write_pair_bytes(&mut sink, &mut (len == 0), name, value);
    sink.finish()
}

/// Writes the SAS string-to-sign `{resource}\n{expiry}` (docs/protocol.md §2.1), the
/// resource given as its segments (`[host, b"devices", device_id]`, with
/// `b"modules", module_id` after that for a module, or
/// `[id_scope, b"registrations", registration_id]` for DPS): each segment percent-encoded,
/// joined by `%2F`.
///
/// The same text as [`StringToSign`](crate::sas::StringToSign) over the matching
/// [`ResourceUri`](crate::sas::ResourceUri).
///
/// # Errors
///
/// [`BufferTooSmall`] with the whole length needed.
///
/// ```
/// use iothub_proto::bytes;
///
/// let mut buf = [0u8; 64];
/// let len = bytes::string_to_sign(&[b"myiothub.azure-devices.net", b"devices", b"my_device"], 1578941692, &mut buf)?;
/// assert_eq!(&buf[..len], b"myiothub.azure-devices.net%2Fdevices%2Fmy_device\n1578941692");
/// # Ok::<(), iothub_proto::BufferTooSmall>(())
/// ```
pub fn string_to_sign(
    resource: &[&[u8]],
    expiry: u64,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut sink = ByteSink { buf, len: 0 };
    crate::sas::write_resource_bytes(&mut sink, resource);
    sink.put("\n");
    crate::encode::WriteTo::write_to(&crate::text::Decimal(expiry), &mut sink);
    sink.finish()
}

/// Writes the SAS token
/// `SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={policy}]`
/// (docs/protocol.md §2.1) for a resource given as segments (see [`string_to_sign`]) and the
/// signature of that resource's string-to-sign.
///
/// The same text as [`SasToken`](crate::sas::SasToken) over the matching
/// [`ResourceUri`](crate::sas::ResourceUri).
///
/// # Errors
///
/// [`BufferTooSmall`] with the whole length needed.
///
/// ```
/// use iothub_proto::bytes;
/// use iothub_proto::sas::Signature;
///
/// let mut buf = [0u8; 160];
/// let len = bytes::sas_token(&[b"h", b"devices", b"d"], &Signature::from_bytes([0xfb; 32]), 7, Some(b"p"), &mut buf)?;
/// assert_eq!(
///     &buf[..len],
///     &b"SharedAccessSignature sr=h%2Fdevices%2Fd&sig=%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fv7%2B%2Fs%3D&se=7&skn=p"[..]
/// );
/// # Ok::<(), iothub_proto::BufferTooSmall>(())
/// ```
pub fn sas_token(
    resource: &[&[u8]],
    signature: &Signature,
    expiry: u64,
    policy: Option<&[u8]>,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let mut sink = ByteSink { buf, len: 0 };
    crate::sas::write_token_bytes(&mut sink, resource, signature, expiry, policy);
    sink.finish()
}

/// `bytes` as text when they are UTF-8, with the same verdict as `core::str::from_utf8`.
///
/// The crate's one validator (byte-wise, much smaller than `core::str::from_utf8`'s
/// word-at-a-time fast path on a microcontroller): a caller that holds bytes and must check
/// some of them (the C API checks the text it does not percent-encode) links no second one.
///
/// ```
/// use iothub_proto::bytes;
///
/// assert_eq!(bytes::utf8("°C".as_bytes()), Some("°C"));
/// assert_eq!(bytes::utf8(b"\xb0C"), None);
/// ```
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    crate::text::utf8(bytes)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::properties::PropertyWriter;
    use crate::sas::{ResourceUri, SasToken, StringToSign};
    use crate::topic::TelemetryTopic;

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._~/$%&=+:;?#é-]{0,12}"
    }

    /// Runs `encode` into an exact buffer and every shorter one.
    fn encode_exact(
        expected_len: usize,
        encode: impl Fn(&mut [u8]) -> Result<usize, BufferTooSmall>,
    ) -> Result<Vec<u8>, TestCaseError> {
        let mut buf = std::vec![0u8; expected_len];
        let len = encode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(len, expected_len);
        for short in 0..expected_len {
            let mut small = std::vec![0u8; short];
            prop_assert_eq!(
                encode(&mut small),
                Err(BufferTooSmall {
                    required: expected_len
                })
            );
        }
        Ok(buf)
    }

    proptest! {
        #[test]
        fn telemetry_topic_and_pairs_match_the_str_encoders(
            device in text(),
            module in proptest::option::of(text()),
            app in proptest::collection::vec((text(), text()), 0..4),
        ) {
            let pairs: Vec<(&str, &str)> = app.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut topic = TelemetryTopic::new(&device).properties(PropertyWriter::new().application(&pairs));
            if let Some(module) = &module {
                topic = topic.module(module);
            }
            let expected = topic.to_string();

            let mut bag = [0u8; 512];
            let mut len = 0;
            for (name, value) in &pairs {
                len = append_property(&mut bag, len, name.as_bytes(), value.as_bytes())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let bag = &bag[..len];
            let written = encode_exact(expected.len(), |buf| {
                telemetry_topic(device.as_bytes(), module.as_deref().map(str::as_bytes), bag, buf)
            })?;
            prop_assert_eq!(written, expected.into_bytes());

            let mut filter = crate::topic::C2dFilter::new(&device);
            if let Some(module) = &module {
                filter = filter.module(module);
            }
            let expected = filter.to_string();
            let written = encode_exact(expected.len(), |buf| {
                c2d_subscribe_filter(device.as_bytes(), module.as_deref().map(str::as_bytes), buf)
            })?;
            prop_assert_eq!(written, expected.into_bytes());
        }

        #[test]
        fn a_short_bag_is_left_whole_and_reports_the_length_needed(
            first in (text(), text()),
            second in (text(), text()),
            room in 0usize..8,
        ) {
            let mut bag = [0u8; 256];
            let len = append_property(&mut bag, 0, first.0.as_bytes(), first.1.as_bytes()).unwrap();
            let before = bag[..len].to_vec();
            let mut full = [0u8; 256];
            full[..len].copy_from_slice(&before);
            let needed = append_property(&mut full, len, second.0.as_bytes(), second.1.as_bytes()).unwrap();
            let cap = (len + room).min(needed.saturating_sub(1)).max(len);
            if cap < needed {
                prop_assert_eq!(
                    append_property(&mut bag[..cap], len, second.0.as_bytes(), second.1.as_bytes()),
                    Err(BufferTooSmall { required: needed })
                );
                prop_assert_eq!(&bag[..len], &before[..]);
            }
        }

        #[test]
        fn sas_text_matches_the_str_encoders(
            kind in 0u8..3,
            a in text(),
            b in text(),
            c in text(),
            expiry in proptest::num::u64::ANY,
            signature in proptest::array::uniform32(proptest::num::u8::ANY),
            policy in proptest::option::of(text()),
        ) {
            let (resource, segments): (ResourceUri<'_>, Vec<&[u8]>) = match kind {
                0 => (ResourceUri::device(&a, &b), std::vec![a.as_bytes(), b"devices", b.as_bytes()]),
                1 => (
                    ResourceUri::module(&a, &b, &c),
                    std::vec![a.as_bytes(), b"devices", b.as_bytes(), b"modules", c.as_bytes()],
                ),
                _ => (
                    ResourceUri::dps_registration(&a, &b),
                    std::vec![a.as_bytes(), b"registrations", b.as_bytes()],
                ),
            };
            let to_sign = StringToSign::new(resource, expiry).to_string();
            let written = encode_exact(to_sign.len(), |buf| string_to_sign(&segments, expiry, buf))?;
            prop_assert_eq!(written, to_sign.into_bytes());

            let signature = Signature::from_bytes(signature);
            let token = SasToken::new(resource, signature, expiry, policy.as_deref()).to_string();
            let written = encode_exact(token.len(), |buf| {
                sas_token(&segments, &signature, expiry, policy.as_deref().map(str::as_bytes), buf)
            })?;
            prop_assert_eq!(written, token.into_bytes());
        }

        /// Any bytes at all, UTF-8 or not: the output is ASCII and each input byte is either
        /// itself (unreserved) or its `%XX` escape.
        #[test]
        fn any_bytes_encode_to_ascii(
            device in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            name in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
        ) {
            let mut bag = [0u8; 128];
            let len = append_property(&mut bag, 0, &name, &value).unwrap();
            let mut topic = [0u8; 256];
            let len = telemetry_topic(&device, None, &bag[..len], &mut topic).unwrap();
            let topic = &topic[..len];
            prop_assert!(topic.is_ascii());
            let decoded: Vec<u8> = percent_encoding::percent_decode(&topic[8..8 + topic[8..].iter().position(|&b| b == b'/').unwrap()]).collect();
            prop_assert_eq!(decoded, device);
        }
    }
}
