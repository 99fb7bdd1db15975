//! AMQP link address parser (iothub-emulator `amqp::address`): never panics, and what it
//! parses prints as a canonical path that parses to the same node.
#![no_main]

use iothub_emulator::amqp::address::parse_link_address;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(node) = parse_link_address(text) else {
        return;
    };
    let again = node.to_string();
    assert_eq!(
        parse_link_address(&again),
        Ok(node),
        "{text:?} -> {again:?}"
    );
});
