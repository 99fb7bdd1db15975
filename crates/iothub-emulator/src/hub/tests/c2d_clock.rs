//! C2D expiry, locks and delivery counts on the hub's clock, moved by hand: no sleeping.

use std::time::Duration;

use super::*;
use crate::hub::Interests;
use crate::hub::c2d::{AckMode, C2dLimits, OutgoingMessage};

fn message(mid: &str, ack: AckMode, ttl: Option<Duration>) -> OutgoingMessage {
    OutgoingMessage {
        body: mid.as_bytes().to_vec(),
        message_id: Some(mid.into()),
        ack,
        expiry: ttl.map(|ttl| start() + ttl),
        ..OutgoingMessage::default()
    }
}

/// Messages waiting for `identity` on the hub's clock (expired ones excluded).
async fn queue_depth(hub: &Hub, identity: &Identity) -> usize {
    let (device, now) = (identity.device_id.clone(), hub.now());
    hub.store()
        .call(move |tx| Ok(c2d::queue_depth(tx, &device, None, now)))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn expired_c2d_messages_are_never_delivered_and_reported_as_asked() {
    let (hub, clock) = hub_on_manual_clock();
    let dev = device("dev1");
    let minute = Some(Duration::from_secs(60));
    for (mid, ack) in [
        ("negative", AckMode::Negative),
        ("full", AckMode::Full),
        ("positive", AckMode::Positive),
        ("none", AckMode::None),
    ] {
        hub.send_c2d(&dev, message(mid, ack, minute)).await.unwrap();
    }
    // No expiry given: the default TTL (1 h) from the hub's time of sending.
    hub.send_c2d(&dev, message("default-ttl", AckMode::Negative, None))
        .await
        .unwrap();
    assert_eq!(queue_depth(&hub, &dev).await, 5);

    clock.advance(Duration::from_secs(59));
    assert_eq!(queue_depth(&hub, &dev).await, 5, "not expired before 60 s");
    clock.advance(Duration::from_secs(1));
    assert_eq!(queue_depth(&hub, &dev).await, 1, "expired at exactly 60 s");

    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    let only = next_c2d(&mut rx).await;
    assert_eq!(only.message.message_id, "default-ttl");
    assert_eq!(
        only.message.expiry_ms,
        unix_millis(start() + C2dLimits::DEFAULT.default_ttl)
    );
    settle(&hub).await;
    assert_nothing_sent(&mut rx);
    assert_eq!(
        feedback(&hub).await,
        [
            ("negative".to_owned(), "Expired".to_owned()),
            ("full".to_owned(), "Expired".to_owned()),
        ],
        "Expired feedback only for ack=negative and ack=full"
    );

    // Delivered but not completed when its TTL runs out: dead-lettered at the next delivery
    // (here: the reconnect), not handed out again; its late completion completes nothing.
    hub.disconnected(&conn, "mqtt", "test", Duration::ZERO);
    clock.advance(Duration::from_secs(3600));
    settle(&hub).await;
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    settle(&hub).await;
    assert_nothing_sent(&mut rx);
    assert_eq!(
        feedback(&hub).await,
        [("default-ttl".to_owned(), "Expired".to_owned())]
    );
    hub.c2d_delivered(&conn, only.lock_token);
    settle(&hub).await;
    assert!(feedback(&hub).await.is_empty(), "no Success after Expired");
    assert_eq!(queue_depth(&hub, &dev).await, 0);
}

#[tokio::test]
async fn an_uncompleted_c2d_message_is_delivered_again_once_its_lock_runs_out() {
    let (hub, clock) = hub_on_manual_clock();
    let dev = device("dev1");
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    settle(&hub).await;
    hub.send_c2d(&dev, message("m1", AckMode::Full, None))
        .await
        .unwrap();
    let first = next_c2d(&mut rx).await;
    assert_eq!(
        (first.message.message_id.as_str(), first.redelivery),
        ("m1", false)
    );

    // Still locked 59 s later: the next delivery (started by another send) skips it.
    clock.advance(Duration::from_secs(59));
    hub.send_c2d(&dev, message("m2", AckMode::None, None))
        .await
        .unwrap();
    let second = next_c2d(&mut rx).await;
    assert_eq!(second.message.message_id, "m2");
    settle(&hub).await;
    assert_nothing_sent(&mut rx);

    // The 60 s lock has run out: m1 goes out again, as a redelivery (DUP on MQTT), with the
    // same lock token; m2 (delivered at 59 s) is still locked.
    clock.advance(Duration::from_secs(1));
    hub.send_c2d(&dev, message("m3", AckMode::None, None))
        .await
        .unwrap();
    let again = next_c2d(&mut rx).await;
    assert_eq!(again.message.message_id, "m1");
    assert!(again.redelivery);
    assert_eq!(again.lock_token, first.lock_token);
    assert_eq!(again.message.delivery_count, 2);
    let third = next_c2d(&mut rx).await;
    assert_eq!(
        (third.message.message_id.as_str(), third.redelivery),
        ("m3", false)
    );
    settle(&hub).await;
    assert_nothing_sent(&mut rx);

    // Completing the redelivery completes the message once.
    hub.c2d_delivered(&conn, again.lock_token);
    settle(&hub).await;
    assert_eq!(
        feedback(&hub).await,
        [("m1".to_owned(), "Success".to_owned())]
    );
    assert_eq!(
        queue_depth(&hub, &dev).await,
        2,
        "m2 and m3 wait for completion"
    );
}

#[tokio::test]
async fn a_c2d_message_delivered_max_delivery_count_times_is_dead_lettered() {
    let (hub, clock) = hub_on_manual_clock();
    let dev = device("dev1");
    let lock = C2dLimits::DEFAULT.lock_duration;
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    settle(&hub).await;
    hub.send_c2d(&dev, message("m1", AckMode::Negative, None))
        .await
        .unwrap();
    for count in 1..=i64::from(C2dLimits::DEFAULT.max_delivery_count) {
        let delivery = next_c2d(&mut rx).await;
        assert_eq!(delivery.message.message_id, "m1");
        assert_eq!(delivery.message.delivery_count, count);
        assert_eq!(delivery.redelivery, count > 1);
        // Never completed: the lock runs out and the device subscribes again, which starts a
        // delivery.
        clock.advance(lock);
        hub.interests_changed(&conn, Interests::C2D);
    }
    settle(&hub).await;
    assert_nothing_sent(&mut rx);
    assert_eq!(
        feedback(&hub).await,
        [("m1".to_owned(), "DeliveryCountExceeded".to_owned())]
    );
    assert_eq!(queue_depth(&hub, &dev).await, 0);
}

#[tokio::test]
async fn the_delivery_count_limit_is_the_hubs_configured_one() {
    let limits = C2dLimits {
        max_delivery_count: 2,
        lock_duration: Duration::from_secs(5),
        ..C2dLimits::DEFAULT
    };
    let (hub, clock) = hub_with(HubOptions {
        c2d_limits: limits,
        ..HubOptions::default()
    });
    let dev = device("dev1");
    let (conn, mut rx) = hub.attach_test_connection(&dev, Interests::C2D);
    settle(&hub).await;
    hub.send_c2d(&dev, message("m1", AckMode::Full, None))
        .await
        .unwrap();
    assert_eq!(next_c2d(&mut rx).await.message.delivery_count, 1);
    clock.advance(Duration::from_secs(4));
    hub.interests_changed(&conn, Interests::C2D);
    settle(&hub).await;
    assert_nothing_sent(&mut rx);
    clock.advance(Duration::from_secs(1));
    hub.interests_changed(&conn, Interests::C2D);
    assert_eq!(next_c2d(&mut rx).await.message.delivery_count, 2);
    clock.advance(Duration::from_secs(5));
    hub.interests_changed(&conn, Interests::C2D);
    settle(&hub).await;
    assert_nothing_sent(&mut rx);
    assert_eq!(
        feedback(&hub).await,
        [("m1".to_owned(), "DeliveryCountExceeded".to_owned())]
    );
}
