//! DPS through the hub's connect and request operations: registration assigns and creates the
//! device, re-registration re-keys it, and registration tokens and times follow the hub's clock.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::*;
use crate::hub::auth::AuthFailure;
use crate::hub::provisioning::{self, Enrollment, EnrollmentKind};
use crate::hub::{ConnectError, DeviceConnection, DpsLogin, Interests};
use crate::mqtt::outgoing;
use crate::store::registry::{self as registry_store, Authentication, IdentityRecord};
use crate::timestamp::iso8601_millis;

/// Creates an individual enrollment for `registration_id` with generated keys; returns the
/// DPS ID scope and the enrollment.
async fn enroll(hub: &Hub, registration_id: &str) -> (String, Enrollment) {
    let (id, now) = (registration_id.to_owned(), hub.now());
    hub.store()
        .call(move |tx| {
            let scope = provisioning::id_scope(tx).unwrap();
            let enrollment = provisioning::create_enrollment(
                tx,
                EnrollmentKind::Individual,
                &id,
                None,
                None,
                now,
            )
            .unwrap();
            Ok((scope, enrollment))
        })
        .await
        .unwrap()
}

/// A registration token over `{scope}/registrations/{id}` with `skn=registration`.
fn registration_token(scope: &str, id: &str, key: &str, se: u64) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    SasToken::sign(
        ResourceUri::dps_registration(scope, id),
        se,
        Some("registration"),
        &signer,
    )
    .unwrap()
    .to_string()
}

async fn connect_dps(
    hub: &Hub,
    scope: &str,
    id: &str,
    password: &str,
) -> Result<DeviceConnection, ConnectError> {
    hub.connect_dps(DpsLogin {
        transport: "mqtt",
        client_id: id,
        id_scope: scope,
        registration_id: id,
        password,
    })
    .await
}

/// The status and JSON body of a DPS answer.
fn dps_answer(message: ToDevice) -> (u16, Option<u32>, Value) {
    match message {
        ToDevice::DpsResponse {
            status,
            retry_after,
            body,
            ..
        } => (status, retry_after, serde_json::from_slice(&body).unwrap()),
        other => panic!("expected a DPS answer, got {other:?}"),
    }
}

/// Registers on `connection` and polls the operation once; returns the poll's answer.
async fn register_and_poll(hub: &Hub, connection: &mut DeviceConnection) -> (u16, Value) {
    let id = connection.connection.identity.device_id.clone();
    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsRegister {
            request_id: "1".into(),
            body: Bytes::from(format!(r#"{{"registrationId":"{id}"}}"#)),
        },
    );
    let (status, _, body) = dps_answer(next(&mut connection.outbound).await);
    assert_eq!(status, 202, "{body}");
    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsPoll {
            request_id: "2".into(),
            operation_id: body["operationId"].as_str().unwrap().to_owned(),
        },
    );
    let (status, _, body) = dps_answer(next(&mut connection.outbound).await);
    (status, body)
}

async fn registry_record(hub: &Hub, id: &str) -> IdentityRecord {
    let id = id.to_owned();
    hub.store()
        .call(move |tx| registry_store::find(tx, &id, None))
        .await
        .unwrap()
        .expect("the device exists")
}

async fn connect_device(hub: &Hub, id: &str, password: &str) -> Result<(), ConnectError> {
    connect_with_sas(hub, id, password)
        .await
        .map(|connection| hub.disconnected(&connection.connection, "mqtt", "test", Duration::ZERO))
}

#[tokio::test]
async fn dps_registration_assigns_and_creates_the_device() {
    let (hub, _) = hub_on_manual_clock();
    let (scope, enrollment) = enroll(&hub, "reg-1").await;
    let refused = connect_dps(
        &hub,
        &scope,
        "reg-1",
        "SharedAccessSignature sr=x&sig=y&se=1",
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ConnectError::Refused(AuthFailure::Registration { ref registration_id, .. }))
                if registration_id == "reg-1"
        ),
        "{refused:?}"
    );

    let password = registration_token(&scope, "reg-1", &enrollment.primary_key, START_SECS + 3600);
    let mut connection = connect_dps(&hub, &scope, "reg-1", &password).await.unwrap();
    assert_eq!(connection.expires_at, None, "DPS connections are not timed");
    hub.interests_changed(&connection.connection, Interests::DPS);
    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsRegister {
            request_id: "1".into(),
            body: Bytes::from_static(br#"{"registrationId":"reg-1"}"#),
        },
    );
    let accepted = next(&mut connection.outbound).await;
    assert_eq!(
        outgoing(accepted.clone()).unwrap().topic,
        "$dps/registrations/res/202/?$rid=1&retry-after=1"
    );
    let (status, retry_after, body) = dps_answer(accepted);
    assert_eq!((status, retry_after), (202, Some(1)));
    assert_eq!(body["status"], "assigning");
    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsPoll {
            request_id: "2".into(),
            operation_id: body["operationId"].as_str().unwrap().to_owned(),
        },
    );
    let done = next(&mut connection.outbound).await;
    assert_eq!(
        outgoing(done.clone()).unwrap().topic,
        "$dps/registrations/res/200/?$rid=2"
    );
    let (_, _, body) = dps_answer(done);
    assert_eq!(body["status"], "assigned");
    assert_eq!(body["registrationState"]["assignedHub"], "localhost");
    assert_eq!(body["registrationState"]["deviceId"], "reg-1");

    let created = registry_record(&hub, "reg-1").await;
    assert_eq!(
        created.authentication,
        Authentication::Sas {
            primary_key: enrollment.primary_key.clone(),
            secondary_key: enrollment.secondary_key.clone(),
        }
    );
    assert_eq!(created.created_ms, unix_millis(start()));
}

#[tokio::test]
async fn dps_re_registration_gives_an_existing_device_the_enrollments_keys() {
    let (hub, _) = hub_on_manual_clock();
    let (old_primary, old_secondary) = create_device(&hub, "reg-2").await;
    let old_token = device_token("reg-2", &old_primary, START_SECS + 3600);
    connect_device(&hub, "reg-2", &old_token).await.unwrap();
    let before = registry_record(&hub, "reg-2").await;

    let (scope, enrollment) = enroll(&hub, "reg-2").await;
    assert_ne!(enrollment.primary_key, old_primary);
    assert_ne!(enrollment.secondary_key, old_secondary);
    let password = registration_token(&scope, "reg-2", &enrollment.primary_key, START_SECS + 3600);
    let mut connection = connect_dps(&hub, &scope, "reg-2", &password).await.unwrap();
    let (status, body) = register_and_poll(&hub, &mut connection).await;
    assert_eq!((status, &body["status"]), (200, &Value::from("assigned")));

    let after = registry_record(&hub, "reg-2").await;
    assert_eq!(
        after.authentication,
        Authentication::Sas {
            primary_key: enrollment.primary_key.clone(),
            secondary_key: enrollment.secondary_key.clone(),
        },
        "re-registration must re-key the device"
    );
    assert_eq!(
        (&after.generation_id, after.created_ms, after.status),
        (&before.generation_id, before.created_ms, before.status),
        "the same device, not a new one"
    );
    // What the re-key is for: the key the device was provisioned with works at the hub, the
    // old one no longer does.
    let new_token = device_token("reg-2", &enrollment.secondary_key, START_SECS + 3600);
    connect_device(&hub, "reg-2", &new_token).await.unwrap();
    let refused = connect_device(&hub, "reg-2", &old_token).await;
    assert!(
        matches!(
            refused,
            Err(ConnectError::Refused(AuthFailure::SignatureMismatch(_)))
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn dps_registration_tokens_expire_on_the_hub_clock() {
    let (hub, clock) = hub_on_manual_clock();
    let (scope, enrollment) = enroll(&hub, "reg-3").await;
    let se = START_SECS + 60;
    let password = registration_token(&scope, "reg-3", &enrollment.primary_key, se);
    connect_dps(&hub, &scope, "reg-3", &password).await.unwrap();
    // 300 s of skew are allowed past `se`, up to and including se + 300.
    clock.advance(Duration::from_secs(360));
    connect_dps(&hub, &scope, "reg-3", &password).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let refused = connect_dps(&hub, &scope, "reg-3", &password).await;
    assert!(
        matches!(
            refused,
            Err(ConnectError::Refused(AuthFailure::Registration { ref reason, .. }))
                if reason.contains("expired")
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn dps_registration_times_come_from_the_hub_clock() {
    let (hub, clock) = hub_on_manual_clock();
    let (scope, enrollment) = enroll(&hub, "reg-4").await;
    let password = registration_token(&scope, "reg-4", &enrollment.primary_key, START_SECS + 3600);
    let mut connection = connect_dps(&hub, &scope, "reg-4", &password).await.unwrap();
    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsRegister {
            request_id: "1".into(),
            body: Bytes::from_static(br#"{"registrationId":"reg-4"}"#),
        },
    );
    let (_, _, accepted) = dps_answer(next(&mut connection.outbound).await);
    clock.advance(Duration::from_secs(5));
    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsPoll {
            request_id: "2".into(),
            operation_id: accepted["operationId"].as_str().unwrap().to_owned(),
        },
    );
    let (status, _, body) = dps_answer(next(&mut connection.outbound).await);
    assert_eq!(status, 200);
    let state = &body["registrationState"];
    // Assigned when it registered (the first poll already answers 200), not when polled.
    assert_eq!(state["createdDateTimeUtc"], iso8601_millis(start()));
    assert_eq!(state["lastUpdatedDateTimeUtc"], iso8601_millis(start()));

    hub.device_request(
        &connection.connection,
        DeviceRequest::DpsPoll {
            request_id: "3".into(),
            operation_id: "4.0000000000000000.unknown".into(),
        },
    );
    let (status, _, body) = dps_answer(next(&mut connection.outbound).await);
    assert_eq!((status, &body["errorCode"]), (404, &Value::from(404_006)));
    assert_eq!(
        body["timestampUtc"],
        iso8601_millis(start() + Duration::from_secs(5))
    );
}
