use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::hub::c2d::OutgoingMessage;
use crate::hub::{CloseReason, HubOptions, Interests, ManualClock, ToDevice};
use crate::store::Store;

fn hub() -> (Hub, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ));
    let options = HubOptions {
        clock: clock.clone(),
        ..HubOptions::default()
    };
    let hub = Hub::with_options(Store::open_in_memory().unwrap(), options);
    (hub, clock)
}

fn device(id: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: None,
    }
}

fn module(id: &str, m: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: Some(m.into()),
    }
}

fn disable() -> IdentityChange {
    IdentityChange {
        status: Some(Status::Disabled),
        credentials: None,
    }
}

#[tokio::test]
async fn create_stamps_the_hub_clock_and_generates_keys() {
    let (hub, clock) = hub();
    let created = hub
        .put_identity(&device("d1"), IdentityChange::default(), None)
        .await
        .unwrap();
    let now_ms = unix_millis(hub.now());
    drop(clock);
    assert_eq!(created.record.created_ms, now_ms);
    assert_eq!(created.record.status, Status::Enabled);
    assert!(matches!(
        &created.record.authentication,
        Authentication::Sas { primary_key, secondary_key }
            if primary_key.len() == 44 && secondary_key.len() == 44 && primary_key != secondary_key
    ));
    assert_eq!((created.connected, created.c2d_depth), (false, 0));
    assert_eq!(hub.get_identity(&device("d1")).await.unwrap(), created);
}

#[tokio::test]
async fn put_without_a_condition_does_not_overwrite_and_a_stale_etag_is_refused() {
    let (hub, _) = hub();
    let created = hub
        .put_identity(&device("d1"), IdentityChange::default(), None)
        .await
        .unwrap();
    let again = hub
        .put_identity(&device("d1"), disable(), None)
        .await
        .unwrap_err();
    assert!(matches!(again, HubError::AlreadyExists(id) if id == device("d1")));
    let stale = hub
        .put_identity(&device("d1"), disable(), Some("not-the-etag".into()))
        .await
        .unwrap_err();
    assert!(matches!(stale, HubError::PreconditionFailed));
    let updated = hub
        .put_identity(&device("d1"), disable(), Some(created.etag()))
        .await
        .unwrap();
    assert_eq!(updated.record.status, Status::Disabled);
    assert_eq!(updated.record.generation_id, created.record.generation_id);
    assert_ne!(updated.etag(), created.etag());
    // An ETag on an identity that does not exist is a missing identity, `*` creates it.
    let missing = hub
        .put_identity(&device("d2"), IdentityChange::default(), Some("x".into()))
        .await
        .unwrap_err();
    assert!(matches!(missing, HubError::NotFound(id) if id == device("d2")));
    hub.put_identity(&device("d2"), IdentityChange::default(), Some("*".into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_keys_and_ids_are_registry_refusals() {
    let (hub, _) = hub();
    let bad_key = IdentityChange {
        status: None,
        credentials: Some(Credentials::Sas {
            primary_key: Some("not base64!".into()),
            secondary_key: None,
        }),
    };
    let e = hub
        .put_identity(&device("d1"), bad_key, None)
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::Registry(RegistryError::InvalidKey)));
    assert!(matches!(
        hub.get_identity(&device("d1")).await.unwrap_err(),
        HubError::NotFound(_)
    ));
    let e = hub
        .put_identity(&device("bad id"), IdentityChange::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::Registry(RegistryError::InvalidId)));
}

#[tokio::test]
async fn a_module_of_a_missing_device_names_the_device() {
    let (hub, _) = hub();
    let e = hub
        .put_identity(&module("d1", "m1"), IdentityChange::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::NotFound(id) if id == device("d1")));
    assert!(matches!(
        hub.list_modules("d1").await.unwrap_err(),
        HubError::NotFound(id) if id == device("d1")
    ));
}

#[tokio::test]
async fn self_signed_thumbprints_are_upper_cased_with_the_secondary_kept() {
    let (hub, _) = hub();
    let change = IdentityChange {
        status: None,
        credentials: Some(Credentials::SelfSigned {
            primary_thumbprint: "aa11".into(),
            secondary_thumbprint: Some("bb22".into()),
        }),
    };
    let created = hub.put_identity(&device("x1"), change, None).await.unwrap();
    assert_eq!(
        created.record.authentication,
        Authentication::SelfSigned {
            primary_thumbprint: "AA11".into(),
            secondary_thumbprint: "BB22".into(),
        }
    );
}

#[tokio::test]
async fn disabling_closes_the_live_connection() {
    let (hub, _) = hub();
    hub.put_identity(&device("d1"), IdentityChange::default(), None)
        .await
        .unwrap();
    let (_connection, mut rx) = hub.attach_test_connection(&device("d1"), Interests::DESIRED);
    assert!(hub.get_identity(&device("d1")).await.unwrap().connected);
    hub.put_identity(&device("d1"), disable(), Some("*".into()))
        .await
        .unwrap();
    assert!(matches!(
        rx.try_recv(),
        Ok(ToDevice::Close(CloseReason::IdentityChanged))
    ));
}

#[tokio::test]
async fn deleting_a_device_removes_its_modules_queues_and_connections() {
    let (hub, _) = hub();
    for who in [device("d1"), module("d1", "m1"), device("d2")] {
        hub.put_identity(&who, IdentityChange::default(), None)
            .await
            .unwrap();
    }
    hub.send_c2d(&module("d1", "m1"), OutgoingMessage::default())
        .await
        .unwrap();
    assert_eq!(hub.list_modules("d1").await.unwrap()[0].c2d_depth, 1);
    let (_c, mut device_rx) = hub.attach_test_connection(&device("d1"), Interests::DESIRED);
    let (_m, mut module_rx) = hub.attach_test_connection(&module("d1", "m1"), Interests::DESIRED);
    let stale = hub
        .delete_identity(&device("d1"), Some("stale".into()))
        .await
        .unwrap_err();
    assert!(matches!(stale, HubError::PreconditionFailed));
    let removed = hub.delete_identity(&device("d1"), None).await.unwrap();
    assert_eq!(removed, vec![device("d1"), module("d1", "m1")]);
    for rx in [&mut device_rx, &mut module_rx] {
        assert!(matches!(rx.try_recv(), Ok(ToDevice::Close(_))));
    }
    let left: Vec<_> = hub
        .list_devices(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record.device_id)
        .collect();
    assert_eq!(left, vec!["d2".to_owned()]);
    // The module's queue went with it: a re-created module starts empty.
    hub.put_identity(&device("d1"), IdentityChange::default(), None)
        .await
        .unwrap();
    hub.put_identity(&module("d1", "m1"), IdentityChange::default(), None)
        .await
        .unwrap();
    assert_eq!(hub.list_modules("d1").await.unwrap()[0].c2d_depth, 0);
    assert!(matches!(
        hub.delete_identity(&device("nope"), None)
            .await
            .unwrap_err(),
        HubError::NotFound(_)
    ));
}

#[tokio::test]
async fn list_devices_honours_top_and_leaves_modules_out() {
    let (hub, _) = hub();
    for who in [device("a"), module("a", "m"), device("b"), device("c")] {
        hub.put_identity(&who, IdentityChange::default(), None)
            .await
            .unwrap();
    }
    let listed = hub.list_devices(2).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|r| r.record.module_id.is_none()));
}

#[test]
fn etag_changes_with_status_and_keys() {
    let mut r = IdentityRecord {
        device_id: "d1".into(),
        module_id: None,
        authentication: Authentication::Sas {
            primary_key: "a2V5".into(),
            secondary_key: "a2V5Mg==".into(),
        },
        status: Status::Enabled,
        generation_id: "1".into(),
        created_ms: 0,
    };
    let first = etag(&r);
    assert!(
        etag_matches(&r, Some(&first)) && etag_matches(&r, Some("*")) && etag_matches(&r, None)
    );
    r.status = Status::Disabled;
    assert_ne!(etag(&r), first);
    assert!(!etag_matches(&r, Some(&first)));
}
