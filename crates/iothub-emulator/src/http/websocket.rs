//! The HTTPS listener and its MQTT-over-WebSocket endpoint `/$iothub/websocket`.
//!
//! The WebSocket is bridged to an in-memory byte stream (`tokio::io::duplex`) and the normal
//! MQTT connection code runs on the other end, so MQTT packets may span frames and a frame may
//! hold several packets (docs/protocol.md §1.1). The `mqtt` subprotocol is echoed (rumqttc and paho
//! require it). X.509 client certificates are not passed through the WebSocket path.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::serve::{Accepted, AdmissionSlot};
use crate::hub::Hub;
use crate::listener_limits::{Admission, AdmittedUntilConnack, Gate, ListenerLimits};

#[derive(Clone)]
struct AppState {
    hub: Hub,
    shutdown: watch::Receiver<bool>,
}

/// Serves HTTPS on `listener` with `limits` until `shutdown` fires.
pub(crate) async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ListenerLimits,
    hub: Hub,
    shutdown: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel(64);
    let gate = Gate::new("https", limits.max_unauthenticated);
    let accept_task = tokio::spawn(accept_tls(
        listener,
        acceptor,
        gate,
        limits.tls_handshake,
        tx,
        shutdown.clone(),
    ));
    let app = Router::new()
        .route("/$iothub/websocket", get(upgrade))
        .with_state(AppState {
            hub: hub.clone(),
            shutdown: shutdown.clone(),
        })
        .merge(crate::http::blob::router(hub.clone()))
        .merge(crate::http::api::router_with_shutdown(
            hub,
            shutdown.clone(),
        ));
    super::serve::serve(rx, app, limits, shutdown).await;
    accept_task.abort();
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    slot: Option<Extension<AdmissionSlot>>,
) -> Response {
    // The connection keeps its place among the unauthenticated until CONNECT is accepted.
    let admission = slot.and_then(|Extension(s)| s.take());
    ws.protocols(["mqtt"])
        .on_upgrade(move |socket| bridge(socket, state, admission))
}

async fn bridge(socket: WebSocket, state: AppState, admission: Option<Admission>) {
    let (mqtt_side, ws_side) = tokio::io::duplex(64 * 1024);
    let mqtt_side = AdmittedUntilConnack::new(mqtt_side, admission);
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

/// Accepts TCP and runs each TLS handshake in its own task so a slow client blocks nobody.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    gate: Gate,
    handshake: Duration,
    tx: mpsc::Sender<Accepted<TlsStream<TcpStream>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                // Over the cap: dropping the stream closes it at once.
                let Some(admission) = gate.admit() else { continue };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(io)) = tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        let _ = tx.send(Accepted { io, peer, admission }).await;
                    }
                });
            }
        }
    }
}
