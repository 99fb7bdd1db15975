//! ISO-8601 timestamps arrive in service requests (`expiryTimeUtc` of a cloud-to-device
//! message): untrusted.
//! Invariants: parse never panics; a parsed instant written back with milliseconds parses to
//! the same instant; writing any instant never panics and always parses back.
#![no_main]

use iothub_proto::Iso8601;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(parsed) = Iso8601::parse(text)
    {
        let again = Iso8601::millis(parsed.unix_millis()).to_string();
        assert_eq!(
            Iso8601::parse(&again).map(|t| t.unix_millis()),
            Ok(parsed.unix_millis())
        );
    }
    let mut raw = [0u8; 8];
    for (slot, byte) in raw.iter_mut().zip(data) {
        *slot = *byte;
    }
    let instant = Iso8601::millis(u64::from_le_bytes(raw));
    let mut buf = [0u8; Iso8601::MAX_LEN];
    assert_eq!(Iso8601::parse(instant.write(&mut buf)), Ok(instant));
});
