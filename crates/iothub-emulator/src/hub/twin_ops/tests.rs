use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;
use crate::hub::registry_ops::IdentityChange;
use crate::hub::{HubOptions, Interests, ManualClock, ToDevice};
use crate::store::Store;
use crate::timestamp::iso8601_millis;

fn hub() -> Hub {
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ));
    let options = HubOptions {
        clock,
        ..HubOptions::default()
    };
    Hub::with_options(Store::open_in_memory().unwrap(), options)
}

fn id(device: &str, module: Option<&str>) -> Identity {
    Identity {
        device_id: device.into(),
        module_id: module.map(str::to_owned),
    }
}

async fn register(hub: &Hub, who: &Identity) {
    hub.put_identity(who, IdentityChange::default(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unregistered_identity_has_no_twin() {
    let hub = hub();
    let who = id("ghost", None);
    assert!(matches!(hub.read_twin(&who).await.unwrap_err(), HubError::NotFound(w) if w == who));
    let write = hub
        .write_twin(&who, json!({"tags": {"a": 1}}), None, TwinWrite::Merge)
        .await
        .unwrap_err();
    assert!(matches!(write, HubError::NotFound(_)));
    // Nothing was created on the way.
    assert!(
        hub.list_twins(IdentityKind::Devices)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_first_read_stamps_the_twin_with_the_hub_clock() {
    let hub = hub();
    let who = id("d1", None);
    register(&hub, &who).await;
    let twin = hub.read_twin(&who).await.unwrap();
    assert_eq!(twin.identity.record.device_id, "d1");
    assert_eq!(twin.document.version, 1);
    let stamped = twin.document.desired.metadata["$lastUpdated"].as_str();
    assert_eq!(stamped, Some(iso8601_millis(hub.now()).as_str()));
}

#[tokio::test]
async fn a_merge_reaches_a_subscribed_device_and_a_replace_drops_old_tags() {
    let hub = hub();
    let who = id("d1", None);
    register(&hub, &who).await;
    let (_c, mut rx) = hub.attach_test_connection(&who, Interests::DESIRED);
    let body = json!({"tags": {"site": "lab"}, "properties": {"desired": {"t": 21}}});
    let merged = hub
        .write_twin(&who, body, None, TwinWrite::Merge)
        .await
        .unwrap();
    assert_eq!(merged.document.tags["site"], "lab");
    assert!(merged.identity.connected);
    assert!(matches!(
        rx.try_recv(),
        Ok(ToDevice::DesiredPatch { version: 2, .. })
    ));
    let replaced = hub
        .write_twin(
            &who,
            json!({"tags": {"floor": 2}}),
            Some("*".into()),
            TwinWrite::Replace,
        )
        .await
        .unwrap();
    assert!(replaced.document.tags.get("site").is_none());
    assert_eq!(replaced.document.tags["floor"], 2);
    let stale = hub
        .write_twin(
            &who,
            json!({}),
            Some("\"AAAAAAAAAAE=\"".into()),
            TwinWrite::Merge,
        )
        .await
        .unwrap_err();
    assert!(matches!(stale, HubError::Twin(_)));
}

#[tokio::test]
async fn list_twins_separates_devices_from_modules() {
    let hub = hub();
    for who in [id("a", None), id("a", Some("m")), id("b", None)] {
        register(&hub, &who).await;
    }
    let devices = hub.list_twins(IdentityKind::Devices).await.unwrap();
    let modules = hub.list_twins(IdentityKind::Modules).await.unwrap();
    let names = |twins: &[ServiceTwin]| {
        twins
            .iter()
            .map(|t| t.identity.record.clone())
            .map(|r| (r.device_id, r.module_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&devices),
        vec![("a".into(), None), ("b".into(), None)]
    );
    assert_eq!(names(&modules), vec![("a".into(), Some("m".into()))]);
}
