//! The REST API end to end over loopback HTTP (in-memory store, fake device connections
//! attached to the real [`Hub`]), plus the OpenAPI conformance check.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::hub::auth::Identity;
use crate::hub::{ConnectionRef, Interests, Outbox, ToDevice};
use crate::store::Store;
use crate::store::events::TelemetryEvent;

mod connection_events;
mod registry;
mod service;

struct Api {
    addr: SocketAddr,
    /// Keeps the API's shutdown signal open (`send(true)` ends SSE streams).
    stop: tokio::sync::watch::Sender<bool>,
    hub: Hub,
    owner: String,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The inner error object of an IoT Hub error body.
    fn error(&self) -> Value {
        serde_json::from_str(self.json()["Message"].as_str().unwrap()).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn setup() -> Api {
    let store = Store::open_in_memory().unwrap();
    store
        .call(|tx| crate::hub::registry::ensure_policies(tx))
        .await
        .unwrap();
    let hub = Hub::new(
        store,
        vec!["localhost".into(), "myhub.azure-devices.net".into()],
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let app = router_with_shutdown(hub.clone(), shutdown);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let owner = token(&hub, "iothubowner", "localhost", 3600).await;
    Api {
        addr,
        stop,
        hub,
        owner,
    }
}

async fn policy_key(hub: &Hub, policy: &str) -> String {
    let name = policy.to_owned();
    hub.store()
        .call(move |tx| crate::store::registry::policy(tx, &name))
        .await
        .unwrap()
        .unwrap()
        .primary_key
}

async fn token(hub: &Hub, policy: &str, resource: &str, ttl: i64) -> String {
    let key = policy_key(hub, policy).await;
    let signer = HmacSha256Signer::from_base64(&key).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry = now.saturating_add_signed(ttl);
    SasToken::sign(ResourceUri::raw(resource), expiry, Some(policy), &signer)
        .unwrap()
        .to_string()
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_with(
            method,
            path,
            Some(&self.owner),
            &[],
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        http(self.addr, method, path, auth, headers, body).await
    }

    async fn create(&self, id: &str) -> Value {
        let r = self
            .call(
                "PUT",
                &format!("/devices/{id}?api-version=2021-04-12"),
                Some(json!({"deviceId": id})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// A fake device connection of `id` that asked for `interests`.
    fn connect(&self, id: &Identity, interests: Interests) -> (ConnectionRef, Outbox) {
        self.hub.attach_test_connection(id, interests)
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

fn dev(id: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: None,
    }
}

/// The next message to the fake connection, as the MQTT topic and payload it goes out as.
async fn next_publish(rx: &mut Outbox) -> (String, Vec<u8>) {
    let message = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    match message.map(|m| m.and_then(crate::mqtt::outgoing)) {
        Ok(Some(p)) => (p.topic, p.payload.to_vec()),
        other => panic!("expected a publish, got {other:?}"),
    }
}

fn telemetry(device: &str, body: &str) -> TelemetryEvent {
    TelemetryEvent {
        seq: 0,
        partition: 0,
        partition_seq: 0,
        device_id: device.into(),
        module_id: None,
        enqueued_ms: 1_700_000_000_000,
        system_properties: [("iothub-connection-device-id".to_owned(), device.to_owned())].into(),
        application_properties: [("k".to_owned(), Some("v".to_owned()))].into(),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

// ---- OpenAPI ----------------------------------------------------------------------------

#[test]
fn openapi_document_lists_exactly_the_served_routes() {
    let doc: Value = serde_json::from_str(openapi::DOCUMENT).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && phantom.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {phantom:?}"
    );
    // The documented right of each operation is the one the router enforces.
    for route in routes() {
        let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert_eq!(
            op["x-iothub-permission"].as_str(),
            route.permission.map(Permission::as_str),
            "{} {}",
            route.method,
            route.path
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_the_document_is_served() {
    let api = setup().await;
    let doc = api.call_with("GET", "/openapi.json", None, &[], None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(
        doc.json(),
        serde_json::from_str::<Value>(openapi::DOCUMENT).unwrap()
    );
    for (path, ops) in doc.json()["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "x").replace("{mid}", "y");
        for method in ops.as_object().unwrap().keys() {
            if path == "/openapi.json" || path == "/events/stream" {
                continue; // anonymous / never-ending; covered above
            }
            // Without credentials a routed operation answers 401; an unrouted one 404/405.
            let r = api
                .call_with(&method.to_ascii_uppercase(), &concrete, None, &[], None)
                .await;
            assert_eq!(r.status, 401, "{method} {path}");
        }
    }
    let unknown = api.call_with("GET", "/nowhere", None, &[], None).await;
    assert_eq!(unknown.status, 404);
}
