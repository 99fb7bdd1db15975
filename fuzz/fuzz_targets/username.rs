//! MQTT CONNECT usernames are untrusted input for the emulator.
//! Invariants: the hub, DPS and combined parsers never panic; accepted parts are non-empty
//! and slash-free; the combined parser agrees with the specific ones; builder output with
//! arbitrary user-agent / model-id text parses back to the same decoded values.
#![no_main]

use iothub_proto::credentials::{
    DpsUsername, IncomingUsername, ParsedDpsUsername, ParsedUsername, Username,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };

    let hub = ParsedUsername::parse(text);
    if let Ok(username) = hub {
        assert!(!username.host().is_empty() && !username.host().contains('/'));
        assert!(!username.device_id().is_empty() && !username.device_id().contains('/'));
        assert!(
            username
                .module_id()
                .is_none_or(|m| !m.is_empty() && !m.contains('/'))
        );
        let _ = (
            username.api_version(),
            username.model_id(),
            username.device_client_type(),
        );
        let _ = username.model_id().map(|m| m.to_string());
    }
    let dps = ParsedDpsUsername::parse(text);
    if let Ok(username) = dps {
        assert!(!username.id_scope().is_empty() && !username.id_scope().contains('/'));
        assert!(
            !username.registration_id().is_empty() && !username.registration_id().contains('/')
        );
        let _ = (username.api_version(), username.client_version());
    }
    match IncomingUsername::parse(text) {
        Ok(IncomingUsername::Hub(username)) => assert_eq!(Ok(username), hub),
        Ok(IncomingUsername::Dps(username)) => assert_eq!(Ok(username), dps),
        Err(error) => assert_eq!(Err(error), hub),
    }

    // Arbitrary text as the percent-encoded parameters of usernames we build.
    let built = Username::module("h.azure-devices.net", "dev", "mod")
        .with_user_agent(text)
        .with_model_id(text)
        .to_string();
    let parsed = ParsedUsername::parse(&built).expect("built username parses");
    assert_eq!(
        (parsed.device_id(), parsed.module_id()),
        ("dev", Some("mod"))
    );
    assert!(parsed.device_client_type().expect("present").eq_str(text));
    assert!(parsed.model_id().expect("present").eq_str(text));
    let built = DpsUsername::new("0ne00000001", "reg-1")
        .with_client_version(text)
        .to_string();
    let parsed = ParsedDpsUsername::parse(&built).expect("built dps username parses");
    assert!(parsed.client_version().expect("present").eq_str(text));
    assert!(matches!(
        IncomingUsername::parse(&built),
        Ok(IncomingUsername::Dps(_))
    ));
});
