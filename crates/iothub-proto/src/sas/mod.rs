//! Shared access signature (SAS) tokens: minting on the device side, parsing and verification
//! on the hub side, and DPS group-enrollment key derivation.
//!
//! A token is `SharedAccessSignature sr={encoded resource}&sig={encoded base64 HMAC}&se={expiry}[&skn={policy}]`
//! where the HMAC-SHA256 covers `{encoded resource}\n{expiry}` (docs/protocol.md §2.1).
//!
//! - [`ResourceUri`] names what the token grants access to (device, module, hub, DPS registration).
//! - [`StringToSign`] is the exact signed text; [`Signer`] turns it into a [`Signature`].
//! - [`SasToken`] formats the password; [`ParsedSasToken`] parses one as received and
//!   [`ParsedSasToken::verify`] checks signature, expiry, scope and policy.
//! - With the `hmac` feature, `HmacSha256Signer` signs with a base64 key and
//!   `derive_device_key` derives a DPS group-enrollment device key.
//!
//! Nothing here reads a clock: expiry and "now" are Unix seconds supplied by the caller.
//!
//! ```
//! # #[cfg(feature = "hmac")] {
//! use iothub_proto::encode_into;
//! use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
//!
//! // docs/protocol.md §2.2 vector 1
//! let signer = HmacSha256Signer::from_base64("+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=").unwrap();
//! let resource = ResourceUri::device("iot-hub-for-test.azure-devices.net", "iot-device-for-test");
//! let token = SasToken::sign(resource, 1471940363, None, &signer).unwrap();
//! let mut buf = [0u8; 256];
//! assert_eq!(
//!     encode_into(&token, &mut buf).unwrap(),
//!     "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2Fiot-device-for-test\
//!      &sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363"
//! );
//! # }
//! ```

#[cfg(feature = "hmac")]
mod hmac;
mod parse;
mod resource;
mod signer;
mod string_to_sign;
mod token;
mod verify;

#[cfg(feature = "hmac")]
pub use self::hmac::{DERIVED_KEY_LEN, HmacSha256Signer, KeyError, MAX_KEY_LEN, derive_device_key};
pub use self::parse::{ParsedSasToken, TokenError, TokenField};
pub use self::resource::ResourceUri;
pub use self::signer::{SIGNATURE_BASE64_LEN, SIGNATURE_LEN, SignError, Signature, Signer};
pub use self::string_to_sign::StringToSign;
pub use self::token::SasToken;
pub(crate) use self::token::{write_resource_bytes, write_token_bytes};
pub use self::verify::{VerifyError, VerifyRequest};

/// The policy name DPS requires in device registration tokens (docs/protocol.md §9).
pub const DPS_REGISTRATION_POLICY: &str = "registration";

/// The clock-skew allowance the emulator grants (docs/protocol.md §2.3: the hub tolerates about
/// five minutes of device clock drift).
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;

/// The token lifetime SDKs use by default (docs/protocol.md §2.3: 60 minutes).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;
