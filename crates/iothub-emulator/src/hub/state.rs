//! The shared hub state: store, host names, live connections (one per identity), persistent
//! MQTT sessions (stored through the store) and the live telemetry feed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use tokio::sync::{broadcast, mpsc};

use super::auth::Identity;
use super::telemetry::{ConnectionStamp, DeviceMessage};
use crate::mqtt::{Feeds, Subscription};
use crate::store::events::{self, TelemetryEvent};
use crate::store::sessions::{self, StoredSubscription};
use crate::store::{Store, StoreError};

/// Capacity of the live feed; slow subscribers see `RecvError::Lagged`.
const LIVE_FEED_CAPACITY: usize = 4096;

/// A message the hub pushes to one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// Publish `payload` on `topic` at (at most) `qos`; `tag` is returned in
    /// [`Delivery`] notifications when the device acknowledges a QoS 1 publish (C2D lock tokens).
    Publish {
        /// Topic.
        topic: String,
        /// Body.
        payload: Bytes,
        /// Requested QoS (capped at the subscription's granted QoS).
        qos: QoS,
        /// Caller's correlation tag.
        tag: Option<String>,
    },
    /// Like [`Outbound::Publish`], but a redelivery of a message the device may already have
    /// seen (C2D after a reconnect): sent with the DUP flag set (MQTT 3.1.1 §3.3.1.1).
    Redelivery {
        /// Topic.
        topic: String,
        /// Body.
        payload: Bytes,
        /// Requested QoS (capped at the subscription's granted QoS).
        qos: QoS,
        /// Caller's correlation tag.
        tag: Option<String>,
    },
    /// Close the connection (e.g. taken over by a new connection of the same identity).
    Close,
}

/// A device acknowledged a tagged QoS 1 publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Who acknowledged.
    pub identity: Identity,
    /// The tag given in [`Outbound::Publish`].
    pub tag: String,
}

#[derive(Debug)]
struct Live {
    id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    feeds: Feeds,
}

/// The shared hub state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    names: Vec<String>,
    live: broadcast::Sender<Arc<TelemetryEvent>>,
    /// When each identity's last telemetry was enqueued (ms since the epoch), for the
    /// registry's `lastActivityTime`; updated on the append path, not by a feed subscriber,
    /// so that ingest wakes no other task.
    last_activity: Mutex<HashMap<Identity, i64>>,
    deliveries: broadcast::Sender<Delivery>,
    connections: Mutex<HashMap<Identity, Live>>,
    next_id: AtomicU64,
}

impl Hub {
    /// A hub over `store` answering to `names` (the first is the primary host name).
    #[must_use]
    pub fn new(store: Store, names: Vec<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                names,
                live: broadcast::channel(LIVE_FEED_CAPACITY).0,
                last_activity: Mutex::new(HashMap::new()),
                deliveries: broadcast::channel(LIVE_FEED_CAPACITY).0,
                connections: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The store.
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
        self.inner.names.first().map_or("localhost", String::as_str)
    }

    /// Appends a stamped event durably, then publishes it on the live feed. Returns its `seq`.
    ///
    /// # Errors
    /// [`StoreError`] when the append could not be committed.
    pub async fn append_telemetry(&self, event: TelemetryEvent) -> Result<i64, StoreError> {
        let seqs = self.append_telemetry_batch(vec![event]).await?;
        seqs.first().copied().ok_or(StoreError::Corrupt(
            "no sequence number for an appended event",
        ))
    }

    /// Appends `events` durably in one store job, all or none and in order, then publishes
    /// them on the live feed. Returns their `seq`s, in the same order. (MQTT connections use
    /// [`Hub::queue_messages`], which does the same from the parts a connection has.)
    ///
    /// # Errors
    /// [`StoreError`] when the append could not be committed; then none of them is stored.
    pub async fn append_telemetry_batch(
        &self,
        mut events: Vec<TelemetryEvent>,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = events
            .iter()
            .map(events::EncodedEvent::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let seqs = self.queue_rows(rows).await?;
        for (event, seq) in events.iter_mut().zip(&seqs) {
            event.seq = *seq;
        }
        for run in events.chunk_by(|a, b| a.device_id == b.device_id && a.module_id == b.module_id)
        {
            if let Some(last) = run.last() {
                let identity = Identity {
                    device_id: last.device_id.clone(),
                    module_id: last.module_id.clone(),
                };
                self.record_activity(&identity, last.enqueued_ms);
            }
        }
        self.publish_live(events.into_iter().map(Arc::new));
        Ok(seqs)
    }

    /// Appends the messages one connection received (stamped by `connection`), queued right
    /// away (in call order, not when the returned future is first polled; see
    /// [`Store::queue`]): the ingest path. A connection hands over every
    /// PUBLISH it has already read at once: one job and one reply for the lot, sharing the
    /// group commit with every other connection's appends (issue 3 point 6). Only the
    /// device's own properties are encoded per message; the connection's part is stored once,
    /// and whole events are built for the live feed only while someone listens to it.
    ///
    /// # Errors
    /// As [`Hub::append_telemetry_batch`].
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use iothub_emulator::hub::Hub;
    /// use iothub_emulator::hub::auth::{AuthMethod, Identity};
    /// use iothub_emulator::hub::telemetry::{ConnectionStamp, Origin, Sender};
    /// use iothub_emulator::store::Store;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hub = Hub::new(Store::open_in_memory().unwrap(), vec!["localhost".into()]);
    /// let id = Identity { device_id: "d1".into(), module_id: None };
    /// let sender = Sender { identity: &id, method: &AuthMethod::IdentityKey, model_id: None, generation_id: "1" };
    /// let connection = Arc::new(ConnectionStamp::new(&sender));
    /// let mut live = hub.live_feed();
    /// let now = SystemTime::now();
    /// let messages = ["%24.mid=a", "%24.mid=b"]
    ///     .map(|bag| connection.message(bag, "{}".into(), Origin::Publish { retain: false }, now));
    /// let seqs = hub.queue_messages(&connection, messages.to_vec()).await.unwrap();
    /// assert_eq!(seqs.len(), 2);
    /// let first = live.recv().await.unwrap();
    /// assert_eq!((first.seq, first.system_properties["message-id"].as_str()), (seqs[0], "a"));
    /// assert_eq!(first.system_properties["iothub-connection-device-id"], "d1");
    /// # });
    /// ```
    pub fn queue_messages(
        &self,
        connection: &Arc<ConnectionStamp>,
        messages: Vec<DeviceMessage>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send + use<> {
        let rows = messages
            .iter()
            .map(|m| connection.encode(m))
            .collect::<Result<Vec<_>, _>>();
        let appended = rows.map(|rows| self.queue_rows(rows));
        let (hub, connection) = (self.clone(), connection.clone());
        async move {
            let seqs = appended?.await?;
            if let Some(last) = messages.last() {
                hub.record_activity(connection.identity(), last.enqueued_ms);
            }
            if hub.inner.live.receiver_count() > 0 {
                hub.publish_live(messages.into_iter().zip(&seqs).map(|(m, seq)| {
                    let mut event = connection.event(m);
                    event.seq = *seq;
                    Arc::new(event)
                }));
            }
            Ok(seqs)
        }
    }

    /// Queues the INSERT of `rows` (nothing to wait for when there are none).
    fn queue_rows(
        &self,
        rows: Vec<events::EncodedEvent>,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send + use<> {
        let queued = (!rows.is_empty()).then(|| {
            self.inner
                .store
                .queue(move |tx| events::insert_all(tx, &rows))
        });
        async move {
            match queued {
                Some(q) => q.await,
                None => Ok(Vec::new()),
            }
        }
    }

    /// Sends appended events to the live feed, in order.
    fn publish_live(&self, events: impl Iterator<Item = Arc<TelemetryEvent>>) {
        for event in events {
            // No receiver is fine: the live feed is best effort, the log is the record.
            let _ = self.inner.live.send(event);
        }
    }

    /// Notes that `identity`'s newest telemetry was enqueued at `enqueued_ms`.
    fn record_activity(&self, identity: &Identity, enqueued_ms: i64) {
        let mut last = lock(&self.inner.last_activity);
        match last.get_mut(identity) {
            Some(ms) => *ms = enqueued_ms,
            None => {
                last.insert(identity.clone(), enqueued_ms);
            }
        }
    }

    /// When the identity's last telemetry was enqueued (ms since the Unix epoch), if it sent
    /// any since the emulator started.
    #[must_use]
    pub fn last_activity(&self, identity: &Identity) -> Option<i64> {
        lock(&self.inner.last_activity).get(identity).copied()
    }

    /// Subscribes to the live feed of stamped telemetry (for the service layer). Events are
    /// shared, not copied, between subscribers.
    #[must_use]
    pub fn live_feed(&self) -> broadcast::Receiver<Arc<TelemetryEvent>> {
        self.inner.live.subscribe()
    }

    /// Subscribes to device acknowledgements of tagged publishes (C2D completion).
    #[must_use]
    pub fn deliveries(&self) -> broadcast::Receiver<Delivery> {
        self.inner.deliveries.subscribe()
    }

    /// Pushes a message to the identity's live connection; false when it is not connected.
    pub fn send(&self, identity: &Identity, message: Outbound) -> bool {
        let map = lock(&self.inner.connections);
        map.get(identity)
            .is_some_and(|c| c.tx.send(message).is_ok())
    }

    /// Whether the identity has a live connection.
    #[must_use]
    pub fn is_connected(&self, identity: &Identity) -> bool {
        lock(&self.inner.connections).contains_key(identity)
    }

    /// Registers a new live connection, closing any previous one of the same identity
    /// (PROTOCOL.md §1.5: one connection per identity). Returns its id and its outbound queue.
    pub(crate) fn attach(&self, identity: &Identity) -> (u64, mpsc::UnboundedReceiver<Outbound>) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let previous = lock(&self.inner.connections).insert(
            identity.clone(),
            Live {
                id,
                tx,
                feeds: Feeds::default(),
            },
        );
        if let Some(previous) = previous {
            let _ = previous.tx.send(Outbound::Close);
        }
        (id, rx)
    }

    /// Whether the identity is connected and subscribed to `$iothub/methods/POST/#` (or `#`);
    /// a method call to anyone else is answered 404 `404103` (PROTOCOL.md §7).
    #[must_use]
    pub fn receives_methods(&self, identity: &Identity) -> bool {
        lock(&self.inner.connections)
            .get(identity)
            .is_some_and(|c| c.feeds.contains(Feeds::METHODS))
    }

    /// Whether the identity is connected and subscribed to its C2D topic (or a broad filter).
    #[must_use]
    pub fn receives_c2d(&self, identity: &Identity) -> bool {
        lock(&self.inner.connections)
            .get(identity)
            .is_some_and(|c| c.feeds.contains(Feeds::C2D))
    }

    /// Whether the identity is connected and subscribed to desired-property patches.
    #[must_use]
    pub fn receives_desired(&self, identity: &Identity) -> bool {
        lock(&self.inner.connections)
            .get(identity)
            .is_some_and(|c| c.feeds.contains(Feeds::DESIRED))
    }

    #[cfg(test)]
    pub(crate) fn set_feeds(&self, identity: &Identity, feeds: Feeds) {
        if let Some(c) = lock(&self.inner.connections).get_mut(identity) {
            c.feeds = feeds;
        }
    }

    /// Like `set_feeds`, but only while connection `id` is still the identity's live one.
    pub(crate) fn set_connection_feeds(&self, identity: &Identity, id: u64, feeds: Feeds) {
        if let Some(c) = lock(&self.inner.connections)
            .get_mut(identity)
            .filter(|c| c.id == id)
        {
            c.feeds = feeds;
        }
    }

    /// Whether connection `id` is still the identity's live connection (not taken over).
    pub(crate) fn is_current(&self, identity: &Identity, id: u64) -> bool {
        lock(&self.inner.connections)
            .get(identity)
            .is_some_and(|c| c.id == id)
    }

    /// Removes connection `id` (if it is still the identity's current one).
    pub(crate) fn detach(&self, identity: &Identity, id: u64) {
        let mut map = lock(&self.inner.connections);
        if map.get(identity).is_some_and(|c| c.id == id) {
            map.remove(identity);
        }
    }

    /// Notifies a device acknowledgement.
    pub(crate) fn delivered(&self, identity: &Identity, tag: String) {
        let _ = self.inner.deliveries.send(Delivery {
            identity: identity.clone(),
            tag,
        });
    }

    /// Stores the persistent session (clean session 0) of an identity: its subscriptions, read
    /// back at its next CONNECT (also after a restart). Queued on the store in call order, so
    /// a later CONNECT of the same identity sees it; not awaited (the SUBACK does not wait:
    /// a session lost to a crash reads as session-present 0, and the client subscribes again,
    /// as MQTT 3.1.1 §3.2.2.2 requires of it).
    pub(crate) fn save_session(&self, identity: &Identity, subscriptions: &[Subscription]) {
        let Identity {
            device_id,
            module_id,
        } = identity.clone();
        let stored: Vec<StoredSubscription> = subscriptions
            .iter()
            .map(|s| StoredSubscription {
                filter: s.filter.clone(),
                qos: s.qos as u8,
            })
            .collect();
        let saved = self
            .inner
            .store
            .queue(move |tx| sessions::save(tx, &device_id, module_id.as_deref(), &stored));
        tokio::spawn(async move {
            if let Err(e) = saved.await {
                tracing::warn!(error = %e, "could not store a persistent session");
            }
        });
    }
}

/// Locks a mutex, recovering from poisoning (the maps stay consistent per operation).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
