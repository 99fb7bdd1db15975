//! Cloud-to-device over AMQP (docs/amqp.md "Cloud-to-device", "Feedback"): the service SDKs'
//! path into the same queue the devices read, its refusals, and delivery feedback.

use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition, LinkError};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::Binary;
use iothub_emulator::testing::TestHub;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::amqp_support::*;
use crate::support::{device_token, key_of, now, username};

fn c2d(to: &str, id: &str, body: &[u8], ack: Option<&str>) -> Message<Data> {
    let mut app = ApplicationProperties::builder().insert("color", "red");
    if let Some(a) = ack {
        app = app.insert("iothub-ack", a);
    }
    Message::builder()
        .properties(
            Properties::builder()
                .message_id(MessageId::String(id.into()))
                .to(to)
                .build(),
        )
        .application_properties(app.build())
        .data(Binary::from(body.to_vec()))
        .build()
}

fn rejected_with(outcome: Outcome) -> ErrorCondition {
    match outcome {
        Outcome::Rejected(r) => r.error.expect("a rejection says why").condition,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_c2d_message_reaches_the_device_and_its_feedback_comes_back() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("c2d-dev1").await.unwrap();
    // The device listens for C2D over MQTT.
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new("c2d-dev1", addr.ip().to_string(), addr.port());
    o.set_credentials(
        username("localhost", "c2d-dev1"),
        device_token("localhost", "c2d-dev1", &key_of(&cs), now() + 3600),
    );
    let (device, mut events) = AsyncClient::new(o, 10);
    device
        .subscribe("devices/c2d-dev1/messages/devicebound/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    let mut client = Client::authorized(&hub).await;
    let mut sender = client
        .sender("amqps://localhost/messages/devicebound")
        .await;
    let outcome = sender
        .send(c2d(
            "/devices/c2d-dev1/messages/devicebound",
            "m-1",
            b"hello",
            Some("full"),
        ))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    // rumqttc PUBACKs the delivery: the hub completes it.
    let publish = loop {
        if let Event::Incoming(Packet::Publish(p)) = tokio::time::timeout(WAIT, events.poll())
            .await
            .unwrap()
            .unwrap()
        {
            break p;
        }
    };
    assert_eq!(&publish.payload[..], b"hello");
    assert!(publish.topic.contains("color=red"), "{}", publish.topic);
    assert!(publish.topic.contains("%24.mid=m-1"), "{}", publish.topic);
    // Keep polling so the PUBACK goes out while the feedback is read.
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let mut feedback = client
        .receiver(
            "amqps://localhost/messages/serviceBound/feedback",
            None,
            None,
            &[],
        )
        .await;
    let m = next_event(&mut feedback).await;
    let records: serde_json::Value = serde_json::from_slice(&body_bytes(&m)).unwrap();
    assert_eq!(records[0]["originalMessageId"], "m-1");
    assert_eq!(records[0]["statusCode"], "Success");
    assert_eq!(records[0]["deviceId"], "c2d-dev1");
    poller.abort();
}

#[tokio::test]
async fn refused_c2d_messages_say_why_and_the_link_goes_on() {
    let hub = TestHub::spawn().await.unwrap();
    hub.create_device("c2d-dev2").await.unwrap();
    let mut client = Client::authorized(&hub).await;
    let mut sender = client.sender("/messages/devicebound").await;
    let to = "/devices/c2d-dev2/messages/devicebound";
    let unknown = sender
        .send(c2d(
            "/devices/nobody/messages/devicebound",
            "u-1",
            b"x",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(rejected_with(unknown), AmqpError::NotFound.into());
    let too_large = sender
        .send(c2d(to, "big", &vec![0u8; 70 * 1024], None))
        .await
        .unwrap();
    assert_eq!(
        rejected_with(too_large),
        LinkError::MessageSizeExceeded.into()
    );
    let bad_to = sender
        .send(c2d("/twins/c2d-dev2", "bad", b"x", None))
        .await
        .unwrap();
    assert!(matches!(bad_to, Outcome::Rejected(_)), "{bad_to:?}");
    for i in 0..50 {
        let ok = sender
            .send(c2d(to, &format!("q-{i}"), b"x", None))
            .await
            .unwrap();
        assert!(matches!(ok, Outcome::Accepted(_)), "message {i}: {ok:?}");
    }
    let full = sender.send(c2d(to, "q-50", b"x", None)).await.unwrap();
    let Outcome::Rejected(r) = full else {
        panic!("the 51st is refused: {full:?}")
    };
    let why = r.error.unwrap().description.unwrap_or_default();
    assert!(
        why.contains("403004") || why.to_lowercase().contains("queue"),
        "{why}"
    );
    assert_eq!(
        hub.emulator
            .hub
            .purge_c2d(&iothub_emulator::hub::auth::Identity {
                device_id: "c2d-dev2".into(),
                module_id: None
            })
            .await
            .unwrap(),
        50
    );
}
