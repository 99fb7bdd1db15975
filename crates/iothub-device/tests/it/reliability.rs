//! The session's reliability guarantees (listed in `src/session/mod.rs`), each proven against a
//! fault-injecting peer.

use std::collections::HashSet;
use std::time::Duration;

use iothub_device::{
    ConnectRefusal, ConnectionState, DeviceClient, DisconnectReason, Error, Message,
};
use rumqttc::mqttbytes::v4::ConnectReturnCode;
use tokio::net::TcpListener;

use crate::fake_hub::{FakeHub, mid, options};

/// Sends `count` messages concurrently and returns each outcome by message id.
async fn send_all(client: &DeviceClient, count: usize) -> Vec<(String, Result<(), Error>)> {
    let mut waits = Vec::new();
    for i in 0..count {
        let id = format!("m{i}");
        let wait = client
            .enqueue_telemetry(Message::new(format!("body {i}")).message_id(id.clone()))
            .await
            .unwrap();
        waits.push((id, tokio::spawn(wait)));
    }
    let mut outcomes = Vec::new();
    for (id, wait) in waits {
        outcomes.push((id, wait.await.unwrap()));
    }
    outcomes
}

fn acked_ids(hub: &FakeHub) -> HashSet<String> {
    hub.record(|r| r.acked.iter().filter_map(mid).collect())
}

#[tokio::test]
async fn no_message_lost_and_none_reported_delivered_unacknowledged_across_connection_cuts() {
    let hub = FakeHub::start().await;
    // Every 7th publish on a connection kills it before the PUBACK.
    hub.set(|b| b.cut_every = Some(7));
    let client = DeviceClient::connect(options(hub.addr).max_inflight(5))
        .await
        .unwrap();
    let outcomes = send_all(&client, 60).await;
    let acked = acked_ids(&hub);
    for (id, outcome) in &outcomes {
        assert!(outcome.is_ok(), "{id}: {outcome:?}");
        assert!(
            acked.contains(id),
            "{id} reported delivered but the hub never acknowledged it"
        );
    }
    assert_eq!(acked.len(), 60, "every message reached the hub");
    let (connects, dups) = hub.record(|r| {
        (
            r.connects.len(),
            r.publishes.iter().filter(|p| p.dup).count(),
        )
    });
    assert!(
        connects >= 8,
        "the peer cut the connection repeatedly ({connects} connects)"
    );
    assert!(dups > 0, "un-acknowledged publishes were re-sent with DUP");
    client.close().await;
}

#[tokio::test]
async fn withheld_puback_forces_reconnect_and_resend() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.withhold_pubacks = true);
    let client = DeviceClient::connect(options(hub.addr).ack_timeout(Duration::from_millis(300)))
        .await
        .unwrap();
    let wait = client
        .enqueue_telemetry(Message::new("x").message_id("only"))
        .await
        .unwrap();
    let wait = tokio::spawn(wait);
    hub.wait_for("first copy", |r| r.publishes.len() == 1).await;
    hub.set(|b| b.withhold_pubacks = false);
    wait.await.unwrap().unwrap();
    let (publishes, connects) = hub.record(|r| (r.publishes.clone(), r.connects.len()));
    assert_eq!(connects, 2);
    assert!(publishes[1].dup, "re-sent with DUP");
    assert_eq!(publishes[0].pkid, publishes[1].pkid, "same packet id");
    client.close().await;
}

#[tokio::test]
async fn authentication_failure_is_reported_and_backed_off() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.refuse = Some(ConnectReturnCode::NotAuthorized));
    let err = DeviceClient::connect(options(hub.addr)).await.unwrap_err();
    assert!(
        matches!(err, Error::Refused(ConnectRefusal::NotAuthorized)),
        "{err:?}"
    );
    assert!(!err.is_retriable());

    let client =
        DeviceClient::start(options(hub.addr).auth_failure_backoff(Duration::from_millis(400)))
            .unwrap();
    let mut state = client.connection_state();
    let refused = loop {
        state.changed().await.unwrap();
        if let ConnectionState::Disconnected { reason, retry_in } = &*state.borrow() {
            break (reason.clone(), *retry_in);
        }
    };
    assert_eq!(
        refused.0,
        DisconnectReason::Refused(ConnectRefusal::NotAuthorized)
    );
    assert!(refused.1 >= Duration::from_millis(400), "{:?}", refused.1);
    let before = hub.record(|r| r.connects.len());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let attempts = hub.record(|r| r.connects.len()) - before;
    assert!(attempts <= 3, "no tight loop: {attempts} attempts in 1 s");
    client.close().await;
}

#[tokio::test]
async fn refused_connection_is_retried_with_backoff_until_it_succeeds() {
    // Nothing listens yet: connection refused by the OS.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = DeviceClient::start(options(addr)).unwrap();
    let sent = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .send_telemetry(Message::new("offline").message_id("o1"))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hub = FakeHub::start_on(TcpListener::bind(addr).await.unwrap()).await;
    sent.await.unwrap().unwrap();
    assert!(acked_ids(&hub).contains("o1"));
    client.close().await;
}

#[tokio::test]
async fn sas_token_is_renewed_by_planned_reconnect_without_losing_messages() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr).token_ttl(Duration::from_secs(1)))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..30 {
        let id = format!("r{i}");
        outcomes.push((
            id.clone(),
            client
                .send_telemetry(Message::new("x").message_id(id))
                .await,
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let acked = acked_ids(&hub);
    for (id, outcome) in outcomes {
        assert!(outcome.is_ok() && acked.contains(&id), "{id}: {outcome:?}");
    }
    let (connects, disconnects) = hub.record(|r| {
        (
            r.connects
                .iter()
                .map(|c| c.login.clone().unwrap().password)
                .collect::<Vec<_>>(),
            r.disconnects,
        )
    });
    assert!(connects.len() >= 2, "renewed at 80 % of the 1 s lifetime");
    let dups = hub.record(|r| r.publishes.iter().filter(|p| p.dup).count());
    assert_eq!(
        dups, 0,
        "in-flight messages are acknowledged before the planned reconnect"
    );
    assert!(
        disconnects >= 1,
        "the planned reconnect says DISCONNECT first"
    );
    // `se` has one-second resolution: over the test's ~2.5 s the expiry must have moved.
    assert_ne!(connects.first(), connects.last(), "fresh tokens are minted");
    client.close().await;
}

#[tokio::test]
async fn full_outbox_is_a_clear_error() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.withhold_pubacks = true);
    let client = DeviceClient::connect(
        options(hub.addr)
            .outbox_capacity(3)
            .drain_timeout(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let mut waits = Vec::new();
    for _ in 0..3 {
        waits.push(client.enqueue_telemetry(Message::new("x")).await.unwrap());
    }
    let err = client.send_telemetry(Message::new("y")).await.unwrap_err();
    assert!(matches!(err, Error::OutboxFull { capacity: 3 }), "{err:?}");
    client.close().await;
    for wait in waits {
        assert!(
            matches!(wait.await, Err(Error::Closed)),
            "never reported delivered"
        );
    }
}

#[tokio::test]
async fn close_drains_in_flight_publishes() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.puback_delay = Some(Duration::from_millis(100)));
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let mut waits = Vec::new();
    for i in 0..5 {
        waits.push(
            client
                .enqueue_telemetry(Message::new("x").message_id(format!("c{i}")))
                .await
                .unwrap(),
        );
    }
    client.close().await;
    for wait in waits {
        wait.await.unwrap();
    }
    assert_eq!(acked_ids(&hub).len(), 5);
    hub.wait_for("DISCONNECT", |r| r.disconnects == 1).await;
    assert!(matches!(
        client.send_telemetry(Message::new("late")).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn durable_outbox_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("iothub-device-it-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    // Offline: messages are accepted into the outbox, then the "process" stops.
    let client = DeviceClient::start(
        options(addr)
            .outbox_dir(&dir)
            .drain_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let mut waits = Vec::new();
    for i in 0..5 {
        waits.push(
            client
                .enqueue_telemetry(Message::new("x").message_id(format!("d{i}")))
                .await
                .unwrap(),
        );
    }
    client.close().await;
    for wait in waits {
        assert!(matches!(wait.await, Err(Error::Closed)));
    }
    drop(client);

    // Restart with the hub up: the stored messages go out without being sent again.
    let hub = FakeHub::start_on(TcpListener::bind(addr).await.unwrap()).await;
    let client = DeviceClient::connect(options(addr).outbox_dir(&dir))
        .await
        .unwrap();
    hub.wait_for("the stored messages", |r| r.acked.len() >= 5)
        .await;
    let ids = acked_ids(&hub);
    assert_eq!(ids, (0..5).map(|i| format!("d{i}")).collect());
    client.close().await;
    let left = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(left, 0, "delivered messages are removed from disk");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn subscriptions_are_restored_after_reconnect() {
    let hub = FakeHub::start().await;
    let client = DeviceClient::connect(options(hub.addr)).await.unwrap();
    let _c2d = client.c2d_messages().await.unwrap();
    client
        .on_method("m", |_| async {
            iothub_device::MethodResponse::ok(serde_json::Value::Null)
        })
        .await
        .unwrap();
    hub.wait_for("two subscriptions", |r| r.subscriptions.len() == 2)
        .await;
    hub.cut();
    hub.wait_for("re-subscription", |r| {
        r.connects.len() == 2 && r.subscriptions.len() == 3
    })
    .await;
    let last = hub.record(|r| r.subscriptions[2].clone());
    assert_eq!(
        last,
        [
            "devices/dev1/messages/devicebound/#",
            "$iothub/methods/POST/#"
        ]
    );
    client.close().await;
}

#[tokio::test]
async fn no_message_lost_when_a_proxy_cuts_connections_mid_stream() {
    let hub = FakeHub::start().await;
    let proxy = crate::proxy::Proxy::start(hub.addr).await;
    let client = DeviceClient::connect(options(proxy.addr).max_inflight(16))
        .await
        .unwrap();
    let cutter = tokio::spawn(async move {
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(40)).await;
            proxy.cut();
        }
        proxy
    });
    let outcomes = send_all(&client, 300).await;
    let _proxy = cutter.await.unwrap();
    let acked = acked_ids(&hub);
    let received: HashSet<String> = hub.record(|r| r.publishes.iter().filter_map(mid).collect());
    for (id, outcome) in &outcomes {
        assert!(outcome.is_ok(), "{id}: {outcome:?}");
        assert!(
            acked.contains(id),
            "{id} reported delivered but never acknowledged"
        );
    }
    assert_eq!(received.len(), 300);
    assert!(
        hub.record(|r| r.connects.len()) >= 2,
        "the proxy cut at least once mid-stream"
    );
    client.close().await;
}

#[tokio::test]
async fn keeps_the_link_alive_and_detects_a_silently_dead_one() {
    let hub = FakeHub::start().await;
    let options = options(hub.addr)
        .keep_alive(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(1));
    let client = DeviceClient::connect(options).await.unwrap();
    hub.wait_for("two answered pings", |r| r.pings >= 2).await;
    assert_eq!(
        hub.record(|r| r.connects.len()),
        1,
        "answered pings keep the connection"
    );
    hub.set(|b| b.ignore_pings = true);
    hub.wait_for("a reconnect after the unanswered ping", |r| {
        r.connects.len() >= 2
    })
    .await;
    client.close().await;
}

#[tokio::test]
async fn a_hub_that_drops_right_after_connack_gets_growing_backoff_not_a_storm() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.drop_after_connack = true);
    let options = options(hub.addr)
        .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5));
    let client = DeviceClient::start(options).unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let connects = hub.record(|r| r.connects.len());
    // 100 ms doubling (with 20 % jitter): about 0.1 + 0.2 + 0.4 + 0.8 s, so at most 5 attempts;
    // resetting after every CONNACK would make about 15.
    assert!(
        (2..=5).contains(&connects),
        "{connects} connection attempts in 1.6 s"
    );
    client.close().await;
}

#[tokio::test]
async fn token_renewal_waits_for_in_flight_acknowledgements_so_nothing_is_duplicated() {
    let hub = FakeHub::start().await;
    hub.set(|b| b.puback_delay = Some(Duration::from_millis(150)));
    let client = DeviceClient::connect(options(hub.addr).token_ttl(Duration::from_secs(1)))
        .await
        .unwrap();
    let mut waits = Vec::new();
    for i in 0..25 {
        let wait = client
            .enqueue_telemetry(Message::new("x").message_id(format!("w{i}")))
            .await
            .unwrap();
        waits.push(tokio::spawn(wait));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    for wait in waits {
        wait.await.unwrap().unwrap();
    }
    let (connects, dups) = hub.record(|r| {
        (
            r.connects.len(),
            r.publishes.iter().filter(|p| p.dup).count(),
        )
    });
    assert!(connects >= 2, "the token was renewed");
    assert_eq!(dups, 0, "nothing was re-sent because of the renewal");
    assert_eq!(acked_ids(&hub).len(), 25);
    client.close().await;
}
