//! The per-listener count of connections that have not authenticated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admits at most a fixed number of unauthenticated connections on one listener.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    listener: &'static str,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    /// A gate for `max` connections on the listener called `listener` (for the log).
    pub(crate) fn new(listener: &'static str, max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            refused: Arc::new(AtomicU64::new(0)),
            listener,
        }
    }

    /// A place for a new connection, or `None` when the listener is full (the caller closes
    /// the connection at once). Refusals are logged at the first and every 1000th.
    pub(crate) fn admit(&self) -> Option<Admission> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(Admission { _permit: permit }),
            Err(_) => {
                let n = self.refused.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::warn!(
                        listener = self.listener,
                        refused = n + 1,
                        "too many unauthenticated connections: closing new ones"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_and_again_after_a_release() {
        let gate = Gate::new("test", 2);
        let a = gate.admit().unwrap();
        let _b = gate.admit().unwrap();
        assert!(gate.admit().is_none());
        drop(a);
        assert!(gate.admit().is_some());
    }
}
