extern crate std;
use std::string::ToString;

use super::*;

/// docs/protocol.md §9, final `RegistrationOperationStatus`.
const ASSIGNED: &[u8] = br#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b-0000","status":"assigned","registrationState":{"x509":{},"registrationId":"paho-sample-device1",
 "createdDateTimeUtc":"2020-04-10T03:11:13.0276997Z","assignedHub":"contoso.azure-devices.net",
 "deviceId":"paho-sample-device1","status":"assigned","substatus":"initialAssignment",
 "lastUpdatedDateTimeUtc":"2020-04-10T03:11:13.2096201Z","etag":"IjYx"}}"#;

#[test]
fn reads_the_assigned_registration() {
    let body = DpsBody::parse(ASSIGNED).unwrap();
    assert_eq!(body.status, Some(RegistrationStatus::Assigned));
    assert!(
        body.assigned_hub
            .unwrap()
            .eq_str("contoso.azure-devices.net")
    );
    assert!(body.device_id.unwrap().eq_str("paho-sample-device1"));
    assert!(body.substatus.unwrap().eq_str("initialAssignment"));
    assert_eq!(body.error_code, None);
}

#[test]
fn reads_the_error_body() {
    let body =
        br#"{"errorCode":401002,"trackingId":"t","message":"Invalid certificate.","timestampUtc":"2020-04-10"}"#;
    let body = DpsBody::parse(body).unwrap();
    assert_eq!(body.error_code, Some(401002));
    assert!(body.message.unwrap().eq_str("Invalid certificate."));
    assert_eq!(body.status, None);
}

#[test]
fn reads_a_failed_registration_state() {
    let body = br#"{"operationId":"o","status":"failed","registrationState":{"registrationId":"r","status":"failed","errorCode":400209,"errorMessage":"Custom allocation failed with status code: 400"}}"#;
    let body = DpsBody::parse(body).unwrap();
    assert_eq!(body.status, Some(RegistrationStatus::Failed));
    assert_eq!(body.error_code, Some(400209));
    assert!(
        body.message
            .unwrap()
            .eq_str("Custom allocation failed with status code: 400")
    );
}

#[test]
fn escaped_strings_stay_raw_until_unescaped() {
    let body = DpsBody::parse(br#"{"message":"a \"quoted\" \u00e9"}"#).unwrap();
    let message = body.message.unwrap();
    assert_eq!(message.raw(), r#"a \"quoted\" \u00e9"#);
    assert!(message.eq_str("a \"quoted\" é"));
    assert!(!message.eq_str("a \"quoted\" "));
    let mut small = [0u8; 4];
    assert_eq!(
        message.unescape_into(&mut small),
        Err(JsonError::BufferTooSmall(BufferTooSmall { required: 13 }))
    );
}

#[test]
fn rejects_what_is_not_an_object() {
    assert_eq!(DpsBody::parse(b"[1,2]"), Err(JsonError::Invalid));
    assert_eq!(
        desired_version(b"{\"$version\":\"3\"}"),
        Err(JsonError::Invalid)
    );
    assert_eq!(twin_versions(b"{"), Err(JsonError::Invalid));
}

#[test]
fn null_members_read_as_absent() {
    let body = DpsBody::parse(
        br#"{"status":null,"registrationState":{"status":"assigned"},"message":null}"#,
    )
    .unwrap();
    assert_eq!(body.status, Some(RegistrationStatus::Assigned));
    assert_eq!(body.message, None);
    assert_eq!(
        DpsBody::parse(br#"{"registrationState":null}"#),
        Ok(DpsBody::default())
    );
    assert_eq!(
        twin_versions(br#"{"desired":null,"reported":{"$version":null}}"#),
        Ok((None, None))
    );
}

#[test]
fn rejects_members_of_the_wrong_type_or_range() {
    assert_eq!(DpsBody::parse(br#"{"status":5}"#), Err(JsonError::Invalid));
    assert_eq!(
        DpsBody::parse(br#"{"registrationState":"x"}"#),
        Err(JsonError::Invalid)
    );
    assert_eq!(
        DpsBody::parse(br#"{"errorCode":4294967296}"#),
        Err(JsonError::Invalid)
    );
    assert_eq!(
        DpsBody::parse(br#"{"errorCode":-1}"#),
        Err(JsonError::Invalid)
    );
    assert_eq!(
        desired_version(br#"{"$version":3.0}"#),
        Err(JsonError::Invalid)
    );
    assert_eq!(
        desired_version(br#"{"$version":18446744073709551616}"#),
        Err(JsonError::Invalid)
    );
    assert_eq!(
        desired_version(br#"{"$version":18446744073709551615}"#),
        Ok(Some(u64::MAX))
    );
    assert_eq!(twin_versions(br#"{"desired":[]}"#), Err(JsonError::Invalid));
}

#[test]
fn rejects_a_repeated_member_the_protocol_reads() {
    assert_eq!(
        DpsBody::parse(br#"{"status":"assigned","status":"failed"}"#),
        Err(JsonError::Invalid)
    );
    assert_eq!(
        desired_version(br#"{"$version":1,"$version":2}"#),
        Err(JsonError::Invalid)
    );
    // members nobody reads may repeat
    assert_eq!(
        desired_version(br#"{"a":1,"a":2,"$version":2}"#),
        Ok(Some(2))
    );
}

#[test]
fn rejects_malformed_payloads_with_typed_errors() {
    for bad in [
        &br#"{"status":"assigned"} x"#[..],
        br#"{"status":"assigned",}"#,
        br#"{"a":tru}"#,
        br#"{"a":01}"#,
        b"{\"a\":\"\xff\"}",
        br#"{"a" "b"}"#,
        b"",
    ] {
        assert_eq!(desired_version(bad), Err(JsonError::Invalid), "{bad:?}");
    }
    let deep = [&br#"{"a":"#[..]; 70].concat();
    assert_eq!(desired_version(&deep), Err(JsonError::TooDeep));
}

#[test]
fn unescapes_surrogate_pairs_and_refuses_lone_surrogates() {
    let mut buf = [0u8; 8];
    assert_eq!(
        JsonText::new(r"\ud83d\ude00!").unescape_into(&mut buf),
        Ok("😀!")
    );
    for lone in [r"\ud83d", r"\ude00", r"\ud83dx", r"\u12g4"] {
        assert_eq!(
            JsonText::new(lone).unescape_into(&mut buf),
            Err(JsonError::InvalidEscape)
        );
    }
    assert_eq!(JsonText::new(r"\u00E9\/").unescape_into(&mut buf), Ok("é/"));
    assert_eq!(JsonText::new(r"a\qb").to_string(), "a\u{FFFD}");
    assert!(!JsonText::new(r"\x").eq_str(r"\x"));
}

#[test]
fn unknown_status_values_are_kept_as_unknown() {
    let body = DpsBody::parse(br#"{"status":"migrating"}"#).unwrap();
    assert_eq!(body.status, Some(RegistrationStatus::Unknown));
}
