//! An AMQP service client for the tests (fe2o3-amqp as a client): plain AMQP on the
//! emulator's port, SASL ANONYMOUS, `$cbs` put-token, receivers with selector filters.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::link::{Receiver, RecvError, Sender};
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{self, Fields};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Data, Message, MessageId, Properties, Source, Target,
};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};
use fe2o3_amqp::{Connection, Session};
use iothub_emulator::testing::TestHub;
use iothub_proto::sas::{HmacSha256Signer, ResourceUri, SasToken};

use crate::support::{key_of, now};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A service token of `policy` (key `key`) for the URI or host `sr`.
pub(crate) fn service_token(sr: &str, policy: &str, key: &str, expiry: u64) -> String {
    let signer = HmacSha256Signer::from_base64(key).unwrap();
    SasToken::sign(ResourceUri::raw(sr), expiry, Some(policy), &signer)
        .unwrap()
        .to_string()
}

/// The `iothubowner` key of the hub.
pub(crate) fn owner_key(hub: &TestHub) -> String {
    key_of(&hub.emulator.service_connection_string)
}

/// The Event Hub audience of the test hub: `sb://{eh-host}/{eh-name}`.
pub(crate) fn eventhub_uri(hub: &TestHub) -> String {
    let eh = &hub.emulator.event_hub;
    format!("sb://{}/{}", eh.host, eh.name)
}

/// The `$Default` consumer group's address of the partition `device`'s events go to.
pub(crate) fn partition_address(hub: &TestHub, device: &str) -> String {
    let p = hub.emulator.hub.partition_of(device);
    format!(
        "amqps://{}/{}/ConsumerGroups/$Default/Partitions/{p}",
        hub.emulator.event_hub.host, hub.emulator.event_hub.name
    )
}

/// One client connection with one session.
pub(crate) struct Client {
    /// Kept open for the session's life.
    _connection: ConnectionHandle<()>,
    pub(crate) session: SessionHandle<()>,
    cbs: Option<(Sender, Receiver)>,
    next_id: u64,
}

impl Client {
    /// Connects to the emulator's plain AMQP port with SASL ANONYMOUS.
    pub(crate) async fn connect(hub: &TestHub) -> Self {
        let addr = hub.emulator.amqp_plain_addr.unwrap();
        Self::connect_over(tokio::net::TcpStream::connect(addr).await.unwrap()).await
    }

    /// Connects over `stream` (e.g. one that records what the emulator sends).
    pub(crate) async fn connect_over<S>(stream: S) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::fmt::Debug + Send + Unpin + 'static,
    {
        let mut connection = Connection::builder()
            .container_id("test-client")
            .hostname("localhost")
            .sasl_profile(fe2o3_amqp::sasl_profile::SaslProfile::Anonymous)
            .open_with_stream(stream)
            .await
            .unwrap();
        let session = Session::begin(&mut connection).await.unwrap();
        Self {
            _connection: connection,
            session,
            cbs: None,
            next_id: 0,
        }
    }

    /// Connects and puts an `iothubowner` token for the Event Hub and one for the hub.
    pub(crate) async fn authorized(hub: &TestHub) -> Self {
        Self::connect(hub).await.authorize(hub).await
    }

    /// Puts the tokens [`Client::authorized`] puts.
    pub(crate) async fn authorize(self, hub: &TestHub) -> Self {
        let mut c = self;
        let key = owner_key(hub);
        let eh = eventhub_uri(hub);
        let (status, why) = c
            .put_token(&eh, &service_token(&eh, "iothubowner", &key, now() + 3600))
            .await;
        assert_eq!(status, 202, "{why}");
        let (status, why) = c
            .put_token(
                "localhost",
                &service_token("localhost", "iothubowner", &key, now() + 3600),
            )
            .await;
        assert_eq!(status, 202, "{why}");
        c
    }

    /// Puts `token` for `audience` on `$cbs`; returns the answer's status and description.
    pub(crate) async fn put_token(&mut self, audience: &str, token: &str) -> (i32, String) {
        let mut props = ApplicationProperties::builder()
            .insert("operation", "put-token")
            .insert("type", "servicebus.windows.net:sastoken")
            .insert("name", audience)
            .build();
        props.0.insert("expiration".into(), (now() + 3600).into());
        self.request("$cbs", props, Value::String(token.into()))
            .await
    }

    /// Sends a request to a node (`$cbs`, `$management`) and waits for its answer's status.
    pub(crate) async fn request(
        &mut self,
        node: &str,
        props: ApplicationProperties,
        body: Value,
    ) -> (i32, String) {
        let (status, why, _) = self.request_value(node, props, body).await;
        (status, why)
    }

    /// [`Client::request`] returning the answer's body too.
    pub(crate) async fn request_value(
        &mut self,
        node: &str,
        props: ApplicationProperties,
        body: Value,
    ) -> (i32, String, Value) {
        let (mut sender, mut receiver) = if node == "$cbs" {
            match self.cbs.take() {
                Some(pair) => pair,
                None => self.pair(node).await,
            }
        } else {
            self.pair(node).await
        };
        self.next_id += 1;
        let id = self.next_id;
        let message = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(MessageId::Ulong(id))
                    .reply_to("test-client-replies")
                    .build(),
            )
            .application_properties(props)
            .body(AmqpValue(body))
            .build();
        sender.send(message).await.unwrap();
        let reply = tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
            .await
            .expect("no answer from the node")
            .unwrap();
        receiver.accept(&reply).await.unwrap();
        let message = reply.message();
        let correlation = message
            .properties
            .as_ref()
            .and_then(|p| p.correlation_id.clone());
        assert_eq!(
            correlation,
            Some(MessageId::Ulong(id)),
            "correlation-id is the request's message-id, same type"
        );
        let app = message.application_properties.as_ref().unwrap();
        let status = match app.get("status-code") {
            Some(fe2o3_amqp::types::primitives::SimpleValue::Int(s)) => *s,
            other => panic!("status-code must be an AMQP int, got {other:?}"),
        };
        let why = match app.get("status-description") {
            Some(fe2o3_amqp::types::primitives::SimpleValue::String(s)) => s.clone(),
            _ => String::new(),
        };
        let body = match &message.body {
            Body::Value(AmqpValue(v)) => v.clone(),
            _ => Value::Null,
        };
        if node == "$cbs" {
            self.cbs = Some((sender, receiver));
        } else {
            let _ = sender.close().await;
            let _ = receiver.close().await;
        }
        (status, why, body)
    }

    async fn pair(&mut self, node: &str) -> (Sender, Receiver) {
        let sender = Sender::attach(&mut self.session, format!("{node}-requests"), node)
            .await
            .unwrap();
        let receiver = Receiver::builder()
            .name(format!("{node}-replies"))
            .source(node)
            .target("test-client-replies")
            .attach(&mut self.session)
            .await
            .unwrap();
        (sender, receiver)
    }

    /// Attaches a receiver on `address` with an optional selector filter, link properties
    /// and desired capabilities.
    pub(crate) async fn receiver(
        &mut self,
        address: &str,
        selector: Option<&str>,
        properties: Option<Fields>,
        capabilities: &[&str],
    ) -> Receiver {
        self.try_receiver(address, selector, properties, capabilities)
            .await
            .unwrap()
    }

    /// [`Client::receiver`], or the error the attach was answered with (a link refused with
    /// a null source fails the attach itself).
    pub(crate) async fn try_receiver(
        &mut self,
        address: &str,
        selector: Option<&str>,
        properties: Option<Fields>,
        capabilities: &[&str],
    ) -> Result<Receiver, fe2o3_amqp::link::ReceiverAttachError> {
        let mut source = Source::builder().address(address);
        if let Some(s) = selector {
            source = source.add_to_filter(
                Symbol::from("apache.org:selector-filter:string"),
                serde_amqp::described::Described {
                    descriptor: serde_amqp::descriptor::Descriptor::Name(Symbol::from(
                        "apache.org:selector-filter:string",
                    )),
                    value: Value::String(s.into()),
                },
            );
        }
        let mut builder = Receiver::builder()
            .name(format!("receiver-{}", uuid_like()))
            .source(source.build())
            .target(Target::builder().address("test-client").build());
        if let Some(p) = properties {
            builder = builder.properties(p);
        }
        for c in capabilities {
            builder = builder.add_desired_capabilities(Symbol::from(*c));
        }
        builder.attach(&mut self.session).await
    }

    /// A sender on `address`.
    pub(crate) async fn sender(&mut self, address: &str) -> Sender {
        Sender::attach(
            &mut self.session,
            format!("sender-{}", uuid_like()),
            address,
        )
        .await
        .unwrap()
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The next event on `receiver`, accepted.
pub(crate) async fn next_event(receiver: &mut Receiver) -> Message<Body<Value>> {
    let delivery = tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
        .await
        .expect("no event within the wait")
        .unwrap();
    receiver.accept(&delivery).await.unwrap();
    delivery.into_message()
}

/// The error a refused link was detached with.
pub(crate) async fn refusal(receiver: &mut Receiver) -> definitions::Error {
    match tokio::time::timeout(WAIT, receiver.recv::<Body<Value>>())
        .await
        .expect("the link was neither refused nor sent anything")
    {
        Err(RecvError::LinkStateError(e)) => match e {
            fe2o3_amqp::link::LinkStateError::RemoteClosedWithError(e)
            | fe2o3_amqp::link::LinkStateError::RemoteDetachedWithError(e) => e,
            other => panic!("detached without an error: {other:?}"),
        },
        Err(other) => panic!("unexpected receive error: {other:?}"),
        Ok(d) => panic!("expected a refusal, got a message: {:?}", d.message()),
    }
}

/// The bytes of a message's data body.
pub(crate) fn body_bytes(m: &Message<Body<Value>>) -> Vec<u8> {
    match &m.body {
        Body::Data(batch) => batch.iter().flat_map(|Data(b)| b.to_vec()).collect(),
        Body::Value(AmqpValue(Value::Binary(b))) => b.to_vec(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// A message annotation by name.
pub(crate) fn annotation<'m>(m: &'m Message<Body<Value>>, key: &str) -> Option<&'m Value> {
    m.message_annotations
        .as_ref()?
        .0
        .iter()
        .find(|(k, _)| {
            matches!(k, fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(s) if s.as_str() == key)
        })
        .map(|(_, v)| v)
}

#[allow(dead_code)]
pub(crate) fn binary(b: &[u8]) -> Binary {
    Binary::from(b.to_vec())
}

/// Publishes `bodies` as telemetry of `device` (connection string `cs`) over MQTT (QoS 1,
/// each acknowledged, so each is in the log), with application property `n={index}` on each.
pub(crate) async fn device_sends(hub: &TestHub, device: &str, cs: &str, bodies: &[&str]) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let addr = hub.plain_addr();
    let mut o = MqttOptions::new(device, addr.ip().to_string(), addr.port());
    o.set_credentials(
        crate::support::username("localhost", device),
        crate::support::device_token("localhost", device, &key_of(cs), now() + 3600),
    );
    let (client, mut events) = AsyncClient::new(o, 10);
    for (i, body) in bodies.iter().enumerate() {
        let topic = format!("devices/{device}/messages/events/n={i}&%24.ct=text%2Fplain");
        client
            .publish(topic, QoS::AtLeastOnce, false, body.to_string())
            .await
            .unwrap();
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = tokio::time::timeout(WAIT, events.poll())
                .await
                .unwrap()
                .unwrap()
            {
                break;
            }
        }
    }
    let _ = client.disconnect().await;
}
