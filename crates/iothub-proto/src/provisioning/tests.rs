//! Deterministic tests of the DPS registration state machine, with explicit `now`.

extern crate std;
use std::string::String;
use std::vec::Vec;

use super::*;

const ASSIGNING: &[u8] =
    br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b-0000","status":"assigning"}"#;
/// docs/protocol.md §9, final body.
const ASSIGNED: &[u8] = br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b-0000","status":"assigned","registrationState":{"x509":{},"registrationId":"paho-sample-device1",
 "createdDateTimeUtc":"2020-04-10T03:11:13.0276997Z","assignedHub":"contoso.azure-devices.net",
 "deviceId":"paho-sample-device1","status":"assigned","substatus":"initialAssignment",
 "lastUpdatedDateTimeUtc":"2020-04-10T03:11:13.2096201Z","etag":"IjYx"}}"#;

fn at(secs: u64) -> Instant {
    Instant::from_millis(secs * 1000)
}

/// Drains one transmit as owned (topic, payload).
fn send(reg: &mut Registration<'_>) -> Option<(String, Vec<u8>)> {
    let mut buf = [0u8; 512];
    reg.poll_transmit(&mut buf)
        .unwrap()
        .map(|tx| (tx.topic.into(), tx.payload.to_vec()))
}

fn started() -> Registration<'static> {
    let mut reg = Registration::new("paho-sample-device1", None);
    reg.start(at(0));
    reg
}

#[test]
fn registers_then_polls_until_assigned() {
    let mut reg = started();
    let (topic, payload) = send(&mut reg).unwrap();
    assert_eq!(topic, "$dps/registrations/PUT/iotdps-register/?$rid=0");
    assert_eq!(payload, br#"{"registrationId":"paho-sample-device1"}"#);
    assert_eq!(send(&mut reg), None);
    assert_eq!(
        reg.poll_timeout(),
        Some(at(30)),
        "waits for the answer up to the response timeout"
    );

    assert_eq!(
        reg.handle_publish(
            "$dps/registrations/res/202/?$rid=0&retry-after=2",
            ASSIGNING,
            at(1)
        ),
        Ok(true)
    );
    assert_eq!(reg.operation_id(), Some("4.d0a671905ea5b2c8.e7173b7b-0000"));
    assert_eq!(reg.poll_event(), None);
    assert_eq!(reg.poll_timeout(), Some(at(3)));
    reg.handle_timeout(at(2));
    assert_eq!(send(&mut reg), None, "not before retry-after");
    reg.handle_timeout(at(3));
    let (topic, payload) = send(&mut reg).unwrap();
    assert_eq!(
        topic,
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId=4.d0a671905ea5b2c8.e7173b7b-0000"
    );
    assert!(payload.is_empty());

    // still assigning, without retry-after: the 3 s default
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/202/?$rid=1", ASSIGNING, at(4)),
        Ok(true)
    );
    assert_eq!(reg.poll_timeout(), Some(at(7)));
    reg.handle_timeout(at(7));
    let (topic, _) = send(&mut reg).unwrap();
    assert!(topic.contains("?$rid=2&operationId="));

    assert_eq!(
        reg.handle_publish("$dps/registrations/res/200/?$rid=2", ASSIGNED, at(8)),
        Ok(true)
    );
    assert_eq!(
        reg.poll_event(),
        Some(RegistrationEvent::Assigned {
            assigned_hub: "contoso.azure-devices.net",
            device_id: "paho-sample-device1"
        })
    );
    assert_eq!(reg.poll_event(), None, "reported once");
    assert!(reg.outcome().is_some());
    assert_eq!(reg.poll_timeout(), None);
    assert_eq!(send(&mut reg), None);
}

#[test]
fn throttled_register_is_retried_after_retry_after() {
    let mut reg = started();
    send(&mut reg).unwrap();
    assert_eq!(
        reg.handle_publish(
            "$dps/registrations/res/429/?$rid=0&retry-after=10",
            b"",
            at(1)
        ),
        Ok(true)
    );
    assert_eq!(reg.poll_timeout(), Some(at(11)));
    reg.handle_timeout(at(11));
    let (topic, _) = send(&mut reg).unwrap();
    assert_eq!(
        topic, "$dps/registrations/PUT/iotdps-register/?$rid=1",
        "the register request again, new rid"
    );
}

#[test]
fn server_errors_back_off_exponentially() {
    let mut reg = started();
    let mut now = at(0);
    let mut waits = Vec::new();
    for rid in 0..3 {
        send(&mut reg).unwrap();
        let topic = std::format!("$dps/registrations/res/503/?$rid={rid}");
        reg.handle_publish(&topic, br#"{"errorCode":503000,"message":"busy"}"#, now)
            .unwrap();
        let wake = reg.poll_timeout().unwrap();
        waits.push((wake - now).as_secs());
        now = wake;
        reg.handle_timeout(now);
    }
    assert_eq!(waits, [3, 6, 12]);
}

#[test]
fn retries_run_out_into_failure() {
    let mut reg = started().max_retries(1);
    send(&mut reg).unwrap();
    reg.handle_publish("$dps/registrations/res/500/?$rid=0", b"", at(0))
        .unwrap();
    reg.handle_timeout(at(3));
    send(&mut reg).unwrap();
    reg.handle_publish(
        "$dps/registrations/res/500/?$rid=1",
        br#"{"errorCode":500000,"message":"oops"}"#,
        at(4),
    )
    .unwrap();
    assert_eq!(
        reg.poll_event(),
        Some(RegistrationEvent::Failed {
            status: Status(500),
            error_code: Some(500000),
            message: "oops"
        })
    );
}

#[test]
fn unauthorized_fails_with_code_and_message() {
    let mut reg = started();
    send(&mut reg).unwrap();
    let body = br#"{"errorCode":401002,"trackingId":"t","message":"Invalid certificate.","timestampUtc":"2020"}"#;
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/401/?$rid=0", body, at(1)),
        Ok(true)
    );
    assert_eq!(
        reg.poll_event(),
        Some(RegistrationEvent::Failed {
            status: Status(401),
            error_code: Some(401002),
            message: "Invalid certificate."
        })
    );
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn error_without_a_readable_body_still_fails() {
    let mut reg = started();
    send(&mut reg).unwrap();
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/404/?$rid=0", b"not json", at(1)),
        Ok(true)
    );
    assert_eq!(
        reg.poll_event(),
        Some(RegistrationEvent::Failed {
            status: Status(404),
            error_code: None,
            message: ""
        })
    );
}

#[test]
fn disabled_enrollment_is_reported() {
    let mut reg = started();
    send(&mut reg).unwrap();
    let body = br#"{"operationId":"o","status":"disabled","registrationState":{"registrationId":"r","status":"disabled"}}"#;
    reg.handle_publish("$dps/registrations/res/200/?$rid=0", body, at(1))
        .unwrap();
    assert_eq!(reg.poll_event(), Some(RegistrationEvent::Disabled));
}

#[test]
fn failed_assignment_reports_the_registration_state_error() {
    let mut reg = started();
    send(&mut reg).unwrap();
    let body = br#"{"operationId":"o","status":"failed","registrationState":{"status":"failed","errorCode":400209,"errorMessage":"Custom allocation \"failed\""}}"#;
    reg.handle_publish("$dps/registrations/res/200/?$rid=0", body, at(1))
        .unwrap();
    assert_eq!(
        reg.poll_event(),
        Some(RegistrationEvent::Failed {
            status: Status(200),
            error_code: Some(400209),
            message: "Custom allocation \"failed\""
        })
    );
}

#[test]
fn ignores_stale_and_foreign_publishes() {
    let mut reg = started();
    send(&mut reg).unwrap();
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/200/?$rid=7", ASSIGNED, at(1)),
        Ok(false)
    );
    assert_eq!(
        reg.handle_publish("devices/d/messages/devicebound/", b"", at(1)),
        Ok(false)
    );
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/2x/?$rid=0", ASSIGNED, at(1)),
        Err(RegistrationError::Topic(TopicError::Malformed(
            crate::topic::Malformed::InvalidStatus
        )))
    );
    assert_eq!(reg.poll_event(), None);
    // the real answer still counts
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/200/?$rid=0", ASSIGNED, at(2)),
        Ok(true)
    );
    assert!(matches!(
        reg.poll_event(),
        Some(RegistrationEvent::Assigned { .. })
    ));
}

#[test]
fn unreadable_success_body_is_an_error_and_the_request_is_resent() {
    let mut reg = started().response_timeout(Duration::from_secs(5));
    send(&mut reg).unwrap();
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/200/?$rid=0", b"{\"status\":", at(1)),
        Err(RegistrationError::Json(JsonError::Invalid))
    );
    assert_eq!(reg.poll_timeout(), Some(at(5)));
    reg.handle_timeout(at(5));
    assert_eq!(
        send(&mut reg).unwrap().0,
        "$dps/registrations/PUT/iotdps-register/?$rid=1"
    );
}

#[test]
fn unanswered_requests_are_resent_then_time_out() {
    let mut reg = started()
        .response_timeout(Duration::from_secs(10))
        .max_retries(2);
    for rid in 0..3 {
        let (topic, _) = send(&mut reg).unwrap();
        assert!(topic.ends_with(&std::format!("?$rid={rid}")));
        let wake = reg.poll_timeout().unwrap();
        reg.handle_timeout(wake);
    }
    assert_eq!(send(&mut reg), None);
    assert_eq!(reg.poll_event(), Some(RegistrationEvent::TimedOut));
}

#[test]
fn overall_timeout_ends_an_endless_assignment() {
    let mut reg = Registration::new("paho-sample-device1", None).timeout(Duration::from_secs(10));
    reg.start(at(0));
    send(&mut reg).unwrap();
    reg.handle_publish(
        "$dps/registrations/res/202/?$rid=0&retry-after=60",
        ASSIGNING,
        at(1),
    )
    .unwrap();
    assert_eq!(
        reg.poll_timeout(),
        Some(at(10)),
        "the overall deadline comes first"
    );
    reg.handle_timeout(at(10));
    assert_eq!(reg.poll_event(), Some(RegistrationEvent::TimedOut));
}

#[test]
fn small_buffer_keeps_the_request_pending() {
    let mut reg = started();
    let mut small = [0u8; 16];
    let required = reg.poll_transmit(&mut small).unwrap_err().required;
    assert_eq!(
        required,
        "$dps/registrations/PUT/iotdps-register/?$rid=0".len()
            + br#"{"registrationId":"paho-sample-device1"}"#.len()
    );
    let mut exact = std::vec![0u8; required];
    let tx = reg.poll_transmit(&mut exact).unwrap().unwrap();
    assert_eq!(tx.topic, "$dps/registrations/PUT/iotdps-register/?$rid=0");
}

#[test]
fn registration_id_is_json_escaped() {
    let mut reg = Registration::new("we\"ird", Some("{}"));
    reg.start(at(0));
    assert_eq!(
        send(&mut reg).unwrap().1,
        br#"{"registrationId":"we\"ird","payload":{}}"#
    );
}

#[test]
fn operation_id_with_query_syntax_is_refused() {
    let mut reg = started();
    send(&mut reg).unwrap();
    reg.handle_publish(
        "$dps/registrations/res/202/?$rid=0",
        br#"{"operationId":"a&b=c","status":"assigning"}"#,
        at(0),
    )
    .unwrap();
    assert!(matches!(
        reg.poll_event(),
        Some(RegistrationEvent::Failed {
            message: "unusable operationId",
            ..
        })
    ));
}

#[test]
fn restart_ignores_answers_to_the_previous_run() {
    let mut reg = started();
    send(&mut reg).unwrap();
    reg.start(at(5));
    assert_eq!(
        reg.handle_publish("$dps/registrations/res/200/?$rid=0", ASSIGNED, at(5)),
        Ok(false)
    );
    assert_eq!(
        send(&mut reg).unwrap().0,
        "$dps/registrations/PUT/iotdps-register/?$rid=1"
    );
}

#[test]
fn nothing_happens_before_start() {
    let mut reg = Registration::new("r", None);
    assert_eq!(send(&mut reg), None);
    assert_eq!(reg.poll_timeout(), None);
    assert_eq!(reg.poll_event(), None);
}

#[test]
fn assignment_without_hub_fails() {
    let mut reg = started();
    send(&mut reg).unwrap();
    let body = br#"{"status":"assigned","registrationState":{"assignedHub":"","deviceId":"d","status":"assigned"}}"#;
    reg.handle_publish("$dps/registrations/res/200/?$rid=0", body, at(1))
        .unwrap();
    assert!(matches!(
        reg.poll_event(),
        Some(RegistrationEvent::Failed {
            status: Status(200),
            message: "assigned without assignedHub or deviceId",
            ..
        })
    ));
}

proptest::proptest! {
    #[test]
    fn plain_query_values_are_judged_as_by_chars(text in "[a.&=#+/?\\x00-\\x1f\\x7f\\u{80}-\\u{a0}é-]{0,8}") {
        let by_chars = !text.contains(['&', '=', '#', '+', '/', '?']) && !text.chars().any(char::is_control);
        proptest::prop_assert_eq!(is_plain_query_value(&text), by_chars);
    }
}
