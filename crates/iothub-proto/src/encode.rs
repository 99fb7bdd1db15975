//! Writing [`Display`] encoders into caller-owned storage.
//!
//! Every builder in this crate (topics, usernames, SAS tokens) is a small type implementing
//! [`Display`]. The caller chooses where the text goes: a stack buffer through
//! [`encode_into`], a `heapless::String`, or (with `alloc`) a `String` via `to_string()`.
//!
//! Underneath, each encoder is written once against the crate-internal [`Sink`] trait (whole
//! `&str` pieces, nothing else). Its `Display` impl hands that code the `Formatter`; its
//! `encode_to` method hands it a byte buffer instead. The byte path links none of `core::fmt`
//! (`fmt::write`, the `dyn Write` vtables) and needs no UTF-8 re-validation, which is what a
//! telemetry-only microcontroller build pays for (BENCHMARKS.md, "iothub-proto code size").

use core::fmt::{self, Display, Write};

use crate::error::BufferTooSmall;

/// Writes `value` into `buf` and returns the written text.
///
/// # Errors
///
/// [`BufferTooSmall`] with the full length needed when `buf` is too short; `buf` content is
/// then unspecified.
///
/// ```
/// use iothub_proto::encode_into;
///
/// let mut buf = [0u8; 16];
/// assert_eq!(encode_into(&format_args!("a{}c", 'b'), &mut buf), Ok("abc"));
/// ```
pub fn encode_into<'b>(value: &impl Display, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
    encode_dyn(value, buf)
}

/// The body of [`encode_into`], compiled once rather than once per encoder type.
#[inline(never)]
fn encode_dyn<'b>(value: &dyn Display, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
    let mut writer = SliceWriter {
        buf,
        len: 0,
        overflow: false,
    };
    // A `Display` impl may only fail because the writer failed, i.e. on overflow.
    let failed = write!(writer, "{value}").is_err();
    if failed || writer.overflow {
        return Err(BufferTooSmall {
            required: len_dyn(value),
        });
    }
    let SliceWriter { buf, len, .. } = writer;
    // invariant: only whole `&str` fragments are copied in, so the prefix is valid UTF-8.
    let written = buf.get(..len).unwrap_or_default();
    crate::text::utf8(written).ok_or(BufferTooSmall { required: len })
}

/// Returns how many bytes `value` encodes to, without storing it.
///
/// ```
/// use iothub_proto::encoded_len;
///
/// assert_eq!(encoded_len(&"héllo"), 6);
/// ```
pub fn encoded_len(value: &impl Display) -> usize {
    len_dyn(value)
}

/// The body of [`encoded_len`], compiled once.
#[inline(never)]
fn len_dyn(value: &dyn Display) -> usize {
    let mut counter = EncodedLen(0);
    // invariant: `EncodedLen` never fails, so neither does formatting into it.
    let _ = write!(counter, "{value}");
    counter.0
}

/// A [`fmt::Write`] sink that only counts bytes; useful to size a buffer up front.
///
/// ```
/// use core::fmt::Write;
/// use iothub_proto::EncodedLen;
///
/// let mut n = EncodedLen(0);
/// write!(n, "{}-{}", 12, "ab").unwrap();
/// assert_eq!(n.0, 5);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodedLen(pub usize);

impl Write for EncodedLen {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Where an encoder writes: whole `&str` pieces, in order.
///
/// `put` cannot fail, so encoders carry no error paths: a byte buffer ([`encode_to`]) counts
/// what does not fit, and a `fmt::Write` underneath ([`display`]) remembers its first error.
pub(crate) trait Sink {
    /// Appends `piece`.
    fn put(&mut self, piece: &str);
}

/// An encoder written once against [`Sink`]; the one implementation behind both its
/// `Display` impl (through [`display`]) and its `encode_to` method (through [`encode_to`]).
pub(crate) trait WriteTo {
    /// Writes the encoded text into `out`.
    fn write_to(&self, out: &mut dyn Sink);
}

impl<T: WriteTo + ?Sized> WriteTo for &T {
    fn write_to(&self, out: &mut dyn Sink) {
        (**self).write_to(out);
    }
}

/// The body of every `Display` impl written with [`WriteTo`], compiled once.
pub(crate) fn display(value: &dyn WriteTo, f: &mut dyn Write) -> fmt::Result {
    let mut sink = FmtSink {
        out: f,
        failed: false,
    };
    value.write_to(&mut sink);
    if sink.failed { Err(fmt::Error) } else { Ok(()) }
}

/// A [`fmt::Write`] as a [`Sink`]: after the first failed write it drops every later piece,
/// so a full `heapless::String` never ends up holding a later, shorter piece.
struct FmtSink<'f> {
    out: &'f mut dyn Write,
    failed: bool,
}

impl Sink for FmtSink<'_> {
    fn put(&mut self, piece: &str) {
        if !self.failed {
            self.failed = self.out.write_str(piece).is_err();
        }
    }
}

/// Bridges any [`Display`] value into a [`Sink`] (through `core::fmt`): for generic
/// resources and the like, where no `WriteTo` impl exists.
pub(crate) struct ViaDisplay<T>(pub(crate) T);

impl<T: Display> WriteTo for ViaDisplay<T> {
    fn write_to(&self, out: &mut dyn Sink) {
        // invariant: `FmtBridge` never fails, and a `Display` impl only fails when its writer
        // does, so there is no error to pass on.
        let _ = write!(FmtBridge(out), "{}", self.0);
    }
}

/// A [`Sink`] seen as a [`fmt::Write`].
struct FmtBridge<'s>(&'s mut dyn Sink);

impl Write for FmtBridge<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.put(s);
        Ok(())
    }
}

/// Writes `value` into `buf` without `core::fmt` and returns the number of bytes written.
///
/// The body of every public `encode_to` method, compiled once.
#[inline(never)]
pub(crate) fn encode_to(value: &dyn WriteTo, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut sink = ByteSink { buf, len: 0 };
    value.write_to(&mut sink);
    sink.finish()
}

/// Copies pieces into a byte buffer; past the end it only counts, so one pass also yields
/// the length a retry needs.
pub(crate) struct ByteSink<'b> {
    pub(crate) buf: &'b mut [u8],
    pub(crate) len: usize,
}

impl ByteSink<'_> {
    /// Appends raw bytes (the byte-level encoders in [`crate::bytes`] copy a caller's
    /// already-encoded text this way; every `&str` piece goes through here too).
    #[inline(always)]
    pub(crate) fn put_bytes(&mut self, piece: &[u8]) {
        let end = self.len + piece.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(piece);
        }
        self.len = end;
    }

    /// The length written, or everything that was needed when it did not fit.
    pub(crate) fn finish(self) -> Result<usize, BufferTooSmall> {
        if self.len > self.buf.len() {
            return Err(BufferTooSmall { required: self.len });
        }
        Ok(self.len)
    }
}

impl Sink for ByteSink<'_> {
    fn put(&mut self, piece: &str) {
        self.put_bytes(piece.as_bytes());
    }
}

struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
            None => {
                self.overflow = true;
                Err(fmt::Error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exactly_fitting_text() {
        let mut buf = [0u8; 5];
        assert_eq!(encode_into(&"hello", &mut buf), Ok("hello"));
    }

    #[test]
    fn reports_required_length_on_overflow() {
        let mut buf = [0u8; 4];
        assert_eq!(
            encode_into(&"hello", &mut buf),
            Err(BufferTooSmall { required: 5 })
        );
    }

    #[test]
    fn empty_value_fits_empty_buffer() {
        let mut buf = [0u8; 0];
        assert_eq!(encode_into(&"", &mut buf), Ok(""));
    }
}

/// The byte path (`encode_to`) and the `Display` path run the same encoder code; these check
/// they also produce byte-identical text, and that each path reports overflow properly.
#[cfg(test)]
mod byte_path_tests {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::credentials::{ClientId, Username};
    use crate::percent;
    use crate::properties::{PropertyWriter, SystemProperty};
    use crate::sas::{ResourceUri, SasToken, Signature, StringToSign};
    use crate::topic::{MethodResponseTopic, ReportedPatchTopic, TelemetryTopic, TwinGetTopic};
    use crate::{RequestId, Status};

    /// Encodes with `encode` into an exact-size buffer and checks it against `display`, then
    /// checks every shorter buffer is refused with the full length.
    fn same_bytes(
        display: &str,
        encode: impl Fn(&mut [u8]) -> Result<usize, BufferTooSmall>,
    ) -> Result<(), TestCaseError> {
        let mut buf = std::vec![0u8; display.len()];
        let len = encode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&buf[..len], display.as_bytes());
        if !display.is_empty() {
            let mut short = std::vec![0u8; display.len() - 1];
            prop_assert_eq!(
                encode(&mut short),
                Err(BufferTooSmall {
                    required: display.len()
                })
            );
        }
        Ok(())
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._~/$%&=+:;é-]{0,12}"
    }

    fn resource() -> impl Strategy<Value = (u8, String, String, String)> {
        (0u8..5, text(), text(), text())
    }

    fn make_resource<'a>(kind: u8, a: &'a str, b: &'a str, c: &'a str) -> ResourceUri<'a> {
        match kind {
            0 => ResourceUri::device(a, b),
            1 => ResourceUri::module(a, b, c),
            2 => ResourceUri::hub(a),
            3 => ResourceUri::dps_registration(a, b),
            _ => ResourceUri::raw(a),
        }
    }

    proptest! {
        #[test]
        fn percent_encoding_bytes_match_display(input in text()) {
            let encoded = percent::encode(&input);
            same_bytes(&encoded.to_string(), |buf| encoded.encode_to(buf))?;
        }

        #[test]
        fn telemetry_topic_bytes_match_display(
            device in text(),
            module in proptest::option::of(text()),
            system in proptest::collection::vec((0..SystemProperty::ALL.len(), text()), 0..4),
            creation in proptest::option::of(text()),
            app in proptest::collection::vec((text(), text()), 0..3),
        ) {
            let app: Vec<(&str, &str)> = app.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut bag = PropertyWriter::new().application(&app);
            for (index, value) in &system {
                bag = bag.system(SystemProperty::ALL[*index], value);
            }
            if let Some(creation) = &creation {
                bag = bag.creation_time_utc(creation);
            }
            same_bytes(&bag.to_string(), |buf| bag.encode_to(buf))?;
            let mut topic = TelemetryTopic::new(&device).properties(bag);
            if let Some(module) = &module {
                topic = topic.module(module);
            }
            same_bytes(&topic.to_string(), |buf| topic.encode_to(buf))?;
        }

        #[test]
        fn string_to_sign_and_token_bytes_match_display(
            (kind, a, b, c) in resource(),
            expiry in proptest::num::u64::ANY,
            signature in proptest::array::uniform32(proptest::num::u8::ANY),
            policy in proptest::option::of(text()),
        ) {
            let resource = make_resource(kind, &a, &b, &c);
            let to_sign = StringToSign::new(resource, expiry);
            same_bytes(&to_sign.to_string(), |buf| to_sign.encode_to(buf))?;
            let token = SasToken::new(resource, Signature::from_bytes(signature), expiry, policy.as_deref());
            same_bytes(&token.to_string(), |buf| token.encode_to(buf))?;
        }

        #[test]
        fn request_topics_bytes_match_display_and_their_shape(
            text_id in "[a-zA-Z0-9._-]{1,12}",
            number in proptest::option::of(proptest::num::u32::ANY),
            status in proptest::num::u16::ANY,
        ) {
            let (rid, rid_text) = match number {
                Some(n) => (RequestId::Number(n), n.to_string()),
                None => (RequestId::new(&text_id), text_id.clone()),
            };
            let get = TwinGetTopic::new(rid);
            prop_assert_eq!(get.to_string(), std::format!("$iothub/twin/GET/?$rid={rid_text}"));
            same_bytes(&get.to_string(), |buf| get.encode_to(buf))?;
            let patch = ReportedPatchTopic::new(rid);
            prop_assert_eq!(
                patch.to_string(),
                std::format!("$iothub/twin/PATCH/properties/reported/?$rid={rid_text}")
            );
            same_bytes(&patch.to_string(), |buf| patch.encode_to(buf))?;
            let response = MethodResponseTopic::new(rid, Status(status));
            prop_assert_eq!(
                response.to_string(),
                std::format!("$iothub/methods/res/{status}/?$rid={rid_text}")
            );
            same_bytes(&response.to_string(), |buf| response.encode_to(buf))?;
        }

        #[test]
        fn credentials_bytes_match_display(
            host in text(),
            device in text(),
            module in proptest::option::of(text()),
            user_agent in proptest::option::of(text()),
            model_id in proptest::option::of(text()),
        ) {
            let (client_id, mut username) = match &module {
                Some(module) => (ClientId::module(&device, module), Username::module(&host, &device, module)),
                None => (ClientId::device(&device), Username::device(&host, &device)),
            };
            if let Some(user_agent) = &user_agent {
                username = username.with_user_agent(user_agent);
            }
            if let Some(model_id) = &model_id {
                username = username.with_model_id(model_id);
            }
            same_bytes(&client_id.to_string(), |buf| client_id.encode_to(buf))?;
            same_bytes(&username.to_string(), |buf| username.encode_to(buf))?;
        }
    }

    /// A `fmt::Write` that holds at most `cap` bytes and fails past that.
    struct Bounded {
        text: String,
        cap: usize,
    }

    impl Write for Bounded {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if self.text.len() + s.len() > self.cap {
                return Err(fmt::Error);
            }
            self.text.push_str(s);
            Ok(())
        }
    }

    #[test]
    fn display_stops_at_the_first_failed_write() {
        // "h/d" fits, "/?api-version=" does not, and the later "&model-id=" would: it must be
        // dropped, not appended after the gap.
        let username = Username::device("h", "d")
            .with_api_version("")
            .with_model_id("x");
        let mut out = Bounded {
            text: String::new(),
            cap: 16,
        };
        assert_eq!(write!(out, "{username}"), Err(fmt::Error));
        assert_eq!(out.text, "h/d");
    }

    #[test]
    fn decimal_path_matches_core_formatting_at_the_edges() {
        for n in [0, 9, 10, 99, 100, u64::MAX] {
            let to_sign = StringToSign::new(ResourceUri::raw(""), n);
            let mut buf = [0u8; 32];
            let len = to_sign.encode_to(&mut buf).unwrap();
            assert_eq!(&buf[..len], std::format!("\n{n}").as_bytes());
        }
    }

    #[cfg(feature = "hmac")]
    proptest! {
        #[test]
        fn signing_in_a_buffer_gives_the_token_of_sign(
            (kind, a, b, c) in resource(),
            expiry in proptest::num::u64::ANY,
            policy in proptest::option::of(text()),
        ) {
            let signer = crate::sas::HmacSha256Signer::from_base64("+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=").unwrap();
            let resource = make_resource(kind, &a, &b, &c);
            let mut scratch = [0u8; 256];
            let in_buffer = SasToken::sign_in_buffer(resource, expiry, policy.as_deref(), &signer, &mut scratch).unwrap();
            prop_assert_eq!(in_buffer, SasToken::sign(resource, expiry, policy.as_deref(), &signer).unwrap());
        }
    }

    #[test]
    #[cfg(feature = "hmac")]
    fn signing_in_a_short_buffer_reports_the_length_needed() {
        let signer = crate::sas::HmacSha256Signer::from_base64("AAAA").unwrap();
        let resource = ResourceUri::device("h", "d");
        let mut scratch = [0u8; 8];
        // "h%2Fdevices%2Fd\n5"
        assert_eq!(
            SasToken::sign_in_buffer(resource, 5, None, &signer, &mut scratch),
            Err(crate::sas::SignError::BufferTooSmall(BufferTooSmall {
                required: 17
            }))
        );
    }

    /// Signs with `sign_into` only, so `sign_bytes_into` is the provided default.
    struct DisplayOnlySigner;

    impl crate::sas::Signer for DisplayOnlySigner {
        fn sign_into(
            &self,
            message: &dyn Display,
            out: &mut [u8; crate::sas::SIGNATURE_LEN],
        ) -> Result<(), crate::sas::SignError> {
            *out = [encoded_len(&message) as u8; crate::sas::SIGNATURE_LEN];
            Ok(())
        }
    }

    #[test]
    fn default_byte_signing_goes_through_display_and_refuses_non_utf8() {
        use crate::sas::{SIGNATURE_LEN, SignError, Signer};
        let mut out = [0u8; SIGNATURE_LEN];
        assert_eq!(
            DisplayOnlySigner.sign_bytes_into("héllo".as_bytes(), &mut out),
            Ok(())
        );
        assert_eq!(out, [6; SIGNATURE_LEN]);
        assert_eq!(
            DisplayOnlySigner.sign_bytes_into(b"\xff", &mut out),
            Err(SignError::Failed)
        );
    }
}
