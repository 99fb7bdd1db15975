//! Findings: a property bag with percent-encoded invalid UTF-8 was PUBACKed and stored with
//! pairs changed or dropped; a topic containing U+0000 was accepted. Both now close the
//! connection, as other malformed publishes do, and nothing is stored.

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Packet, Publish};

use crate::support::logged_in;

async fn stored(hub: &iothub_emulator::testing::TestHub) -> i64 {
    hub.emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::events::count(tx))
        .await
        .unwrap()
}

#[tokio::test]
async fn malformed_property_bags_and_nul_topics_close_the_connection() {
    for tail in [
        "a=%ff",
        "%C3=v",
        "k=100%",
        "k=%zz&b=c",
        "ok=1&%24.ct=%E2%82",
        "a=\u{0}",
    ] {
        let (hub, mut raw) = logged_in().await;
        let mut publish = Publish::new(
            format!("devices/dev1/messages/events/{tail}"),
            QoS::AtLeastOnce,
            "{}",
        );
        publish.pkid = 1;
        raw.send(Packet::Publish(publish)).await;
        raw.assert_closed().await;
        assert_eq!(stored(&hub).await, 0, "{tail}");
        hub.shutdown().await;
    }
}

#[tokio::test]
async fn well_formed_property_bags_are_acknowledged_unaltered() {
    let (hub, mut raw) = logged_in().await;
    let mut publish = Publish::new(
        "devices/dev1/messages/events/k=v%C3%A9&%24.ct=application%2Fjson&flag",
        QoS::AtLeastOnce,
        "{}",
    );
    publish.pkid = 7;
    raw.send(Packet::Publish(publish)).await;
    assert!(matches!(raw.recv().await, Some(Packet::PubAck(a)) if a.pkid == 7));
    assert_eq!(stored(&hub).await, 1);
    hub.shutdown().await;
}
