//! Shared helpers: tokens, raw MQTT packets, clients.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};
use rumqttc::mqttbytes::v4::{Connect, Login, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `SharedAccessKey` of a connection string.
pub(crate) fn key_of(cs: &str) -> String {
    cs.split(';')
        .find_map(|p| p.strip_prefix("SharedAccessKey="))
        .unwrap()
        .to_string()
}

pub(crate) fn device_token(host: &str, device: &str, key: &str, expiry: u64) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    SasToken::sign(ResourceUri::device(host, device), expiry, None, &signer)
        .unwrap()
        .to_string()
}

pub(crate) fn username(host: &str, device: &str) -> String {
    format!("{host}/{device}/?api-version=2021-04-12")
}

/// A raw MQTT connection for negative tests.
pub(crate) struct Raw {
    pub(crate) stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    pub(crate) async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.write(&mut out, 1 << 20).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet, or `None` when the server closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(p) => return Some(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("bad packet from server: {e:?}"),
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("server neither answered nor closed")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Asserts the server closes the connection (possibly after some packets).
    pub(crate) async fn assert_closed(&mut self) {
        while let Some(p) = self.recv().await {
            assert!(
                !matches!(p, Packet::PubAck(_)),
                "server acknowledged instead of closing: {p:?}"
            );
        }
    }

    /// CONNECT with a client id, username and password; returns the CONNACK code byte.
    pub(crate) async fn login(
        &mut self,
        client_id: &str,
        user: &str,
        password: &str,
    ) -> Option<Packet> {
        let mut c = Connect::new(client_id);
        c.keep_alive = 60;
        c.login = Some(Login::new(user, password));
        self.send(Packet::Connect(c)).await;
        self.recv().await
    }
}

/// A hub with device `dev1` and a raw connection already logged in as it.
pub(crate) async fn logged_in() -> (iothub_emulator::testing::TestHub, Raw) {
    let hub = iothub_emulator::testing::TestHub::spawn().await.unwrap();
    let cs = hub.create_device("dev1").await.unwrap();
    let token = device_token("localhost", "dev1", &key_of(&cs), now() + 3600);
    let mut raw = Raw::connect(hub.plain_addr()).await;
    let ack = raw
        .login("dev1", &username("localhost", "dev1"), &token)
        .await;
    assert!(
        matches!(ack, Some(Packet::ConnAck(ref a)) if a.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success),
        "{ack:?}"
    );
    (hub, raw)
}
