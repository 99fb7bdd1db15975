//! `DeviceClient::upload_file` against the real emulator (`TestHub`): a 50 MB file through
//! its built-in blob endpoint, read back and notified to the service; and a storage account
//! that stops answering mid-upload, after which the hub has recorded the upload as failed
//! and notified the service of nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::put;
use iothub_device::{
    ClientOptions, DeviceClient, Error, RetryPolicy, UploadEndpoint, UploadError, UploadOptions,
};
use iothub_emulator::hub::file_upload::UploadState;
use iothub_emulator::testing::TestHub;
use iothub_emulator::{Config, FileUploadConfig, RunningEmulator};

/// Azurite's well-known development account key (public; the fake storage checks nothing).
const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn options(hub: &TestHub, cs: &str) -> ClientOptions {
    ClientOptions::from_connection_string(cs)
        .unwrap()
        .port(hub.mqtt_addr().port())
        .https_port(hub.https_addr().port())
        .trust_ca_pem(hub.ca_pem().as_bytes().to_vec())
}

#[tokio::test]
async fn a_50_mb_file_reaches_the_built_in_store_and_the_service_is_notified() {
    const SIZE: usize = 50 * 1024 * 1024;
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let client = DeviceClient::connect(options(&hub, &cs)).await.unwrap();
    let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let last = Arc::new(Mutex::new(None));
    let recorder = last.clone();
    let uploaded = client
        .upload_file(
            "camera/big.bin",
            &body[..],
            UploadOptions::new()
                .size_hint(SIZE as u64)
                .on_progress(move |p| *recorder.lock().unwrap() = Some(p.clone())),
        )
        .await
        .unwrap();
    assert_eq!(uploaded.size, SIZE as u64);
    assert_eq!(uploaded.blocks, 13, "4 MiB blocks");
    assert_eq!(uploaded.blob_name, "dev1/camera/big.bin");
    let progress = last.lock().unwrap().clone().unwrap();
    assert_eq!(progress.bytes_sent, SIZE as u64);
    assert_eq!(progress.total, Some(SIZE as u64));

    let uploads = hub
        .emulator
        .hub
        .list_file_uploads("dev1", 10)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].state, UploadState::Completed);
    assert_eq!(uploads[0].stored.correlation_id, uploaded.correlation_id);
    assert_eq!(uploads[0].stored.size_bytes, Some(SIZE as i64));
    let notifications = hub.emulator.hub.take_file_notifications(10).await.unwrap();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].blob_name, "dev1/camera/big.bin");
    assert_eq!(notifications[0].blob_size_in_bytes, SIZE as u64);

    // Read it back through the hub's read-only link.
    let url = hub.emulator.hub.file_download_url(&uploads[0]).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let download = http.get(url).send().await.unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.bytes().await.unwrap() == body, "the blob differs");
    client.close().await;
    hub.shutdown().await;
}

/// A blob storage that accepts `accept` blocks and then never answers again.
async fn dying_storage(accept: u32) -> (u16, Arc<AtomicU32>) {
    let seen = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route(
            "/devstoreaccount1/fileupload/{*blob}",
            put(
                |State((seen, accept)): State<(Arc<AtomicU32>, u32)>,
                 Query(query): Query<std::collections::HashMap<String, String>>| async move {
                    assert_eq!(query.get("comp").map(String::as_str), Some("block"));
                    if seen.fetch_add(1, Ordering::SeqCst) >= accept {
                        std::future::pending::<()>().await;
                    }
                    StatusCode::CREATED
                },
            ),
        )
        .with_state((seen.clone(), accept));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

#[tokio::test]
async fn storage_gone_mid_upload_is_recorded_as_failed_and_never_notified() {
    let (port, seen) = dying_storage(2).await;
    let config = Config {
        file_upload: FileUploadConfig::External(format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_ACCOUNT_KEY};\
             BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )),
        ..Config::ephemeral()
    };
    let hub = TestHub {
        emulator: RunningEmulator::start(config).await.unwrap(),
    };
    let cs = hub.create_device("dev1").await.unwrap();
    let client = DeviceClient::start(options(&hub, &cs)).unwrap();
    let err = client
        .upload_file(
            "doomed.bin",
            &vec![7u8; 10 * 1024][..],
            UploadOptions::new()
                .block_size(1024)
                .storage_plain_http(true)
                .request_timeout(Duration::from_millis(500))
                .retry(RetryPolicy::new(
                    2,
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                )),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Upload(UploadError::Network {
                endpoint: UploadEndpoint::Storage,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2 + 2, "block 2 tried twice");

    let uploads = hub
        .emulator
        .hub
        .list_file_uploads("dev1", 10)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].state, UploadState::Failed);
    assert_eq!(uploads[0].stored.status_code, Some(500));
    assert!(
        hub.emulator
            .hub
            .take_file_notifications(10)
            .await
            .unwrap()
            .is_empty()
    );
    client.close().await;
    hub.shutdown().await;
}
