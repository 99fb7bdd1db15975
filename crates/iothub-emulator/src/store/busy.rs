//! Starting the writer's transaction when another process holds the database's write lock.
//!
//! The writer begins every batch with `BEGIN IMMEDIATE`: it takes the write lock up front, so
//! a job never meets `SQLITE_BUSY` (or `SQLITE_BUSY_SNAPSHOT`, which `busy_timeout` cannot
//! wait out) half-way through a batch. If the lock stays taken beyond the connection's
//! `busy_timeout` (another process writing, e.g. a `sqlite3` shell), the writer keeps
//! retrying with a warning instead of failing the batch's callers (emulator README,
//! "Durability and group commit").

use std::time::Duration;

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

/// Pause between attempts once `busy_timeout` has expired.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long the writer keeps retrying before the batch fails.
pub(super) const MAX_BUSY_WAIT: Duration = Duration::from_secs(120);

/// `BEGIN IMMEDIATE`, retried while the database is busy for up to [`MAX_BUSY_WAIT`]. The
/// first attempt is the only statement when nobody else holds the lock (the writer runs this
/// once per batch, on the ingest path).
///
/// # Errors
/// The last error: not a busy database, or still busy after [`MAX_BUSY_WAIT`].
pub(super) fn begin_immediate(conn: &Connection) -> rusqlite::Result<Transaction<'_>> {
    let started = std::time::Instant::now();
    let mut warned = false;
    loop {
        match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Err(e) if is_busy(&e) && started.elapsed() < MAX_BUSY_WAIT => {
                if !warned {
                    tracing::warn!("the database is locked by another process: waiting");
                    warned = true;
                }
                std::thread::sleep(RETRY_PAUSE);
            }
            other => return other,
        }
    }
}

/// The schema cookie, which DDL changes (it changes no rows); `None` if it cannot be read.
pub(super) fn schema_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA schema_version")
        .and_then(|mut q| q.query_row([], |r| r.get(0)))
        .ok()
}

/// Whether `e` is `SQLITE_BUSY` or `SQLITE_LOCKED` (any extended code).
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}
