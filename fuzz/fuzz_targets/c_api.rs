//! The C API (crates/iothub-c) driven with arbitrary bytes and lengths: no call crashes or
//! reads out of bounds, every result is an `iothub_result`, and the output convention holds
//! (on success the text fits and is NUL-terminated; on a short buffer the size needed is more
//! than was given, and a buffer of that size succeeds).
#![no_main]

use core::ffi::c_char;
use core::ptr;

use iothub_c::*;
use iothub_result::*;
use libfuzzer_sys::fuzz_target;

/// Splits the input at `\0` bytes into up to eight spans (the raw bytes, not necessarily UTF-8).
fn pieces(data: &[u8]) -> [iothub_span; 8] {
    let mut out = [iothub_span::EMPTY; 8];
    for (slot, piece) in out.iter_mut().zip(data.split(|b| *b == 0)) {
        *slot = iothub_span::from_bytes(piece);
    }
    out
}

/// Calls `write` with a buffer of `size` bytes and checks the output convention.
fn check_output(size: usize, write: impl Fn(*mut c_char, usize, *mut usize) -> iothub_result) {
    let mut buf = vec![0x55 as c_char; size];
    let mut len = usize::MAX;
    let ptr = if size == 0 {
        ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    match write(ptr, size, &mut len) {
        IOTHUB_OK => {
            assert!(len < size, "{len} >= {size}");
            assert_eq!(buf[len], 0, "not NUL-terminated");
        }
        IOTHUB_ERROR_BUFFER_TOO_SMALL => {
            assert!(len > size, "needed {len} <= given {size}");
            let mut bigger = vec![0 as c_char; len];
            let mut again = 0;
            assert_eq!(
                write(bigger.as_mut_ptr(), len, &mut again),
                IOTHUB_OK,
                "the size reported does not work"
            );
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let size = usize::from(data.first().copied().unwrap_or(0));
    let p = pieces(data.get(1..).unwrap_or_default());
    // SAFETY: every span points into `data`, every buffer is a live Vec of the
    // size passed, every out-pointer a live local.
    unsafe {
        let mut incoming = core::mem::zeroed::<iothub_incoming>();
        if iothub_parse_received_topic(p[0], &mut incoming) == IOTHUB_OK
            && incoming.kind == iothub_incoming_kind::IOTHUB_INCOMING_C2D
        {
            let mut it = core::mem::zeroed::<iothub_properties_iterator>();
            assert_eq!(
                iothub_properties_iterator_init(&mut it, incoming.properties),
                IOTHUB_OK
            );
            let mut property = iothub_property::default();
            let mut guard = 0;
            while iothub_properties_next(&mut it, &mut property) == IOTHUB_OK {
                check_output(size, |b, s, l| {
                    iothub_property_decode(property.value, b, s, l)
                });
                guard += 1;
                assert!(
                    guard <= incoming.properties.len + 1,
                    "iterator does not end"
                );
            }
        }
        let mut value = iothub_span::EMPTY;
        let _ = iothub_properties_find(p[0], p[1], &mut value);
        let _ = iothub_json_get_member(p[2], p[1], &mut value);
        let mut cs = core::mem::zeroed::<iothub_connection_string>();
        let _ = iothub_connection_string_parse(p[3], &mut cs);
        let mut expiry = 0;
        let _ = iothub_sas_token_get_expiry(p[3], &mut expiry);
        let (mut component, mut command) = (iothub_span::EMPTY, iothub_span::EMPTY);
        let _ = iothub_pnp_parse_command_name(p[1], &mut component, &mut command);

        let mut client = core::mem::zeroed::<iothub_client>();
        let mut options = iothub_client_options_default();
        options.model_id = p[6];
        if iothub_client_init(&mut client, p[4], p[5], p[6], &options) == IOTHUB_OK {
            check_output(size, |b, s, l| {
                iothub_client_get_client_id(&client, b, s, l)
            });
            check_output(size, |b, s, l| iothub_client_get_username(&client, b, s, l));
            check_output(size, |b, s, l| {
                iothub_client_c2d_get_subscribe_topic(&client, b, s, l)
            });
            // The caller-built bag: a buffer of `size` bytes, pairs appended until one does
            // not fit; a full bag must stay whole (its length never passes the buffer).
            let mut bag = vec![0u8; size];
            let mut properties = core::mem::zeroed::<iothub_message_properties>();
            assert_eq!(
                iothub_message_properties_init(&mut properties, bag.as_mut_ptr().cast(), size, 0),
                IOTHUB_OK
            );
            for (name, value) in [(p[1], p[2]), (p[7], p[1]), (p[2], p[7])] {
                let mut bag_len = 0;
                let rc =
                    iothub_message_properties_append(&mut properties, name, value, &mut bag_len);
                assert!(properties._internal_len <= size);
                if rc == IOTHUB_OK {
                    assert_eq!(bag_len, properties._internal_len);
                } else if rc == IOTHUB_ERROR_BUFFER_TOO_SMALL {
                    assert!(bag_len > size);
                }
            }
            check_output(size, |b, s, l| {
                iothub_client_telemetry_get_publish_topic(&client, &properties, b, s, l)
            });
            let key = iothub_span::from_str("+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=");
            check_output(size, |b, s, l| {
                iothub_client_sas_get_password(&client, key, p[7], 1_700_000_000, b, s, l)
            });
        }
        check_output(size, |b, s, l| {
            iothub_twin_document_get_publish_topic(p[1], b, s, l)
        });
        check_output(size, |b, s, l| {
            iothub_methods_response_get_publish_topic(p[1], 200, b, s, l)
        });
        check_output(size, |b, s, l| {
            iothub_pnp_writable_ack_get_payload(p[4], p[5], p[6], 200, 3, p[7], b, s, l)
        });

        // DPS: arbitrary answers to a started registration.
        let mut reg = Box::new(core::mem::zeroed::<iothub_dps_registration>());
        if iothub_dps_registration_init(&mut *reg, p[5], p[6]) == IOTHUB_OK {
            assert_eq!(iothub_dps_registration_start(&mut *reg, 0), IOTHUB_OK);
            let mut tx = core::mem::zeroed::<iothub_dps_transmit>();
            let mut buf = vec![0 as c_char; size];
            let mut needed = 0;
            let _ = iothub_dps_registration_poll_transmit(
                &mut *reg,
                buf.as_mut_ptr(),
                size,
                &mut tx,
                &mut needed,
            );
            let mut consumed = false;
            let _ =
                iothub_dps_registration_handle_publish(&mut *reg, p[0], p[2], 10, &mut consumed);
            let _ = iothub_dps_registration_handle_timeout(&mut *reg, 40_000);
            let mut outcome = core::mem::zeroed::<iothub_dps_outcome>();
            assert_eq!(
                iothub_dps_registration_get_outcome(&mut *reg, &mut outcome),
                IOTHUB_OK
            );
        }
    }
});
