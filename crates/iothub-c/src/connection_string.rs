//! Connection strings parsed into borrowed fields (docs/c-api.md, "Connection strings").

use iothub_proto::connection_string::{ConnectionString, Credential};

use crate::result::*;
use crate::span::{self, iothub_span};

/// How a connection string authenticates.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum iothub_credential_kind {
    /// `DeviceId` + `SharedAccessKey`: sign tokens with the device key.
    IOTHUB_CREDENTIAL_DEVICE_KEY = 0,
    /// `DeviceId` + `SharedAccessKeyName` + `SharedAccessKey`: a policy key; tokens carry the
    /// policy name.
    IOTHUB_CREDENTIAL_DEVICE_POLICY_KEY = 1,
    /// `DeviceId` + `ModuleId` + `SharedAccessKey`: sign tokens with the module key.
    IOTHUB_CREDENTIAL_MODULE_KEY = 2,
    /// `SharedAccessKeyName` + `SharedAccessKey` without `DeviceId`: a service policy.
    IOTHUB_CREDENTIAL_SERVICE_POLICY_KEY = 3,
    /// `SharedAccessSignature=…`: a pre-made token used verbatim as the password.
    IOTHUB_CREDENTIAL_SAS_TOKEN = 4,
    /// `x509=true`: a client certificate authenticates (the TLS stack's job).
    IOTHUB_CREDENTIAL_X509 = 5,
}

/// A parsed connection string. Every span borrows from the text given to
/// [`iothub_connection_string_parse`]; absent fields are empty spans.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_connection_string {
    /// `HostName`, e.g. `myhub.azure-devices.net`.
    pub host_name: iothub_span,
    /// `DeviceId` (empty for a service policy).
    pub device_id: iothub_span,
    /// `ModuleId` (empty for a device).
    pub module_id: iothub_span,
    /// `GatewayHostName` (IoT Edge), where to dial instead of `HostName`.
    pub gateway_host_name: iothub_span,
    /// Which credential the string carries.
    pub credential: iothub_credential_kind,
    /// `SharedAccessKey` (base64) for the key kinds.
    pub shared_access_key: iothub_span,
    /// `SharedAccessKeyName` for the policy kinds.
    pub shared_access_key_name: iothub_span,
    /// The whole token (`SharedAccessSignature sr=…`) for `IOTHUB_CREDENTIAL_SAS_TOKEN`.
    pub shared_access_signature: iothub_span,
}

/// Parses `HostName=…;DeviceId=…;SharedAccessKey=…` (and the module, policy, token and X.509
/// variants) into `out`, whose spans point into `text`.
///
/// Returns `IOTHUB_ERROR_MALFORMED` for a missing or contradictory field or a key that is
/// not base64, `IOTHUB_ERROR_INVALID_ARGUMENT` for text that is not UTF-8.
///
/// # Safety
///
/// `text` is a valid span; `out` is NULL or writable. `out`'s spans stay valid as long as
/// `text`'s bytes do.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_connection_string_parse(
    text: iothub_span,
    out: *mut iothub_connection_string,
) -> iothub_result {
    status((|| {
        if out.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: the caller guarantees the span.
        let text = unsafe { span::text(text) }?;
        let parsed = ConnectionString::parse(text).map_err(|_| Failure::Malformed)?;
        let opt = |field: Option<&str>| field.map_or(iothub_span::EMPTY, iothub_span::from_str);
        let mut result = iothub_connection_string {
            host_name: iothub_span::from_str(parsed.host_name()),
            device_id: opt(parsed.device_id()),
            module_id: opt(parsed.module_id()),
            gateway_host_name: opt(parsed.gateway_host_name()),
            credential: iothub_credential_kind::IOTHUB_CREDENTIAL_X509,
            shared_access_key: iothub_span::EMPTY,
            shared_access_key_name: iothub_span::EMPTY,
            shared_access_signature: iothub_span::EMPTY,
        };
        let (kind, key, policy, token) = match parsed.credential() {
            Credential::DeviceKey { key } => (
                iothub_credential_kind::IOTHUB_CREDENTIAL_DEVICE_KEY,
                Some(key),
                None,
                None,
            ),
            Credential::DevicePolicyKey { policy, key } => (
                iothub_credential_kind::IOTHUB_CREDENTIAL_DEVICE_POLICY_KEY,
                Some(key),
                Some(policy),
                None,
            ),
            Credential::ModuleKey { key } => (
                iothub_credential_kind::IOTHUB_CREDENTIAL_MODULE_KEY,
                Some(key),
                None,
                None,
            ),
            Credential::ServicePolicyKey { policy, key } => (
                iothub_credential_kind::IOTHUB_CREDENTIAL_SERVICE_POLICY_KEY,
                Some(key),
                Some(policy),
                None,
            ),
            Credential::Token { token } => (
                iothub_credential_kind::IOTHUB_CREDENTIAL_SAS_TOKEN,
                None,
                None,
                Some(token),
            ),
            Credential::X509 => (
                iothub_credential_kind::IOTHUB_CREDENTIAL_X509,
                None,
                None,
                None,
            ),
            // A credential kind added to the core later is not representable here yet.
            _ => return Err(Failure::Malformed),
        };
        result.credential = kind;
        result.shared_access_key = opt(key);
        result.shared_access_key_name = opt(policy);
        result.shared_access_signature = opt(token);
        // SAFETY: `out` is non-NULL and writable, as the caller guarantees.
        unsafe { span::put(out, result) }
    })())
}
