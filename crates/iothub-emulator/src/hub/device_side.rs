//! What a device's connection asks of the hub: connecting (authentication, takeover, the
//! persistent session), requests (twin, method responses, DPS), what it wants to receive,
//! C2D completions, and disconnecting. Transports call these; the hub answers through the
//! connection's [`ToDevice`] queue.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use iothub_proto::credentials::ParsedUsername;

use super::Hub;
use super::auth::{self, AuthFailure, AuthMethod, ConnectCredentials, Identity};
use super::c2d;
use super::connection_log::{ConnectionEvent, ConnectionEventKind};
use super::connections::{ConnectionRef, Outbox};
use super::lock;
use super::provisioning::{self, Attestation, DpsReply, ProvisionedDevice};
use super::registry::{self, NewIdentity, RegistryError};
use super::telemetry::{ConnectionStamp, Sender};
use super::to_device::{Interests, ToDevice};
use super::twin::{self, TwinReply};
use crate::store::StoreError;
use crate::store::registry::{self as registry_store, Authentication};
use crate::store::sessions::{self, StoredSubscription};
use crate::timestamp;

/// What a device offers when it connects to the hub (on MQTT: CONNECT and the TLS client
/// certificate).
#[derive(Clone, Copy, Debug)]
pub struct DeviceLogin<'a> {
    /// The transport, for the connection history (`mqtt+tls`, …).
    pub transport: &'static str,
    /// The credentials.
    pub credentials: ConnectCredentials<'a>,
    /// Start afresh (true) or resume the stored session (false).
    pub clean_session: bool,
}

/// A DPS registration connecting (docs/protocol.md §9).
#[derive(Clone, Copy, Debug)]
pub struct DpsLogin<'a> {
    /// The transport, for the log.
    pub transport: &'static str,
    /// The transport's client id; must be the registration id.
    pub client_id: &'a str,
    /// The ID scope from the username.
    pub id_scope: &'a str,
    /// The registration id from the username.
    pub registration_id: &'a str,
    /// The SAS token.
    pub password: &'a str,
}

/// Why a connection could not be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The hub refused it, for this reason.
    #[error("refused: {0}")]
    Refused(#[from] AuthFailure),
    /// The hub failed while deciding (CONNACK 3 on MQTT).
    #[error("could not authenticate")]
    Internal(#[from] StoreError),
}

/// An accepted connection.
#[derive(Debug)]
pub struct DeviceConnection {
    /// Which connection this is.
    pub connection: ConnectionRef,
    /// Who it is and what the hub stamps on its telemetry.
    pub stamp: Arc<ConnectionStamp>,
    /// When its SAS token runs out (the allowed skew included): the transport closes it then
    /// (docs/protocol.md §2.3).
    pub expires_at: Option<SystemTime>,
    /// The stored session resumed (clean session 0 with a stored session), if any.
    pub restored_session: Option<Vec<StoredSubscription>>,
    /// What the hub sends this connection.
    pub outbound: Outbox,
}

/// A request a device sends the hub (other than telemetry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    /// Read the whole twin.
    TwinGet {
        /// Echoed in the answer.
        request_id: String,
    },
    /// Patch the reported properties.
    ReportedPatch {
        /// Echoed in the answer.
        request_id: String,
        /// The JSON patch.
        body: Bytes,
    },
    /// The answer to a direct-method request.
    MethodResponse {
        /// The request's id.
        request_id: String,
        /// The device's status code.
        status: i32,
        /// JSON payload.
        body: Bytes,
    },
    /// DPS: register.
    DpsRegister {
        /// Echoed in the answer.
        request_id: String,
        /// The registration payload.
        body: Bytes,
    },
    /// DPS: poll an operation.
    DpsPoll {
        /// Echoed in the answer.
        request_id: String,
        /// The operation.
        operation_id: String,
    },
}

/// Pseudo module id keeping DPS connections apart from hub connections of the same id.
const DPS_SESSION: &str = "$dps";

impl Hub {
    /// Authenticates a device or module connection and makes it the identity's live one (a
    /// previous connection is told to close). Reads the persistent session, or deletes it for
    /// a clean session.
    ///
    /// # Errors
    /// [`ConnectError::Refused`] with the rule that failed, or [`ConnectError::Internal`].
    pub async fn connect_device(
        &self,
        login: DeviceLogin<'_>,
    ) -> Result<DeviceConnection, ConnectError> {
        let connected = self.authenticate_device(login).await;
        let (device_id, module_id, kind) = match &connected {
            Ok(c) => (
                c.connection.identity.device_id.clone(),
                c.connection.identity.module_id.clone(),
                ConnectionEventKind::Connected,
            ),
            Err(ConnectError::Refused(reason)) => {
                let (device, module) = claimed_identity(&login.credentials);
                let reason = reason.to_string();
                (device, module, ConnectionEventKind::Refused { reason })
            }
            Err(ConnectError::Internal(_)) => return connected,
        };
        self.inner.connection_log.record(
            &device_id,
            ConnectionEvent {
                at: self.now(),
                module_id,
                transport: login.transport,
                kind,
            },
        );
        connected
    }

    async fn authenticate_device(
        &self,
        login: DeviceLogin<'_>,
    ) -> Result<DeviceConnection, ConnectError> {
        let names = self.inner.names.clone();
        let creds = login.credentials;
        let (client_id, username, password) = (
            creds.client_id.to_owned(),
            creds.username.map(str::to_owned),
            creds.password.map(str::to_owned),
        );
        let thumbprints = creds.thumbprints.map(|(a, b)| (a.to_owned(), b.to_owned()));
        let clean_session = login.clean_session;
        let now = self.now_unix_secs();
        let (authed, generation_id, stored) = self
            .inner
            .store
            .call(move |tx| {
                let creds = ConnectCredentials {
                    client_id: &client_id,
                    username: username.as_deref(),
                    password: password.as_deref(),
                    thumbprints: thumbprints.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                };
                let authed = match auth::authenticate(tx, &names, creds, now)? {
                    Ok(a) => a,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let (device_id, module_id) = (
                    &authed.identity.device_id,
                    authed.identity.module_id.as_deref(),
                );
                let generation = registry_store::find(tx, device_id, module_id)?
                    .map(|r| r.generation_id)
                    .unwrap_or_default();
                // The persistent session (docs/protocol.md §1.5); clean session 1 discards it
                // (only a session that exists is deleted: a CONNECT that changes nothing needs
                // no sync).
                let session = sessions::load(tx, device_id, module_id)?;
                if clean_session && session.is_some() {
                    sessions::delete(tx, device_id, module_id)?;
                }
                Ok(Ok((authed, generation, session)))
            })
            .await??;
        let identity = authed.identity.clone();
        let (id, outbound) = self.inner.connections.attach(&identity);
        let expires_at = authed.expires_at.map(|se| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(se.saturating_add(auth::MAX_SKEW_SECS))
        });
        let stamp = Arc::new(ConnectionStamp::new(&Sender {
            identity: &identity,
            method: &authed.method,
            model_id: authed.model_id.as_deref(),
            generation_id: &generation_id,
        }));
        Ok(DeviceConnection {
            connection: ConnectionRef { identity, id },
            stamp,
            expires_at,
            restored_session: if clean_session { None } else { stored },
            outbound,
        })
    }

    /// Authenticates a DPS registration's connection. DPS connections never resume a
    /// session and never take over the device's hub connection.
    ///
    /// # Errors
    /// [`ConnectError::Refused`] or [`ConnectError::Internal`].
    pub async fn connect_dps(&self, login: DpsLogin<'_>) -> Result<DeviceConnection, ConnectError> {
        let registration_id = login.registration_id;
        if login.client_id != registration_id {
            return Err(AuthFailure::ClientIdMismatch {
                client_id: login.client_id.to_owned(),
                expected: registration_id.to_owned(),
            }
            .into());
        }
        let (scope, id, password) = (
            login.id_scope.to_owned(),
            registration_id.to_owned(),
            login.password.to_owned(),
        );
        let now = self.now();
        let attestation = self
            .inner
            .store
            .call(move |tx| {
                Ok(provisioning::authenticate_registration(
                    tx, &scope, &id, &password, now,
                ))
            })
            .await?
            .map_err(|e| AuthFailure::Registration {
                registration_id: registration_id.to_owned(),
                reason: e.to_string(),
            })?;
        lock(&self.inner.registrations).insert(
            attestation.registration_id.to_ascii_lowercase(),
            attestation,
        );
        let identity = Identity {
            device_id: registration_id.to_owned(),
            module_id: Some(DPS_SESSION.into()),
        };
        let (id, outbound) = self.inner.connections.attach(&identity);
        // DPS connections send no telemetry; the stamp is never used.
        let stamp = Arc::new(ConnectionStamp::new(&Sender {
            identity: &identity,
            method: &AuthMethod::IdentityKey,
            model_id: None,
            generation_id: "",
        }));
        Ok(DeviceConnection {
            connection: ConnectionRef { identity, id },
            stamp,
            expires_at: None,
            restored_session: None,
            outbound,
        })
    }

    /// Handles a request of `connection`; answers (if any) go to its queue. Runs in the
    /// background: the transport need not wait.
    pub fn device_request(&self, connection: &ConnectionRef, request: DeviceRequest) {
        if let DeviceRequest::MethodResponse {
            request_id,
            status,
            body,
        } = request
        {
            self.inner.methods.handle_response(
                connection.id,
                &request_id,
                i64::from(status),
                &body,
            );
            return;
        }
        let (hub, connection) = (self.clone(), connection.clone());
        tokio::spawn(async move {
            if let Some(reply) = hub.answer(&connection.identity, request).await {
                hub.inner.connections.send(&connection.identity, reply);
            }
        });
    }

    /// The connection now wants to receive `interests`: starts or stops method routing and
    /// delivers waiting C2D messages.
    pub fn interests_changed(&self, connection: &ConnectionRef, interests: Interests) {
        let ConnectionRef { identity, id } = connection;
        self.inner
            .connections
            .set_interests(identity, *id, interests);
        if interests.contains(Interests::METHODS)
            && self.inner.connections.is_current(identity, *id)
        {
            self.inner.methods.handle_subscribed(
                &identity.device_id,
                identity.module_id.as_deref(),
                *id,
            );
        } else {
            self.inner.methods.handle_disconnected(*id);
        }
        self.spawn_pump(identity);
    }

    /// Stores the connection's persistent session (on MQTT: its subscriptions, clean session
    /// 0), read back at its next connect, also after a restart; only while it is the
    /// identity's current connection, so a connection taken over cannot overwrite its
    /// successor's. Queued on the store in call order, not awaited: a session lost to a crash
    /// reads as "no session", which clients must handle (MQTT 3.1.1 §3.2.2.2).
    pub fn save_session(&self, connection: &ConnectionRef, subscriptions: Vec<StoredSubscription>) {
        if !self
            .inner
            .connections
            .is_current(&connection.identity, connection.id)
        {
            return;
        }
        let Identity {
            device_id,
            module_id,
        } = connection.identity.clone();
        let saved = self
            .inner
            .store
            .queue(move |tx| sessions::save(tx, &device_id, module_id.as_deref(), &subscriptions));
        tokio::spawn(async move {
            if let Err(e) = saved.await {
                tracing::warn!(error = %e, "could not store a persistent session");
            }
        });
    }

    /// The device completed C2D delivery `lock_token` (on MQTT: its PUBACK, or the send
    /// itself at QoS 0): the message is done; the next one is delivered.
    pub fn c2d_delivered(&self, connection: &ConnectionRef, lock_token: i64) {
        let (hub, identity) = (self.clone(), connection.identity.clone());
        tokio::spawn(async move {
            let now = hub.now();
            let done = hub
                .inner
                .store
                .call(move |tx| Ok(c2d::complete(tx, lock_token, now)))
                .await;
            if !matches!(done, Ok(Ok(_))) {
                tracing::warn!(?done, "c2d completion failed");
            }
            hub.pump(&identity).await;
        });
    }

    /// The connection closed after `duration`, for `reason`: its method calls cannot be
    /// sent there any more, and its uncompleted C2D deliveries go back to the queue
    /// (redelivered next time). `transport` and `reason` go into the connection history.
    pub fn disconnected(
        &self,
        connection: &ConnectionRef,
        transport: &'static str,
        reason: &str,
        duration: Duration,
    ) {
        let ConnectionRef { identity, id } = connection;
        if identity.module_id.as_deref() != Some(DPS_SESSION) {
            self.inner.connection_log.record(
                &identity.device_id,
                ConnectionEvent {
                    at: self.now(),
                    module_id: identity.module_id.clone(),
                    transport,
                    kind: ConnectionEventKind::Disconnected {
                        reason: reason.to_owned(),
                        duration,
                    },
                },
            );
        }
        self.inner.connections.detach(identity, *id);
        self.inner.methods.handle_disconnected(*id);
        let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
        let hub = self.clone();
        tokio::spawn(async move {
            let released = hub
                .inner
                .store
                .call(move |tx| Ok(c2d::release(tx, &device, module.as_deref())))
                .await;
            if !matches!(released, Ok(Ok(_))) {
                tracing::warn!(?released, "c2d release failed");
            }
        });
    }

    /// Works out the answer to a twin or DPS request.
    async fn answer(&self, identity: &Identity, request: DeviceRequest) -> Option<ToDevice> {
        let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
        let now = self.now();
        let store = &self.inner.store;
        Some(match request {
            DeviceRequest::TwinGet { request_id } => {
                let r = store
                    .call(move |tx| Ok(twin::handle_get(tx, &device, module.as_deref(), now)))
                    .await;
                twin_response(request_id, r)
            }
            DeviceRequest::ReportedPatch { request_id, body } => {
                let r = store
                    .call(move |tx| {
                        Ok(twin::handle_reported_patch(
                            tx,
                            &device,
                            module.as_deref(),
                            &body,
                            now,
                        ))
                    })
                    .await;
                twin_response(request_id, r)
            }
            DeviceRequest::DpsRegister { request_id, body } => {
                let attestation = self.attestation(&device)?;
                let dps = self.inner.dps.clone();
                let now_ms = timestamp::unix_millis(now);
                let r = store
                    .call(move |tx| {
                        let mut registrar = |c: &rusqlite::Connection, d: &ProvisionedDevice| {
                            provision(c, d, now_ms)
                        };
                        Ok(provisioning::handle_register(
                            tx,
                            &attestation,
                            &body,
                            &dps,
                            &mut registrar,
                            now,
                        ))
                    })
                    .await;
                dps_response(request_id, r, now)
            }
            DeviceRequest::DpsPoll {
                request_id,
                operation_id,
            } => {
                let attestation = self.attestation(&device)?;
                let r = store
                    .call(move |tx| {
                        Ok(provisioning::handle_operation_status(
                            tx,
                            &attestation,
                            &operation_id,
                            now,
                        ))
                    })
                    .await;
                dps_response(request_id, r, now)
            }
            DeviceRequest::MethodResponse { .. } => return None,
        })
    }

    fn attestation(&self, registration_id: &str) -> Option<Attestation> {
        lock(&self.inner.registrations)
            .get(&registration_id.to_ascii_lowercase())
            .cloned()
    }
}

/// The identity a refused client claimed, for its history: the username's
/// (`{host}/{device}[/{module}]/…`), else the client id's (`{device}[/{module}]`).
fn claimed_identity(credentials: &ConnectCredentials<'_>) -> (String, Option<String>) {
    if let Some(user) = credentials
        .username
        .and_then(|u| ParsedUsername::parse(u).ok())
    {
        return (
            user.device_id().to_owned(),
            user.module_id().map(str::to_owned),
        );
    }
    match credentials.client_id.split_once('/') {
        Some((d, m)) => (d.to_owned(), Some(m.to_owned())),
        None => (credentials.client_id.to_owned(), None),
    }
}

/// Creates the assigned device in the registry, or gives an existing one the enrollment's
/// keys, on the registration's transaction (docs/protocol.md §9: a device that registers again
/// gets the keys it was provisioned with, so the device key it derives keeps working).
fn provision(
    conn: &rusqlite::Connection,
    device: &ProvisionedDevice,
    now_ms: i64,
) -> Result<(), String> {
    let new = NewIdentity {
        device_id: device.device_id.clone(),
        primary_key: Some(device.primary_key.clone()),
        secondary_key: Some(device.secondary_key.clone()),
        ..NewIdentity::default()
    };
    match registry::create(conn, new, now_ms) {
        Ok(_) => Ok(()),
        Err(RegistryError::AlreadyExists) => rekey(conn, device).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Gives an existing device the provisioned keys (status and creation time stay).
fn rekey(conn: &rusqlite::Connection, device: &ProvisionedDevice) -> Result<(), StoreError> {
    let Some(mut record) = registry_store::find(conn, &device.device_id, None)? else {
        return Err(StoreError::Corrupt("provisioned device vanished"));
    };
    record.authentication = Authentication::Sas {
        primary_key: device.primary_key.clone(),
        secondary_key: device.secondary_key.clone(),
    };
    registry_store::update(conn, &record)?;
    Ok(())
}

fn twin_response(
    request_id: String,
    reply: Result<Result<TwinReply, twin::TwinError>, StoreError>,
) -> ToDevice {
    let reply = match reply {
        Ok(Ok(r)) => r,
        other => {
            tracing::warn!(?other, "twin request failed");
            TwinReply {
                status: 500,
                version: None,
                body: Vec::new(),
            }
        }
    };
    ToDevice::TwinResponse {
        request_id,
        status: reply.status,
        version: reply.version,
        body: Bytes::from(reply.body),
    }
}

fn dps_response(
    request_id: String,
    reply: Result<Result<DpsReply, provisioning::DpsError>, StoreError>,
    now: SystemTime,
) -> ToDevice {
    let reply = match reply {
        Ok(Ok(r)) => r,
        other => {
            tracing::warn!(?other, "dps request failed");
            DpsReply::error(500_000, "Internal server error.", now)
        }
    };
    ToDevice::DpsResponse {
        request_id,
        status: reply.status,
        retry_after: reply.retry_after,
        body: Bytes::from(reply.body),
    }
}
