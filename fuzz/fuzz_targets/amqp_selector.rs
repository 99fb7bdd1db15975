//! Event Hubs selector filter parser (iothub-emulator `amqp::selector`): never panics, and
//! what it parses formats back to text that parses to the same start position.
#![no_main]

use iothub_emulator::amqp::selector::{parse_selector, selector_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = parse_selector(text) else {
        return;
    };
    let again = selector_text(&filter);
    assert_eq!(parse_selector(&again), Ok(filter), "{text:?} -> {again:?}");
});
