//! Twin and DPS JSON extraction: never panics; unescaped text compares equal to itself.
#![no_main]

use iothub_proto::json::{DpsBody, JsonText, desired_version, twin_versions};
use libfuzzer_sys::fuzz_target;

fn check(text: Option<JsonText<'_>>) {
    let Some(text) = text else { return };
    let shown = text.to_string();
    let mut buf = [0u8; 256];
    if let Ok(unescaped) = text.unescape_into(&mut buf) {
        assert!(text.eq_str(unescaped));
        assert_eq!(shown, unescaped);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = desired_version(data);
    let _ = twin_versions(data);
    if let Ok(body) = DpsBody::parse(data) {
        for text in [
            body.operation_id,
            body.assigned_hub,
            body.device_id,
            body.substatus,
            body.message,
        ] {
            check(text);
        }
    }
});
