//! azure-sdk-for-c's "telemetry only" feature set: a telemetry topic with a property bag and a
//! signed SAS password (docs/protocol.md §2.2 vector 1).
//!
//! Written with the byte path (`encode_to`, `SasToken::sign_in_buffer`), which links none of
//! `core::fmt`, as a size-conscious firmware would; the "full" scenario uses the `Display`
//! path (`encode_into`).

use iothub_proto::properties::PropertyWriter;
use iothub_proto::sas::{ResourceUri, SasToken};
use iothub_proto::topic::TelemetryTopic;

#[cfg(feature = "rustcrypto-hmac")]
const KEY: &str = "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=";

pub(crate) fn run() -> Result<(), i32> {
    let mut buf = [0u8; 256];

    let len = TelemetryTopic::new("dev3")
        .properties(
            PropertyWriter::new()
                .message_id("mid-1")
                .content_type("application/json")
                .content_encoding("utf-8"),
        )
        .encode_to(&mut buf)
        .map_err(|_| 10)?;
    if !written_is(
        &buf,
        len,
        "devices/dev3/messages/events/%24.mid=mid-1&%24.ct=application%2Fjson&%24.ce=utf-8",
    ) {
        return Err(11);
    }

    #[cfg(feature = "rustcrypto-hmac")]
    let signer = iothub_proto::sas::HmacSha256Signer::from_base64(KEY).map_err(|_| 12)?;
    #[cfg(not(feature = "rustcrypto-hmac"))]
    let signer = crate::platform_signer::PlatformSigner;
    let resource = ResourceUri::device("iot-hub-for-test.azure-devices.net", "iot-device-for-test");
    let token = SasToken::sign_in_buffer(resource, 1_471_940_363, None, &signer, &mut buf)
        .map_err(|_| 13)?;
    let len = token.encode_to(&mut buf).map_err(|_| 14)?;
    if !written_is(
        &buf,
        len,
        "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test&sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363",
    ) {
        return Err(15);
    }
    Ok(())
}

/// Whether the first `len` bytes of `buf` are exactly `expected` (one copy of the self-check).
#[inline(never)]
fn written_is(buf: &[u8], len: usize, expected: &str) -> bool {
    buf.get(..len) == Some(expected.as_bytes())
}
