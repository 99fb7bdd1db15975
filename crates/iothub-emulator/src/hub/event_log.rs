//! Reading the durable event log for the service side: range reads from any sequence number
//! (or from the position of a time), and a follower that replays the log from a sequence number and then tails the live feed
//! without gaps or duplicates. Every transport that hands out telemetry (REST and SSE today,
//! AMQP next) reads through these.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::Hub;
use crate::store::StoreError;
use crate::store::events::{self, TelemetryEvent};
use crate::timestamp::unix_millis;

/// Log rows read per store round trip.
const BATCH: u32 = 500;
/// Most rows one range read scans (the answer's `next` lets the caller continue).
pub const MAX_SCAN: usize = 50_000;

/// Which events a reader wants: all, one partition's, one device's (with its modules'), or
/// one module's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this device's events (its modules' included unless `module_id` is set).
    pub device_id: Option<String>,
    /// Only this module's events.
    pub module_id: Option<String>,
    /// Only this Event Hub partition's events. Log reads filter on it in
    /// SQL, so a partition reader never decodes other partitions' rows.
    pub partition: Option<u32>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    #[must_use]
    pub fn accepts(&self, event: &TelemetryEvent) -> bool {
        self.device_id
            .as_ref()
            .is_none_or(|d| *d == event.device_id)
            && self
                .module_id
                .as_ref()
                .is_none_or(|m| Some(m) == event.module_id.as_ref())
            && self.partition.is_none_or(|p| p == event.partition)
    }
}

/// One range read: matching events, oldest first, and where to continue.
#[derive(Clone, Debug)]
pub struct EventRange {
    /// Matching events with `seq` above the read's start, oldest first.
    pub events: Vec<TelemetryEvent>,
    /// The highest `seq` scanned (matching or not); pass it as the next read's start. Equal
    /// to the start when nothing was scanned.
    pub next: i64,
}

impl Hub {
    /// Reads up to `limit` events matching `filter` with `seq > after`, oldest first,
    /// scanning at most [`MAX_SCAN`] rows; continue from [`EventRange::next`].
    ///
    /// # Errors
    /// [`StoreError`] when the log cannot be read.
    pub async fn read_events(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EventRange, StoreError> {
        let mut next = after;
        let mut out = Vec::new();
        let mut scanned = 0;
        let partition = self.sql_partition(filter);
        while out.len() < limit && scanned < MAX_SCAN {
            let read = self.read_log_batch(next, partition).await?;
            let start = next;
            let mut stopped = false;
            for e in read.events {
                next = e.seq;
                if filter.accepts(&e) {
                    out.push(e);
                    if out.len() == limit {
                        stopped = true;
                        break;
                    }
                }
            }
            if !stopped {
                next = read.next;
            }
            // Rows looked at, matching or not (a partition read skips the others in SQL).
            scanned += usize::try_from(next - start).unwrap_or(0);
            if stopped || !read.more {
                break;
            }
        }
        Ok(EventRange { events: out, next })
    }

    /// Where the events enqueued at or after `time` begin: the sequence number to pass as
    /// `after` to [`Hub::read_events`] or [`Hub::follow_events`] (a reader that starts from a
    /// time rather than a sequence number). See [`events::position_at`] for its precision.
    ///
    /// # Errors
    /// [`StoreError`] when the log cannot be read.
    pub async fn event_position_at(&self, time: SystemTime) -> Result<i64, StoreError> {
        let at_ms = unix_millis(time);
        self.inner
            .store
            .call(move |tx| events::position_at(tx, at_ms))
            .await
    }

    /// Deletes the events enqueued more than `keep` before the hub's time (retention);
    /// returns how many went. See [`events::purge_before`] for its precision.
    ///
    /// # Errors
    /// [`StoreError`] when the log cannot be written.
    pub async fn apply_retention(&self, keep: std::time::Duration) -> Result<usize, StoreError> {
        let cutoff = unix_millis(self.now()) - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        self.inner
            .store
            .call(move |tx| events::purge_before(tx, cutoff))
            .await
    }

    /// A follower of the events matching `filter`: first the log after `after` (nothing
    /// from the log when `None`), then the live feed. It subscribes to the feed now, before
    /// reading the log, so nothing falls between the replay and the live part.
    #[must_use]
    pub fn follow_events(&self, after: Option<i64>, filter: EventFilter) -> EventFollower {
        EventFollower {
            hub: self.clone(),
            feed: self.live_feed(),
            partition: self.sql_partition(&filter),
            filter,
            catch_up_from: after,
            replayed_upto: None,
            last_seen: None,
            backlog: VecDeque::new(),
        }
    }

    async fn read_log_batch(
        &self,
        after: i64,
        partition: Option<u32>,
    ) -> Result<events::LogRead, StoreError> {
        self.inner
            .store
            .call(move |tx| events::read_range(tx, after, partition, BATCH))
            .await
    }

    /// The partition a filter confines reads to: its own, else its device's (a device's
    /// events, its modules' included, all go to the device's partition).
    fn sql_partition(&self, filter: &EventFilter) -> Option<u32> {
        filter
            .partition
            .or_else(|| filter.device_id.as_deref().map(|d| self.partition_of(d)))
    }
}

/// One reader of the event stream: log replay first, then the live feed. When it falls
/// behind the feed (the feed's buffer overflowed) it reads the gap from the log, so a slow
/// reader loses nothing.
#[derive(Debug)]
pub struct EventFollower {
    hub: Hub,
    feed: broadcast::Receiver<Arc<TelemetryEvent>>,
    filter: EventFilter,
    /// The partition log reads are confined to (see `Hub::sql_partition`).
    partition: Option<u32>,
    /// `Some(seq)`: read the log after `seq` before (or instead of) the live feed.
    catch_up_from: Option<i64>,
    /// Live events at or below this seq were already sent from the log.
    replayed_upto: Option<i64>,
    /// Highest seq seen so far (where to catch up from after falling behind).
    last_seen: Option<i64>,
    backlog: VecDeque<Arc<TelemetryEvent>>,
}

impl EventFollower {
    /// The next matching event; `None` when the hub is gone or the log cannot be read.
    ///
    /// Cancel-safe: dropping the future loses no event (a log batch being read is read
    /// again; the live feed keeps what was not received), so a transport may race it against
    /// its own shutdown.
    pub async fn next(&mut self) -> Option<Arc<TelemetryEvent>> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                return Some(e);
            }
            if let Some(after) = self.catch_up_from {
                let read = self.hub.read_log_batch(after, self.partition).await.ok()?;
                // Every event up to `upto` (of this partition, when confined to one) was read.
                let upto = read.next;
                self.catch_up_from = read.more.then_some(upto);
                self.replayed_upto = Some(upto);
                self.last_seen = Some(self.last_seen.map_or(upto, |l| l.max(upto)));
                self.backlog.extend(
                    read.events
                        .into_iter()
                        .filter(|e| self.filter.accepts(e))
                        .map(Arc::new),
                );
                continue;
            }
            match self.feed.recv().await {
                Ok(e) if self.replayed_upto.is_some_and(|r| e.seq <= r) => {}
                Ok(e) => {
                    self.last_seen = Some(self.last_seen.map_or(e.seq, |l| l.max(e.seq)));
                    if self.filter.accepts(&e) {
                        return Some(e);
                    }
                }
                // Fell behind the feed: the log has everything, read the gap from there. (A
                // reader that has seen nothing yet has no position to resume from and skips.)
                Err(RecvError::Lagged(_)) => self.catch_up_from = self.last_seen,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests;
