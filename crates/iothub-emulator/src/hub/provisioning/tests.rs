use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rusqlite::Connection;

use super::*;

const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
const VECTOR7_ID: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
const VECTOR7_KEY: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(sql::SCHEMA).unwrap();
    conn
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn token(
    scope: &str,
    registration_id: &str,
    key: &str,
    expiry: SystemTime,
    policy: Option<&str>,
) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    let se = expiry.duration_since(UNIX_EPOCH).unwrap().as_secs();
    SasToken::sign(
        ResourceUri::dps_registration(scope, registration_id),
        se,
        policy,
        &signer,
    )
    .unwrap()
    .to_string()
}

fn config() -> DpsConfig {
    DpsConfig {
        assigned_hub: "localhost".into(),
        retry_after_secs: 1,
    }
}

fn json_body(reply: &DpsReply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

/// Records what the registrar was asked to create.
#[derive(Default)]
struct Registry(Vec<ProvisionedDevice>);

impl DeviceRegistrar for Registry {
    fn provision(&mut self, _: &Connection, device: &ProvisionedDevice) -> Result<(), String> {
        self.0.push(device.clone());
        Ok(())
    }
}

#[test]
fn id_scope_is_generated_once_in_the_documented_shape() {
    let conn = db();
    let scope = id_scope(&conn).unwrap();
    assert_eq!(scope.len(), 11);
    assert!(scope.starts_with("0ne"));
    assert!(
        scope[3..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    );
    assert_eq!(id_scope(&conn).unwrap(), scope);
}

#[test]
fn enrollment_crud_validates_ids_and_keys() {
    let conn = db();
    let e = create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        Some("cGFzc3dvcmRwYXNzd29yZA=="),
        None,
        at(0),
    )
    .unwrap();
    assert_eq!(e.primary_key, "cGFzc3dvcmRwYXNzd29yZA==");
    assert!(matches!(
        create_enrollment(
            &conn,
            EnrollmentKind::Individual,
            "DEV-1",
            None,
            None,
            at(0)
        ),
        Err(DpsError::AlreadyExists)
    ));
    for bad_id in ["", "-lead", "trail-", "has space", "x".repeat(129).as_str()] {
        assert!(
            matches!(
                create_enrollment(&conn, EnrollmentKind::Individual, bad_id, None, None, at(0)),
                Err(DpsError::InvalidId)
            ),
            "{bad_id}"
        );
    }
    for bad_key in ["not base64!", "c2hvcnQ="] {
        assert!(matches!(
            create_enrollment(
                &conn,
                EnrollmentKind::Group,
                "g1",
                Some(bad_key),
                None,
                at(0)
            ),
            Err(DpsError::InvalidKey)
        ));
    }
    create_enrollment(&conn, EnrollmentKind::Group, "g1", None, None, at(0)).unwrap();
    assert_eq!(
        enrollments(&conn, EnrollmentKind::Individual)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(enrollments(&conn, EnrollmentKind::Group).unwrap().len(), 1);
    set_enrollment_enabled(&conn, EnrollmentKind::Group, "g1", false, at(1)).unwrap();
    assert!(
        !enrollment(&conn, EnrollmentKind::Group, "g1")
            .unwrap()
            .unwrap()
            .enabled
    );
    delete_enrollment(&conn, EnrollmentKind::Individual, "dev-1").unwrap();
    assert!(matches!(
        delete_enrollment(&conn, EnrollmentKind::Individual, "dev-1"),
        Err(DpsError::NotFound)
    ));
}

#[test]
fn group_members_derive_their_key_with_the_documented_vector() {
    assert_eq!(
        derived_device_key(GROUP_KEY, VECTOR7_ID).unwrap(),
        VECTOR7_KEY
    );
}

#[test]
fn individual_enrollment_authenticates_with_either_key() {
    let conn = db();
    let scope = id_scope(&conn).unwrap();
    let e = create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    for key in [&e.primary_key, &e.secondary_key] {
        let password = token(&scope, "dev-1", key, at(3600), Some("registration"));
        let att = authenticate_registration(&conn, &scope, "dev-1", &password, at(0)).unwrap();
        assert_eq!(
            att,
            Attestation {
                registration_id: "dev-1".into(),
                group_id: None
            }
        );
    }
}

#[test]
fn group_enrollment_authenticates_members_with_derived_keys() {
    let conn = db();
    let scope = id_scope(&conn).unwrap();
    create_enrollment(
        &conn,
        EnrollmentKind::Group,
        "fleet",
        Some(GROUP_KEY),
        None,
        at(0),
    )
    .unwrap();
    let password = token(
        &scope,
        VECTOR7_ID,
        VECTOR7_KEY,
        at(3600),
        Some("registration"),
    );
    let att = authenticate_registration(&conn, &scope, VECTOR7_ID, &password, at(0)).unwrap();
    assert_eq!(att.group_id.as_deref(), Some("fleet"));
    // the group key itself is not a device key
    let password = token(
        &scope,
        VECTOR7_ID,
        GROUP_KEY,
        at(3600),
        Some("registration"),
    );
    assert_eq!(
        authenticate_registration(&conn, &scope, VECTOR7_ID, &password, at(0)),
        Err(DpsAuthError::UnknownRegistration)
    );
}

#[test]
fn bad_registration_credentials_are_refused() {
    let conn = db();
    let scope = id_scope(&conn).unwrap();
    let e = create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    let other = create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-2",
        None,
        None,
        at(0),
    )
    .unwrap();
    let good = |id: &str, key: &str| token(&scope, id, key, at(3600), Some("registration"));
    let cases: Vec<(&str, &str, String, SystemTime, DpsAuthError)> = vec![
        (
            "wrong scope",
            "0ne00000000",
            good("dev-1", &e.primary_key),
            at(0),
            DpsAuthError::OutOfScope,
        ),
        (
            "not a token",
            &scope,
            "password".into(),
            at(0),
            DpsAuthError::MalformedToken,
        ),
        (
            "other policy",
            &scope,
            token(&scope, "dev-1", &e.primary_key, at(3600), Some("device")),
            at(0),
            DpsAuthError::OutOfScope,
        ),
        (
            "token for another registration",
            &scope,
            good("dev-2", &e.primary_key),
            at(0),
            DpsAuthError::OutOfScope,
        ),
        (
            "expired beyond skew",
            &scope,
            good("dev-1", &e.primary_key),
            at(3600 + 301),
            DpsAuthError::Expired,
        ),
        (
            "another enrollment's key",
            &scope,
            good("dev-1", &other.primary_key),
            at(0),
            DpsAuthError::SignatureMismatch,
        ),
        (
            "unknown registration",
            &scope,
            good("dev-9", &e.primary_key),
            at(0),
            DpsAuthError::UnknownRegistration,
        ),
    ];
    for (name, scope_given, password, now, expected) in cases {
        let registration = if name == "unknown registration" {
            "dev-9"
        } else {
            "dev-1"
        };
        assert_eq!(
            authenticate_registration(&conn, scope_given, registration, &password, now),
            Err(expected),
            "{name}"
        );
    }
    // within the skew allowance is fine
    assert!(
        authenticate_registration(
            &conn,
            &scope,
            "dev-1",
            &good("dev-1", &e.primary_key),
            at(3600 + 300)
        )
        .is_ok()
    );
}

#[test]
fn register_then_poll_assigns_the_device_to_this_hub() {
    let conn = db();
    create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        Some("cGFzc3dvcmRwYXNzd29yZA=="),
        None,
        at(0),
    )
    .unwrap();
    let att = Attestation {
        registration_id: "dev-1".into(),
        group_id: None,
    };
    let mut registry = Registry::default();
    let reply = handle_register(
        &conn,
        &att,
        br#"{"registrationId":"dev-1"}"#,
        &config(),
        &mut registry,
        at(10),
    )
    .unwrap();
    assert_eq!((reply.status, reply.retry_after), (202, Some(1)));
    let body = json_body(&reply);
    assert_eq!(body["status"], "assigning");
    let operation_id = body["operationId"].as_str().unwrap().to_owned();
    assert!(operation_id.starts_with("4."));
    assert_eq!(registry.0.len(), 1);
    assert_eq!(registry.0[0].device_id, "dev-1");
    assert_eq!(registry.0[0].primary_key, "cGFzc3dvcmRwYXNzd29yZA==");

    let status = handle_operation_status(&conn, &att, &operation_id, at(11)).unwrap();
    assert_eq!((status.status, status.retry_after), (200, None));
    let body = json_body(&status);
    assert_eq!(body["operationId"], operation_id.as_str());
    assert_eq!(body["status"], "assigned");
    let state = &body["registrationState"];
    assert_eq!(state["registrationId"], "dev-1");
    assert_eq!(state["assignedHub"], "localhost");
    assert_eq!(state["deviceId"], "dev-1");
    assert_eq!(state["status"], "assigned");
    assert_eq!(state["substatus"], "initialAssignment");
    assert_eq!(state["createdDateTimeUtc"], "2027-01-15T08:00:10.000Z");
    assert!(state["etag"].is_string());

    let unknown = handle_operation_status(&conn, &att, "4.nope", at(12)).unwrap();
    assert_eq!(unknown.status, 404);
    assert_eq!(json_body(&unknown)["errorCode"], 404_006);
}

#[test]
fn group_registration_creates_the_device_with_derived_keys() {
    let conn = db();
    create_enrollment(
        &conn,
        EnrollmentKind::Group,
        "fleet",
        Some(GROUP_KEY),
        None,
        at(0),
    )
    .unwrap();
    let att = Attestation {
        registration_id: VECTOR7_ID.into(),
        group_id: Some("fleet".into()),
    };
    let mut registry = Registry::default();
    let body = format!(
        r#"{{"registrationId":"{VECTOR7_ID}","payload":{{"modelId":"dtmi:com:example:Thermostat;1"}}}}"#
    );
    let reply = handle_register(
        &conn,
        &att,
        body.as_bytes(),
        &config(),
        &mut registry,
        at(0),
    )
    .unwrap();
    assert_eq!(reply.status, 202);
    assert_eq!(registry.0[0].primary_key, VECTOR7_KEY);
    assert_ne!(registry.0[0].secondary_key, VECTOR7_KEY);
}

#[test]
fn disabled_enrollments_end_disabled_without_creating_a_device() {
    let conn = db();
    create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    set_enrollment_enabled(&conn, EnrollmentKind::Individual, "dev-1", false, at(0)).unwrap();
    let att = Attestation {
        registration_id: "dev-1".into(),
        group_id: None,
    };
    let mut registry = Registry::default();
    let reply = handle_register(
        &conn,
        &att,
        br#"{"registrationId":"dev-1"}"#,
        &config(),
        &mut registry,
        at(0),
    )
    .unwrap();
    let op = json_body(&reply)["operationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(registry.0.is_empty());
    let body = json_body(&handle_operation_status(&conn, &att, &op, at(1)).unwrap());
    assert_eq!(body["status"], "disabled");
    assert_eq!(body["registrationState"]["status"], "disabled");
    assert!(body["registrationState"].get("assignedHub").is_none());
}

#[test]
fn registrar_failure_ends_failed_with_the_error() {
    let conn = db();
    create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    let att = Attestation {
        registration_id: "dev-1".into(),
        group_id: None,
    };
    let mut failing =
        |_: &Connection, _: &ProvisionedDevice| Err::<(), _>("registry full".to_owned());
    let reply = handle_register(
        &conn,
        &att,
        br#"{"registrationId":"dev-1"}"#,
        &config(),
        &mut failing,
        at(0),
    )
    .unwrap();
    let op = json_body(&reply)["operationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json_body(&handle_operation_status(&conn, &att, &op, at(1)).unwrap());
    assert_eq!(body["status"], "failed");
    assert_eq!(body["registrationState"]["errorMessage"], "registry full");
    assert_eq!(body["registrationState"]["errorCode"], 500_000);
}

#[test]
fn register_rejects_bad_bodies_and_foreign_registration_ids() {
    let conn = db();
    create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    let att = Attestation {
        registration_id: "dev-1".into(),
        group_id: None,
    };
    let mut registry = Registry::default();
    let bad = handle_register(&conn, &att, b"not json", &config(), &mut registry, at(0)).unwrap();
    assert_eq!(bad.status, 400);
    let foreign = handle_register(
        &conn,
        &att,
        br#"{"registrationId":"dev-2"}"#,
        &config(),
        &mut registry,
        at(0),
    )
    .unwrap();
    assert_eq!(foreign.status, 401);
    let body = json_body(&foreign);
    assert_eq!(body["errorCode"], 401_002);
    assert_eq!(body["timestampUtc"], "2027-01-15T08:00:00.000Z");
    assert!(body["trackingId"].is_string());
    // a deleted enrollment between CONNECT and register is unauthorized too
    delete_enrollment(&conn, EnrollmentKind::Individual, "dev-1").unwrap();
    let gone = handle_register(
        &conn,
        &att,
        br#"{"registrationId":"dev-1"}"#,
        &config(),
        &mut registry,
        at(0),
    )
    .unwrap();
    assert_eq!(gone.status, 401);
    assert!(registry.0.is_empty());
}

#[test]
fn a_new_registration_replaces_the_previous_operation() {
    let conn = db();
    create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    let att = Attestation {
        registration_id: "dev-1".into(),
        group_id: None,
    };
    let mut registry = Registry::default();
    let first = handle_register(&conn, &att, b"{}", &config(), &mut registry, at(0)).unwrap();
    let second = handle_register(&conn, &att, b"{}", &config(), &mut registry, at(5)).unwrap();
    let first_op = json_body(&first)["operationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_op = json_body(&second)["operationId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first_op, second_op);
    assert_eq!(
        handle_operation_status(&conn, &att, &first_op, at(6))
            .unwrap()
            .status,
        404
    );
    let body = json_body(&handle_operation_status(&conn, &att, &second_op, at(6)).unwrap());
    assert_eq!(
        body["registrationState"]["createdDateTimeUtc"],
        "2027-01-15T08:00:00.000Z"
    );
    assert_eq!(
        body["registrationState"]["lastUpdatedDateTimeUtc"],
        "2027-01-15T08:00:05.000Z"
    );
}

#[test]
fn tokens_without_a_key_name_are_accepted_as_the_python_sdk_sends_them() {
    // azure-iot-device's ProvisioningDeviceClient signs `{scope}/registrations/{id}` with no
    // `skn`; azure-sdk-for-c adds `skn=registration`. Both must work (the Python SDK case is
    // exercised end to end by tests/interop/test_device_clients.py).
    let conn = db();
    let scope = id_scope(&conn).unwrap();
    let e = create_enrollment(
        &conn,
        EnrollmentKind::Individual,
        "dev-1",
        None,
        None,
        at(0),
    )
    .unwrap();
    create_enrollment(
        &conn,
        EnrollmentKind::Group,
        "fleet",
        Some(GROUP_KEY),
        None,
        at(0),
    )
    .unwrap();
    for policy in [None, Some("registration")] {
        let password = token(&scope, "dev-1", &e.primary_key, at(3600), policy);
        assert!(
            authenticate_registration(&conn, &scope, "dev-1", &password, at(0)).is_ok(),
            "{policy:?}"
        );
        let password = token(&scope, VECTOR7_ID, VECTOR7_KEY, at(3600), policy);
        let att = authenticate_registration(&conn, &scope, VECTOR7_ID, &password, at(0)).unwrap();
        assert_eq!(att.group_id.as_deref(), Some("fleet"), "{policy:?}");
    }
    // a keyless token still has to be signed with the right key
    let password = token(&scope, "dev-1", GROUP_KEY, at(3600), None);
    assert_eq!(
        authenticate_registration(&conn, &scope, "dev-1", &password, at(0)),
        Err(DpsAuthError::SignatureMismatch)
    );
}
