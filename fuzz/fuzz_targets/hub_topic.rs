//! Hub-side topic parser: never panics, and what it parses re-encodes to an equal parse.
#![no_main]

use iothub_proto::percent::Decoded;
use iothub_proto::topic::{
    DpsPoll, DpsPollTopic, DpsRegister, DpsRegisterTopic, HubIncoming, MethodResponse,
    MethodResponseTopic, ReportedPatchTopic, TelemetryTopic, TwinGetTopic, TwinRequest,
};
use libfuzzer_sys::fuzz_target;

/// The decoded text, when it is UTF-8.
fn text(value: Decoded<'_>) -> Option<String> {
    String::from_utf8(value.bytes().collect()).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(topic) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(incoming) = HubIncoming::parse(topic) else {
        return;
    };
    match incoming {
        HubIncoming::TwinGet(request) => {
            let again = TwinGetTopic::new(request.request_id()).to_string();
            assert_eq!(
                TwinRequest::parse_get(&again),
                Ok(request),
                "{topic} -> {again}"
            );
        }
        HubIncoming::ReportedPatch(request) => {
            let again = ReportedPatchTopic::new(request.request_id()).to_string();
            assert_eq!(
                TwinRequest::parse_reported_patch(&again),
                Ok(request),
                "{topic} -> {again}"
            );
        }
        HubIncoming::MethodResponse(response) => {
            let again =
                MethodResponseTopic::new(response.request_id(), response.status()).to_string();
            assert_eq!(
                MethodResponse::parse(&again),
                Ok(response),
                "{topic} -> {again}"
            );
        }
        HubIncoming::DpsRegister(register) => {
            let again = DpsRegisterTopic::new(register.request_id()).to_string();
            assert_eq!(DpsRegister::parse(&again), Ok(register));
        }
        HubIncoming::DpsPoll(poll) => {
            let again = DpsPollTopic::new(poll.request_id(), poll.operation_id()).to_string();
            let reparsed = DpsPoll::parse(&again).expect("re-encoded poll parses");
            assert_eq!(reparsed, poll, "{topic} -> {again}");
        }
        HubIncoming::Telemetry(message) => {
            let Some(device) = text(message.device_id()) else {
                return;
            };
            let module = match message.module_id().map(text) {
                Some(Some(module)) => Some(module),
                Some(None) => return,
                None => None,
            };
            let mut builder = TelemetryTopic::new(&device);
            if let Some(module) = &module {
                builder = builder.module(module);
            }
            let again = builder.to_string();
            let Ok(HubIncoming::Telemetry(reparsed)) = HubIncoming::parse(&again) else {
                panic!("{topic} -> {again}")
            };
            assert!(reparsed.device_id().eq_str(&device));
            assert_eq!(reparsed.module_id().map(text), module.map(Some));
            for (key, value) in message.properties() {
                let _ = (key.to_string(), value.map(|v| v.to_string()));
            }
        }
        _ => {}
    }
});
