//! File upload to an external storage account (docs/file-upload.md, "Storage"): the hub reads
//! the completed blob's size from the account for the notification, as IoT Hub does. The
//! account here is a second emulator's built-in blob endpoint: Azure Storage's API over HTTPS
//! with a CA of its own, which the hub trusts only when told to (`storage_ca_pem`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use iothub_emulator::testing::TestHub;
use iothub_emulator::{Config, FileUploadConfig, RunningEmulator};
use reqwest::StatusCode;

use crate::file_upload::{blob_url, client, device, notify_success, sas_uri};

/// A hub whose uploads go to `storage`'s built-in account, trusting `storage`'s CA or not.
async fn hub_over(storage: &TestHub, trust_storage_ca: bool) -> TestHub {
    let (account, _) = storage.emulator.hub.built_in_blobs().unwrap();
    let connection_string = format!(
        "DefaultEndpointsProtocol=https;AccountName={name};AccountKey={key};BlobEndpoint=https://localhost:{port}/{name}",
        name = account.name,
        key = STANDARD.encode(&account.key),
        port = storage.https_addr().port(),
    );
    let emulator = RunningEmulator::start(Config {
        file_upload: FileUploadConfig::External(connection_string),
        storage_ca_pem: trust_storage_ca.then(|| storage.ca_pem().as_bytes().to_vec()),
        ..Config::ephemeral()
    })
    .await
    .unwrap();
    TestHub { emulator }
}

/// Uploads `body` as `name` through `hub` into `storage` and reports success; returns the
/// size the hub's notification gives.
async fn upload_and_notify(hub: &TestHub, storage: &TestHub, name: &str, body: &[u8]) -> u64 {
    let to_hub = client(hub);
    let token = device(hub, "d1").await;
    let sas = sas_uri(&to_hub, hub, &token, name).await;
    let to_storage = client(storage);
    let put = to_storage
        .put(blob_url(&sas))
        .header("x-ms-blob-type", "BlockBlob")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    notify_success(&to_hub, hub, &token, &sas).await;
    let notes = hub.emulator.hub.take_file_notifications(10).await.unwrap();
    assert_eq!(notes.len(), 1, "one notification: {notes:?}");
    assert_eq!(notes[0].blob_name, format!("d1/{name}"));
    notes[0].blob_size_in_bytes
}

#[tokio::test]
async fn the_notification_carries_the_size_the_storage_account_reports() {
    let storage = TestHub::spawn().await.unwrap();
    let hub = hub_over(&storage, true).await;
    let size = upload_and_notify(&hub, &storage, "logs/a.bin", &[7u8; 12_345]).await;
    assert_eq!(size, 12_345);
}

#[tokio::test]
async fn a_storage_account_the_hub_cannot_read_leaves_the_size_0_and_the_upload_completed() {
    let storage = TestHub::spawn().await.unwrap();
    // The storage's certificate is not trusted: the size read fails (logged), the upload
    // still completes and notifies, as the device reported.
    let hub = hub_over(&storage, false).await;
    let size = upload_and_notify(&hub, &storage, "b.bin", b"twelve bytes").await;
    assert_eq!(size, 0);
}
