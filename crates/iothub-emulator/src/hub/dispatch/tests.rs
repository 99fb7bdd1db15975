use std::time::Duration;

use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::hub::c2d::AckMode;
use crate::hub::provisioning::EnrollmentKind;
use crate::mqtt::Feeds;
use crate::store::Store;
use crate::store::registry as registry_sql;

fn setup() -> (Hub, Domains) {
    let hub = Hub::new(Store::open_in_memory().unwrap(), vec!["localhost".into()]);
    let domains = Domains::new(
        hub.clone(),
        DpsConfig {
            assigned_hub: "localhost".into(),
            retry_after_secs: 1,
        },
    );
    (hub, domains)
}

fn device(id: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: None,
    }
}

/// Attaches a fake connection subscribed to `feeds`; returns its id and outbound queue.
fn connect(
    hub: &Hub,
    domains: &Domains,
    identity: &Identity,
    feeds: Feeds,
) -> (u64, UnboundedReceiver<Outbound>) {
    let (id, rx) = hub.attach(identity);
    hub.set_feeds(identity, feeds);
    domains.subscribed(identity, id);
    (id, rx)
}

async fn next(rx: &mut UnboundedReceiver<Outbound>) -> (String, Vec<u8>, QoS, Option<String>) {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Outbound::Publish {
            topic,
            payload,
            qos,
            tag,
        })) => (topic, payload.to_vec(), qos, tag),
        other => panic!("expected a publish, got {other:?}"),
    }
}

async fn next_redelivery(rx: &mut UnboundedReceiver<Outbound>) -> (String, Option<String>) {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Outbound::Redelivery { topic, tag, .. })) => (topic, tag),
        other => panic!("expected a redelivery, got {other:?}"),
    }
}

#[tokio::test]
async fn twin_requests_are_answered_on_the_connection_as_in_the_seed_trace() {
    let (hub, domains) = setup();
    let dev = device("dev1");
    let (conn, mut rx) = connect(&hub, &domains, &dev, Feeds::TWIN_RESPONSES);
    let patch = Inbound::ReportedPatch {
        rid: "0".into(),
        body: Bytes::from_static(br#"{"temperature":32}"#),
    };
    domains.inbound(&dev, conn, patch);
    let (topic, body, qos, _) = next(&mut rx).await;
    assert_eq!(topic, "$iothub/twin/res/204/?$rid=0&$version=2");
    assert!(body.is_empty());
    assert_eq!(qos, QoS::AtMostOnce);
    domains.inbound(&dev, conn, Inbound::TwinGet { rid: "1".into() });
    let (topic, body, _, _) = next(&mut rx).await;
    assert_eq!(topic, "$iothub/twin/res/200/?$rid=1");
    assert_eq!(
        body,
        br#"{"desired":{"$version":1},"reported":{"temperature":32,"$version":2}}"#
    );
}

#[tokio::test]
async fn desired_changes_reach_only_subscribed_devices() {
    let (hub, domains) = setup();
    let dev = device("dev1");
    let (_, mut rx) = connect(&hub, &domains, &dev, Feeds::DESIRED);
    let body = json!({"properties": {"desired": {"targetTemperature": 23}}});
    let update = domains.patch_twin(&dev, body.clone(), None).await.unwrap();
    assert_eq!(update.twin.desired.version, 2);
    let (topic, payload, _, _) = next(&mut rx).await;
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
    assert_eq!(payload, br#"{"targetTemperature":23,"$version":2}"#);

    let quiet = device("dev2");
    let (_, mut quiet_rx) = connect(&hub, &domains, &quiet, Feeds::TWIN_RESPONSES);
    domains.patch_twin(&quiet, body, None).await.unwrap();
    assert!(
        quiet_rx.try_recv().is_err(),
        "not subscribed to desired patches"
    );
    let err = domains
        .patch_twin(&dev, json!({"tags": {}}), Some("\"AAAAAAAAAAA=\"".into()))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DomainError::Twin(TwinError::PreconditionFailed)
    ));
}

#[tokio::test]
async fn c2d_is_delivered_completed_by_ack_and_redelivered_after_a_reconnect() {
    let (hub, domains) = setup();
    let dev = device("dev3");
    let message = |mid: &str| OutgoingMessage {
        body: b"hello".to_vec(),
        message_id: Some(mid.into()),
        ack: AckMode::Full,
        ..Default::default()
    };
    // queued while offline
    domains.send_c2d(&dev, message("m1")).await.unwrap();
    let (conn, mut rx) = connect(&hub, &domains, &dev, Feeds::C2D);
    let (topic, payload, qos, tag) = next(&mut rx).await;
    assert!(
        topic.starts_with("devices/dev3/messages/devicebound/%24.mid=m1&"),
        "{topic}"
    );
    assert_eq!((payload.as_slice(), qos), (&b"hello"[..], QoS::AtLeastOnce));
    // not acknowledged: the connection drops, the next one gets it again
    domains.closed(&dev, conn);
    // let the release task submit its job, then wait behind it (the store runs jobs in order)
    tokio::task::yield_now().await;
    hub.store().call(|_| Ok(())).await.unwrap();
    hub.detach(&dev, conn);
    let (_, mut rx) = connect(&hub, &domains, &dev, Feeds::C2D);
    let (topic_again, again) = next_redelivery(&mut rx).await;
    assert_eq!((topic_again.as_str(), &again), (topic.as_str(), &tag));
    domains.acked(&dev, again.as_deref().unwrap());
    // a message sent while connected goes out at once
    domains.send_c2d(&dev, message("m2")).await.unwrap();
    let (topic, _, _, _) = next(&mut rx).await;
    assert!(topic.contains("%24.mid=m2&"));
    // the completion runs in the background: wait for its feedback record
    let mut feedback = Vec::new();
    for _ in 0..100 {
        feedback = hub
            .store()
            .call(|tx| Ok(c2d::take_feedback(tx, 10)))
            .await
            .unwrap()
            .unwrap();
        if !feedback.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(feedback.len(), 1);
    assert_eq!(
        (
            feedback[0].original_message_id.as_str(),
            feedback[0].status_code.as_str()
        ),
        ("m1", "Success")
    );
}

#[tokio::test]
async fn method_calls_round_trip_through_the_connection() {
    let (hub, domains) = setup();
    let dev = device("dev1");
    let err = domains
        .invoke_method(
            &dev,
            MethodCall::new(
                "reboot",
                b"null".to_vec(),
                Duration::from_secs(5),
                Duration::ZERO,
            )
            .unwrap(),
        )
        .await;
    assert_eq!(err, Err(MethodError::DeviceNotOnline));
    let (conn, mut rx) = connect(&hub, &domains, &dev, Feeds::METHODS);
    let call = MethodCall::new(
        "getMaxMinReport",
        br#"{"since":"2026-01-01"}"#.to_vec(),
        Duration::from_secs(30),
        Duration::ZERO,
    )
    .unwrap();
    let invocation = {
        let (domains, dev) = (domains.clone(), dev.clone());
        tokio::spawn(async move { domains.invoke_method(&dev, call).await })
    };
    let (topic, payload, qos, _) = next(&mut rx).await;
    assert_eq!(topic, "$iothub/methods/POST/getMaxMinReport/?$rid=1");
    assert_eq!(payload, br#"{"since":"2026-01-01"}"#);
    assert_eq!(qos, QoS::AtMostOnce);
    domains.inbound(
        &dev,
        conn,
        Inbound::MethodResponse {
            rid: "1".into(),
            status: 200,
            body: Bytes::from_static(br#"{"max":30}"#),
        },
    );
    let result = invocation.await.unwrap().unwrap();
    assert_eq!(
        result.to_json(),
        json!({"status": 200, "payload": {"max": 30}})
    );
}

#[tokio::test]
async fn dps_registration_assigns_and_creates_the_device() {
    let (hub, domains) = setup();
    let (scope, key) = hub
        .store()
        .call(|tx| {
            let scope = provisioning::id_scope(tx).unwrap();
            let e = provisioning::create_enrollment(
                tx,
                EnrollmentKind::Individual,
                "reg-1",
                None,
                None,
                SystemTime::now(),
            )
            .unwrap();
            Ok((scope, e.primary_key))
        })
        .await
        .unwrap();
    let signer = HmacSha256Signer::from_base64(&key).unwrap();
    let se = crate::hub::timestamp::unix_millis(SystemTime::now()) as u64 / 1000 + 3600;
    let password = SasToken::sign(
        ResourceUri::dps_registration(&scope, "reg-1"),
        se,
        Some("registration"),
        &signer,
    )
    .unwrap()
    .to_string();
    let att = domains
        .authenticate_dps(&scope, "reg-1", &password)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(att.group_id, None);
    assert!(
        domains
            .authenticate_dps(&scope, "reg-1", "SharedAccessSignature sr=x&sig=y&se=1")
            .await
            .unwrap()
            .is_err()
    );

    let reg = device("reg-1");
    let (conn, mut rx) = connect(&hub, &domains, &reg, Feeds::DPS);
    domains.inbound(
        &reg,
        conn,
        Inbound::DpsRegister {
            rid: "1".into(),
            body: Bytes::from_static(br#"{"registrationId":"reg-1"}"#),
        },
    );
    let (topic, body, _, _) = next(&mut rx).await;
    assert_eq!(topic, "$dps/registrations/res/202/?$rid=1&retry-after=1");
    let body: Value = serde_json::from_slice(&body).unwrap();
    let operation_id = body["operationId"].as_str().unwrap().to_owned();
    domains.inbound(
        &reg,
        conn,
        Inbound::DpsPoll {
            rid: "2".into(),
            operation_id,
        },
    );
    let (topic, body, _, _) = next(&mut rx).await;
    assert_eq!(topic, "$dps/registrations/res/200/?$rid=2");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["registrationState"]["assignedHub"], "localhost");
    let created = hub
        .store()
        .call(|tx| registry_sql::find(tx, "reg-1", None))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(created.authentication, registry_sql::Authentication::Sas { ref primary_key, .. } if *primary_key == key)
    );
}
