//! Route sources: the non-telemetry events a hub appends to its event log when routes ask
//! for them (docs/amqp.md, "Route sources"). Off by default, as on a real hub without
//! routes. Each event carries the properties and body real hubs use:
//! - `twinChangeEvents`: a device's reported-properties update, a service's desired/tags
//!   update (`updateTwin`) or replacement (`replaceTwin`);
//! - `deviceLifecycleEvents`: a device or module identity created or deleted
//!   (`createDeviceIdentity`, `deleteDeviceIdentity`, for modules too), the body its twin;
//! - `deviceConnectionStateEvents`: `deviceConnected`, `deviceDisconnected`, the body
//!   `{"sequenceNumber": "…"}` (64 hex digits, strictly increasing).
//!
//! They go through the same append as telemetry (partition of the device, durable before
//! the live feed sees them) but do not count as the device's activity.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::Hub;
use super::auth::Identity;
use super::twin::TwinDocument;
use crate::store::events::{EncodedEvent, TelemetryEvent};
use crate::timestamp::{iso8601_millis, unix_millis};

/// Which route sources are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteSources {
    /// `twinChangeEvents`.
    pub twin_changes: bool,
    /// `deviceLifecycleEvents`.
    pub lifecycle: bool,
    /// `deviceConnectionStateEvents`.
    pub connection_state: bool,
}

impl RouteSources {
    /// Every source on.
    pub const ALL: Self = Self {
        twin_changes: true,
        lifecycle: true,
        connection_state: true,
    };

    /// Whether `source` is on.
    #[must_use]
    pub fn has(self, source: RouteSource) -> bool {
        match source {
            RouteSource::TwinChanges => self.twin_changes,
            RouteSource::Lifecycle => self.lifecycle,
            RouteSource::ConnectionState => self.connection_state,
        }
    }

    /// These sources with `source` on too.
    #[must_use]
    pub fn with(mut self, source: RouteSource) -> Self {
        match source {
            RouteSource::TwinChanges => self.twin_changes = true,
            RouteSource::Lifecycle => self.lifecycle = true,
            RouteSource::ConnectionState => self.connection_state = true,
        }
        self
    }
}

/// One kind of non-telemetry event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteSource {
    /// Twin changes.
    TwinChanges,
    /// Identities created and deleted.
    Lifecycle,
    /// Connects and disconnects.
    ConnectionState,
}

impl RouteSource {
    /// Every source.
    pub const ALL: [Self; 3] = [Self::TwinChanges, Self::Lifecycle, Self::ConnectionState];

    /// The name `iothub emulator --route` takes.
    ///
    /// ```
    /// use iothub_emulator::hub::routes::RouteSource;
    /// assert_eq!(RouteSource::from_name("twin-changes"), Some(RouteSource::TwinChanges));
    /// assert_eq!(RouteSource::ConnectionState.name(), "connection-state");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::TwinChanges => "twin-changes",
            Self::Lifecycle => "lifecycle",
            Self::ConnectionState => "connection-state",
        }
    }

    /// The source of that [`RouteSource::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Its `iothub-message-source`.
    #[must_use]
    pub fn message_source(self) -> &'static str {
        match self {
            Self::TwinChanges => "twinChangeEvents",
            Self::Lifecycle => "deviceLifecycleEvents",
            Self::ConnectionState => "deviceConnectionStateEvents",
        }
    }

    /// Its `iothub-message-schema` application property.
    #[must_use]
    pub fn message_schema(self) -> &'static str {
        match self {
            Self::TwinChanges => "twinChangeNotification",
            Self::Lifecycle => "deviceLifecycleNotification",
            Self::ConnectionState => "deviceConnectionStateNotification",
        }
    }
}

/// Orders connection-state events (their `sequenceNumber`) and makes correlation ids unique
/// among events of the same millisecond.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Builds a route-source event (not yet appended). `hub_name` is the hub's name (the first
/// label of its host name), `op_type` the operation (`updateTwin`, `deviceConnected`, …).
///
/// ```
/// use std::time::SystemTime;
/// use iothub_emulator::hub::auth::Identity;
/// use iothub_emulator::hub::routes::{route_event, RouteSource};
/// let id = Identity { device_id: "d1".into(), module_id: None };
/// let e = route_event(RouteSource::Lifecycle, "myhub", &id, "createDeviceIdentity",
///     &serde_json::json!({"deviceId": "d1"}), SystemTime::UNIX_EPOCH);
/// assert_eq!(e.system_properties["iothub-message-source"], "deviceLifecycleEvents");
/// assert_eq!(e.application_properties["opType"].as_deref(), Some("createDeviceIdentity"));
/// assert_eq!(e.application_properties["hubName"].as_deref(), Some("myhub"));
/// ```
#[must_use]
pub fn route_event(
    source: RouteSource,
    hub_name: &str,
    identity: &Identity,
    op_type: &str,
    body: &Value,
    now: SystemTime,
) -> TelemetryEvent {
    let enqueued_ms = unix_millis(now);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut system = BTreeMap::new();
    for (k, v) in [
        ("content-type", "application/json".to_owned()),
        ("content-encoding", "utf-8".to_owned()),
        ("correlation-id", format!("{enqueued_ms:x}{n:08x}")),
        ("user-id", hub_name.to_owned()),
        ("iothub-message-source", source.message_source().to_owned()),
    ] {
        system.insert(k.to_owned(), v);
    }
    let mut app = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        app.insert(k.to_owned(), Some(v.to_owned()));
    };
    put("hubName", hub_name);
    put("deviceId", &identity.device_id);
    if let Some(m) = &identity.module_id {
        put("moduleId", m);
    }
    put("opType", op_type);
    put("operationTimestamp", &iso8601_millis(now));
    put("iothub-message-schema", source.message_schema());
    TelemetryEvent {
        seq: 0,
        partition: 0,
        partition_seq: 0,
        device_id: identity.device_id.clone(),
        module_id: identity.module_id.clone(),
        enqueued_ms,
        system_properties: system,
        application_properties: app,
        body: body.to_string().into(),
    }
}

/// A connection-state event's body: `sequenceNumber`, 64 hex digits that grow with every
/// event (the time, then a counter), compared as strings as real hubs' are.
#[must_use]
pub fn connection_state_body(now: SystemTime) -> Value {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ms = u64::try_from(unix_millis(now)).unwrap_or(0);
    json!({ "sequenceNumber": format!("{ms:032X}{n:032X}") })
}

/// A twin as lifecycle events and `replaceTwin` events carry it: ids, `etag`, `version`,
/// `tags` and both property sections with their `$metadata` and `$version`.
#[must_use]
pub fn twin_body(identity: &Identity, doc: &TwinDocument) -> Value {
    let mut out = Map::new();
    out.insert("deviceId".into(), json!(identity.device_id));
    if let Some(m) = &identity.module_id {
        out.insert("moduleId".into(), json!(m));
    }
    out.insert("etag".into(), json!(doc.etag()));
    out.insert("version".into(), json!(doc.version));
    if !doc.tags.is_empty() {
        out.insert("tags".into(), Value::Object(doc.tags.clone()));
    }
    out.insert(
        "properties".into(),
        json!({
            "desired": doc.desired.to_service_value(),
            "reported": doc.reported.to_service_value(),
        }),
    );
    Value::Object(out)
}

/// An `updateTwin` event's body: the twin's new `version` and what changed — `tags` and
/// the changed properties of `section` (`desired` or `reported`) with its new `$version`.
#[must_use]
pub fn twin_update_body(
    doc: &TwinDocument,
    tags: Option<&Value>,
    section: &str,
    changed: Option<&Value>,
) -> Value {
    let mut out = Map::new();
    out.insert("version".into(), json!(doc.version));
    if let Some(tags) = tags {
        out.insert("tags".into(), tags.clone());
    }
    if let Some(Value::Object(changed)) = changed {
        let mut props = changed.clone();
        let version = if section == "reported" {
            doc.reported.version
        } else {
            doc.desired.version
        };
        props.insert("$version".into(), json!(version));
        out.insert("properties".into(), json!({ section: props }));
    }
    Value::Object(out)
}

impl Hub {
    /// Which route sources are on.
    #[must_use]
    pub fn route_sources(&self) -> RouteSources {
        self.inner.routes
    }

    /// The hub's name as route events carry it (`hubName`, `user-id`): the first label of
    /// its primary host name.
    #[must_use]
    pub fn hub_name(&self) -> &str {
        self.host().split('.').next().unwrap_or_default()
    }

    /// Appends a route-source event for `identity` when `source` is on (durably, then on
    /// the live feed). A failure is logged: the change it reports has happened already.
    pub(super) async fn route(
        &self,
        source: RouteSource,
        identity: &Identity,
        op_type: &str,
        body: impl FnOnce() -> Value,
    ) {
        if self.inner.routes.has(source)
            && let Some(appended) = self.queue_route(source, identity, op_type, &body())
        {
            appended.await;
        }
    }

    /// [`Hub::route`] for callers that do not wait: queued now (so events keep the order of
    /// the calls), published in the background.
    pub(super) fn route_later(
        &self,
        source: RouteSource,
        identity: &Identity,
        op_type: &str,
        body: impl FnOnce() -> Value,
    ) {
        if self.inner.routes.has(source)
            && let Some(appended) = self.queue_route(source, identity, op_type, &body())
        {
            tokio::spawn(appended);
        }
    }

    /// A device updated its reported properties with `patch` (a JSON object): a
    /// `twinChangeEvents` `updateTwin` event with the twin's new version.
    pub(super) async fn route_reported_change(&self, identity: &Identity, patch: &[u8]) {
        if !self.inner.routes.twin_changes {
            return;
        }
        let Some(doc) = self.twin_document(identity).await else {
            return;
        };
        let changed: Option<Value> = serde_json::from_slice(patch).ok();
        self.route(RouteSource::TwinChanges, identity, "updateTwin", || {
            twin_update_body(&doc, None, "reported", changed.as_ref())
        })
        .await;
    }

    /// The service changed a twin (`body` as sent; `replace` for a replacement) and it is
    /// now `doc`: a `twinChangeEvents` event.
    pub(super) async fn route_service_twin_change(
        &self,
        identity: &Identity,
        body: &Value,
        doc: &TwinDocument,
        replace: bool,
    ) {
        if replace {
            self.route(RouteSource::TwinChanges, identity, "replaceTwin", || {
                twin_body(identity, doc)
            })
            .await;
        } else {
            self.route(RouteSource::TwinChanges, identity, "updateTwin", || {
                twin_update_body(
                    doc,
                    body.get("tags"),
                    "desired",
                    body.get("properties").and_then(|p| p.get("desired")),
                )
            })
            .await;
        }
    }

    /// An identity was created (`created`) or deleted; `doc` is its twin (for a deletion,
    /// as it was): a `deviceLifecycleEvents` event.
    pub(super) async fn route_lifecycle(
        &self,
        identity: &Identity,
        doc: Option<&TwinDocument>,
        created: bool,
    ) {
        let op = if created {
            "createDeviceIdentity"
        } else {
            "deleteDeviceIdentity"
        };
        self.route(RouteSource::Lifecycle, identity, op, || match doc {
            Some(doc) => twin_body(identity, doc),
            None => {
                let mut ids = json!({ "deviceId": identity.device_id });
                if let Some(m) = &identity.module_id {
                    ids["moduleId"] = json!(m);
                }
                ids
            }
        })
        .await;
    }

    /// The identity's twin document now (None when it cannot be read).
    pub(super) async fn twin_document(&self, identity: &Identity) -> Option<TwinDocument> {
        let (device, module, now) = (
            identity.device_id.clone(),
            identity.module_id.clone(),
            self.now(),
        );
        self.inner
            .store
            .call(move |tx| Ok(super::twin::read(tx, &device, module.as_deref(), now)))
            .await
            .ok()?
            .ok()
    }

    /// The identity's stored twin document, without creating one (None when it has none).
    pub(super) async fn stored_twin_document(&self, identity: &Identity) -> Option<TwinDocument> {
        let (device, module) = (identity.device_id.clone(), identity.module_id.clone());
        self.inner
            .store
            .call(move |tx| Ok(crate::store::twins::load(tx, &device, module.as_deref())?))
            .await
            .ok()
            .flatten()
            .and_then(|text| TwinDocument::from_stored(&text))
    }

    /// Builds the event and queues its append at once; the future publishes it.
    fn queue_route(
        &self,
        source: RouteSource,
        identity: &Identity,
        op_type: &str,
        body: &Value,
    ) -> Option<impl Future<Output = ()> + Send + use<>> {
        let mut event = route_event(source, self.hub_name(), identity, op_type, body, self.now());
        event.partition = self.partition_of(&identity.device_id);
        let row = match EncodedEvent::encode(&event) {
            Ok(row) => row,
            Err(e) => {
                tracing::warn!(error = %e, source = source.message_source(), "route event not encodable");
                return None;
            }
        };
        let appended = self.queue_rows(vec![row]);
        let hub = self.clone();
        Some(async move {
            match appended.await {
                Ok(at) => {
                    if let Some(at) = at.first() {
                        event.seq = at.seq;
                        event.partition_seq = at.partition_seq;
                        hub.publish_live(std::iter::once(Arc::new(event)));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, source = source.message_source(), "route event not appended");
                }
            }
        })
    }
}

// Tests: `hub/tests/routes.rs` (they connect devices with the hub tests' helpers).
