//! SAS token expiry at connect, on the hub's clock moved by hand.

use std::time::Duration;

use super::*;
use crate::hub::auth::{AuthFailure, MAX_SKEW_SECS};
use crate::hub::{ConnectError, DeviceConnection};

fn expired_at(outcome: &Result<DeviceConnection, ConnectError>) -> Option<(u64, u64, u64)> {
    match outcome {
        Err(ConnectError::Refused(AuthFailure::TokenExpired {
            expired_at,
            skew_secs,
            now,
        })) => Some((*expired_at, *skew_secs, *now)),
        _ => None,
    }
}

#[tokio::test]
async fn a_token_expired_beyond_the_skew_is_refused_at_connect() {
    let (hub, _) = hub_on_manual_clock();
    let (key, _) = create_device(&hub, "dev1").await;
    assert_eq!(MAX_SKEW_SECS, 300);

    let stale = START_SECS - 301;
    let refused = connect_with_sas(&hub, "dev1", &device_token("dev1", &key, stale)).await;
    assert_eq!(
        expired_at(&refused),
        Some((stale, 300, START_SECS)),
        "{refused:?}"
    );
    assert!(!hub.is_connected(&device("dev1")));

    // Expired, but within the 300 s skew: accepted, and closed when the skew runs out.
    let lenient = START_SECS - 300;
    let accepted = connect_with_sas(&hub, "dev1", &device_token("dev1", &key, lenient))
        .await
        .unwrap();
    assert_eq!(accepted.expires_at, Some(start()));
    assert!(hub.is_connected(&device("dev1")));
}

#[tokio::test]
async fn an_accepted_connection_expires_at_se_plus_the_skew_and_the_token_then_fails() {
    let (hub, clock) = hub_on_manual_clock();
    let (key, _) = create_device(&hub, "dev1").await;
    let se = START_SECS + 3600;
    let token = device_token("dev1", &key, se);

    let accepted = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    assert_eq!(
        accepted.expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(se + 300))
    );
    hub.disconnected(&accepted.connection, "mqtt", "test", Duration::ZERO);

    // The same token keeps working up to and including se + 300 on the hub's clock...
    clock.advance(Duration::from_secs(3900));
    let last = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    assert_eq!(last.expires_at, Some(hub.now()));
    hub.disconnected(&last.connection, "mqtt", "test", Duration::ZERO);
    // ...and not a second later.
    clock.advance(Duration::from_secs(1));
    let refused = connect_with_sas(&hub, "dev1", &token).await;
    assert_eq!(
        expired_at(&refused),
        Some((se, 300, START_SECS + 3901)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_token_is_checked_against_the_hub_clock_not_the_system_clock() {
    let (hub, clock) = hub_on_manual_clock();
    let (key, _) = create_device(&hub, "dev1").await;
    let real_now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = 86_400;

    // Valid for an hour by the system clock, long expired by the hub's.
    let token = device_token("dev1", &key, real_now + 3600);
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(real_now + day));
    let refused = connect_with_sas(&hub, "dev1", &token).await;
    assert_eq!(
        expired_at(&refused),
        Some((real_now + 3600, 300, real_now + day)),
        "{refused:?}"
    );

    // Expired a day ago by the system clock, valid for a day by the hub's.
    let se = real_now - day;
    let token = device_token("dev1", &key, se);
    clock.set(SystemTime::UNIX_EPOCH + Duration::from_secs(real_now - 2 * day));
    let accepted = connect_with_sas(&hub, "dev1", &token).await.unwrap();
    assert_eq!(
        accepted.expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(se + 300))
    );
}
