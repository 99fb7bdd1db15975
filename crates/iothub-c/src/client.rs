//! The hub client: immutable configuration (host, device, module, options), and the MQTT
//! CONNECT fields derived from it (docs/c-api.md, "Connecting").

use core::ffi::c_char;

use iothub_proto::credentials::{API_VERSION, ClientId, Username};

use crate::result::*;
use crate::span::{self, Output, iothub_span};

/// Options of a hub client; start from [`iothub_client_options_default`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_client_options {
    /// Plug and Play model id (`dtmi:…;1`) announced in the username; empty for none.
    pub model_id: iothub_span,
    /// The `api-version` in the username; empty means the library's default.
    pub api_version: iothub_span,
    /// `DeviceClientType` in the username (a user agent); empty for none.
    pub user_agent: iothub_span,
}

/// A hub client: what it connects as. It owns nothing: the spans borrow the caller's
/// strings, which must outlive it and not change while it is used. Read-only after
/// [`iothub_client_init`], which validates everything once (the other functions trust it);
/// every function takes it as `const` and it can be shared between threads. A copy of an
/// initialised client is initialised.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_client {
    /// Set by init after validating the fields; checked by every call.
    pub _internal_magic: u64,
    /// Hub host name (`HostName`).
    pub host: iothub_span,
    /// Device id.
    pub device_id: iothub_span,
    /// Module id; empty for a device client.
    pub module_id: iothub_span,
    /// Options given at init (defaults filled in).
    pub options: iothub_client_options,
}

/// The default options: no model id, the library's api-version, no user agent.
#[unsafe(no_mangle)]
pub extern "C" fn iothub_client_options_default() -> iothub_client_options {
    iothub_client_options {
        model_id: iothub_span::EMPTY,
        api_version: iothub_span::from_str(API_VERSION),
        user_agent: iothub_span::EMPTY,
    }
}

/// Initialises `client` for `device_id` (and `module_id` unless empty) on hub `host`.
/// `options` may be NULL for the defaults.
///
/// Returns `IOTHUB_ERROR_INVALID_ARGUMENT` for an empty host or device id or text that is not
/// UTF-8.
///
/// # Safety
///
/// `client` is NULL or writable; the spans are valid and stay valid while `client` is used;
/// `options` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_init(
    client: *mut iothub_client,
    host: iothub_span,
    device_id: iothub_span,
    module_id: iothub_span,
    options: *const iothub_client_options,
) -> iothub_result {
    status((|| {
        if client.is_null() {
            return Err(IOTHUB_ERROR_NULL_ARGUMENT);
        }
        // SAFETY: NULL or readable, as the caller guarantees.
        let mut options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| iothub_client_options_default());
        // SAFETY: the caller guarantees every span (host, ids and options).
        unsafe {
            span::required_text(host)?;
            span::required_text(device_id)?;
            span::text(module_id)?;
            span::text(options.model_id)?;
            span::text(options.user_agent)?;
            if span::text(options.api_version)?.is_empty() {
                options.api_version = iothub_span::from_str(API_VERSION);
            }
        }
        let value = iothub_client {
            _internal_magic: MAGIC,
            host,
            device_id,
            module_id,
            options,
        };
        // SAFETY: non-NULL and writable, as the caller guarantees.
        unsafe { span::put(client, value) }
    })())
}

/// Marks a client that [`iothub_client_init`] validated ("iothubCl").
const MAGIC: u64 = 0x6c43_6275_6874_6f69;

/// The client's fields as text.
pub(crate) struct Fields<'a> {
    pub(crate) host: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) module_id: Option<&'a str>,
}

/// Reads an initialised client; `IOTHUB_ERROR_NOT_INITIALIZED` for one that
/// [`iothub_client_init`] did not set up.
///
/// # Safety
///
/// `client` is NULL or points to a client whose spans (and the text they borrow) are valid
/// and unchanged since init, for `'a`.
pub(crate) unsafe fn fields<'a>(client: *const iothub_client) -> Result<Fields<'a>, iothub_result> {
    // SAFETY: NULL or readable, as the caller guarantees.
    let client = unsafe { client.as_ref() }.ok_or(IOTHUB_ERROR_NULL_ARGUMENT)?;
    if client._internal_magic != MAGIC {
        return Err(IOTHUB_ERROR_NOT_INITIALIZED);
    }
    // SAFETY: init checked every span and its text, which the caller keeps unchanged.
    unsafe {
        Ok(Fields {
            host: span::validated_text(client.host)?,
            device_id: span::validated_text(client.device_id)?,
            module_id: Some(span::validated_text(client.module_id)?).filter(|m| !m.is_empty()),
        })
    }
}

/// Writes the MQTT client identifier (`{device}` or `{device}/{module}`) into `buf`,
/// NUL-terminated; `*out_len` (if not NULL) receives its length without the NUL, or the size
/// needed on `IOTHUB_ERROR_BUFFER_TOO_SMALL`.
///
/// # Safety
///
/// `client` is NULL or initialised; `buf` is NULL (with `size` 0) or has `size` writable
/// bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_get_client_id(
    client: *const iothub_client,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (f, out) = unsafe { (fields(client)?, Output::new(buf, size, out_len)?) };
        let id = match f.module_id {
            Some(module) => ClientId::module(f.device_id, module),
            None => ClientId::device(f.device_id),
        };
        out.write(|b| id.encode_to(b))
    })())
}

/// Writes the MQTT username (`{host}/{device}[/{module}]/?api-version=…[&model-id=…]`) into
/// `buf`, NUL-terminated. Out-parameters as [`iothub_client_get_client_id`].
///
/// # Safety
///
/// As [`iothub_client_get_client_id`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_get_username(
    client: *const iothub_client,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (f, out) = unsafe { (fields(client)?, Output::new(buf, size, out_len)?) };
        // SAFETY: `fields` checked `client` is non-NULL and initialised; init checked the
        // options' spans and text, which the caller keeps unchanged.
        let (api_version, model_id, user_agent) = unsafe {
            let options = &(*client).options;
            (
                span::validated_text(options.api_version)?,
                span::validated_text(options.model_id)?,
                span::validated_text(options.user_agent)?,
            )
        };
        let model_id = Some(model_id).filter(|m| !m.is_empty());
        let user_agent = Some(user_agent).filter(|u| !u.is_empty());
        let mut username = match f.module_id {
            Some(module) => Username::module(f.host, f.device_id, module),
            None => Username::device(f.host, f.device_id),
        }
        .with_api_version(api_version);
        if let Some(model_id) = model_id {
            username = username.with_model_id(model_id);
        }
        if let Some(user_agent) = user_agent {
            username = username.with_user_agent(user_agent);
        }
        out.write(|b| username.encode_to(b))
    })())
}
