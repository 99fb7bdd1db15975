//! The [`Hub`] handle: everything IoT Hub does, shared by every transport. Its operations are
//! spread over files by who calls them: `device_side.rs` (a device's connection),
//! `ingest.rs` (telemetry), `service_side.rs` (the service API), `c2d_pump.rs` (C2D delivery);
//! the service side's registry, twin, event-log, C2D-queue, method and SAS operations have one
//! file each (`registry_ops.rs`, `twin_ops.rs`, `event_log.rs`, `c2d_ops.rs`,
//! `method_ops.rs`, `service_auth.rs`).

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::auth::Identity;
use super::c2d::C2dLimits;
use super::clock::{Clock, SystemClock};
use super::connection_log::ConnectionLog;
use super::connections::Connections;
use super::methods::MethodInvoker;
use super::provisioning::{Attestation, DpsConfig};
use super::to_device::ToDevice;
use crate::store::events::TelemetryEvent;
use crate::store::{EventAppender, Store, StoreError};

/// Capacity of the live feed; slow subscribers see `RecvError::Lagged`.
const LIVE_FEED_CAPACITY: usize = 4096;

/// Errors of the hub's operations: the service side's refusals (missing identity, stale ETag,
/// invalid registry input, method failures) and the domains' and store's failures. A device's
/// connect refusal has its own type ([`super::ConnectError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A C2D operation failed.
    #[error(transparent)]
    C2d(#[from] super::c2d::C2dError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A twin operation failed.
    #[error(transparent)]
    Twin(#[from] super::twin::TwinError),
    /// The identity is not in the registry (a module of an unknown device names the device).
    #[error("{0} is not in the registry")]
    NotFound(Identity),
    /// The identity is in the registry already (a create without a condition).
    #[error("{0} is in the registry already")]
    AlreadyExists(Identity),
    /// The caller's ETag condition does not match the identity's current ETag.
    #[error("the ETag condition does not match")]
    PreconditionFailed,
    /// A registry change was refused (invalid id or key).
    #[error(transparent)]
    Registry(#[from] super::registry::RegistryError),
    /// A direct-method call failed (not online, timed out, malformed).
    #[error(transparent)]
    Method(#[from] super::methods::MethodError),
}

/// How a hub is set up; [`HubOptions::default`] is what `iothub emulator` runs with.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// Host names the hub answers to; the first is the primary one (connection strings, DPS
    /// assignments). Empty means `localhost`.
    pub names: Vec<String>,
    /// Where the hub reads the time.
    pub clock: Arc<dyn Clock>,
    /// C2D queue limits.
    pub c2d_limits: C2dLimits,
    /// Seconds a DPS device is told to wait between status polls.
    pub dps_retry_after_secs: u32,
    /// Event Hub partitions of the event log (default 4; clamped to 1..=128). Fixed when the
    /// data dir is created: [`Hub::open`] refuses another count for an existing store.
    pub partitions: u32,
    /// Which non-telemetry events the hub appends to the event log (none by default, as a
    /// real hub without routes).
    pub routes: super::routes::RouteSources,
    /// File upload: storage, container, SAS lifetime (docs/file-upload.md).
    pub file_upload: super::file_upload::FileUploadOptions,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            names: vec!["localhost".into()],
            clock: Arc::new(SystemClock),
            c2d_limits: C2dLimits::DEFAULT,
            dps_retry_after_secs: 1,
            partitions: super::event_hub::DEFAULT_PARTITIONS,
            routes: super::routes::RouteSources::default(),
            file_upload: super::file_upload::FileUploadOptions::default(),
        }
    }
}

/// The hub: registry and authentication, telemetry, C2D, twins, direct methods, DPS,
/// connection state and the live event feed, behind typed operations that name no transport.
/// Cheap to clone; every clone is the same hub.
#[derive(Clone, Debug)]
pub struct Hub {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) store: Store,
    /// Telemetry rows of every connection, one database job per batch.
    pub(super) appender: EventAppender,
    pub(super) names: Vec<String>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) live: broadcast::Sender<Arc<TelemetryEvent>>,
    /// When each identity's last telemetry was enqueued (ms since the epoch), for the
    /// registry's `lastActivityTime`; updated on the append path, not by a feed subscriber,
    /// so that ingest wakes no other task.
    pub(super) last_activity: Mutex<HashMap<Identity, i64>>,
    pub(super) connections: Arc<Connections>,
    /// Each device's recent connects, disconnects and refusals.
    pub(super) connection_log: ConnectionLog,
    pub(super) methods: MethodInvoker,
    pub(super) dps: DpsConfig,
    pub(super) c2d_limits: C2dLimits,
    /// Authenticated DPS registrations, by lower-cased registration id.
    pub(super) registrations: Mutex<HashMap<String, Attestation>>,
    /// Event Hub partitions of the event log.
    pub(super) partitions: u32,
    /// When the partition count was recorded (ms since the epoch), once the store said.
    pub(super) event_hub_created_ms: Arc<AtomicI64>,
    /// Which route sources append to the event log.
    pub(super) routes: super::routes::RouteSources,
    /// File upload options and the file notification queue.
    pub(super) file_uploads: super::file_upload_ops::FileUploads,
}

impl Hub {
    /// A hub over `store` answering to `names` (the first is the primary host name), on the
    /// system clock.
    #[must_use]
    pub fn new(store: Store, names: Vec<String>) -> Self {
        Self::with_options(
            store,
            HubOptions {
                names,
                ..HubOptions::default()
            },
        )
    }

    /// A hub over `store` set up by `options` (a test's clock, other limits).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use iothub_emulator::hub::{Hub, HubOptions, ManualClock};
    /// use iothub_emulator::store::Store;
    /// let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH));
    /// let options = HubOptions { clock: clock.clone(), ..HubOptions::default() };
    /// let hub = Hub::with_options(Store::open_in_memory().unwrap(), options);
    /// assert_eq!(hub.now(), SystemTime::UNIX_EPOCH);
    /// ```
    ///
    /// It does not wait for the store: the partition count is recorded (or checked) by a job
    /// queued ahead of any other, and a mismatch is only logged. Use [`Hub::open`] to be
    /// told.
    #[must_use]
    pub fn with_options(store: Store, options: HubOptions) -> Self {
        let HubOptions {
            mut names,
            clock,
            c2d_limits,
            dps_retry_after_secs,
            partitions,
            routes,
            file_upload,
        } = options;
        let partitions = partitions.clamp(
            super::event_hub::MIN_PARTITIONS,
            super::event_hub::MAX_PARTITIONS,
        );
        let event_hub_created_ms = Arc::new(AtomicI64::new(0));
        // Queued now, so it runs before anything this hub asks of the store; nobody waits.
        drop(fix_partitions(
            &store,
            partitions,
            crate::timestamp::unix_millis(clock.now()),
            event_hub_created_ms.clone(),
        ));
        if names.is_empty() {
            names.push("localhost".into());
        }
        let connections = Arc::new(Connections::default());
        let methods = {
            let connections = connections.clone();
            MethodInvoker::new(move |out| {
                // Fire and forget: the call's own timeout covers a connection that just went.
                connections.send_to(
                    out.connection,
                    ToDevice::MethodRequest {
                        method: out.method,
                        request_id: out.request_id,
                        payload: out.payload.into(),
                    },
                );
            })
        };
        // invariant: `names` is not empty (a default was pushed above).
        let dps = DpsConfig {
            assigned_hub: names[0].clone(),
            retry_after_secs: dps_retry_after_secs,
        };
        Self {
            inner: Arc::new(Inner {
                appender: EventAppender::new(store.clone()),
                store,
                names,
                clock,
                live: broadcast::channel(LIVE_FEED_CAPACITY).0,
                last_activity: Mutex::new(HashMap::new()),
                connections,
                connection_log: ConnectionLog::default(),
                methods,
                dps,
                c2d_limits,
                registrations: Mutex::new(HashMap::new()),
                partitions,
                event_hub_created_ms,
                routes,
                file_uploads: super::file_upload_ops::FileUploads::new(file_upload),
            }),
        }
    }

    /// [`Hub::with_options`] after checking the store's partition count: a new store
    /// records `options.partitions`; an existing one must have been created with it.
    ///
    /// ```
    /// use iothub_emulator::hub::{Hub, HubOptions};
    /// use iothub_emulator::store::{Store, StoreError};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = Store::open_in_memory().unwrap();
    /// let hub = Hub::open(store.clone(), HubOptions { partitions: 8, ..HubOptions::default() })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(hub.partition_count(), 8);
    /// let again = Hub::open(store, HubOptions::default()).await;
    /// assert!(matches!(again, Err(StoreError::PartitionCount { stored: 8, requested: 4 })));
    /// # });
    /// ```
    ///
    /// # Errors
    /// [`StoreError::PartitionCount`] when the store was created with another count;
    /// [`StoreError`] when it cannot be read.
    pub async fn open(store: Store, options: HubOptions) -> Result<Self, StoreError> {
        let partitions = options.partitions.clamp(
            super::event_hub::MIN_PARTITIONS,
            super::event_hub::MAX_PARTITIONS,
        );
        let now = crate::timestamp::unix_millis(options.clock.now());
        let created = Arc::new(AtomicI64::new(0));
        fix_partitions(&store, partitions, now, created.clone()).await?;
        let hub = Self::with_options(store, options);
        hub.inner.event_hub_created_ms.store(
            created.load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(hub)
    }

    /// The store (for tools that work on the database directly, and for tests).
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Host names the hub answers to.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.inner.names
    }

    /// The primary host name (used in connection strings).
    #[must_use]
    pub fn host(&self) -> &str {
        // invariant: `with_options` never builds a hub without a name.
        &self.inner.names[0]
    }

    /// The hub's current time (its injected clock).
    #[must_use]
    pub fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// The hub's current time in Unix seconds.
    #[must_use]
    pub fn now_unix_secs(&self) -> u64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The device's recent connection history (its modules' included), oldest first, at most
    /// [`super::EVENTS_PER_DEVICE`] events.
    #[must_use]
    pub fn connection_events(&self, device_id: &str) -> Vec<super::ConnectionEvent> {
        self.inner.connection_log.events(device_id)
    }

    /// Whether the identity has a live connection.
    #[must_use]
    pub fn is_connected(&self, identity: &Identity) -> bool {
        self.inner.connections.is_connected(identity)
    }
}

/// Queues the job that records or checks the store's partition count (and backfills rows
/// written before partitions); `created` gets when the count was recorded.
fn fix_partitions(
    store: &Store,
    partitions: u32,
    now_ms: i64,
    created: Arc<AtomicI64>,
) -> impl Future<Output = Result<(), StoreError>> + Send + use<> {
    store.queue(move |tx| {
        let fixed = crate::store::events::fix_partitions(tx, partitions, now_ms, |device| {
            super::event_hub::partition_for(device, partitions)
        });
        match fixed {
            Ok(ms) => {
                created.store(ms, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "the event log's partition count");
                Err(e)
            }
        }
    })
}
