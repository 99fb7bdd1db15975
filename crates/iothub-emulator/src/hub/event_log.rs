//! Reading the durable event log for the service side: range reads from any sequence number
//! (or from the position of a time), and a follower that replays the log from a sequence number and then tails the live feed
//! without gaps or duplicates. Every transport that hands out telemetry (REST and SSE today,
//! AMQP next) reads through these.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

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
    /// from the log when `None`: it starts at the first event the live feed brings), then the
    /// live feed, in `seq` order. It subscribes to the feed now, before reading the log, so
    /// nothing falls between the replay and the live part.
    #[must_use]
    pub fn follow_events(&self, after: Option<i64>, filter: EventFilter) -> EventFollower {
        EventFollower {
            hub: self.clone(),
            feed: self.live_feed(),
            partition: self.sql_partition(&filter),
            filter,
            catch_up_from: after,
            upto: after,
            early: BTreeMap::new(),
            gap_since: None,
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

/// How long a follower waits for a missing event while later ones have come on the live feed,
/// before it reads the gap from the log. Connections publish what they appended once their
/// task runs after the commit, so the feed does not bring events in `seq` order; the gap
/// usually fills within microseconds. An event whose publisher went away is never on the feed.
const GAP_WAIT: Duration = Duration::from_millis(5);
/// Most feed events a follower holds back behind a gap; beyond that it reads the log.
const MAX_EARLY: usize = 1024;

/// One reader of the event stream: log replay first, then the live feed, every event once
/// and in `seq` order (so per partition in sequence-number order). The live feed brings
/// events in the order their publishers ran, not in `seq` order: an event that comes before
/// an earlier one is held back until that one comes, or read from the log if it does not
/// come soon ([`GAP_WAIT`]). When the follower falls behind the feed (the feed's buffer
/// overflowed) it reads the gap from the log, so a slow reader loses nothing.
#[derive(Debug)]
pub struct EventFollower {
    hub: Hub,
    feed: broadcast::Receiver<Arc<TelemetryEvent>>,
    filter: EventFilter,
    /// The partition log reads are confined to (see `Hub::sql_partition`).
    partition: Option<u32>,
    /// `Some(seq)`: read the log after `seq` before (or instead of) the live feed.
    catch_up_from: Option<i64>,
    /// Every event up to this `seq` was passed on or filtered out: where the follower
    /// stands and where it reads the log from after a gap. `None` only for a follower of
    /// the live feed alone, before its first event.
    upto: Option<i64>,
    /// Feed events that came before an earlier one, held until the gap before them fills.
    early: BTreeMap<i64, Arc<TelemetryEvent>>,
    /// Since when the follower has waited for the gap before `early`.
    gap_since: Option<Instant>,
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
                // Every event up to `read.next` (of this partition, when confined to one) was
                // read.
                self.catch_up_from = read.more.then_some(read.next);
                self.advance_to(read.next);
                self.backlog.extend(
                    read.events
                        .into_iter()
                        .filter(|e| self.filter.accepts(e))
                        .map(Arc::new),
                );
                continue;
            }
            // The next event in line may be among those held back.
            if let Some(e) = self.upto.and_then(|u| self.early.remove(&(u + 1))) {
                self.advance_to(e.seq);
                if self.filter.accepts(&e) {
                    return Some(e);
                }
                continue;
            }
            let received = match self.gap_since {
                None => self.feed.recv().await,
                Some(since) => {
                    match tokio::time::timeout_at(since + GAP_WAIT, self.feed.recv()).await {
                        Ok(received) => received,
                        // The missing event did not come: the log has it (it was committed
                        // before anything after it was published).
                        Err(_) => {
                            self.catch_up_from = self.upto;
                            continue;
                        }
                    }
                }
            };
            match received {
                Ok(e) => match self.upto {
                    // Already passed on from the log.
                    Some(upto) if e.seq <= upto => {}
                    Some(upto) if e.seq == upto + 1 => {
                        self.advance_to(e.seq);
                        if self.filter.accepts(&e) {
                            return Some(e);
                        }
                    }
                    Some(_) => {
                        self.gap_since.get_or_insert_with(Instant::now);
                        self.early.insert(e.seq, e);
                        if self.early.len() > MAX_EARLY {
                            self.catch_up_from = self.upto;
                        }
                    }
                    // Following the live feed alone: it starts at its first event.
                    None => {
                        self.advance_to(e.seq);
                        if self.filter.accepts(&e) {
                            return Some(e);
                        }
                    }
                },
                // Fell behind the feed: the log has everything, read the gap from there. (A
                // reader that has seen nothing yet has no position to resume from and skips.)
                Err(RecvError::Lagged(_)) => self.catch_up_from = self.upto,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Notes that every event up to `seq` was passed on (or filtered out); drops the held-back
    /// events that covers, and starts the gap's wait again when the gap moved.
    fn advance_to(&mut self, seq: i64) {
        let upto = self.upto.map_or(seq, |u| u.max(seq));
        self.upto = Some(upto);
        self.early = self.early.split_off(&(upto + 1));
        self.gap_since = (!self.early.is_empty()).then(Instant::now);
    }
}

#[cfg(test)]
mod tests;
