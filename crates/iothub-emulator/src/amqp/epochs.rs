//! Epoch receivers (docs/amqp.md "Receiving events"): who may read a consumer group's
//! partition, as Event Hubs decides it.
//!
//! - A receiver with epoch `e` takes the partition over: every receiver there with a lower
//!   epoch, or none, is detached with `amqp:link:stolen`; receivers with the same epoch share it.
//! - A receiver whose epoch is lower than one already there is refused.
//! - A receiver without an epoch is refused while an epoch receiver holds the partition.
//!
//! Each admitted receiver holds an [`EpochGuard`]: dropping it leaves the partition; its
//! [`EpochGuard::stolen`] resolves when a higher epoch took over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::lock::lock;
use tokio::sync::oneshot;

/// A consumer group's partition: the unit epochs apply to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    /// Consumer group, compared case-insensitively as Event Hubs does (stored lowercase).
    pub consumer_group: String,
    /// Partition index.
    pub partition: u32,
}

impl PartitionKey {
    /// The key for `consumer_group` (any case) and `partition`.
    #[must_use]
    pub fn new(consumer_group: &str, partition: u32) -> Self {
        Self {
            consumer_group: consumer_group.to_ascii_lowercase(),
            partition,
        }
    }
}

/// Why a receiver was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EpochRefusal {
    /// A receiver with a higher epoch holds the partition.
    #[error(
        "a receiver with epoch {held} holds partition {partition} of consumer group `{consumer_group}`; epoch {asked} is lower"
    )]
    LowerEpoch {
        /// The consumer group.
        consumer_group: String,
        /// The partition.
        partition: u32,
        /// The epoch held.
        held: i64,
        /// The epoch asked for.
        asked: i64,
    },
    /// An epoch receiver holds the partition and this receiver has none.
    #[error(
        "a receiver with epoch {held} holds partition {partition} of consumer group `{consumer_group}`; a receiver without an epoch cannot join it"
    )]
    EpochHeld {
        /// The consumer group.
        consumer_group: String,
        /// The partition.
        partition: u32,
        /// The epoch held.
        held: i64,
    },
}

struct Holder {
    id: u64,
    epoch: Option<i64>,
    steal: Option<oneshot::Sender<i64>>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    partitions: HashMap<PartitionKey, Vec<Holder>>,
}

/// The emulator-wide register of partition receivers. Cheap to clone.
///
/// ```
/// use iothub_emulator::amqp::epochs::{Epochs, PartitionKey};
/// let epochs = Epochs::default();
/// let key = PartitionKey::new("$Default", 0);
/// let mut old = epochs.admit(key.clone(), Some(1)).unwrap();
/// let _new = epochs.admit(key.clone(), Some(2)).unwrap();
/// assert_eq!(old.try_stolen(), Some(2));
/// assert!(epochs.admit(key, Some(1)).is_err());
/// ```
#[derive(Clone, Default)]
pub struct Epochs {
    table: Arc<Mutex<Table>>,
}

impl std::fmt::Debug for Epochs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epochs").finish_non_exhaustive()
    }
}

impl Epochs {
    /// Admits a receiver with `epoch` (`None`: a plain receiver) on `key`, stealing the
    /// partition from lower epochs.
    ///
    /// # Errors
    /// [`EpochRefusal`] when a higher epoch (or, for a plain receiver, any epoch) holds it.
    pub fn admit(&self, key: PartitionKey, epoch: Option<i64>) -> Result<EpochGuard, EpochRefusal> {
        let mut table = lock(&self.table);
        let held = table
            .partitions
            .get(&key)
            .and_then(|hs| hs.iter().filter_map(|h| h.epoch).max());
        match (held, epoch) {
            (Some(held), Some(asked)) if asked < held => {
                return Err(EpochRefusal::LowerEpoch {
                    consumer_group: key.consumer_group,
                    partition: key.partition,
                    held,
                    asked,
                });
            }
            (Some(held), None) => {
                return Err(EpochRefusal::EpochHeld {
                    consumer_group: key.consumer_group,
                    partition: key.partition,
                    held,
                });
            }
            _ => {}
        }
        table.next_id += 1;
        let id = table.next_id;
        let holders = table.partitions.entry(key.clone()).or_default();
        if let Some(asked) = epoch {
            for h in holders.iter_mut() {
                if h.epoch.is_none_or(|e| e < asked)
                    && let Some(steal) = h.steal.take()
                {
                    let _ = steal.send(asked);
                }
            }
            holders.retain(|h| h.steal.is_some());
        }
        let (steal, stolen) = oneshot::channel();
        holders.push(Holder {
            id,
            epoch,
            steal: Some(steal),
        });
        Ok(EpochGuard {
            epochs: self.clone(),
            key,
            id,
            stolen,
        })
    }

    fn leave(&self, key: &PartitionKey, id: u64) {
        let mut table = lock(&self.table);
        if let Some(holders) = table.partitions.get_mut(key) {
            holders.retain(|h| h.id != id);
            if holders.is_empty() {
                table.partitions.remove(key);
            }
        }
    }
}

/// An admitted receiver's place on its partition.
pub struct EpochGuard {
    epochs: Epochs,
    key: PartitionKey,
    id: u64,
    stolen: oneshot::Receiver<i64>,
}

impl std::fmt::Debug for EpochGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl EpochGuard {
    /// Resolves with the new epoch when a higher epoch took the partition over; never
    /// resolves otherwise.
    pub async fn stolen(&mut self) -> i64 {
        match (&mut self.stolen).await {
            Ok(epoch) => epoch,
            Err(_) => std::future::pending().await,
        }
    }

    /// [`EpochGuard::stolen`] without waiting.
    pub fn try_stolen(&mut self) -> Option<i64> {
        self.stolen.try_recv().ok()
    }
}

impl Drop for EpochGuard {
    fn drop(&mut self) {
        self.epochs.leave(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PartitionKey {
        PartitionKey::new("$Default", 1)
    }

    #[test]
    fn plain_receivers_share_a_partition() {
        let e = Epochs::default();
        let mut a = e.admit(key(), None).unwrap();
        let mut b = e.admit(key(), None).unwrap();
        assert_eq!((a.try_stolen(), b.try_stolen()), (None, None));
    }

    #[test]
    fn an_epoch_steals_from_plain_and_lower_epochs_and_shares_with_equal() {
        let e = Epochs::default();
        let mut plain = e.admit(key(), None).unwrap();
        let mut one = e.admit(key(), Some(1)).unwrap();
        assert_eq!(plain.try_stolen(), Some(1));
        let mut also_one = e.admit(key(), Some(1)).unwrap();
        assert_eq!((one.try_stolen(), also_one.try_stolen()), (None, None));
        let _five = e.admit(key(), Some(5)).unwrap();
        assert_eq!(
            (one.try_stolen(), also_one.try_stolen()),
            (Some(5), Some(5))
        );
    }

    #[test]
    fn lower_epochs_and_plain_receivers_are_refused_while_an_epoch_holds() {
        let e = Epochs::default();
        let _held = e.admit(key(), Some(3)).unwrap();
        assert!(matches!(
            e.admit(key(), Some(2)),
            Err(EpochRefusal::LowerEpoch {
                held: 3,
                asked: 2,
                ..
            })
        ));
        assert!(matches!(
            e.admit(key(), None),
            Err(EpochRefusal::EpochHeld { held: 3, .. })
        ));
    }

    #[test]
    fn leaving_frees_the_partition_and_groups_are_separate() {
        let e = Epochs::default();
        let held = e.admit(key(), Some(3)).unwrap();
        assert!(e.admit(PartitionKey::new("other", 1), None).is_ok());
        assert!(
            e.admit(PartitionKey::new("$default", 1), None).is_err(),
            "case-insensitive"
        );
        drop(held);
        assert!(e.admit(key(), None).is_ok());
    }
}
