//! A service link lives as long as the token that authorised it (docs/amqp.md
//! "Authentication"): renewed on `$cbs`, the link goes on; not renewed, it is detached with
//! `amqp:unauthorized-access` once the token's expiry plus the hub's clock-skew allowance has
//! passed on the hub's clock, and the connection stays usable. The hub reads a manual clock
//! the test advances: nothing here waits for a token to expire in real time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
use iothub_emulator::hub::ManualClock;
use iothub_emulator::testing::TestHub;

use crate::amqp_support::*;

/// How long past its expiry the hub still accepts a token (the SAS clock-skew allowance).
const SKEW: u64 = 300;

fn unix_secs(clock: &ManualClock) -> u64 {
    use iothub_emulator::hub::Clock;
    clock
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Puts an `iothubowner` token for the Event Hub valid `secs` more on the hub's clock.
async fn put_owner_token(client: &mut Client, hub: &TestHub, clock: &ManualClock, secs: u64) {
    let eh = eventhub_uri(hub);
    let token = service_token(&eh, "iothubowner", &owner_key(hub), unix_secs(clock) + secs);
    let (status, why) = client.put_token(&eh, &token).await;
    assert_eq!(status, 202, "{why}");
}

/// A receiver on the partition of `device`, reading from the start.
async fn from_start(client: &mut Client, hub: &TestHub, device: &str) -> fe2o3_amqp::Receiver {
    client
        .receiver(
            &partition_address(hub, device),
            Some("amqp.annotation.x-opt-offset > '-1'"),
            None,
            &[],
        )
        .await
}

/// A client with a 60-second token and a receiver reading `device`'s partition.
async fn reader(
    hub: &TestHub,
    clock: &ManualClock,
    device: &str,
) -> (Client, fe2o3_amqp::Receiver) {
    let mut client = Client::connect(hub).await;
    put_owner_token(&mut client, hub, clock, 60).await;
    let receiver = from_start(&mut client, hub, device).await;
    (client, receiver)
}

#[tokio::test]
async fn an_event_receiver_is_detached_when_its_token_lapses_and_not_when_it_is_renewed() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let hub = TestHub::spawn_with_clock(clock.clone()).await.unwrap();
    let device = "lapse-dev";
    let cs = hub.create_device(device).await.unwrap();
    let (mut renewing, mut renewed_receiver) = reader(&hub, &clock, device).await;
    let (mut lapsing, mut lapsing_receiver) = reader(&hub, &clock, device).await;

    device_sends(&hub, device, &cs, &["before"]).await;
    assert_eq!(
        body_bytes(&next_event(&mut renewed_receiver).await),
        b"before"
    );
    assert_eq!(
        body_bytes(&next_event(&mut lapsing_receiver).await),
        b"before"
    );

    // One client renews before the expiry; then the hub's clock passes expiry + skew.
    put_owner_token(&mut renewing, &hub, &clock, 3600).await;
    clock.advance(Duration::from_secs(60 + SKEW + 1));

    let refusal = refusal(&mut lapsing_receiver).await;
    assert_eq!(
        refusal.condition,
        ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess)
    );
    let why = refusal.description.unwrap_or_default();
    assert!(why.contains("expired and was not renewed"), "{why}");

    // The renewed link still delivers; the lapsed client's connection takes a new token and
    // a new link on it reads again.
    device_sends(&hub, device, &cs, &["after"]).await;
    assert_eq!(
        body_bytes(&next_event(&mut renewed_receiver).await),
        b"after"
    );
    put_owner_token(&mut lapsing, &hub, &clock, 3600).await;
    let mut again = from_start(&mut lapsing, &hub, device).await;
    assert_eq!(body_bytes(&next_event(&mut again).await), b"before");
    assert_eq!(body_bytes(&next_event(&mut again).await), b"after");
    hub.shutdown().await;
}
