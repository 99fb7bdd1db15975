//! What a connected device asks of the hub (connecting itself is in `connect.rs`): requests
//! (twin, method responses, DPS), what it wants to receive, C2D completions, and
//! disconnecting. Transports call these; the hub answers through the connection's
//! [`ToDevice`] queue.

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::Hub;
use super::auth::Identity;
use super::c2d;
use super::connect::DPS_SESSION;
use super::connection_log::{ConnectionEvent, ConnectionEventKind};
use super::connections::ConnectionRef;
use super::lock;
use super::provisioning::{self, Attestation, DpsReply, ProvisionedDevice};
use super::registry::{self, NewIdentity, RegistryError};
use super::routes::{self, RouteSource};
use super::to_device::{Interests, ToDevice};
use super::twin::{self, TwinReply};
use crate::store::StoreError;
use crate::store::registry::{self as registry_store, Authentication};
use crate::store::sessions::{self, StoredSubscription};
use crate::timestamp;

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

impl Hub {
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
            // A connection taken over by a newer one of the same identity leaves the identity
            // connected: no state change to report.
            if self.inner.connections.is_current(identity, *id) {
                let now = self.now();
                self.route_later(
                    RouteSource::ConnectionState,
                    identity,
                    "deviceDisconnected",
                    || routes::connection_state_body(now),
                );
            }
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
                let patch = body.clone();
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
                if matches!(&r, Ok(Ok(reply)) if reply.status == 204) {
                    self.route_reported_change(identity, &patch).await;
                }
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
