//! Tests of [`Hub`] as the transports use it, with no socket: fake connections
//! ([`Hub::attach_test_connection`] or the real connect operations), typed
//! [`DeviceRequest`]s in, [`ToDevice`] messages out, and a [`ManualClock`] moved by hand for
//! every wall-clock expiry (C2D TTL and locks, SAS tokens, DPS). Direct-method timeouts run on
//! tokio's clock and are tested with paused tokio time.

mod c2d_clock;
mod connect_clock;
mod device_requests;
mod dps;
mod method_timeouts;
mod routes;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};

use super::auth::Identity;
use super::c2d::{self, C2dDelivery, FeedbackRecord};
use super::registry::{self, NewIdentity};
use super::{DeviceRequest, Hub, HubOptions, ManualClock, Outbox, ToDevice};
use crate::store::Store;
use crate::timestamp::unix_millis;

/// Where every fake clock starts: 2027-01-15T08:00:00Z, a whole second, far from the real
/// time the tests run at (so a rule that read the system clock instead of the hub's shows).
const START_SECS: u64 = 1_800_000_000;

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START_SECS)
}

/// A hub over an in-memory store on a manual clock standing at [`start`].
fn hub_on_manual_clock() -> (Hub, Arc<ManualClock>) {
    hub_with(HubOptions::default())
}

/// A hub set up by `options` with its clock replaced by a manual one at [`start`].
fn hub_with(options: HubOptions) -> (Hub, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start()));
    let hub = Hub::with_options(
        Store::open_in_memory().unwrap(),
        HubOptions {
            clock: clock.clone(),
            ..options
        },
    );
    (hub, clock)
}

fn device(id: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: None,
    }
}

/// Creates device `id` in the registry (created at the hub's time); returns its primary and
/// secondary key.
async fn create_device(hub: &Hub, id: &str) -> (String, String) {
    let new = NewIdentity {
        device_id: id.into(),
        ..NewIdentity::default()
    };
    let now_ms = unix_millis(hub.now());
    let created = hub
        .store()
        .call(move |tx| Ok(registry::create(tx, new, now_ms)))
        .await
        .unwrap()
        .unwrap();
    match created.authentication {
        crate::store::registry::Authentication::Sas {
            primary_key,
            secondary_key,
        } => (primary_key, secondary_key),
        other @ crate::store::registry::Authentication::SelfSigned { .. } => {
            panic!("a device created without a thumbprint has keys, got {other:?}")
        }
    }
}

/// A device SAS token over `localhost/devices/{id}` signed with `key`, expiring at `se`.
fn device_token(id: &str, key: &str, se: u64) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    SasToken::sign(ResourceUri::device("localhost", id), se, None, &signer)
        .unwrap()
        .to_string()
}

/// The next message for a fake connection; fails the test after 5 s of (real) waiting.
/// Not for tests on paused tokio time, where the timeout would be advanced past at once.
async fn next(rx: &mut Outbox) -> ToDevice {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(message)) => message,
        other => panic!("expected a message for the device, got {other:?}"),
    }
}

/// The next message, which must be a C2D delivery.
async fn next_c2d(rx: &mut Outbox) -> C2dDelivery {
    match next(rx).await {
        ToDevice::C2d(delivery) => *delivery,
        other => panic!("expected a C2D delivery, got {other:?}"),
    }
}

/// Lets the hub's background work (request answers, C2D completion, release and delivery)
/// run to its end: each round lets spawned tasks submit their store jobs, then waits behind
/// them (the store runs jobs in submission order). Three rounds cover the longest chain
/// (completion, then the delivery it starts).
async fn settle(hub: &Hub) {
    for _ in 0..3 {
        tokio::task::yield_now().await;
        hub.store().call(|_| Ok(())).await.unwrap();
    }
}

/// Asserts that nothing was sent to the connection (after [`settle`]).
fn assert_nothing_sent(rx: &mut Outbox) {
    if let Ok(message) = rx.try_recv() {
        panic!("expected nothing for the device, got {message:?}");
    }
}

/// Takes every feedback record waiting, as `(original message id, status code)`.
async fn feedback(hub: &Hub) -> Vec<(String, String)> {
    let records: Vec<FeedbackRecord> = hub
        .store()
        .call(|tx| Ok(c2d::take_feedback(tx, 64)))
        .await
        .unwrap()
        .unwrap();
    records
        .into_iter()
        .map(|f| (f.original_message_id, f.status_code))
        .collect()
}

/// Connects `id` with a SAS `password` over a clean session, as an MQTT CONNECT would.
async fn connect_with_sas(
    hub: &Hub,
    id: &str,
    password: &str,
) -> Result<crate::hub::DeviceConnection, crate::hub::ConnectError> {
    let username = format!("localhost/{id}/?api-version=2021-04-12");
    hub.connect_device(crate::hub::DeviceLogin {
        transport: "mqtt",
        credentials: crate::hub::auth::ConnectCredentials {
            client_id: id,
            username: Some(&username),
            password: Some(password),
            thumbprints: None,
        },
        clean_session: true,
    })
    .await
}

/// A method response as the device's transport hands it to the hub.
fn method_response(request_id: &str, status: i32, body: &'static [u8]) -> DeviceRequest {
    DeviceRequest::MethodResponse {
        request_id: request_id.into(),
        status,
        body: bytes::Bytes::from_static(body),
    }
}
