//! A minimal MQTT 3.1.1 peer on loopback, for fault injection: it can refuse CONNACKs,
//! withhold or delay PUBACKs, cut connections after N publishes, and push publishes to the
//! device. It records everything it saw so tests can count messages on both sides.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Knobs, changeable while running.
#[derive(Debug, Default, Clone)]
pub(crate) struct Behaviour {
    /// Answer CONNECT with this code.
    pub(crate) refuse: Option<ConnectReturnCode>,
    /// Never PUBACK device publishes.
    pub(crate) withhold_pubacks: bool,
    /// Delay before each PUBACK.
    pub(crate) puback_delay: Option<Duration>,
    /// Close the connection when the Nth publish of a connection arrives (not acknowledged).
    pub(crate) cut_every: Option<usize>,
    /// Do not answer twin requests.
    pub(crate) ignore_twin: bool,
    /// Accept CONNECT, then close the connection at once (a throttling hub).
    pub(crate) drop_after_connack: bool,
    /// Stop answering PINGREQ (a silently dead link).
    pub(crate) ignore_pings: bool,
}

/// What the hub saw.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) connects: Vec<Connect>,
    /// Every telemetry publish received, including duplicates.
    pub(crate) publishes: Vec<Publish>,
    /// Telemetry publishes the hub acknowledged (a PUBACK was written).
    pub(crate) acked: Vec<Publish>,
    pub(crate) subscriptions: Vec<Vec<String>>,
    /// PUBACKs received from the device (for C2D).
    pub(crate) device_acks: Vec<u16>,
    pub(crate) disconnects: usize,
    pub(crate) pings: usize,
    /// Per TLS connection, the client certificate presented (DER), if any.
    pub(crate) client_certificates: Vec<Option<Vec<u8>>>,
    /// WebSocket upgrade requests: (path, requested subprotocols).
    pub(crate) websocket_requests: Vec<(String, String)>,
    pub(crate) twin_desired: serde_json::Value,
    /// DPS registration requests received (body, parsed).
    pub(crate) dps_registrations: Vec<serde_json::Value>,
    /// Reported patches received, parsed.
    pub(crate) reported_patches: Vec<serde_json::Value>,
    pub(crate) reported_version: u64,
}

pub(crate) struct FakeHub {
    pub(crate) addr: SocketAddr,
    pub(crate) behaviour: Arc<Mutex<Behaviour>>,
    pub(crate) record: Arc<Mutex<Record>>,
    current: Arc<Mutex<Option<mpsc::UnboundedSender<Control>>>>,
    pub(crate) changed: Arc<Notify>,
}

enum Control {
    Send(Packet),
    Cut,
}

impl FakeHub {
    pub(crate) async fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    pub(crate) async fn start_on(listener: TcpListener) -> Self {
        Self::start_wrapped(listener, Wrap::Plain).await
    }

    /// A hub behind TLS (and optionally WebSockets) on a fresh port.
    pub(crate) async fn start_with(wrap: Wrap) -> Self {
        Self::start_wrapped(TcpListener::bind("127.0.0.1:0").await.unwrap(), wrap).await
    }

    async fn start_wrapped(listener: TcpListener, wrap: Wrap) -> Self {
        let hub = Self {
            addr: listener.local_addr().unwrap(),
            behaviour: Arc::default(),
            record: Arc::new(Mutex::new(Record {
                twin_desired: serde_json::json!({"$version": 1}),
                reported_version: 1,
                ..Record::default()
            })),
            current: Arc::default(),
            changed: Arc::new(Notify::new()),
        };
        let (behaviour, record, current, changed) = (
            hub.behaviour.clone(),
            hub.record.clone(),
            hub.current.clone(),
            hub.changed.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, rx) = mpsc::unbounded_channel();
                // A new connection for the identity replaces the old one (docs/protocol.md §1.5).
                if let Some(old) = current.lock().unwrap().replace(tx) {
                    let _ = old.send(Control::Cut);
                }
                let conn = Conn {
                    behaviour: behaviour.clone(),
                    record: record.clone(),
                    changed: changed.clone(),
                    publishes_here: 0,
                };
                let wrap = wrap.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    match wrap {
                        Wrap::Plain => conn.run(stream, rx).await,
                        Wrap::Tls(config) => {
                            let Ok(tls) =
                                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return;
                            };
                            let client_cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| c.as_ref().to_vec());
                            record.lock().unwrap().client_certificates.push(client_cert);
                            conn.run(tls, rx).await;
                        }
                        Wrap::TlsWebSocket(config) => {
                            let Ok(tls) =
                                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return;
                            };
                            let Some(pipe) = websocket_bridge(tls, record).await else {
                                return;
                            };
                            conn.run(pipe, rx).await;
                        }
                    }
                });
            }
        });
        hub
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    pub(crate) fn record<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.record.lock().unwrap())
    }

    /// Pushes a publish to the connected device.
    pub(crate) fn send(&self, publish: Publish) {
        if let Some(tx) = &*self.current.lock().unwrap() {
            let _ = tx.send(Control::Send(Packet::Publish(publish)));
        }
    }

    /// Cuts the current connection without DISCONNECT.
    pub(crate) fn cut(&self) {
        if let Some(tx) = &*self.current.lock().unwrap() {
            let _ = tx.send(Control::Cut);
        }
    }

    /// Waits until `f` holds for the record (polling on every change), or panics after 10 s.
    pub(crate) async fn wait_for(&self, what: &str, f: impl Fn(&Record) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.changed.notified();
            if self.record(&f) {
                return;
            }
            // Some changes (a connection closing) do not notify: poll as well.
            let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}");
            }
        }
    }
}

struct Conn {
    behaviour: Arc<Mutex<Behaviour>>,
    record: Arc<Mutex<Record>>,
    changed: Arc<Notify>,
    publishes_here: usize,
}

impl Conn {
    async fn run(
        mut self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut buf = BytesMut::new();
        let mut out: VecDeque<(Option<Duration>, Packet)> = VecDeque::new();
        loop {
            // Write what is due.
            while let Some((delay, packet)) = out.pop_front() {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let acked = if let Packet::PubAck(ack) = &packet {
                    Some(ack.pkid)
                } else {
                    None
                };
                let mut bytes = BytesMut::new();
                packet.write(&mut bytes, usize::MAX).unwrap();
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
                if let Some(pkid) = acked {
                    let mut r = self.record.lock().unwrap();
                    if let Some(p) = r.publishes.iter().rev().find(|p| p.pkid == pkid).cloned() {
                        r.acked.push(p);
                    }
                    drop(r);
                    self.changed.notify_waiters();
                }
            }
            tokio::select! {
                n = stream.read_buf(&mut buf) => {
                    if !matches!(n, Ok(n) if n > 0) {
                        return;
                    }
                    loop {
                        match Packet::read(&mut buf, 1 << 20) {
                            Ok(packet) => match self.handle(packet) {
                                Some(Action::Reply(p)) => out.push_back((None, p)),
                                Some(Action::DelayedReply(d, p)) => out.push_back((Some(d), p)),
                                Some(Action::ReplyAndClose(p)) => {
                                    let mut bytes = BytesMut::new();
                                    p.write(&mut bytes, usize::MAX).unwrap();
                                    let _ = stream.write_all(&bytes).await;
                                    return;
                                }
                                Some(Action::Close) => return,
                                Some(Action::Many(ps)) => out.extend(ps.into_iter().map(|p| (None, p))),
                                None => {}
                            },
                            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                            Err(e) => panic!("fake hub could not decode: {e:?}"),
                        }
                    }
                    self.changed.notify_waiters();
                }
                c = control.recv() => match c {
                    Some(Control::Send(p)) => out.push_back((None, p)),
                    Some(Control::Cut) | None => return,
                },
            }
        }
    }

    fn handle(&mut self, packet: Packet) -> Option<Action> {
        let behaviour = self.behaviour.lock().unwrap().clone();
        let mut record = self.record.lock().unwrap();
        match packet {
            Packet::Connect(connect) => {
                record.connects.push(connect);
                match behaviour.refuse {
                    Some(code) => Some(Action::ReplyAndClose(Packet::ConnAck(ConnAck::new(
                        code, false,
                    )))),
                    None if behaviour.drop_after_connack => Some(Action::ReplyAndClose(
                        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
                    )),
                    None => Some(Action::Reply(Packet::ConnAck(ConnAck::new(
                        ConnectReturnCode::Success,
                        false,
                    )))),
                }
            }
            Packet::Subscribe(sub) => {
                record
                    .subscriptions
                    .push(sub.filters.iter().map(|f| f.path.clone()).collect());
                Some(Action::Reply(Packet::SubAck(SubAck::new(
                    sub.pkid,
                    vec![SubscribeReasonCode::Success(QoS::AtLeastOnce); sub.filters.len()],
                ))))
            }
            Packet::PingReq => {
                record.pings += 1;
                (!behaviour.ignore_pings).then_some(Action::Reply(Packet::PingResp))
            }
            Packet::PubAck(ack) => {
                record.device_acks.push(ack.pkid);
                None
            }
            Packet::Disconnect => {
                record.disconnects += 1;
                Some(Action::Close)
            }
            Packet::Publish(publish) => {
                if publish.topic.starts_with("$iothub/twin/") {
                    return self.twin(&mut record, &behaviour, publish);
                }
                if publish.topic.starts_with("$dps/registrations/") {
                    return Some(dps(&mut record, &publish));
                }
                if publish.topic.starts_with("$iothub/methods/res/") {
                    record.publishes.push(publish.clone());
                    return Some(Action::Reply(Packet::PubAck(PubAck::new(publish.pkid))));
                }
                record.publishes.push(publish.clone());
                self.publishes_here += 1;
                if behaviour
                    .cut_every
                    .is_some_and(|n| self.publishes_here.is_multiple_of(n))
                {
                    return Some(Action::Close);
                }
                if behaviour.withhold_pubacks || publish.qos == QoS::AtMostOnce {
                    return None;
                }
                let ack = Packet::PubAck(PubAck::new(publish.pkid));
                match behaviour.puback_delay {
                    Some(d) => Some(Action::DelayedReply(d, ack)),
                    None => Some(Action::Reply(ack)),
                }
            }
            _ => None,
        }
    }

    fn twin(&self, record: &mut Record, behaviour: &Behaviour, publish: Publish) -> Option<Action> {
        let ack = Packet::PubAck(PubAck::new(publish.pkid));
        if behaviour.ignore_twin {
            return Some(Action::Reply(ack));
        }
        let rid = publish
            .topic
            .split("$rid=")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let response = if publish.topic.starts_with("$iothub/twin/GET/") {
            let body = serde_json::json!({
                "desired": record.twin_desired,
                "reported": {"$version": record.reported_version},
            });
            Publish::new(
                format!("$iothub/twin/res/200/?$rid={rid}"),
                QoS::AtMostOnce,
                body.to_string(),
            )
        } else {
            record
                .reported_patches
                .push(serde_json::from_slice(&publish.payload).unwrap());
            record.reported_version += 1;
            Publish::new(
                format!(
                    "$iothub/twin/res/204/?$rid={rid}&$version={}",
                    record.reported_version
                ),
                QoS::AtMostOnce,
                Vec::new(),
            )
        };
        Some(Action::Many(vec![ack, Packet::Publish(response)]))
    }
}

enum Action {
    Reply(Packet),
    DelayedReply(Duration, Packet),
    ReplyAndClose(Packet),
    Many(Vec<Packet>),
    Close,
}

/// A device key for tests.
pub(crate) const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Options pointing a plain-TCP client at `addr`, with fast timeouts.
pub(crate) fn options(addr: SocketAddr) -> iothub_device::ClientOptions {
    iothub_device::ClientOptions::from_connection_string(&format!(
        "HostName=hub.test;DeviceId=dev1;SharedAccessKey={KEY}"
    ))
    .unwrap()
    .gateway_host_name("127.0.0.1")
    .port(addr.port())
    .plain_tcp()
    .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
    .request_timeout(Duration::from_secs(5))
}

/// The `$.mid` of a telemetry topic.
pub(crate) fn mid(publish: &Publish) -> Option<String> {
    publish
        .topic
        .split(['/', '&'])
        .find_map(|p| p.strip_prefix("%24.mid="))
        .map(str::to_owned)
}

/// How connections are wrapped before MQTT.
#[derive(Clone)]
pub(crate) enum Wrap {
    Plain,
    Tls(Arc<rustls::ServerConfig>),
    TlsWebSocket(Arc<rustls::ServerConfig>),
}

/// Accepts a WebSocket upgrade (echoing subprotocol `mqtt`, as IoT Hub and rumqttc expect)
/// and bridges binary frames to a byte pipe.
#[allow(clippy::result_large_err)] // the callback signature is tungstenite's
async fn websocket_bridge(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    record: Arc<Mutex<Record>>,
) -> Option<tokio::io::DuplexStream> {
    let callback = move |request: &Request, mut response: Response| {
        let protocols = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        record
            .lock()
            .unwrap()
            .websocket_requests
            .push((request.uri().path().to_owned(), protocols));
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        Ok(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
        .await
        .ok()?;
    let (inner, mut outer) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(WsMessage::Binary(data))) => {
                        if outer.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                n = outer.read_buf(&mut buf) => {
                    if !matches!(n, Ok(n) if n > 0) {
                        let _ = ws.close(None).await;
                        return;
                    }
                    let data = buf.split().freeze();
                    if ws.send(WsMessage::Binary(data)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Some(inner)
}

/// A local CA and a `localhost` server configuration signed by it: (CA PEM, server config).
pub(crate) fn local_tls() -> (String, Arc<rustls::ServerConfig>) {
    local_tls_with(false)
}

/// As [`local_tls`], but the server asks for a client certificate chaining to the same CA
/// (request, not require, as IoT Hub does: docs/protocol.md §1.8).
pub(crate) fn local_tls_with(client_auth: bool) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    LAST_ISSUER.with(|cell| *cell.borrow_mut() = Some(issuer));
    (ca_cert.pem(), Arc::new(config))
}

thread_local! {
    static LAST_ISSUER: std::cell::RefCell<Option<rcgen::Issuer<'static, rcgen::KeyPair>>> =
        const { std::cell::RefCell::new(None) };
}

/// A client certificate (CN = `device_id`) signed by the CA of the last [`local_tls_with`]
/// call on this thread: (certificate PEM, key PEM).
pub(crate) fn client_identity(device_id: &str) -> (String, String) {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, device_id);
    params.distinguished_name = name;
    let cert = LAST_ISSUER.with(|cell| {
        let issuer = cell.borrow();
        params.signed_by(&key, issuer.as_ref().unwrap()).unwrap()
    });
    (cert.pem(), key.serialize_pem())
}

/// A DPS that assigns every registration to `hub.test` after one poll.
fn dps(record: &mut Record, publish: &Publish) -> Action {
    let ack = Packet::PubAck(PubAck::new(publish.pkid));
    let rid = publish.topic.split("$rid=").nth(1).unwrap_or_default();
    let rid = rid.split('&').next().unwrap_or_default().to_owned();
    let response = if publish
        .topic
        .starts_with("$dps/registrations/PUT/iotdps-register/")
    {
        record
            .dps_registrations
            .push(serde_json::from_slice(&publish.payload).unwrap());
        Publish::new(
            format!("$dps/registrations/res/202/?$rid={rid}&retry-after=1"),
            QoS::AtMostOnce,
            r#"{"operationId":"4.op","status":"assigning"}"#,
        )
    } else {
        let registration_id = record.dps_registrations.last().unwrap()["registrationId"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = serde_json::json!({
            "operationId": "4.op",
            "status": "assigned",
            "registrationState": {
                "registrationId": registration_id,
                "assignedHub": "hub.test",
                "deviceId": registration_id,
                "status": "assigned",
                "substatus": "initialAssignment",
            },
        });
        Publish::new(
            format!("$dps/registrations/res/200/?$rid={rid}"),
            QoS::AtMostOnce,
            body.to_string(),
        )
    };
    Action::Many(vec![ack, Packet::Publish(response)])
}
