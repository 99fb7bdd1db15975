//! File upload end to end over HTTP(S), as a device SDK and azure-storage-blob do it: SAS URI
//! from the hub, blocks to the built-in blob endpoint, the notification, the download, the
//! service's listing and event stream, and the refusals (docs/file-upload.md).

use std::time::{Duration, SystemTime};

use iothub_emulator::hub::file_upload::blob_sas;
use iothub_emulator::testing::TestHub;
use iothub_emulator::{Config, FileUploadConfig, RunningEmulator};
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

pub(crate) fn client(hub: &TestHub) -> Client {
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes()).unwrap())
        .resolve("localhost", hub.https_addr())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn owner_token(hub: &TestHub) -> String {
    let signer =
        HmacSha256Signer::from_base64(&key_of(&hub.emulator.service_connection_string)).unwrap();
    SasToken::sign(
        ResourceUri::hub("localhost"),
        now() + 3600,
        Some("iothubowner"),
        &signer,
    )
    .unwrap()
    .to_string()
}

/// A device and its SAS token.
pub(crate) async fn device(hub: &TestHub, id: &str) -> String {
    let key = key_of(&hub.create_device(id).await.unwrap());
    device_token("localhost", id, &key, now() + 3600)
}

pub(crate) fn hub_url(hub: &TestHub, path: &str) -> String {
    format!(
        "https://localhost:{}{path}?api-version=2021-04-12",
        hub.https_addr().port()
    )
}

pub(crate) async fn post(
    http: &Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = http.post(url).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = req.body(body.to_string()).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The inner `errorCode` of IoT Hub's error body.
fn error_code(body: &Value) -> u64 {
    let inner: Value = serde_json::from_str(body["Message"].as_str().unwrap()).unwrap();
    inner["errorCode"].as_u64().unwrap()
}

pub(crate) async fn sas_uri(http: &Client, hub: &TestHub, token: &str, name: &str) -> Value {
    let (status, body) = post(
        http,
        &hub_url(hub, "/devices/d1/files"),
        Some(token),
        json!({ "blobName": name }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// d1 reports the upload of `sas` completed (201 from the storage); the hub answers 204.
pub(crate) async fn notify_success(http: &Client, hub: &TestHub, token: &str, sas: &Value) {
    let (status, body) = post(
        http,
        &hub_url(hub, "/devices/d1/files/notifications"),
        Some(token),
        json!({
            "correlationId": sas["correlationId"],
            "isSuccess": true,
            "statusCode": 201,
            "statusDescription": "uploaded",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

pub(crate) fn blob_url(sas: &Value) -> String {
    format!(
        "https://{}/{}/{}{}",
        sas["hostName"].as_str().unwrap(),
        sas["containerName"].as_str().unwrap(),
        sas["blobName"].as_str().unwrap(),
        sas["sasToken"].as_str().unwrap()
    )
}

#[tokio::test]
async fn blocks_commit_download_notify_and_list() {
    let hub = TestHub::spawn().await.unwrap();
    let http = client(&hub);
    let token = device(&hub, "d1").await;
    let sas = sas_uri(&http, &hub, &token, "logs/day one.txt").await;
    assert_eq!(sas["blobName"], "d1/logs/day one.txt");
    assert_eq!(sas["containerName"], "fileupload");
    assert_eq!(
        sas["hostName"],
        format!("localhost:{}/iothubemulator", hub.https_addr().port())
    );
    assert!(sas["sasToken"].as_str().unwrap().starts_with("?sv="));
    assert_eq!(sas["correlationId"].as_str().unwrap().len(), 32);
    let url = blob_url(&sas).replace(' ', "%20");

    // The service follows the event stream before the upload completes.
    let mut stream = http
        .get(format!(
            "https://localhost:{}/events/stream?device=d1",
            hub.https_addr().port()
        ))
        .header("authorization", owner_token(&hub))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    // Two blocks, staged then committed in list order, as azure-storage-blob uploads.
    for (id, part) in [("YmxvY2stMQ==", "hello, "), ("YmxvY2stMg==", "blob")] {
        let res = http
            .put(format!(
                "{url}&comp=block&blockid={}",
                id.replace('=', "%3D")
            ))
            .body(part)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let nothing_yet = http.get(&url).send().await.unwrap();
    assert_eq!(nothing_yet.status(), StatusCode::NOT_FOUND);
    assert_eq!(nothing_yet.headers()["x-ms-error-code"], "BlobNotFound");
    let list = "<?xml version='1.0' encoding='utf-8'?>\n<BlockList><Latest>YmxvY2stMQ==</Latest><Latest>YmxvY2stMg==</Latest></BlockList>";
    let res = http
        .put(format!("{url}&comp=blocklist"))
        .header("x-ms-blob-content-type", "text/plain")
        .body(list)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().contains_key("etag"));

    let got = http.get(&url).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.headers()["content-type"], "text/plain");
    assert_eq!(got.headers()["x-ms-blob-type"], "BlockBlob");
    assert_eq!(got.text().await.unwrap(), "hello, blob");
    let part = http
        .get(&url)
        .header("x-ms-range", "bytes=7-")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 7-10/11");
    assert_eq!(part.text().await.unwrap(), "blob");
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "11");

    notify_success(&http, &hub, &token, &sas).await;

    // The notification: on the event stream, and queued for the AMQP link.
    let mut seen = String::new();
    while !seen.contains("fileUploadNotification") || !seen.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: fileUploadNotification"), "{seen}");
    assert!(seen.contains("\"blobSizeInBytes\":11"), "{seen}");
    // The back end reads it on the AMQP file-notification link (peek-lock: accepted).
    let mut amqp = crate::amqp_support::Client::authorized(&hub).await;
    let mut link = amqp
        .receiver("/messages/serviceBound/filenotifications", None, None, &[])
        .await;
    let message = crate::amqp_support::next_event(&mut link).await;
    let note: Value = serde_json::from_slice(&crate::amqp_support::body_bytes(&message)).unwrap();
    assert_eq!(note["deviceId"], "d1");
    assert_eq!(note["blobSizeInBytes"], 11);
    assert_eq!(note["blobName"], "d1/logs/day one.txt");
    assert!(
        note["blobUri"]
            .as_str()
            .unwrap()
            .ends_with("/iothubemulator/fileupload/d1/logs/day%20one.txt"),
        "{note}"
    );
    assert!(
        hub.emulator
            .hub
            .take_file_notifications(10)
            .await
            .unwrap()
            .is_empty(),
        "accepted: completed"
    );

    // The service's listing (our extension), with a download link that works.
    let listed: Value = http
        .get(format!(
            "https://localhost:{}/devices/d1/files",
            hub.https_addr().port()
        ))
        .header("authorization", owner_token(&hub))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(listed[0]["state"], "completed");
    assert_eq!(listed[0]["blobSizeInBytes"], 11);
    assert_eq!(listed[0]["statusCode"], 201);
    let download = listed[0]["downloadUrl"].as_str().unwrap();
    let body = http.get(download).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), "hello, blob");
    // A read-only link cannot write.
    let write = http
        .put(download)
        .header("x-ms-blob-type", "BlockBlob")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        write.headers()["x-ms-error-code"],
        "AuthorizationPermissionMismatch"
    );
    hub.shutdown().await;
}

/// reqwest's JSON helper needs a feature the workspace does not enable.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn put_blob_and_refused_tokens() {
    let hub = TestHub::spawn().await.unwrap();
    let http = client(&hub);
    let token = device(&hub, "d1").await;
    let sas = sas_uri(&http, &hub, &token, "one.bin").await;
    let url = blob_url(&sas);

    let no_type = http.put(&url).body("x").send().await.unwrap();
    assert_eq!(no_type.status(), StatusCode::BAD_REQUEST);
    let put = http
        .put(&url)
        .header("x-ms-blob-type", "BlockBlob")
        .body(vec![7u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(
        http.get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        100_000
    );

    // Tampered, absent, for another blob, expired: 403 in Azure Storage's shape.
    let tampered = url.replace("sp=rcw", "sp=rcwd");
    let unsigned = url.split('?').next().unwrap().to_owned();
    let other_blob = url.replace("/d1/one.bin", "/d2/one.bin");
    let (account, _) = hub.emulator.hub.built_in_blobs().unwrap();
    let expired = format!(
        "{unsigned}?{}",
        blob_sas::sign(
            account,
            "fileupload",
            "d1/one.bin",
            "rcw",
            SystemTime::now() - Duration::from_secs(1)
        )
    );
    for bad in [tampered, unsigned, other_blob, expired] {
        let res = http.get(&bad).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{bad}");
        assert_eq!(res.headers()["x-ms-error-code"], "AuthenticationFailed");
        let text = res.text().await.unwrap();
        assert!(text.contains("<Code>AuthenticationFailed</Code>"), "{text}");
    }

    // A block list naming a block never staged commits nothing.
    let res = http
        .put(format!("{url}&comp=blocklist"))
        .body("<BlockList><Latest>bm9wZQ==</Latest></BlockList>")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["x-ms-error-code"], "InvalidBlockList");
    hub.shutdown().await;
}

#[tokio::test]
async fn hub_refusals_are_clear_4xx() {
    let hub = TestHub::spawn().await.unwrap();
    let http = client(&hub);
    let token = device(&hub, "d1").await;
    let files = hub_url(&hub, "/devices/d1/files");
    let notify = hub_url(&hub, "/devices/d1/files/notifications");

    let (status, _) = post(&http, &files, None, json!({ "blobName": "a" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = post(&http, &files, Some(&token), json!({ "blobName": "../a" })).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, 400_004)
    );
    let (status, _) = post(&http, &files, Some(&token), json!({ "name": "a" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = post(
        &http,
        &notify,
        Some(&token),
        json!({ "correlationId": "nope", "isSuccess": true, "statusCode": 200, "statusDescription": "" }),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, 400_004)
    );

    // Ten in flight; the eleventh is refused with 403006.
    for i in 0..10 {
        sas_uri(&http, &hub, &token, &format!("f{i}")).await;
    }
    let (status, body) = post(&http, &files, Some(&token), json!({ "blobName": "f10" })).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, 403_006)
    );
    hub.shutdown().await;

    // A hub without storage.
    let bare = TestHub {
        emulator: RunningEmulator::start(Config {
            file_upload: FileUploadConfig::Disabled,
            ..Config::ephemeral()
        })
        .await
        .unwrap(),
    };
    let http = client(&bare);
    let token = device(&bare, "d1").await;
    let (status, body) = post(
        &http,
        &hub_url(&bare, "/devices/d1/files"),
        Some(&token),
        json!({ "blobName": "a" }),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, 400_022)
    );
    bare.shutdown().await;
}
