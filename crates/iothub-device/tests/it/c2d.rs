//! Cloud-to-device messages.

use iothub_device::DeviceClient;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Publish;

use crate::fake_hub::{FakeHub, options};

fn c2d(pkid: u16, body: &str) -> Publish {
    let mut p = Publish::new(
        format!(
            "devices/dev1/messages/devicebound/%24.mid=m{pkid}&%24.ct=text%2Fplain&%24.cid=c-9&iothub-ack=full&property1=value%201"
        ),
        QoS::AtLeastOnce,
        body.to_owned(),
    );
    p.pkid = pkid;
    p
}

#[tokio::test]
async fn c2d_messages_are_acknowledged_only_after_the_application_took_them_in_order() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let mut rx = client.c2d_messages().await.unwrap();
    hub.wait_for("C2D subscription", |r| !r.subscriptions.is_empty())
        .await;
    hub.send(c2d(1, "hello world"));
    hub.send(c2d(2, "second"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        hub.record(|r| r.device_acks.is_empty()),
        "no PUBACK before recv()"
    );

    let first = rx.recv().await.unwrap();
    assert_eq!(&first.body[..], b"hello world");
    assert_eq!(first.message_id.as_deref(), Some("m1"));
    assert_eq!(first.correlation_id.as_deref(), Some("c-9"));
    assert_eq!(first.content_type.as_deref(), Some("text/plain"));
    assert_eq!(first.ack.as_deref(), Some("full"));
    assert_eq!(first.property("property1"), Some("value 1"));
    hub.wait_for("first PUBACK", |r| r.device_acks == [1]).await;
    let second = rx.recv().await.unwrap();
    assert_eq!(&second.body[..], b"second");
    hub.wait_for("second PUBACK", |r| r.device_acks == [1, 2])
        .await;
    client.close().await;
}
