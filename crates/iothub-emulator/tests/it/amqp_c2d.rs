//! Cloud-to-device over AMQP (docs/amqp.md "Cloud-to-device", "Feedback"): the service SDKs'
//! path into the same queue the devices read, its refusals, and delivery feedback.

use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition, LinkError};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::performatives::Attach;
use fe2o3_amqp::types::primitives::Binary;
use iothub_emulator::testing::TestHub;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// uamqp (azure-iot-hub's `send_c2d_message`) asks for `rcv-settle-mode` second; like IoT Hub,
/// the emulator answers first and settles each delivery with its outcome, or the SDK waits
/// forever for a settlement it never gets. fe2o3-amqp as a client copes with either mode, so
/// the test reads the emulator's ATTACH off the wire.
#[tokio::test]
async fn a_sender_asking_for_second_settlement_is_attached_in_first() {
    use fe2o3_amqp::Sender;
    use fe2o3_amqp::types::definitions::ReceiverSettleMode;

    let hub = TestHub::spawn().await.unwrap();
    hub.create_device("c2d-dev3").await.unwrap();
    let (tap, heard) = Tap::new(
        tokio::net::TcpStream::connect(hub.emulator.amqp_plain_addr.unwrap())
            .await
            .unwrap(),
    );
    let mut client = Client::connect_over(tap).await.authorize(&hub).await;
    let mut sender = Sender::builder()
        .name("uamqp-like")
        .target("amqps://localhost/messages/devicebound")
        .receiver_settle_mode(ReceiverSettleMode::Second)
        .attach(&mut client.session)
        .await
        .unwrap();
    let outcome = sender
        .send(c2d(
            "/devices/c2d-dev3/messages/devicebound",
            "m-3",
            b"settled",
            None,
        ))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let bytes = heard.lock().unwrap().clone();
    let attach = amqp_frames(&bytes)
        .into_iter()
        .filter_map(|body| serde_amqp::from_slice::<Attach>(body).ok())
        .find(|a| a.name == "uamqp-like")
        .expect("the emulator's ATTACH for the link");
    assert_eq!(attach.rcv_settle_mode, ReceiverSettleMode::First);
}

/// A stream that keeps a copy of every byte read from it.
#[derive(Debug)]
struct Tap {
    inner: tokio::net::TcpStream,
    heard: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    fn new(inner: tokio::net::TcpStream) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let heard = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                inner,
                heard: heard.clone(),
            },
            heard,
        )
    }
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.heard.lock().unwrap().extend_from_slice(&new);
        polled
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The bodies of the AMQP frames (type 0) in `bytes`, skipping protocol headers and SASL frames.
fn amqp_frames(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut bodies = Vec::new();
    while bytes.len() >= 8 {
        if bytes.starts_with(b"AMQP") {
            bytes = &bytes[8..];
            continue;
        }
        let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let offset = usize::from(bytes[4]) * 4;
        if size > bytes.len() {
            break;
        }
        if bytes[5] == 0 && size > offset {
            bodies.push(&bytes[offset..size]);
        }
        bytes = &bytes[size..];
    }
    bodies
}
