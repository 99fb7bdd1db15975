//! The HTTPS listener and its MQTT-over-WebSocket endpoint `/$iothub/websocket`.
//!
//! The WebSocket is bridged to an in-memory byte stream (`tokio::io::duplex`) and the normal
//! MQTT connection code runs on the other end, so MQTT packets may span frames and a frame may
//! hold several packets (STACK.md §3.5). The `mqtt` subprotocol is echoed (rumqttc and paho
//! require it). X.509 client certificates are not passed through the WebSocket path.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::hub::Hub;

#[derive(Clone)]
struct AppState {
    hub: Hub,
    shutdown: watch::Receiver<bool>,
}

/// Serves HTTPS on `listener` until `shutdown` fires.
pub(crate) async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let (tx, rx) = mpsc::channel(64);
    let accept_task = tokio::spawn(accept_tls(listener, acceptor, tx, shutdown.clone()));
    let app = Router::new()
        .route("/$iothub/websocket", get(upgrade))
        .with_state(AppState {
            hub: hub.clone(),
            shutdown: shutdown.clone(),
        })
        .merge(crate::http::api::router_with_shutdown(
            hub,
            shutdown.clone(),
        ));
    let mut stop = shutdown.clone();
    let served = axum::serve(TlsListener { rx, addr }, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "HTTPS listener stopped");
    }
    accept_task.abort();
}

async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.protocols(["mqtt"])
        .on_upgrade(move |socket| bridge(socket, state))
}

async fn bridge(socket: WebSocket, state: AppState) {
    let (mqtt_side, ws_side) = tokio::io::duplex(64 * 1024);
    let pump = tokio::spawn(pump(socket, ws_side));
    let link = crate::mqtt::Link {
        transport: "mqtt+ws",
        peer: None,
    };
    crate::mqtt::serve(state.hub, mqtt_side, link, None, state.shutdown).await;
    // Closing the MQTT side ends the pump (its reads see EOF).
    let _ = pump.await;
}

/// Copies binary WebSocket frames into the byte stream and bytes back out as binary frames.
async fn pump(socket: WebSocket, mut stream: DuplexStream) {
    let (mut sink, mut frames) = socket.split();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    if stream.write_all(&bytes).await.is_err() { break; }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // Text frames are not MQTT; close and errors end the connection.
                _ => break,
            },
            n = stream.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if sink.send(Message::Binary(chunk)).await.is_err() { break; }
                }
            },
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

/// Completed TLS handshakes, handed to axum.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): never yield again; graceful shutdown proceeds.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Accepts TCP and runs each TLS handshake in its own task so a slow client blocks nobody.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        }
    }
}
