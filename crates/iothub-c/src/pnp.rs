//! Plug and Play: writable-property acknowledgements, reported properties in components,
//! command names, and reading twin JSON (docs/c-api.md, "Plug and Play").

use core::ffi::c_char;

use iothub_proto::json::JsonValue;
use iothub_proto::pnp::{CommandName, ReportedProperty, WritableAck};

use crate::result::*;
use crate::span::{self, Output, display_into, iothub_span};

/// Writes the reported-properties patch that acknowledges writable property `name`:
/// `{"name":{"value":…,"ac":status,"av":version[,"ad":"description"]}}`, wrapped in
/// `{"component":{"__t":"c",…}}` unless `component` is empty. `value_json` is written
/// verbatim (it must be JSON, e.g. `23.5` or `"text"`); `version` is the desired `$version`
/// being answered; `description` may be empty.
///
/// # Safety
///
/// Spans valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_pnp_writable_ack_get_payload(
    component: iothub_span,
    name: iothub_span,
    value_json: iothub_span,
    status_code: u16,
    version: u64,
    description: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (component, name, value, description, out) = unsafe {
            (
                span::optional_text(component)?,
                span::required_text(name)?,
                span::required_text(value_json)?,
                span::optional_text(description)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let mut ack = WritableAck::new(name, value, status_code, version);
        if let Some(component) = component {
            ack = ack.component(component);
        }
        if let Some(description) = description {
            ack = ack.description(description);
        }
        out.write(|b| display_into(&ack, b))
    })())
}

/// Writes a reported-properties patch with one property: `{"name":value}`, or
/// `{"component":{"__t":"c","name":value}}` unless `component` is empty.
///
/// # Safety
///
/// As [`iothub_pnp_writable_ack_get_payload`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_pnp_reported_property_get_payload(
    component: iothub_span,
    name: iothub_span,
    value_json: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (component, name, value, out) = unsafe {
            (
                span::optional_text(component)?,
                span::required_text(name)?,
                span::required_text(value_json)?,
                Output::new(buf, size, out_len)?,
            )
        };
        let mut property = ReportedProperty::new(name, value);
        if let Some(component) = component {
            property = property.component(component);
        }
        out.write(|b| display_into(&property, b))
    })())
}

/// Splits a method name into Plug and Play component and command (`thermostat1*reboot` →
/// `thermostat1`, `reboot`; `reboot` → empty component, `reboot`). Spans point into
/// `method_name`.
///
/// # Safety
///
/// `method_name` valid; the out pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_pnp_parse_command_name(
    method_name: iothub_span,
    out_component: *mut iothub_span,
    out_command: *mut iothub_span,
) -> iothub_result {
    status((|| {
        if out_component.is_null() || out_command.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contract.
        let name = CommandName::parse(unsafe { span::required_text(method_name) }?);
        let component = name
            .component()
            .map_or(iothub_span::EMPTY, iothub_span::from_str);
        // SAFETY: both non-NULL and writable, as the caller guarantees.
        unsafe {
            span::put(out_component, component)?;
            span::put(out_command, iothub_span::from_str(name.command()))
        }
    })())
}

/// Finds member `key` of the JSON object `json` (a twin document, a desired patch, a method
/// payload) and points `out_value` at its raw JSON text (strings keep their quotes and
/// escapes). Chain calls for nested members (`desired`, then `targetTemperature`).
///
/// The whole of `json` is validated first: `IOTHUB_ERROR_MALFORMED` for invalid JSON or a
/// value that is not an object, `IOTHUB_ERROR_NOT_FOUND` when the member is absent.
///
/// # Safety
///
/// Spans valid; `out_value` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_json_get_member(
    json: iothub_span,
    key: iothub_span,
    out_value: *mut iothub_span,
) -> iothub_result {
    status((|| {
        if out_value.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contracts.
        let (json, key) = unsafe { (span::bytes(json)?, span::text(key)?) };
        let value = JsonValue::parse(json).map_err(|_| Failure::Malformed)?;
        if value.kind() != iothub_proto::json::JsonKind::Object {
            return Err(Failure::Malformed);
        }
        let member = value.get(key).ok_or(Failure::NotFound)?;
        // SAFETY: non-NULL and writable, as the caller guarantees.
        unsafe { span::put(out_value, iothub_span::from_str(member.raw())) }
    })())
}
