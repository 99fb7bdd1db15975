//! Stand-in for a device's own crypto engine (a secure element or the TLS library's HMAC),
//! which is how azure-sdk-for-c's size figures are measured: the SDK builds the string to sign
//! and the platform signs it. This one checks it was asked to sign exactly docs/protocol.md §2.2
//! vector 1's string-to-sign and answers with that vector's published signature.
//!
//! Like a platform HMAC it works on a byte buffer (`sign_bytes_into`, what the telemetry
//! scenario's `SasToken::sign_in_buffer` calls); the `Display` entry point is served by
//! writing the message into a buffer first.

use core::fmt::Display;

use iothub_proto::encode_into;
use iothub_proto::sas::{SIGNATURE_LEN, SignError, Signer};

pub(crate) struct PlatformSigner;

const VECTOR_1_STRING_TO_SIGN: &[u8] =
    b"iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test\n1471940363";
/// base64 `SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4=`.
const VECTOR_1_SIGNATURE: [u8; SIGNATURE_LEN] = [
    0x48, 0x8b, 0xa6, 0x67, 0x50, 0x02, 0xaa, 0xa3, 0xc9, 0x67, 0x6a, 0x24, 0x1c, 0x39, 0x56, 0xf4,
    0xc4, 0x98, 0x2b, 0x29, 0x04, 0xa6, 0xab, 0x10, 0x63, 0x7c, 0xfa, 0x14, 0xc3, 0x88, 0x09, 0xde,
];

impl Signer for PlatformSigner {
    fn sign_into(
        &self,
        message: &dyn Display,
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        let mut buf = [0u8; 128];
        let text = encode_into(&message, &mut buf).map_err(|_| SignError::Failed)?;
        self.sign_bytes_into(text.as_bytes(), out)
    }

    fn sign_bytes_into(
        &self,
        message: &[u8],
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        if message != VECTOR_1_STRING_TO_SIGN {
            return Err(SignError::Failed);
        }
        *out = VECTOR_1_SIGNATURE;
        Ok(())
    }
}
