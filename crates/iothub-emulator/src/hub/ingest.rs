//! Telemetry: durable appends to the event log and the live feed (docs/protocol.md §4).
//!
//! The durable-acknowledgement rule: a transport acknowledges a device's message (MQTT PUBACK)
//! only after the future these operations return has resolved, i.e. after the store's
//! writer committed it and synced the WAL.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::Hub;
use super::auth::Identity;
use super::lock;
use super::telemetry::{ConnectionStamp, DeviceMessage};
use crate::store::StoreError;
use crate::store::events::{self, TelemetryEvent};

impl Hub {
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
        for event in &mut events {
            event.partition = self.partition_of(&event.device_id);
        }
        let rows = events
            .iter()
            .map(events::EncodedEvent::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let appended = self.queue_rows(rows).await?;
        for (event, at) in events.iter_mut().zip(&appended) {
            event.seq = at.seq;
            event.partition_seq = at.partition_seq;
        }
        let seqs = appended.iter().map(|a| a.seq).collect();
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
    /// group commit with every other connection's appends. Only the
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
        let partition = self.partition_of(&connection.identity().device_id);
        let rows = messages
            .iter()
            .map(|m| connection.encode(m).map(|row| row.in_partition(partition)))
            .collect::<Result<Vec<_>, _>>();
        let appended = rows.map(|rows| self.queue_rows(rows));
        let (hub, connection) = (self.clone(), connection.clone());
        async move {
            let appended = appended?.await?;
            let seqs: Vec<i64> = appended.iter().map(|a| a.seq).collect();
            if let Some(last) = messages.last() {
                hub.record_activity(connection.identity(), last.enqueued_ms);
            }
            if hub.inner.live.receiver_count() > 0 {
                hub.publish_live(messages.into_iter().zip(&appended).map(|(m, at)| {
                    let mut event = connection.event(m);
                    event.seq = at.seq;
                    event.partition = partition;
                    event.partition_seq = at.partition_seq;
                    Arc::new(event)
                }));
            }
            Ok(seqs)
        }
    }

    /// Queues the INSERT of `rows` (nothing to wait for when there are none).
    pub(super) fn queue_rows(
        &self,
        rows: Vec<events::EncodedEvent>,
    ) -> impl Future<Output = Result<Vec<events::Appended>, StoreError>> + Send + use<> {
        let queued = (!rows.is_empty()).then(|| self.inner.appender.append(rows));
        async move {
            match queued {
                Some(q) => q.await,
                None => Ok(Vec::new()),
            }
        }
    }

    /// Sends appended events to the live feed, in order.
    pub(super) fn publish_live(&self, events: impl Iterator<Item = Arc<TelemetryEvent>>) {
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
}
