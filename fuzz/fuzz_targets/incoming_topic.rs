//! Device-side topic parser: never panics, and what it parses re-encodes to an equal parse.
#![no_main]

use iothub_proto::percent::Decoded;
use iothub_proto::topic::{
    C2dTopic, DesiredPatch, DesiredPatchTopic, DpsResponse, DpsResponseTopic, Incoming,
    MethodRequest, MethodRequestTopic, TwinResponse, TwinResponseTopic,
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
    let Ok(incoming) = Incoming::parse(topic) else {
        return;
    };
    match incoming {
        Incoming::TwinResponse(response) => {
            let mut builder = TwinResponseTopic::new(response.status(), response.request_id());
            if let Some(version) = response.version() {
                builder = builder.version(version);
            }
            let again = builder.to_string();
            assert_eq!(
                TwinResponse::parse(&again),
                Ok(response),
                "{topic} -> {again}"
            );
        }
        Incoming::DesiredPatch(patch) => {
            let again = DesiredPatchTopic::new(patch.version()).to_string();
            assert_eq!(DesiredPatch::parse(&again), Ok(patch));
        }
        Incoming::MethodRequest(request) => {
            let again = MethodRequestTopic::new(request.name(), request.request_id()).to_string();
            assert_eq!(
                MethodRequest::parse(&again),
                Ok(request),
                "{topic} -> {again}"
            );
        }
        Incoming::DpsResponse(response) => {
            let mut builder = DpsResponseTopic::new(response.status(), response.request_id());
            if let Some(seconds) = response.retry_after() {
                builder = builder.retry_after(seconds);
            }
            let again = builder.to_string();
            let reparsed = DpsResponse::parse(&again).expect("re-encoded dps response parses");
            assert_eq!(
                (
                    reparsed.status(),
                    reparsed.request_id(),
                    reparsed.retry_after()
                ),
                (
                    response.status(),
                    response.request_id(),
                    response.retry_after()
                )
            );
        }
        Incoming::C2d(message) => {
            // Ids re-encode from their decoded text; compare decoded forms.
            let (Some(device), module) = (text(message.device_id()), message.module_id().map(text))
            else {
                return;
            };
            let module = match module {
                Some(Some(module)) => Some(module),
                Some(None) => return,
                None => None,
            };
            let mut builder = C2dTopic::new(&device);
            if let Some(module) = &module {
                builder = builder.module(module);
            }
            let again = builder.to_string();
            let Ok(Incoming::C2d(reparsed)) = Incoming::parse(&again) else {
                panic!("{topic} -> {again}")
            };
            assert!(reparsed.device_id().eq_str(&device));
            assert_eq!(reparsed.module_id().map(text), module.map(Some));
            // touching every property must not panic
            for (key, value) in message.properties() {
                let _ = (key.to_string(), value.map(|v| v.to_string()));
            }
        }
        _ => {}
    }
});
