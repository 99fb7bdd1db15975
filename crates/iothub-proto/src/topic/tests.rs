//! Unit and round-trip property tests for the topic builders and parsers.

extern crate std;
use std::string::{String, ToString};
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::properties::PropertyWriter;

#[test]
fn unrecognized_is_distinct_from_malformed() {
    assert_eq!(
        Incoming::parse("$iothub/twin/res/200"),
        Err(TopicError::Malformed(Malformed::MissingQuery))
    );
    assert_eq!(
        Incoming::parse("$iothub/twin/res/200/?x=1"),
        Err(TopicError::Malformed(Malformed::MissingRequestId))
    );
    assert_eq!(
        Incoming::parse("$iothub/twin/res/200/?$rid="),
        Err(TopicError::Malformed(Malformed::MissingRequestId))
    );
    assert_eq!(
        Incoming::parse("$iothub/twin/resp/200/?$rid=1"),
        Err(TopicError::Unrecognized)
    );
    assert_eq!(
        Incoming::parse("devices/d/messages/events/"),
        Err(TopicError::Unrecognized)
    );
    assert_eq!(
        HubIncoming::parse("devices/d/messages/devicebound/"),
        Err(TopicError::Unrecognized)
    );
    assert_eq!(Incoming::parse(""), Err(TopicError::Unrecognized));
}

#[test]
fn rejects_status_out_of_range_or_signed() {
    for status in ["65536", "-1", "+200", "", "2 0"] {
        let topic = std::format!("$iothub/twin/res/{status}/?$rid=1");
        assert_eq!(
            TwinResponse::parse(&topic),
            Err(TopicError::Malformed(Malformed::InvalidStatus)),
            "{status}"
        );
    }
}

#[test]
fn rejects_desired_patch_without_numeric_version() {
    assert_eq!(
        DesiredPatch::parse("$iothub/twin/PATCH/properties/desired/?"),
        Err(TopicError::Malformed(Malformed::MissingVersion))
    );
    assert_eq!(
        DesiredPatch::parse("$iothub/twin/PATCH/properties/desired/?$version=x"),
        Err(TopicError::Malformed(Malformed::InvalidVersion))
    );
}

#[test]
fn rejects_empty_ids_and_names() {
    assert_eq!(
        C2dMessage::parse("devices//messages/devicebound/"),
        Err(Malformed::EmptySegment.into())
    );
    assert_eq!(
        TelemetryMessage::parse("devices/d/modules//messages/events/"),
        Err(Malformed::EmptySegment.into())
    );
    assert_eq!(
        MethodRequest::parse("$iothub/methods/POST//?$rid=1"),
        Err(Malformed::EmptySegment.into())
    );
    assert_eq!(
        DpsPoll::parse("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId="),
        Err(Malformed::MissingOperationId.into())
    );
}

#[test]
fn telemetry_without_trailing_slash_has_an_empty_bag() {
    let message = TelemetryMessage::parse("devices/d/messages/events").unwrap();
    assert!(message.properties().is_empty());
    assert_eq!(
        TelemetryMessage::parse("devices/d/messages/eventsx"),
        Err(TopicError::Unrecognized)
    );
}

#[test]
fn edge_module_inputs_are_not_c2d() {
    assert_eq!(
        C2dMessage::parse("devices/d/modules/m/inputs/in1/%24.mid=1"),
        Err(TopicError::Unrecognized)
    );
}

#[test]
fn twin_response_keeps_unknown_query_parameters_out_of_the_way() {
    let response = TwinResponse::parse("$iothub/twin/res/200/?foo&$rid=9&bar=1").unwrap();
    assert_eq!(response.request_id(), RequestId::Number(9));
    assert_eq!(response.version(), None);
}

#[test]
fn filters_are_the_documented_strings() {
    assert_eq!(TWIN_RESPONSE_FILTER, "$iothub/twin/res/#");
    assert_eq!(
        DESIRED_PATCH_FILTER,
        "$iothub/twin/PATCH/properties/desired/#"
    );
    assert_eq!(METHODS_FILTER, "$iothub/methods/POST/#");
    assert_eq!(DPS_RESPONSE_FILTER, "$dps/registrations/res/#");
    assert_eq!(C2D_FILTER_ANY_DEVICE, "devices/+/messages/devicebound/#");
    assert_eq!(
        C2dFilter::new("d").module("m").to_string(),
        "devices/d/modules/m/messages/devicebound/#"
    );
}

#[test]
fn device_ids_are_percent_encoded_and_decoded() {
    let topic = TelemetryTopic::new("a/b c").to_string();
    assert_eq!(topic, "devices/a%2Fb%20c/messages/events/");
    let message = TelemetryMessage::parse(&topic).unwrap();
    assert!(message.device_id().eq_str("a/b c"));
}

#[test]
fn errors_display_in_lower_case() {
    assert_eq!(TopicError::Unrecognized.to_string(), "unrecognized topic");
    assert_eq!(
        TopicError::Malformed(Malformed::MissingRequestId).to_string(),
        "malformed topic: missing $rid"
    );
}

/// Request ids as a device or hub would send: non-empty, no query syntax.
fn rid() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:-]{1,36}"
}

fn id() -> impl Strategy<Value = String> {
    "\\PC{1,20}"
}

fn decoded_pairs(bag: crate::properties::PropertyBag<'_>) -> Vec<(String, Option<String>)> {
    bag.iter()
        .map(|(k, v)| (k.to_string(), v.map(|v| v.to_string())))
        .collect()
}

proptest! {
    #[test]
    fn telemetry_round_trips(device in id(), module in proptest::option::of(id()), mid in "\\PC*",
                             app in proptest::collection::vec(("[^$]\\PC*", "\\PC*"), 0..3)) {
        let app_refs: Vec<(&str, &str)> = app.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let bag = PropertyWriter::new().message_id(&mid).application(&app_refs);
        let mut topic = TelemetryTopic::new(&device).properties(bag);
        if let Some(module) = &module { topic = topic.module(module); }
        let text = topic.to_string();
        let Ok(HubIncoming::Telemetry(message)) = HubIncoming::parse(&text) else {
            return Err(TestCaseError::fail(text));
        };
        prop_assert_eq!(message.device_id().to_string(), device);
        prop_assert_eq!(message.module_id().map(|m| m.to_string()), module);
        let mut expected = std::vec![("$.mid".to_string(), Some(mid.clone()))];
        expected.extend(app.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        prop_assert_eq!(decoded_pairs(message.properties()), expected);
    }

    #[test]
    fn c2d_round_trips(device in id(), cid in "\\PC*", app in proptest::collection::vec(("[^$]\\PC*", "\\PC*"), 0..3)) {
        let app_refs: Vec<(&str, &str)> = app.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let text = C2dTopic::new(&device)
            .properties(PropertyWriter::new().correlation_id(&cid).ack("full").application(&app_refs))
            .to_string();
        let Ok(Incoming::C2d(message)) = Incoming::parse(&text) else { return Err(TestCaseError::fail(text)) };
        prop_assert_eq!(message.device_id().to_string(), device);
        let mut expected = std::vec![("$.cid".to_string(), Some(cid.clone())), ("iothub-ack".into(), Some("full".into()))];
        expected.extend(app.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        prop_assert_eq!(decoded_pairs(message.properties()), expected);
    }

    #[test]
    fn twin_requests_and_responses_round_trip(rid in rid(), status in any::<u16>(), version in proptest::option::of(any::<u64>())) {
        let get = TwinGetTopic::new(RequestId::new(&rid)).to_string();
        prop_assert_eq!(HubIncoming::parse(&get), Ok(HubIncoming::TwinGet(TwinRequest { request_id: RequestId::new(&rid) })));
        let patch = ReportedPatchTopic::new(RequestId::new(&rid)).to_string();
        prop_assert_eq!(HubIncoming::parse(&patch), Ok(HubIncoming::ReportedPatch(TwinRequest { request_id: RequestId::new(&rid) })));

        let mut response = TwinResponseTopic::new(Status(status), RequestId::new(&rid));
        if let Some(v) = version { response = response.version(v); }
        let text = response.to_string();
        let Ok(Incoming::TwinResponse(parsed)) = Incoming::parse(&text) else { return Err(TestCaseError::fail(text)) };
        prop_assert_eq!(parsed.status(), Status(status));
        prop_assert_eq!(parsed.request_id(), RequestId::new(&rid));
        prop_assert_eq!(parsed.version(), version);
    }

    #[test]
    fn desired_patch_round_trips(version in any::<u64>()) {
        let text = DesiredPatchTopic::new(version).to_string();
        prop_assert_eq!(Incoming::parse(&text), Ok(Incoming::DesiredPatch(DesiredPatch { version })));
    }

    #[test]
    fn methods_round_trip(name in "[A-Za-z0-9_*-]{1,32}", rid in rid(), status in any::<u16>(), counter in any::<u32>()) {
        let text = MethodRequestTopic::new(&name, RequestId::new(&rid)).to_string();
        let Ok(Incoming::MethodRequest(request)) = Incoming::parse(&text) else { return Err(TestCaseError::fail(text)) };
        prop_assert_eq!(request.name(), name.as_str());
        prop_assert_eq!(request.request_id(), RequestId::new(&rid));

        let text = MethodResponseTopic::new(RequestId::Number(counter), status).to_string();
        let Ok(HubIncoming::MethodResponse(response)) = HubIncoming::parse(&text) else { return Err(TestCaseError::fail(text)) };
        prop_assert_eq!(response.status(), Status(status));
        prop_assert_eq!(response.request_id(), RequestId::Number(counter));
    }

    #[test]
    fn dps_round_trips(rid in rid(), operation in "[A-Za-z0-9.-]{1,64}", status in any::<u16>(), retry in proptest::option::of(any::<u32>())) {
        let text = DpsRegisterTopic::new(RequestId::new(&rid)).to_string();
        prop_assert_eq!(HubIncoming::parse(&text), Ok(HubIncoming::DpsRegister(DpsRegister { request_id: RequestId::new(&rid) })));

        let text = DpsPollTopic::new(RequestId::new(&rid), &operation).to_string();
        let Ok(HubIncoming::DpsPoll(poll)) = HubIncoming::parse(&text) else { return Err(TestCaseError::fail(text)) };
        prop_assert_eq!(poll.operation_id(), operation.as_str());
        prop_assert_eq!(poll.request_id(), RequestId::new(&rid));

        let mut response = DpsResponseTopic::new(Status(status), RequestId::new(&rid));
        if let Some(s) = retry { response = response.retry_after(s); }
        let text = response.to_string();
        let Ok(Incoming::DpsResponse(parsed)) = Incoming::parse(&text) else { return Err(TestCaseError::fail(text)) };
        prop_assert_eq!(parsed.status(), Status(status));
        prop_assert_eq!(parsed.request_id(), RequestId::new(&rid));
        prop_assert_eq!(parsed.retry_after(), retry);
    }
}
