//! SAS passwords for the hub and DPS, signed with the built-in HMAC-SHA256 or the caller's
//! (docs/c-api.md, "SAS tokens"). No clock: the expiry is an argument.

use core::ffi::{c_char, c_void};
use core::fmt::Display;

use iothub_proto::bytes;
use iothub_proto::sas::{
    DPS_REGISTRATION_POLICY, HmacSha256Signer, ParsedSasToken, SIGNATURE_LEN, SignError, Signature,
    Signer,
};

use crate::client::{fields, iothub_client};
use crate::result::*;
use crate::span::{self, Output, iothub_span};

/// The caller's HMAC-SHA256 (a secure element, the TLS library's): sign `message_len` bytes
/// at `message` with the device key and write the 32-byte MAC to `out_signature`. Return 0 on
/// success, anything else on failure. `context` is passed through untouched.
pub type iothub_hmac_sha256_fn = Option<
    unsafe extern "C" fn(
        context: *mut c_void,
        message: *const u8,
        message_len: usize,
        out_signature: *mut u8,
    ) -> i32,
>;

/// A [`Signer`] calling the caller's HMAC function.
struct CallbackSigner {
    hmac: unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut u8) -> i32,
    context: *mut c_void,
}

impl Signer for CallbackSigner {
    fn sign_into(
        &self,
        message: &dyn Display,
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        // Not on the token path (that hands over bytes); kept correct for any other caller.
        let mut text = [0u8; 512];
        let text =
            iothub_proto::encode_into(&message, &mut text).map_err(SignError::BufferTooSmall)?;
        self.sign_bytes_into(text.as_bytes(), out)
    }

    fn sign_bytes_into(
        &self,
        message: &[u8],
        out: &mut [u8; SIGNATURE_LEN],
    ) -> Result<(), SignError> {
        // SAFETY: the caller of the C entry point guarantees `hmac` follows
        // `iothub_hmac_sha256_fn`: it reads `message_len` bytes and writes 32.
        let rc = unsafe {
            (self.hmac)(
                self.context,
                message.as_ptr(),
                message.len(),
                out.as_mut_ptr(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(SignError::Failed)
        }
    }
}

/// Signs a token for `resource` (its segments, see `iothub_proto::bytes::string_to_sign`)
/// into `out`; the buffer doubles as scratch for the string to sign. Nothing is validated as
/// UTF-8: the resource and policy are percent-encoded byte by byte.
#[inline(always)]
fn write_token(
    mut out: Output<'_>,
    resource: &[&[u8]],
    policy: Option<&[u8]>,
    expiry: u64,
    signer: &impl Signer,
) -> Result<(), Failure> {
    let body = out.body();
    let mut signature = Signature::from_bytes([0xff; SIGNATURE_LEN]);
    let mut scratch: &mut [u8] = &mut [];
    if let Ok(len) = bytes::string_to_sign(resource, expiry, body) {
        let mut mac = [0u8; SIGNATURE_LEN];
        // invariant: `string_to_sign` wrote `len <= body.len()` bytes.
        signer
            .sign_bytes_into(body.get(..len).unwrap_or_default(), &mut mac)
            .map_err(|_| Failure::SignFailed)?;
        signature = Signature::from_bytes(mac);
        scratch = body;
    }
    // When the string to sign did not fit, the signature is not known, so this counts what
    // the longest token needs (an empty buffer only counts): a signature of all 0xff bytes,
    // whose base64 has the most characters that percent-encode (`/`). That is also more than
    // the string to sign, which is what did not fit.
    let written = bytes::sas_token(resource, &signature, expiry, policy, scratch);
    out.finish(written)
}

/// The hub resource a client's tokens cover, as segments: `{host}/devices/{device}`, then
/// `/modules/{module}` for a module; the second value is how many segments are used.
#[inline(always)]
fn client_resource(c: &iothub_client) -> ([&[u8]; 5], usize) {
    let module = c.module_id();
    let count = if module.is_empty() { 3 } else { 5 };
    (
        [c.host(), b"devices", c.device_id(), b"modules", module],
        count,
    )
}

fn key_signer(key: &str) -> Result<HmacSha256Signer, Failure> {
    HmacSha256Signer::from_base64(key).map_err(|_| Failure::InvalidArgument)
}

fn callback_signer(
    hmac: iothub_hmac_sha256_fn,
    context: *mut c_void,
) -> Result<CallbackSigner, Failure> {
    let hmac = hmac.ok_or(Failure::NullArgument)?;
    Ok(CallbackSigner { hmac, context })
}

/// Writes the MQTT password, a SAS token for the client's device (or module) valid until
/// `expiry` (Unix seconds), signed with the base64 `key` by the built-in HMAC-SHA256.
/// `policy_name` is empty for a device or module key, or the policy (`skn`) for a policy key.
/// The resource (host and ids) and the policy are percent-encoded byte by byte and not
/// checked as UTF-8 (docs/c-api.md, "Text encoding"); the key must be base64.
///
/// Reconnect with a fresh token before `expiry`: the hub closes the connection when the
/// token expires. On `IOTHUB_ERROR_BUFFER_TOO_SMALL`, `*out_len` is the size needed (an upper
/// bound until the signature is known). `IOTHUB_ERROR_INVALID_ARGUMENT` for a key that is not
/// base64.
///
/// # Safety
///
/// `client` is NULL or initialised; spans valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_sas_get_password(
    client: *const iothub_client,
    key: iothub_span,
    policy_name: iothub_span,
    expiry: u64,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (f, key, policy, out) = unsafe {
            (
                fields(client)?,
                span::required_text(key)?,
                span::optional_bytes(policy_name)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let (segments, count) = client_resource(f);
        let resource = segments.get(..count).unwrap_or_default();
        write_token(out, resource, policy, expiry, &key_signer(key)?)
    })())
}

/// As [`iothub_client_sas_get_password`], but the caller computes the HMAC-SHA256 (the key
/// never enters the library). `IOTHUB_ERROR_SIGN_FAILED` when `hmac` returns non-zero.
///
/// # Safety
///
/// As [`iothub_client_sas_get_password`]; `hmac` follows [`iothub_hmac_sha256_fn`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_sas_get_password_with_hmac(
    client: *const iothub_client,
    hmac: iothub_hmac_sha256_fn,
    context: *mut c_void,
    policy_name: iothub_span,
    expiry: u64,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (f, policy, out) = unsafe {
            (
                fields(client)?,
                span::optional_bytes(policy_name)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let (segments, count) = client_resource(f);
        let resource = segments.get(..count).unwrap_or_default();
        write_token(
            out,
            resource,
            policy,
            expiry,
            &callback_signer(hmac, context)?,
        )
    })())
}

/// Writes the DPS MQTT password: a token for `{id_scope}/registrations/{registration_id}`
/// with policy `registration`, valid until `expiry` (Unix seconds), signed with the base64
/// `key` (the enrollment's key, or one derived with [`iothub_dps_derive_device_key`]). The
/// scope and id must not be empty; they are percent-encoded byte by byte, not checked as
/// UTF-8. `IOTHUB_ERROR_INVALID_ARGUMENT` for an empty scope or id, or a key that is not
/// base64.
///
/// # Safety
///
/// Spans valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_sas_get_password(
    id_scope: iothub_span,
    registration_id: iothub_span,
    key: iothub_span,
    expiry: u64,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (scope, id, key, out) = unsafe {
            (
                span::required_bytes(id_scope)?,
                span::required_bytes(registration_id)?,
                span::required_text(key)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let resource: [&[u8]; 3] = [scope, b"registrations", id];
        write_token(
            out,
            &resource,
            Some(DPS_REGISTRATION_POLICY.as_bytes()),
            expiry,
            &key_signer(key)?,
        )
    })())
}

/// As [`iothub_dps_sas_get_password`] with the caller's HMAC-SHA256.
///
/// # Safety
///
/// As [`iothub_dps_sas_get_password`]; `hmac` follows [`iothub_hmac_sha256_fn`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_sas_get_password_with_hmac(
    id_scope: iothub_span,
    registration_id: iothub_span,
    hmac: iothub_hmac_sha256_fn,
    context: *mut c_void,
    expiry: u64,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (scope, id, out) = unsafe {
            (
                span::required_bytes(id_scope)?,
                span::required_bytes(registration_id)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let resource: [&[u8]; 3] = [scope, b"registrations", id];
        write_token(
            out,
            &resource,
            Some(DPS_REGISTRATION_POLICY.as_bytes()),
            expiry,
            &callback_signer(hmac, context)?,
        )
    })())
}

/// Derives an individual device key from a DPS enrollment-group key (HMAC-SHA256 of the
/// registration id, base64) into `buf` (45 bytes with the NUL).
///
/// # Safety
///
/// Spans valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_derive_device_key(
    group_key: iothub_span,
    registration_id: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (group_key, id, out) = unsafe {
            (
                span::required_text(group_key)?,
                span::required_text(registration_id)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let mut derived = [0u8; iothub_proto::sas::DERIVED_KEY_LEN];
        let key = iothub_proto::sas::derive_device_key(group_key, id, &mut derived)
            .map_err(|_| Failure::InvalidArgument)?;
        out.write(|b| copy_text(key, b))
    })())
}

/// Copies text into a buffer, or reports the size needed.
pub(crate) fn copy_text(text: &str, buf: &mut [u8]) -> Result<usize, iothub_proto::BufferTooSmall> {
    let target = buf
        .get_mut(..text.len())
        .ok_or(iothub_proto::BufferTooSmall {
            required: text.len(),
        })?;
    target.copy_from_slice(text.as_bytes());
    Ok(text.len())
}

/// Reads the expiry (`se`, Unix seconds) of a SAS token such as the one in a
/// `SharedAccessSignature=` connection string, so the caller knows when it must stop using
/// it. `IOTHUB_ERROR_MALFORMED` when `token` is not a SAS token.
///
/// # Safety
///
/// `token` valid; `out_expiry` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_sas_token_get_expiry(
    token: iothub_span,
    out_expiry: *mut u64,
) -> iothub_result {
    status((|| {
        if out_expiry.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contract.
        let token = unsafe { span::text(token) }?;
        let parsed = ParsedSasToken::parse(token).map_err(|_| Failure::Malformed)?;
        // SAFETY: non-NULL and writable, as the caller guarantees.
        unsafe { span::put(out_expiry, parsed.expiry()) }
    })())
}
