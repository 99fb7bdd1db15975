//! Byte transports under MQTT: TCP, TLS, WebSockets (`/$iothub/websocket`, subprotocol `mqtt`),
//! optionally through an HTTP CONNECT proxy.
//!
//! A [`Connection`] only moves bytes; MQTT framing is the driver's job. `read` is cancel-safe
//! (it is raced against timers and commands in one `select!`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{DisconnectReason, NetworkError, Request};

/// Path of the MQTT-over-WebSockets endpoint (docs/protocol.md §1.1).
pub(crate) const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// How to reach the hub.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Host to dial and to verify in TLS: `GatewayHostName` when set, else `HostName`.
    pub(crate) host: String,
    /// Port: 8883 (MQTT/TLS) or 443 (WebSockets) unless overridden.
    pub(crate) port: u16,
    /// MQTT inside WebSocket frames.
    pub(crate) websocket: bool,
    /// `None` means plain TCP (the emulator's dev port only; IoT Hub has no plain port).
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// HTTP CONNECT proxy `host:port`.
    pub(crate) proxy: Option<String>,
    /// Bound on TCP connect, proxy, TLS and WebSocket handshakes together.
    pub(crate) connect_timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("websocket", &self.websocket)
            .field("tls", &self.tls.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open byte transport.
pub(crate) enum Connection {
    /// TCP or TLS.
    Stream(Box<dyn Io>),
    /// WebSocket over TCP or TLS; MQTT bytes travel in binary frames.
    WebSocket(Box<WebSocketStream<Box<dyn Io>>>),
}

impl Connection {
    /// Opens the transport described by `endpoint`.
    ///
    /// # Errors
    ///
    /// Which step failed, typed: DNS, TCP, the proxy, TLS, the WebSocket upgrade, or
    /// [`Request::Connect`] when all of it took longer than the connect timeout.
    pub(crate) async fn open(endpoint: &Endpoint) -> Result<Self, DisconnectReason> {
        match tokio::time::timeout(endpoint.connect_timeout, Self::open_inner(endpoint)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(DisconnectReason::Network(e)),
            Err(_) => Err(DisconnectReason::Timeout(Request::Connect)),
        }
    }

    async fn open_inner(endpoint: &Endpoint) -> Result<Self, NetworkError> {
        let target = format!("{}:{}", endpoint.host, endpoint.port);
        let tcp = match &endpoint.proxy {
            Some(proxy) => {
                let proxy_error = |e| NetworkError::Proxy {
                    proxy: proxy.clone(),
                    source: Arc::new(e),
                };
                let mut tcp = TcpStream::connect(proxy).await.map_err(proxy_error)?;
                http_connect(&mut tcp, &target).await.map_err(proxy_error)?;
                tcp
            }
            None => dial(&endpoint.host, endpoint.port).await?,
        };
        // Latency over throughput: MQTT packets are small and each one is awaited.
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &endpoint.tls {
            Some(config) => {
                let tls_error = |e| NetworkError::Tls {
                    host: endpoint.host.clone(),
                    source: Arc::new(e),
                };
                let name = ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| tls_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                Box::new(connector.connect(name, tcp).await.map_err(tls_error)?)
            }
            None => Box::new(tcp),
        };
        if !endpoint.websocket {
            return Ok(Self::Stream(stream));
        }
        let scheme = if endpoint.tls.is_some() { "wss" } else { "ws" };
        let url = format!(
            "{scheme}://{}:{}{WEBSOCKET_PATH}",
            endpoint.host, endpoint.port
        );
        let websocket_error = |e| NetworkError::WebSocket(Arc::new(e));
        let mut request = url.into_client_request().map_err(websocket_error)?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        let (ws, _response) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(websocket_error)?;
        Ok(Self::WebSocket(Box::new(ws)))
    }

    /// Appends received bytes to `buf`; `Ok(0)` means the peer closed. Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Stream(s) => s.read_buf(buf).await,
            Self::WebSocket(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(WsMessage::Close(_))) => return Ok(0),
                    Some(Ok(WsMessage::Binary(data))) => {
                        buf.extend_from_slice(&data);
                        if !data.is_empty() {
                            return Ok(data.len());
                        }
                    }
                    // Pings are answered by tungstenite itself; text frames are not MQTT.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    /// Writes all of `bytes`.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Stream(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Self::WebSocket(ws) => ws
                .send(WsMessage::Binary(bytes.to_vec().into()))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Closes politely, ignoring errors (the peer may already be gone).
    pub(crate) async fn shutdown(&mut self) {
        match self {
            Self::Stream(s) => {
                let _ = s.shutdown().await;
            }
            Self::WebSocket(ws) => {
                let _ = WebSocketStream::close(&mut **ws, None).await;
            }
        }
    }
}

/// Resolves `host` and connects to the first address that accepts, telling a name that does
/// not resolve ([`NetworkError::Dns`]) from a port where nothing listens
/// ([`NetworkError::Tcp`]).
async fn dial(host: &str, port: u16) -> Result<TcpStream, NetworkError> {
    let address = format!("{host}:{port}");
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(&address)
        .await
        .map_err(|e| NetworkError::Dns {
            host: host.to_owned(),
            source: Arc::new(e),
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for candidate in addresses {
        match TcpStream::connect(candidate).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(NetworkError::Tcp {
        address,
        source: Arc::new(last),
    })
}

/// Asks an HTTP proxy for a tunnel to `target` (RFC 9110 §9.3.6).
async fn http_connect(tcp: &mut TcpStream, target: &str) -> io::Result<()> {
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    // Read byte by byte up to the blank line so no tunnelled byte is consumed.
    let mut head = Vec::with_capacity(128);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "proxy response too long",
            ));
        }
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "proxy closed the connection",
            ));
        }
        head.push(byte[0]);
    }
    let status_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let status = String::from_utf8_lossy(status_line);
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("proxy refused the tunnel: {status}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn tunnels_through_an_http_connect_proxy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\nhello")
                .await
                .unwrap();
            request
        });
        let endpoint = Endpoint {
            host: "hub.example".into(),
            port: 8883,
            websocket: false,
            tls: None,
            proxy: Some(addr.to_string()),
            connect_timeout: Duration::from_secs(5),
        };
        let mut conn = Connection::open(&endpoint).await.unwrap();
        let mut buf = BytesMut::new();
        while buf.len() < 5 {
            conn.read(&mut buf).await.unwrap();
        }
        assert_eq!(&buf[..], b"hello", "tunnelled bytes are not swallowed");
        let request = proxy.await.unwrap();
        assert!(request.starts_with("CONNECT hub.example:8883 HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn reports_a_proxy_refusal() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .await
                .unwrap();
        });
        let endpoint = Endpoint {
            host: "hub.example".into(),
            port: 443,
            websocket: true,
            tls: None,
            proxy: Some(addr.to_string()),
            connect_timeout: Duration::from_secs(5),
        };
        let err = Connection::open(&endpoint).await.err().unwrap();
        let DisconnectReason::Network(NetworkError::Proxy { proxy, source }) = err else {
            panic!("{err:?}");
        };
        assert_eq!(proxy, addr.to_string());
        assert!(source.to_string().contains("407"), "{source}");
    }

    #[tokio::test]
    async fn names_the_address_nothing_listens_on() {
        let endpoint = |host: &str, port| Endpoint {
            host: host.into(),
            port,
            websocket: false,
            tls: None,
            proxy: None,
            connect_timeout: Duration::from_secs(5),
        };
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = Connection::open(&endpoint("127.0.0.1", port)).await.err();
        assert!(
            matches!(&err, Some(DisconnectReason::Network(NetworkError::Tcp { address, .. }))
                if *address == format!("127.0.0.1:{port}")),
            "{err:?}"
        );
    }
}
