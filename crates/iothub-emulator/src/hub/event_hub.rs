//! The event log seen as an Event Hub: partitions, where a partition reader
//! starts ([`EventPosition`]) and a partition's properties ([`PartitionInfo`]). The AMQP
//! adapter turns its link filters and `$management` requests into these calls; nothing here
//! names AMQP.
//!
//! Positions as Event Hubs defines them: an event's *offset* is its global log `seq`
//! (strictly increasing over the whole log), its *sequence number* counts from 0 within its
//! partition. A reader gets the global `seq` to pass as `after` to
//! [`Hub::follow_events`] with an [`EventFilter`](super::event_log::EventFilter) whose
//! `partition` is set.

use super::Hub;
use crate::store::StoreError;
use crate::store::events::{self, PartitionKey};

/// Fewest partitions a hub may have (real hubs start at 2; one is handy for tests).
pub const MIN_PARTITIONS: u32 = 1;
/// Most partitions a hub may have (as on real hubs).
pub const MAX_PARTITIONS: u32 = 128;
/// Partitions of a hub created without saying (as on real hubs).
pub const DEFAULT_PARTITIONS: u32 = 4;

/// The partition of `device_id` among `count`: FNV-1a (32 bits) over the id's UTF-8 bytes,
/// modulo `count` (a `count` of 0 counts as 1).
///
/// The algorithm is part of the data dir's format: every event stored has its partition,
/// and a reader resumes by partition, so the answer must never change across versions,
/// restarts or platforms. FNV-1a: start from 2166136261; for each byte, XOR it in, then
/// multiply by 16777619 (wrapping at 2^32).
///
/// ```
/// use iothub_emulator::hub::event_hub::partition_for;
/// assert_eq!(partition_for("", 4), 2166136261 % 4);
/// assert!(partition_for("thermostat-1", 4) < 4);
/// assert_eq!(partition_for("any", 1), 0);
/// ```
#[must_use]
pub fn partition_for(device_id: &str, count: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in device_id.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % count.max(1)
}

/// Where a partition reader starts (Event Hubs' event position).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventPosition {
    /// The oldest retained event.
    Start,
    /// After the newest event: only events enqueued from now on.
    Latest,
    /// At (`inclusive`) or after the event with this offset (its global `seq`). A negative
    /// offset (clients send `-1`) means [`EventPosition::Start`].
    Offset {
        /// The offset.
        offset: i64,
        /// Whether the event at `offset` itself is read.
        inclusive: bool,
    },
    /// At or after the event with this sequence number within the partition.
    SequenceNumber {
        /// The per-partition sequence number.
        sequence_number: i64,
        /// Whether that event itself is read.
        inclusive: bool,
    },
    /// The first event enqueued at (`inclusive`) or after this time.
    EnqueuedTime {
        /// Milliseconds since the Unix epoch.
        unix_ms: i64,
        /// Whether an event enqueued exactly then is read.
        inclusive: bool,
    },
}

/// A partition's properties (the `$management` node's `com.microsoft:partition` answer).
///
/// An empty partition (nothing ever appended, or everything removed by retention) has
/// `is_empty` true; one that never had an event reports `last_enqueued_sequence_number` -1,
/// `last_enqueued_offset` -1 and `last_enqueued_time_ms` 0, and `begin_sequence_number` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition id.
    pub partition: u32,
    /// The oldest retained sequence number (the next one to be assigned when empty).
    pub begin_sequence_number: i64,
    /// The newest sequence number ever assigned (-1: none).
    pub last_enqueued_sequence_number: i64,
    /// Offset (global `seq`) of the newest event (-1: none).
    pub last_enqueued_offset: i64,
    /// When the newest event was enqueued, ms since the Unix epoch (0: none).
    pub last_enqueued_time_ms: i64,
    /// Whether no event is retained.
    pub is_empty: bool,
}

impl Hub {
    /// The number of partitions (fixed when the data dir was created).
    #[must_use]
    pub fn partition_count(&self) -> u32 {
        self.inner.partitions
    }

    /// The partition a device's events go to (its modules' too): [`partition_for`] with
    /// this hub's count.
    #[must_use]
    pub fn partition_of(&self, device_id: &str) -> u32 {
        partition_for(device_id, self.inner.partitions)
    }

    /// When the partition count was recorded, i.e. when the data dir (or the in-memory
    /// hub) was created, in ms since the Unix epoch (the Event Hub's `created_at`); 0 until
    /// the store has answered the first request.
    #[must_use]
    pub fn event_hub_created_ms(&self) -> i64 {
        self.inner
            .event_hub_created_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The global `seq` to pass as `after` to [`Hub::follow_events`] (with the partition in
    /// the filter) to read `partition` from `position`. A position past the newest event
    /// gives the log's end, so only new events are read; one before the oldest retained
    /// event gives the start.
    ///
    /// # Errors
    /// [`StoreError::UnknownPartition`] for a partition outside `0..partition_count()`;
    /// [`StoreError`] when the log cannot be read.
    pub async fn partition_start(
        &self,
        partition: u32,
        position: EventPosition,
    ) -> Result<i64, StoreError> {
        self.check_partition(partition)?;
        self.inner
            .store
            .call(move |tx| {
                let start = || Ok(events::first_seq(tx)?.map_or(0, |s| s - 1));
                let found = |key, min| -> Result<i64, StoreError> {
                    match events::partition_position(tx, partition, key, min)? {
                        Some(after) => Ok(after),
                        None => events::last_seq(tx),
                    }
                };
                match position {
                    EventPosition::Start => start(),
                    EventPosition::Offset { offset, .. } if offset < 0 => start(),
                    EventPosition::Latest => events::last_seq(tx),
                    EventPosition::Offset { offset, inclusive } => {
                        Ok(if inclusive { offset - 1 } else { offset })
                    }
                    EventPosition::SequenceNumber {
                        sequence_number: n,
                        inclusive,
                    } => found(
                        PartitionKey::SequenceNumber,
                        if inclusive { n } else { n.saturating_add(1) },
                    ),
                    EventPosition::EnqueuedTime { unix_ms, inclusive } => found(
                        PartitionKey::EnqueuedMs,
                        if inclusive {
                            unix_ms
                        } else {
                            unix_ms.saturating_add(1)
                        },
                    ),
                }
            })
            .await
    }

    /// The properties of `partition`.
    ///
    /// # Errors
    /// [`StoreError::UnknownPartition`] for a partition outside `0..partition_count()`;
    /// [`StoreError`] when the log cannot be read.
    pub async fn partition_info(&self, partition: u32) -> Result<PartitionInfo, StoreError> {
        self.check_partition(partition)?;
        let c = self
            .inner
            .store
            .call(move |tx| events::partition_counters(tx, partition))
            .await?;
        Ok(PartitionInfo {
            partition,
            begin_sequence_number: c.begin_seq,
            last_enqueued_sequence_number: c.next_seq - 1,
            last_enqueued_offset: c.last_offset,
            last_enqueued_time_ms: c.last_enqueued_ms,
            is_empty: c.begin_seq >= c.next_seq,
        })
    }

    fn check_partition(&self, partition: u32) -> Result<(), StoreError> {
        if partition < self.inner.partitions {
            Ok(())
        } else {
            Err(StoreError::UnknownPartition {
                partition,
                count: self.inner.partitions,
            })
        }
    }
}

#[cfg(test)]
mod tests;
