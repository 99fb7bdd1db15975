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
/// [`iothub_client_init`], which checks the spans once (NULL, empty host or device id; the
/// other functions trust that) and stores an empty span with a non-NULL placeholder pointer
/// (its length stays 0); every function takes it as `const` and it can be shared between
/// threads. A copy of an initialised client is initialised.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_client {
    /// Set by init after checking the fields; checked by every call.
    pub _internal_magic: u64,
    /// Hub host name (`HostName`).
    pub host: iothub_span,
    /// Device id.
    pub device_id: iothub_span,
    /// Module id; empty for a device client.
    pub module_id: iothub_span,
    /// Options given at init (empty spans when none were given).
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
/// Only the spans' pointers and lengths are checked here (`IOTHUB_ERROR_NULL_ARGUMENT` for a
/// NULL pointer with a length, `IOTHUB_ERROR_INVALID_ARGUMENT` for an empty host or device
/// id); the text itself is not: topics and SAS tokens percent-encode every byte of it, and
/// [`iothub_client_get_client_id`] and [`iothub_client_get_username`], whose output MQTT
/// requires to be UTF-8, check it when called.
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
    if client.is_null() {
        return IOTHUB_ERROR_NULL_ARGUMENT;
    }
    // SAFETY: NULL or readable, as the caller guarantees. No options means empty spans
    // (an empty api-version is the library's, filled in where the username is written).
    let options = match unsafe { options.as_ref() } {
        Some(options) => *options,
        None => iothub_client_options {
            model_id: iothub_span::EMPTY,
            api_version: iothub_span::EMPTY,
            user_agent: iothub_span::EMPTY,
        },
    };
    // The fields are stored first and checked where they lie (one pass over six spans in
    // memory rather than over a copy of them); on an error the magic stays unset.
    // SAFETY: non-NULL and writable, as the caller guarantees; plain data, nothing to drop.
    let c = unsafe {
        client.write(iothub_client {
            _internal_magic: 0,
            host,
            device_id,
            module_id,
            options,
        });
        &mut *client
    };
    // SAFETY: `iothub_client` is `repr(C)` with the six spans (host, ids, then the three of
    // the `repr(C)` options) back to back after the magic, as asserted below.
    let spans = unsafe { &mut *(&raw mut c.host).cast::<[iothub_span; 6]>() };
    // A NULL pointer with a length is refused once, here, and an empty span gets a non-NULL
    // placeholder pointer, so the other calls read every span as a slice without checking
    // (docs/c-api.md, "Thread safety").
    for span in spans {
        if span.len == 0 {
            span.ptr = core::ptr::NonNull::<c_char>::dangling().as_ptr();
        } else if span.ptr.is_null() {
            return IOTHUB_ERROR_NULL_ARGUMENT;
        }
    }
    if c.host.len == 0 || c.device_id.len == 0 {
        return IOTHUB_ERROR_INVALID_ARGUMENT;
    }
    c._internal_magic = MAGIC;
    IOTHUB_OK
}

// The six spans of a client are one array in memory (read as such by init).
const _: () = {
    use core::mem::{offset_of, size_of};
    let span = size_of::<iothub_span>();
    assert!(offset_of!(iothub_client, device_id) == offset_of!(iothub_client, host) + span);
    assert!(offset_of!(iothub_client, module_id) == offset_of!(iothub_client, host) + 2 * span);
    assert!(offset_of!(iothub_client, options) == offset_of!(iothub_client, host) + 3 * span);
    assert!(size_of::<iothub_client_options>() == 3 * span);
    assert!(size_of::<iothub_client>() == offset_of!(iothub_client, host) + 6 * span);
};

/// Marks a client that [`iothub_client_init`] checked ("iothubCl").
const MAGIC: u64 = 0x6c43_6275_6874_6f69;

impl iothub_client {
    /// A span of a client that init accepted, as bytes (not necessarily UTF-8).
    pub(crate) fn field(span: iothub_span) -> &'static [u8] {
        // SAFETY: init refused NULL pointers with a length and gave empty spans a non-NULL
        // placeholder, so every span is a valid slice while the caller keeps the text (the
        // client's contract; the lifetime stands for that).
        unsafe { core::slice::from_raw_parts(span.ptr.cast::<u8>(), span.len) }
    }

    /// The host name.
    pub(crate) fn host(&self) -> &[u8] {
        Self::field(self.host)
    }

    /// The device id.
    pub(crate) fn device_id(&self) -> &[u8] {
        Self::field(self.device_id)
    }

    /// The module id; empty for a device client.
    pub(crate) fn module_id(&self) -> &[u8] {
        Self::field(self.module_id)
    }

    /// The module id, `None` for a device client.
    pub(crate) fn module(&self) -> Option<&[u8]> {
        Some(self.module_id()).filter(|m| !m.is_empty())
    }
}

/// Reads an initialised client; `IOTHUB_ERROR_NOT_INITIALIZED` for one that
/// [`iothub_client_init`] did not set up.
///
/// # Safety
///
/// `client` is NULL or points to a client whose spans (and the text they borrow) are valid
/// and unchanged since init, for `'a`.
pub(crate) unsafe fn fields<'a>(
    client: *const iothub_client,
) -> Result<&'a iothub_client, Failure> {
    // SAFETY: NULL or readable, as the caller guarantees.
    let client = unsafe { client.as_ref() }.ok_or(Failure::NullArgument)?;
    if client._internal_magic != MAGIC {
        return Err(Failure::NotInitialized);
    }
    Ok(client)
}

/// The client's fields as text, for the outputs MQTT requires to be UTF-8 (client id,
/// username): `IOTHUB_ERROR_INVALID_ARGUMENT` when one is not.
struct TextFields<'a> {
    host: &'a str,
    device_id: &'a str,
    module_id: Option<&'a str>,
}

/// [`fields`], checked as UTF-8.
///
/// # Safety
///
/// As [`fields`].
unsafe fn text_fields<'a>(client: *const iothub_client) -> Result<TextFields<'a>, Failure> {
    // SAFETY: forwarded contract.
    let c = unsafe { fields(client) }?;
    let text = |bytes: &'a [u8]| span::utf8(bytes).ok_or(Failure::InvalidArgument);
    Ok(TextFields {
        host: text(c.host())?,
        device_id: text(c.device_id())?,
        module_id: Some(text(c.module_id())?).filter(|m| !m.is_empty()),
    })
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
        let (f, out) = unsafe { (text_fields(client)?, Output::new(buf, size, out_len)?) };
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
        let (f, out) = unsafe { (text_fields(client)?, Output::new(buf, size, out_len)?) };
        // SAFETY: `fields` checked `client` is non-NULL and initialised.
        let options = unsafe { &(*client).options };
        let (api_version, model_id, user_agent) = {
            let text =
                |span| span::utf8(iothub_client::field(span)).ok_or(Failure::InvalidArgument);
            (
                text(options.api_version)?,
                text(options.model_id)?,
                text(options.user_agent)?,
            )
        };
        let api_version = Some(api_version)
            .filter(|v| !v.is_empty())
            .unwrap_or(API_VERSION);
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
