//! DPS `provision()`: registers with the Device Provisioning Service over MQTT, driving
//! `iothub_proto::provisioning::Registration` (docs/protocol.md §9), then hands back options for
//! the assigned hub.
//!
//! The MQTT side reuses the client's [`Session`] and [`Connection`], with a clean session
//! (DPS keeps none) and the DPS credentials: client id = registration id, username
//! `{scope}/registrations/{id}/api-version=…`, SAS over `{scope}/registrations/{id}` with
//! `skn=registration`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use iothub_proto::credentials::{DPS_GLOBAL_ENDPOINT, DpsUsername, MQTT_TLS_PORT, WEBSOCKET_PORT};
use iothub_proto::provisioning::{Registration, RegistrationEvent};
use iothub_proto::sas::{
    DERIVED_KEY_LEN, DPS_REGISTRATION_POLICY, HmacSha256Signer, ResourceUri, SasToken,
    derive_device_key,
};
use iothub_proto::topic::DPS_RESPONSE_FILTER;
use tokio::time::{Instant, sleep_until};

use crate::options::MAX_PACKET_SIZE;
use crate::session::{
    ConnectRequest, OutgoingPublish, Qos, Session, SessionConfig, SessionEvent, encode_disconnect,
};
use crate::transport::{Connection, Endpoint};
use crate::{Auth, ClientOptions, CredentialError, DisconnectReason, Error, NetworkError, Request};

/// How the device attests to DPS.
#[derive(Clone)]
#[non_exhaustive]
pub enum Attestation {
    /// An individual enrollment's symmetric key.
    SymmetricKey(String),
    /// A group enrollment key; the device key is derived from it and the registration id
    /// (`HMAC-SHA256(groupKey, registrationId)`, docs/protocol.md §9).
    GroupKey(String),
    /// An X.509 certificate chain and key (PEM); the registration id must be the leaf CN.
    X509 {
        /// Certificate chain, PEM.
        cert_pem: Vec<u8>,
        /// Private key, PEM.
        key_pem: Vec<u8>,
    },
}

impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SymmetricKey(_) => "SymmetricKey(..)",
            Self::GroupKey(_) => "GroupKey(..)",
            Self::X509 { .. } => "X509(..)",
        })
    }
}

/// What to register and where.
///
/// ```
/// use iothub_device::{Attestation, ProvisioningOptions};
///
/// let options = ProvisioningOptions::new("0ne00000001", "sensor-42", Attestation::GroupKey("AAECAw==".into()))
///     .model_id("dtmi:com:example:Thermostat;1");
/// assert_eq!(options.registration_id(), "sensor-42");
/// ```
#[derive(Debug, Clone)]
pub struct ProvisioningOptions {
    id_scope: String,
    registration_id: String,
    attestation: Attestation,
    host: String,
    port: Option<u16>,
    websockets: bool,
    tls: bool,
    extra_ca_pem: Vec<Vec<u8>>,
    payload: Option<serde_json::Value>,
    model_id: Option<String>,
    timeout: Duration,
}

/// The outcome of a successful registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The hub to connect to.
    pub assigned_hub: String,
    /// The device id there.
    pub device_id: String,
    /// The symmetric key to use at the hub (the derived key for group enrollments).
    pub device_key: Option<String>,
    auth: AuthKind,
    model_id: Option<String>,
    extra_ca_pem: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Eq)]
enum AuthKind {
    Key,
    X509 { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl std::fmt::Debug for AuthKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Key => "Key",
            Self::X509 { .. } => "X509(..)",
        })
    }
}

impl ProvisioningOptions {
    /// Registration `registration_id` in DPS instance `id_scope`, via the global endpoint.
    pub fn new(id_scope: &str, registration_id: &str, attestation: Attestation) -> Self {
        Self {
            id_scope: id_scope.to_owned(),
            registration_id: registration_id.to_owned(),
            attestation,
            host: DPS_GLOBAL_ENDPOINT.to_owned(),
            port: None,
            websockets: false,
            tls: true,
            extra_ca_pem: Vec::new(),
            payload: None,
            model_id: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// Uses another provisioning endpoint (a regional one, or the emulator).
    pub fn provisioning_host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }

    /// Overrides the port (8883, or 443 with WebSockets).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// MQTT over WebSockets.
    pub fn websockets(mut self, on: bool) -> Self {
        self.websockets = on;
        self
    }

    /// Disables TLS (the emulator's plain development port only).
    pub fn plain_tcp(mut self) -> Self {
        self.tls = false;
        self
    }

    /// Trusts the CA certificates in this PEM (for DPS and, later, the hub).
    pub fn trust_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_ca_pem.push(pem.into());
        self
    }

    /// Trusts the CA certificates in this PEM file.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with [`ConfigError::File`](crate::ConfigError::File) when the file
    /// cannot be read.
    pub fn trust_ca_file(self, path: &Path) -> Result<Self, Error> {
        let pem = crate::options::read(path)?;
        Ok(self.trust_ca_pem(pem))
    }

    /// Sends `{"modelId": dtmi}` as the registration payload and announces the model id
    /// to the assigned hub (docs/protocol.md §8).
    pub fn model_id(mut self, dtmi: &str) -> Self {
        self.model_id = Some(dtmi.to_owned());
        self
    }

    /// A custom registration payload (for custom allocation); replaces the model id payload.
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Overall registration timeout (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The registration id.
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }
}

impl Provisioned {
    /// Options for connecting to the assigned hub with the same credentials.
    pub fn client_options(&self) -> ClientOptions {
        let auth = match (&self.auth, &self.device_key) {
            (AuthKind::X509 { cert_pem, key_pem }, _) => Auth::X509 {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
            (AuthKind::Key, key) => Auth::SasKey {
                key: key.clone().unwrap_or_default(),
                policy: None,
            },
        };
        let mut options = ClientOptions::new(&self.assigned_hub, &self.device_id, None, auth);
        if let Some(model) = &self.model_id {
            options = options.model_id(model);
        }
        for pem in &self.extra_ca_pem {
            options = options.trust_ca_pem(pem.clone());
        }
        options
    }

    /// A device connection string for the assigned hub (symmetric keys only).
    pub fn connection_string(&self) -> Option<String> {
        let key = self.device_key.as_ref()?;
        Some(format!(
            "HostName={};DeviceId={};SharedAccessKey={key}",
            self.assigned_hub, self.device_id
        ))
    }
}

/// Registers the device with DPS and returns its assignment.
///
/// # Errors
///
/// [`Error::Rejected`] when DPS fails or refuses the registration (status and message),
/// [`Error::Refused`] when DPS refuses the MQTT credentials, [`Error::Timeout`] with
/// [`Request::Provisioning`] when no outcome arrived within the timeout, [`Error::Network`]
/// when DPS cannot be reached, and configuration errors.
pub async fn provision(options: ProvisioningOptions) -> Result<Provisioned, Error> {
    let deadline = Instant::now() + options.timeout;
    match tokio::time::timeout_at(deadline, register(&options)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout(Request::Provisioning)),
    }
}

async fn register(options: &ProvisioningOptions) -> Result<Provisioned, Error> {
    let (device_key, password, identity) = credentials(options)?;
    let tls = if options.tls {
        let identity = identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
        Some(crate::tls::client_config(&options.extra_ca_pem, identity)?)
    } else {
        None
    };
    let endpoint = Endpoint {
        host: options.host.clone(),
        port: options.port.unwrap_or(if options.websockets {
            WEBSOCKET_PORT
        } else {
            MQTT_TLS_PORT
        }),
        websocket: options.websockets,
        tls,
        proxy: None,
        connect_timeout: options.timeout,
    };
    let mut connection = Connection::open(&endpoint).await?;

    let mut session = Session::new(SessionConfig::default());
    session.subscribe(DPS_RESPONSE_FILTER);
    let user_agent = concat!("iothub-device-rs/", env!("CARGO_PKG_VERSION"));
    let username = DpsUsername::new(&options.id_scope, &options.registration_id)
        .with_client_version(user_agent)
        .to_string();
    let request = ConnectRequest {
        client_id: options.registration_id.clone(),
        username,
        password,
        // DPS keeps no sessions (`docs/protocol.md`, provisioning).
        clean_session: true,
    };
    let started = Instant::now();
    session.start_connection(request, started.into_std());

    let payload = match (&options.payload, &options.model_id) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(model)) => Some(serde_json::json!({ "modelId": model }).to_string()),
        (None, None) => None,
    };
    let mut registration =
        Registration::new(&options.registration_id, payload.as_deref()).timeout(options.timeout);
    let proto_now = || {
        iothub_proto::Instant::from_millis(
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        )
    };
    let mut next_id = 0u64;
    let mut read_buf = BytesMut::new();
    let mut tx_buf = vec![0u8; 4096];
    loop {
        // Registration -> session -> wire.
        while let Some(tx) =
            registration
                .poll_transmit(&mut tx_buf)
                .map_err(|_| Error::InvalidInput {
                    field: "payload",
                    reason: "the registration request does not fit in 4 KiB",
                })?
        {
            next_id += 1;
            let publish = OutgoingPublish {
                id: next_id,
                topic: tx.topic.to_owned(),
                payload: Bytes::copy_from_slice(tx.payload),
                qos: Qos::AtLeastOnce,
            };
            session.publish(publish).map_err(|full| Error::OutboxFull {
                capacity: full.capacity,
            })?;
        }
        let mut bytes = BytesMut::new();
        session
            .write_transmit(Instant::now().into_std(), &mut bytes, MAX_PACKET_SIZE)
            .map_err(Error::Protocol)?;
        if !bytes.is_empty() {
            connection.write(&bytes).await.map_err(io_failure)?;
        }
        if let Some(outcome) = outcome(&mut registration) {
            let mut bytes = BytesMut::new();
            encode_disconnect(&mut bytes);
            let _ = connection.write(&bytes).await;
            connection.shutdown().await;
            return outcome.map(|(assigned_hub, device_id)| Provisioned {
                assigned_hub,
                device_id,
                device_key,
                auth: match identity {
                    Some((cert_pem, key_pem)) => AuthKind::X509 { cert_pem, key_pem },
                    None => AuthKind::Key,
                },
                model_id: options.model_id.clone(),
                extra_ca_pem: options.extra_ca_pem.clone(),
            });
        }
        // Session events -> registration.
        let mut progressed = false;
        while let Some(event) = session.poll_event() {
            progressed = true;
            match event {
                SessionEvent::Subscribed => registration.start(proto_now()),
                SessionEvent::Refused(code) => return Err(Error::Refused(code)),
                SessionEvent::ConnectionLost(reason) => {
                    return Err(DisconnectReason::from(reason).into());
                }
                SessionEvent::Publish {
                    topic,
                    payload,
                    ack,
                } => {
                    if let Err(e) = registration.handle_publish(&topic, &payload, proto_now()) {
                        tracing::warn!(error = ?e, "ignoring a DPS response");
                    }
                    if let Some(token) = ack {
                        session.ack(token);
                    }
                }
                _ => {}
            }
        }
        if progressed || session.has_transmit() {
            continue;
        }
        let wake_registration = registration
            .poll_timeout()
            .map(|t| started + Duration::from_millis(t.as_millis()));
        let wake_session = session.poll_timeout().map(Instant::from_std);
        tokio::select! {
            res = connection.read(&mut read_buf) => match res {
                Ok(0) => return Err(Error::Network(NetworkError::ClosedByPeer)),
                Ok(_) => session
                    .handle_bytes(&mut read_buf, MAX_PACKET_SIZE, Instant::now().into_std())
                    .map_err(Error::Protocol)?,
                Err(e) => return Err(io_failure(e)),
            },
            () = sleep_opt(wake_registration) => registration.handle_timeout(proto_now()),
            () = sleep_opt(wake_session) => session.handle_timeout(Instant::now().into_std()),
        }
    }
}

/// The assignment, or the failure, once the registration finished.
fn outcome(registration: &mut Registration<'_>) -> Option<Result<(String, String), Error>> {
    Some(match registration.poll_event()? {
        RegistrationEvent::Assigned {
            assigned_hub,
            device_id,
        } => Ok((assigned_hub.to_owned(), device_id.to_owned())),
        RegistrationEvent::Disabled => Err(Error::Rejected {
            status: 403,
            body: "the enrollment is disabled".into(),
        }),
        RegistrationEvent::Failed {
            status,
            error_code,
            message,
        } => Err(Error::Rejected {
            status: status.code(),
            body: match error_code {
                Some(code) => format!("{code}: {message}"),
                None => message.to_owned(),
            },
        }),
        RegistrationEvent::TimedOut => Err(Error::Timeout(Request::Provisioning)),
        _ => Err(Error::Protocol(crate::ProtocolError::UnknownDpsOutcome)),
    })
}

/// (device key for the hub, DPS password, X.509 identity).
#[allow(clippy::type_complexity)]
fn credentials(
    options: &ProvisioningOptions,
) -> Result<(Option<String>, Option<String>, Option<(Vec<u8>, Vec<u8>)>), Error> {
    let key = match &options.attestation {
        Attestation::X509 { cert_pem, key_pem } => {
            return Ok((None, None, Some((cert_pem.clone(), key_pem.clone()))));
        }
        Attestation::SymmetricKey(key) => key.clone(),
        Attestation::GroupKey(group_key) => {
            let mut out = [0u8; DERIVED_KEY_LEN];
            derive_device_key(group_key, &options.registration_id, &mut out)
                .map_err(CredentialError::GroupKey)?
                .to_owned()
        }
    };
    let signer = HmacSha256Signer::from_base64(&key).map_err(CredentialError::Key)?;
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 3600;
    let resource = ResourceUri::dps_registration(&options.id_scope, &options.registration_id);
    let token = SasToken::sign(resource, expiry, Some(DPS_REGISTRATION_POLICY), &signer)
        .map_err(CredentialError::Signing)?;
    Ok((Some(key), Some(token.to_string()), None))
}

/// A failed read or write on the open DPS connection.
fn io_failure(e: std::io::Error) -> Error {
    Error::Network(NetworkError::Io(std::sync::Arc::new(e)))
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
