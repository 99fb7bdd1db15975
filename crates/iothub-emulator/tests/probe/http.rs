//! A raw HTTP/1.1 client: the probe needs exact bytes on the wire (odd paths, huge bodies).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, header lines, body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: String,
    pub(crate) body: String,
}

impl Reply {
    /// The value of header `name` (lower case), if present.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The inner error object of an IoT Hub error body; panics if the body is not one.
    pub(crate) fn hub_error(&self) -> serde_json::Value {
        let outer: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        assert_eq!(outer["ExceptionMessage"], "", "{}", self.body);
        serde_json::from_str(outer["Message"].as_str().unwrap()).unwrap()
    }
}

/// Sends `method path` with `token` and `body` on a new connection (`Connection: close`).
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) and close before reading everything: ignore write errors.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("no answer within 20 s");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .unwrap_or_else(|| panic!("no status line: {text:?}"))
        .parse()
        .unwrap();
    Reply {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

/// The `iothubowner` token for `sr`.
pub(crate) fn owner_token(hub: &iothub_emulator::testing::TestHub, sr: &str) -> String {
    use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
    let key = crate::support::key_of(&hub.emulator.service_connection_string);
    let signer = HmacSha256Signer::from_base64(&key).unwrap();
    SasToken::sign(
        ResourceUri::raw(sr),
        crate::support::now() + 3600,
        Some("iothubowner"),
        &signer,
    )
    .unwrap()
    .to_string()
}
