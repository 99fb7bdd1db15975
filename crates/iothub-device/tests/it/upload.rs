//! `DeviceClient::upload_file` against a fake hub and blob storage on loopback that record
//! every request and inject failures: the wire shapes (hub paths, api-version, SAS header,
//! Put Block ids, Put Block List), retries of a failed block, and that every failure after
//! the SAS URI was handed out is notified as a failure with nothing committed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use iothub_device::{
    ClientOptions, DeviceClient, Error, HubRequest, RetryPolicy, StorageOperation, UploadEndpoint,
    UploadError, UploadOptions, UploadProgress,
};
use serde_json::{Value, json};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SAS: &str = "sv=2020-10-02&sr=b&sig=fake%2Bsig%3D&se=2099-01-01T00%3A00%3A00Z&sp=rcw";

/// What the fake saw, and the failures it was told to inject.
#[derive(Default)]
struct Fake {
    port: u16,
    /// `Authorization` and body of each SAS URI request.
    sas_requests: Vec<(Option<String>, String, Value)>,
    notifications: Vec<Value>,
    /// Staged blocks by blob and block id.
    staged: HashMap<String, BTreeMap<String, Bytes>>,
    committed: HashMap<String, Bytes>,
    /// Put Block attempts, by block id, in order.
    block_attempts: Vec<String>,
    /// Statuses to answer the next Put Blocks of block index N with.
    block_failures: HashMap<u32, VecDeque<u16>>,
    /// From this block index on, Put Block never answers (the storage went away).
    hang_from_block: Option<u32>,
    /// The hub's answer to the SAS URI request, when not 200.
    refuse_sas: Option<u16>,
    x_ms_versions: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

async fn start() -> Shared {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/devices/{id}/files", post(sas_uri))
        .route("/devices/{id}/modules/{module}/files", post(module_sas_uri))
        .route("/devices/{id}/files/notifications", post(notify))
        .route(
            "/devices/{id}/modules/{module}/files/notifications",
            post(module_notify),
        )
        .route("/devstoreaccount1/fileupload/{*blob}", put(blob_put))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake.lock().unwrap().port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

async fn sas_uri(
    State(fake): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_sas(&fake, id, query, headers, body)
}

async fn module_sas_uri(
    State(fake): State<Shared>,
    Path((id, module)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer_sas(&fake, format!("{id}/{module}"), query, headers, body)
}

fn answer_sas(
    fake: &Shared,
    id: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    fake.sas_requests.push((
        auth,
        query.get("api-version").cloned().unwrap_or_default(),
        body.clone(),
    ));
    if let Some(status) = fake.refuse_sas {
        return (
            StatusCode::from_u16(status).unwrap(),
            r#"{"Message":"ErrorCode:IotHubQuotaExceeded;too many uploads"}"#,
        )
            .into_response();
    }
    let blob = format!("{id}/{}", body["blobName"].as_str().unwrap());
    axum::Json(json!({
        "correlationId": format!("corr-{}", fake.sas_requests.len()),
        "hostName": format!("127.0.0.1:{}/devstoreaccount1", fake.port),
        "containerName": "fileupload",
        "blobName": blob,
        "sasToken": format!("?{SAS}"),
    }))
    .into_response()
}

async fn notify(State(fake): State<Shared>, body: Bytes) -> StatusCode {
    fake.lock()
        .unwrap()
        .notifications
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

async fn module_notify(State(fake): State<Shared>, body: Bytes) -> StatusCode {
    notify(State(fake), body).await
}

fn block_index(id: &str) -> u32 {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(id)
        .unwrap();
    std::str::from_utf8(&text).unwrap()["block-".len()..]
        .parse()
        .unwrap()
}

async fn blob_put(
    State(fake): State<Shared>,
    Path(blob): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hang = {
        let mut fake = fake.lock().unwrap();
        assert_eq!(query.get("sig").map(String::as_str), Some("fake+sig="));
        assert_eq!(query.get("sp").map(String::as_str), Some("rcw"));
        let version = headers
            .get("x-ms-version")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        fake.x_ms_versions.push(version);
        match query.get("comp").map(String::as_str) {
            Some("block") => {
                let id = query["blockid"].clone();
                let index = block_index(&id);
                fake.block_attempts.push(id.clone());
                if fake.hang_from_block.is_some_and(|from| index >= from) {
                    true
                } else {
                    if let Some(status) = fake
                        .block_failures
                        .get_mut(&index)
                        .and_then(VecDeque::pop_front)
                    {
                        let code = if status == 403 {
                            "AuthenticationFailed"
                        } else {
                            "ServerBusy"
                        };
                        return (
                            StatusCode::from_u16(status).unwrap(),
                            [("x-ms-error-code", code)],
                        )
                            .into_response();
                    }
                    fake.staged.entry(blob).or_default().insert(id, body);
                    return StatusCode::CREATED.into_response();
                }
            }
            Some("blocklist") => {
                let xml = std::str::from_utf8(&body).unwrap();
                let staged = fake.staged.remove(&blob).unwrap_or_default();
                let mut data = Vec::new();
                for part in xml.split("<Latest>").skip(1) {
                    let id = part.split("</Latest>").next().unwrap();
                    data.extend_from_slice(&staged[id]);
                }
                fake.committed.insert(blob, Bytes::from(data));
                return StatusCode::CREATED.into_response();
            }
            other => panic!("unexpected comp {other:?}"),
        }
    };
    assert!(hang);
    std::future::pending::<()>().await;
    unreachable!()
}

fn client(fake: &Shared, cs_tail: &str) -> DeviceClient {
    let port = fake.lock().unwrap().port;
    let options = ClientOptions::from_connection_string(&format!(
        "HostName=hub.test;DeviceId=dev1;{cs_tail}SharedAccessKey={KEY}"
    ))
    .unwrap()
    .gateway_host_name("127.0.0.1")
    .plain_tcp()
    // Nothing listens for MQTT there: uploads do not need the MQTT connection.
    .port(1)
    .https_port(port);
    DeviceClient::start(options).unwrap()
}

fn fast_retries() -> UploadOptions {
    UploadOptions::new()
        .storage_plain_http(true)
        .retry(RetryPolicy::new(
            3,
            Duration::from_millis(10),
            Duration::from_millis(20),
        ))
        .request_timeout(Duration::from_millis(500))
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn uploads_in_blocks_commits_in_order_and_notifies_success() {
    let fake = start().await;
    let client = client(&fake, "");
    let body = data(10 * 1024 + 123);
    let seen = Arc::new(Mutex::new(Vec::<UploadProgress>::new()));
    let recorder = seen.clone();
    let options = fast_retries()
        .block_size(1024)
        .size_hint(body.len() as u64)
        .content_type("application/octet-stream")
        .on_progress(move |p| recorder.lock().unwrap().push(p.clone()));
    let uploaded = client
        .upload_file("logs/a b.bin", &body[..], options)
        .await
        .unwrap();
    assert_eq!(uploaded.size, body.len() as u64);
    assert_eq!(uploaded.blocks, 11);
    assert_eq!(uploaded.retries, 0);
    assert_eq!(uploaded.blob_name, "dev1/logs/a b.bin");
    assert_eq!(uploaded.correlation_id, "corr-1");
    let port = fake.lock().unwrap().port;
    assert_eq!(
        uploaded.blob_url,
        format!("http://127.0.0.1:{port}/devstoreaccount1/fileupload/dev1/logs/a%20b.bin")
    );

    let fake = fake.lock().unwrap();
    let (auth, api_version, request) = &fake.sas_requests[0];
    let auth = auth.as_deref().unwrap();
    assert!(
        auth.starts_with("SharedAccessSignature sr=hub.test%2Fdevices%2Fdev1&sig="),
        "{auth}"
    );
    assert_eq!(api_version, "2021-04-12");
    assert_eq!(request, &json!({"blobName": "logs/a b.bin"}));
    assert_eq!(&fake.committed["dev1/logs/a b.bin"][..], &body[..]);
    assert!(fake.x_ms_versions.iter().all(|v| v == "2020-12-06"));
    assert_eq!(fake.block_attempts.len(), 11);
    assert_eq!(
        fake.notifications,
        [json!({
            "correlationId": "corr-1",
            "isSuccess": true,
            "statusCode": 200,
            "statusDescription": format!("uploaded {} bytes in 11 blocks", body.len()),
        })]
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 12, "once after the SAS, once per block");
    assert_eq!(seen[0].bytes_sent, 0);
    assert!(seen.windows(2).all(|w| w[0].bytes_sent < w[1].bytes_sent));
    assert_eq!(seen[11].bytes_sent, body.len() as u64);
    assert_eq!(seen[11].total, Some(body.len() as u64));
}

#[tokio::test]
async fn a_block_the_storage_failed_is_sent_again() {
    let fake = start().await;
    fake.lock()
        .unwrap()
        .block_failures
        .insert(1, VecDeque::from([503, 500]));
    let client = client(&fake, "");
    let body = data(3000);
    let uploaded = client
        .upload_file("x.bin", &body[..], fast_retries().block_size(1024))
        .await
        .unwrap();
    assert_eq!(uploaded.retries, 2);
    let fake = fake.lock().unwrap();
    assert_eq!(&fake.committed["dev1/x.bin"][..], &body[..]);
    assert_eq!(fake.block_attempts.len(), 5);
    assert_eq!(fake.notifications[0]["isSuccess"], true);
}

#[tokio::test]
async fn an_expired_sas_fails_at_once_and_the_failure_is_notified() {
    let fake = start().await;
    fake.lock()
        .unwrap()
        .block_failures
        .insert(1, VecDeque::from([403]));
    let client = client(&fake, "");
    let err = client
        .upload_file("x.bin", &data(3000)[..], fast_retries().block_size(1024))
        .await
        .unwrap_err();
    match &err {
        Error::Upload(UploadError::StorageRefused {
            operation: StorageOperation::PutBlock { index: 1 },
            status: 403,
            code: Some(code),
        }) => assert_eq!(code, "AuthenticationFailed"),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retriable());
    let fake = fake.lock().unwrap();
    assert_eq!(fake.block_attempts.len(), 2, "a 403 is not retried");
    assert!(fake.committed.is_empty());
    assert_eq!(fake.notifications.len(), 1);
    let notification = &fake.notifications[0];
    assert_eq!(notification["correlationId"], "corr-1");
    assert_eq!(notification["isSuccess"], false);
    assert_eq!(notification["statusCode"], 403);
    let description = notification["statusDescription"].as_str().unwrap();
    assert!(description.contains("Put Block 1"), "{description}");
    assert!(!description.contains("sig="), "{description}");
}

#[tokio::test]
async fn storage_gone_mid_upload_is_a_network_failure_notified_with_nothing_committed() {
    let fake = start().await;
    fake.lock().unwrap().hang_from_block = Some(2);
    let client = client(&fake, "");
    let err = client
        .upload_file("big.bin", &data(5000)[..], fast_retries().block_size(1024))
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
    assert!(err.is_retriable());
    // The error's text never carries the SAS.
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(e) = cause {
        text.push_str(&e.to_string());
        cause = e.source();
    }
    assert!(!text.contains("sig="), "{text}");
    let fake = fake.lock().unwrap();
    assert_eq!(
        fake.block_attempts.len(),
        2 + 3,
        "block 2 tried three times"
    );
    assert!(fake.committed.is_empty());
    assert_eq!(fake.notifications.len(), 1);
    assert_eq!(fake.notifications[0]["isSuccess"], false);
    assert_eq!(fake.notifications[0]["statusCode"], 500);
}

#[tokio::test]
async fn a_refused_sas_request_sends_nothing_else() {
    let fake = start().await;
    fake.lock().unwrap().refuse_sas = Some(403);
    let client = client(&fake, "");
    let err = client
        .upload_file("x.bin", &b"abc"[..], fast_retries())
        .await
        .unwrap_err();
    match &err {
        Error::Upload(UploadError::HubRefused {
            request: HubRequest::SasUri,
            status: 403,
            body,
        }) => assert!(body.contains("IotHubQuotaExceeded"), "{body}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.status(), Some(403));
    let fake = fake.lock().unwrap();
    assert!(fake.block_attempts.is_empty());
    assert!(fake.notifications.is_empty());
}

#[tokio::test]
async fn an_empty_source_commits_an_empty_blob() {
    let fake = start().await;
    let client = client(&fake, "");
    let uploaded = client
        .upload_file("empty", &b""[..], fast_retries())
        .await
        .unwrap();
    assert_eq!((uploaded.size, uploaded.blocks), (0, 0));
    let fake = fake.lock().unwrap();
    assert!(fake.committed["dev1/empty"].is_empty());
    assert_eq!(fake.notifications[0]["isSuccess"], true);
}

#[tokio::test]
async fn a_module_uploads_through_its_own_path_and_a_bad_name_is_refused_locally() {
    let fake = start().await;
    let client = client(&fake, "ModuleId=m1;");
    let uploaded = client
        .upload_file("a.txt", &b"module data"[..], fast_retries())
        .await
        .unwrap();
    assert_eq!(uploaded.blob_name, "dev1/m1/a.txt");
    let err = client
        .upload_file("a//b", &b""[..], fast_retries())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "blob_name",
                ..
            }
        ),
        "{err:?}"
    );
    let fake = fake.lock().unwrap();
    assert!(
        fake.sas_requests[0]
            .0
            .as_deref()
            .unwrap()
            .contains("sr=hub.test%2Fdevices%2Fdev1%2Fmodules%2Fm1&")
    );
    assert_eq!(fake.sas_requests.len(), 1);
}

#[tokio::test]
async fn upload_path_reads_the_file_with_its_size() {
    let fake = start().await;
    let client = client(&fake, "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let body = data(2500);
    std::fs::write(&path, &body).unwrap();
    let totals = Arc::new(Mutex::new(Vec::new()));
    let recorder = totals.clone();
    let uploaded = client
        .upload_path(
            "f.bin",
            &path,
            fast_retries()
                .block_size(1000)
                .on_progress(move |p| recorder.lock().unwrap().push(p.total)),
        )
        .await
        .unwrap();
    assert_eq!(uploaded.blocks, 3);
    assert!(totals.lock().unwrap().iter().all(|t| *t == Some(2500)));
    assert_eq!(&fake.lock().unwrap().committed["dev1/f.bin"][..], &body[..]);
    let missing = client
        .upload_path("g.bin", &dir.path().join("missing"), fast_retries())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, Error::Upload(UploadError::Source(_))),
        "{missing:?}"
    );
}
