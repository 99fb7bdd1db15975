//! File upload on a hub with no socket: device SAS tokens signed here, a [`ManualClock`] moved
//! by hand for the correlation's expiry, an external account (no blob is ever written).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use proptest::prelude::*;

use super::*;
use crate::hub::registry::{self, NewIdentity};
use crate::hub::{Hub, HubOptions, ManualClock};
use crate::store::Store;
use crate::store::registry::Authentication;

/// 2027-01-15T08:00:00Z.
const START_SECS: u64 = 1_800_000_000;

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(START_SECS)
}

fn account() -> StorageAccount {
    StorageAccount::from_connection_string(
        "AccountName=acct;AccountKey=a2V5a2V5a2V5;EndpointSuffix=core.windows.net",
    )
    .unwrap()
}

fn hub(storage: FileUploadStorage) -> (Hub, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start()));
    let hub = Hub::with_options(
        Store::open_in_memory().unwrap(),
        HubOptions {
            clock: clock.clone(),
            file_upload: FileUploadOptions {
                storage,
                ..FileUploadOptions::default()
            },
            ..HubOptions::default()
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

/// Creates `id` and returns a SAS token for it valid for a day of the hub's time.
async fn token_for(hub: &Hub, id: &str) -> String {
    let new = NewIdentity {
        device_id: id.into(),
        ..NewIdentity::default()
    };
    let created = hub
        .store()
        .call(move |tx| Ok(registry::create(tx, new, 0)))
        .await
        .unwrap()
        .unwrap();
    let Authentication::Sas { primary_key, .. } = created.authentication else {
        panic!("a device created without a thumbprint has keys");
    };
    let signer = HmacSha256Signer::from_base64(&primary_key).unwrap();
    SasToken::sign(
        ResourceUri::device("localhost", id),
        START_SECS + 86_400,
        None,
        &signer,
    )
    .unwrap()
    .to_string()
}

fn success(correlation_id: &str) -> UploadOutcome {
    UploadOutcome {
        correlation_id: correlation_id.into(),
        is_success: true,
        status_code: 200,
        status_description: "ok".into(),
    }
}

#[tokio::test]
async fn a_completed_upload_is_recorded_and_notified_once() {
    let (hub, clock) = hub(FileUploadStorage::External(account()));
    let token = token_for(&hub, "d1").await;
    let mut changed = hub.file_notifications_changed();
    let sas = hub
        .create_file_upload(&device("d1"), Some(&token), "logs/a.txt", "ignored")
        .await
        .unwrap();
    assert_eq!(sas.blob_name, "d1/logs/a.txt");
    assert_eq!(sas.host_name, "acct.blob.core.windows.net");
    assert_eq!(sas.container_name, "fileupload");
    assert!(sas.sas_token.starts_with("?sv=2020-12-06&sr=b&sig="));
    // The token expires with the correlation, an hour later.
    assert!(
        sas.sas_token
            .ends_with("&se=2027-01-15T09%3A00%3A00Z&sp=rcw")
    );
    assert_eq!(
        sas.blob_url(),
        format!(
            "https://acct.blob.core.windows.net/fileupload/d1/logs/a.txt{}",
            sas.sas_token
        )
    );

    clock.advance(Duration::from_secs(5));
    let done = hub
        .complete_file_upload(&device("d1"), Some(&token), success(&sas.correlation_id))
        .await
        .unwrap();
    assert_eq!(done.state, UploadState::Completed);
    assert!(changed.has_changed().unwrap());
    changed.mark_unchanged();

    let taken = hub.take_file_notifications(10).await.unwrap();
    assert_eq!(taken.len(), 1);
    let json = taken[0].to_json();
    assert_eq!(json["deviceId"], "d1");
    assert_eq!(json["blobName"], "d1/logs/a.txt");
    assert_eq!(
        json["blobUri"],
        "https://acct.blob.core.windows.net/fileupload/d1/logs/a.txt"
    );
    assert_eq!(json["enqueuedTimeUtc"], "2027-01-15T08:00:05.000Z");
    // An external account's blob is not measured by the hub.
    assert_eq!(json["blobSizeInBytes"], 0);
    assert!(hub.take_file_notifications(10).await.unwrap().is_empty());

    // Released: back at the front, and the link is woken.
    hub.return_file_notifications(taken.clone()).await.unwrap();
    assert!(changed.has_changed().unwrap());
    assert_eq!(hub.take_file_notifications(1).await.unwrap(), taken);

    // The same correlation cannot complete twice.
    let again = hub
        .complete_file_upload(&device("d1"), Some(&token), success(&sas.correlation_id))
        .await;
    assert!(matches!(again, Err(FileUploadError::AlreadyCompleted(_))));

    let listed = hub.list_file_uploads("d1", 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].to_json()["state"], "completed");
    assert!(hub.file_download_url(&listed[0]).unwrap().contains("&sp=r"));
}

#[tokio::test]
async fn a_failed_upload_is_recorded_without_a_notification() {
    let (hub, _clock) = hub(FileUploadStorage::External(account()));
    let token = token_for(&hub, "d1").await;
    let sas = hub
        .create_file_upload(&device("d1"), Some(&token), "a.bin", "h")
        .await
        .unwrap();
    let failed = UploadOutcome {
        is_success: false,
        status_code: 500,
        status_description: "storage went away".into(),
        ..success(&sas.correlation_id)
    };
    let done = hub
        .complete_file_upload(&device("d1"), Some(&token), failed)
        .await
        .unwrap();
    assert_eq!(done.state, UploadState::Failed);
    assert_eq!(
        done.stored.status_description.as_deref(),
        Some("storage went away")
    );
    assert!(hub.take_file_notifications(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn correlations_expire_with_their_sas_and_stop_counting() {
    let (hub, clock) = hub(FileUploadStorage::External(account()));
    let token = token_for(&hub, "d1").await;
    let mut pending = Vec::new();
    for i in 0..MAX_CONCURRENT_UPLOADS {
        let sas = hub
            .create_file_upload(&device("d1"), Some(&token), &format!("f{i}"), "h")
            .await
            .unwrap();
        pending.push(sas.correlation_id);
    }
    let eleventh = hub
        .create_file_upload(&device("d1"), Some(&token), "f10", "h")
        .await;
    assert!(matches!(
        eleventh,
        Err(FileUploadError::TooManyUploads {
            active: 10,
            max: 10,
            ..
        })
    ));
    // Completing one frees a place.
    hub.complete_file_upload(&device("d1"), Some(&token), success(&pending[0]))
        .await
        .unwrap();
    hub.create_file_upload(&device("d1"), Some(&token), "f10", "h")
        .await
        .unwrap();

    // An hour later every correlation has expired: its notification is refused, and the
    // device may start ten more.
    clock.advance(DEFAULT_SAS_TTL);
    let late = hub
        .complete_file_upload(&device("d1"), Some(&token), success(&pending[1]))
        .await;
    assert!(matches!(
        late,
        Err(FileUploadError::ExpiredCorrelation { .. })
    ));
    for i in 0..MAX_CONCURRENT_UPLOADS {
        hub.create_file_upload(&device("d1"), Some(&token), &format!("g{i}"), "h")
            .await
            .unwrap();
    }
    let states: Vec<_> = hub
        .list_file_uploads("d1", 100)
        .await
        .unwrap()
        .iter()
        .map(|u| u.state)
        .collect();
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == UploadState::Expired)
            .count(),
        10
    );
}

#[tokio::test]
async fn refusals_name_their_rule() {
    let (hub, _clock) = hub(FileUploadStorage::External(account()));
    let token = token_for(&hub, "d1").await;
    let other = token_for(&hub, "d2").await;
    // Another device's token, none at all.
    assert!(matches!(
        hub.create_file_upload(&device("d1"), Some(&other), "a", "h")
            .await,
        Err(FileUploadError::Refused(_))
    ));
    assert!(matches!(
        hub.create_file_upload(&device("d1"), None, "a", "h").await,
        Err(FileUploadError::Refused(_))
    ));
    assert!(matches!(
        hub.create_file_upload(&device("d1"), Some(&token), "../x", "h")
            .await,
        Err(FileUploadError::InvalidBlobName(_))
    ));
    // A correlation of d1 is unknown to d2.
    let sas = hub
        .create_file_upload(&device("d1"), Some(&token), "a", "h")
        .await
        .unwrap();
    assert!(matches!(
        hub.complete_file_upload(&device("d2"), Some(&other), success(&sas.correlation_id))
            .await,
        Err(FileUploadError::UnknownCorrelation(_))
    ));
    assert!(matches!(
        hub.complete_file_upload(&device("d1"), Some(&token), success("nope"))
            .await,
        Err(FileUploadError::UnknownCorrelation(_))
    ));

    let (bare, _clock) = self::hub(FileUploadStorage::None);
    let token = token_for(&bare, "d1").await;
    assert!(matches!(
        bare.create_file_upload(&device("d1"), Some(&token), "a", "h")
            .await,
        Err(FileUploadError::NoStorage)
    ));
}

#[test]
fn request_bodies_parse_as_the_sdks_send_them() {
    assert_eq!(
        parse_sas_request(br#"{"blobName":"a/b.txt"}"#).unwrap(),
        "a/b.txt"
    );
    assert!(parse_sas_request(br#"{"blobName":3}"#).is_err());
    assert!(parse_sas_request(b"{").is_err());
    let outcome = parse_outcome(
        br#"{"correlationId":"c","isSuccess":false,"statusCode":404,"statusDescription":"gone"}"#,
    )
    .unwrap();
    assert_eq!(
        (
            outcome.is_success,
            outcome.status_code,
            outcome.status_description.as_str()
        ),
        (false, 404, "gone")
    );
    // statusCode and statusDescription may be left out.
    let short = parse_outcome(br#"{"correlationId":"c","isSuccess":true}"#).unwrap();
    assert_eq!(short.status_code, 200);
    assert!(parse_outcome(br#"{"correlationId":"c","isSuccess":"yes"}"#).is_err());
}

proptest! {
    /// Whatever bytes arrive, the body parsers answer without panicking.
    #[test]
    fn body_parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_sas_request(&body);
        let _ = parse_outcome(&body);
    }

    /// An accepted blob name never escapes its prefix: no empty, `.` or `..` segment, no
    /// backslash.
    #[test]
    fn accepted_names_stay_under_the_device_prefix(name in "[a-z./\\\\]{0,12}") {
        if validate_blob_name(&name).is_ok() {
            prop_assert!(!name.split('/').any(|s| s.is_empty() || s == "." || s == ".."));
            prop_assert!(!name.contains('\\'));
        }
    }
}

/// The queue is in the store: a notification nobody took is still there after the hub and
/// its database are reopened, and is taken once.
#[tokio::test]
async fn notifications_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let options = || HubOptions {
        clock: Arc::new(ManualClock::new(start())),
        file_upload: FileUploadOptions {
            storage: FileUploadStorage::External(account()),
            ..FileUploadOptions::default()
        },
        ..HubOptions::default()
    };
    let queued = {
        let hub = Hub::with_options(Store::open(&path).unwrap(), options());
        let token = token_for(&hub, "d1").await;
        let sas = hub
            .create_file_upload(&device("d1"), Some(&token), "a.txt", "ignored")
            .await
            .unwrap();
        hub.complete_file_upload(&device("d1"), Some(&token), success(&sas.correlation_id))
            .await
            .unwrap();
        // Every answered write is durable, so dropping the hub here is a crash's worth.
        sas.blob_name
    };
    let hub = Hub::with_options(Store::open(&path).unwrap(), options());
    let taken = hub.take_file_notifications(10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].blob_name, queued);
    assert_eq!(
        taken[0].to_json()["enqueuedTimeUtc"],
        "2027-01-15T08:00:00.000Z"
    );
    assert!(hub.take_file_notifications(10).await.unwrap().is_empty());
}
