//! One way to take a `std::sync::Mutex` across the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering from poisoning: every state kept behind the crate's mutexes (the
/// hub's maps and clock, the method invoker's calls, the event appender's pending batch, an
/// AMQP transport's write buffer, the AMQP node slots and epoch table) is consistent after
/// each operation, so a panicked holder leaves nothing half-done.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
