//! SQLite persistence: one database thread owning the connection, group commit, migrations.
//!
//! Every read and write goes through [`Store::call`]: the closure runs on the database thread
//! inside a transaction. The thread takes the first queued job, then drains every other job
//! already queued, runs them all in ONE transaction (each inside its own savepoint so a failing
//! job rolls back alone) and commits once; only then are the callers answered. With
//! `journal_mode=WAL` and `synchronous=FULL` a caller that got its answer knows its write is on
//! disk (issue 3 point 6: PUBACK only after the append is durable), and many concurrent appends
//! share one fsync (group commit).
//!
//! In-memory mode ([`Store::open_in_memory`]) uses the same code path over a private
//! `:memory:` database, for fast tests.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, Transaction};
use tokio::sync::oneshot;

pub mod c2d;
pub mod enrollments;
pub mod events;
pub mod registry;
pub mod twins;

/// A boxed job for the database thread; it returns the callback that answers its caller once
/// the batch's COMMIT outcome is known.
type Job = Box<dyn FnOnce(&Transaction<'_>) -> Reply + Send>;

/// Answers one caller with the commit outcome of its batch (database thread only).
type Reply = Box<dyn FnOnce(&Result<(), String>)>;

/// Errors from the persistence layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database thread has stopped (the emulator is shutting down).
    #[error("the database thread has stopped")]
    Closed,
    /// Opening the database or its directory failed.
    #[error("cannot open the database")]
    Open(#[source] std::io::Error),
    /// SQLite reported an error.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The group-commit transaction holding this write failed to commit.
    #[error("the transaction could not be committed")]
    CommitFailed,
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(&'static str),
}

/// A cheap-to-clone handle to the database thread.
#[derive(Clone, Debug)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (creating if needed) the database file `path` in WAL mode with `synchronous=FULL`
    /// and runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::Open)?;
        }
        let conn = Connection::open(path)?;
        // WAL + FULL: a committed transaction survives kill -9 and power loss (STACK.md §5).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::start(conn)
    }

    /// Opens a private in-memory database (nothing survives the process).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when the migrations fail.
    ///
    /// # Example
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = iothub_emulator::store::Store::open_in_memory().unwrap();
    /// let n: i64 = store
    ///     .call(|tx| Ok(tx.query_row("SELECT 20 + 22", [], |r| r.get(0))?))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(n, 42);
    /// # });
    /// ```
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::start(Connection::open_in_memory()?)
    }

    fn start(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Room for the savepoint pair, the ingest INSERT and the registry/twin/C2D statements.
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("iothub-db".into())
            .spawn(move || run(conn, &rx))
            .map_err(StoreError::Open)?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the database thread inside the current group-commit transaction and returns
    /// its result once that transaction has COMMITTED (so writes made by `f` are durable).
    ///
    /// If `f` returns an error, only `f`'s own changes are rolled back.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`StoreError::Closed`] when the database thread is gone, or the
    /// commit error.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(f, tx)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Blocking variant of [`Store::call`] for code outside the async runtime (the CLI when the
    /// emulator is not running). Must not be called from inside a tokio runtime thread.
    ///
    /// # Errors
    /// As [`Store::call`].
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(f, tx)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// [`Store::call`] for a job that writes with at most ONE statement (the telemetry
    /// INSERT): it runs without its own savepoint, because SQLite already undoes a failed
    /// statement's changes, so a failure still rolls back that job alone. Errors that abort
    /// the whole transaction (disk full, I/O) fail the COMMIT, and every job of the batch then
    /// gets [`StoreError::CommitFailed`], exactly as with a savepoint. Saves two statements per
    /// telemetry message on the single database thread.
    ///
    /// # Errors
    /// As [`Store::call`].
    pub async fn call_single_statement<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit_with(f, tx, false)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn submit<T, F>(
        &self,
        f: F,
        reply: oneshot::Sender<Result<T, StoreError>>,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_with(f, reply, true)
    }

    fn submit_with<T, F>(
        &self,
        f: F,
        reply: oneshot::Sender<Result<T, StoreError>>,
        savepoint: bool,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        // The reply is parked in the transaction until the COMMIT succeeded (group commit).
        let job: Job = Box::new(move |tx: &Transaction<'_>| -> Reply {
            let result = if savepoint {
                run_in_savepoint(tx, f)
            } else {
                f(tx)
            };
            Box::new(move |commit: &Result<(), String>| {
                let out = match commit {
                    Ok(()) => result,
                    Err(_) => Err(StoreError::CommitFailed),
                };
                // The caller may have gone away (connection closed); nothing to do then.
                let _ = reply.send(out);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)
    }
}

fn run_in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: every job (every telemetry message) opens and releases a savepoint,
    // and parsing these two each time cost about as much as the INSERT itself.
    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(tx) {
        Ok(v) => {
            tx.prepare_cached("RELEASE job")?.execute([])?;
            Ok(v)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

/// The database thread: block for one job, drain the queue, one transaction, one commit.
fn run(mut conn: Connection, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut replies = Vec::with_capacity(batch.len());
        let commit = match conn.transaction() {
            Ok(tx) => {
                for job in batch {
                    replies.push(job(&tx));
                }
                tx.commit().map_err(|e| e.to_string())
            }
            Err(e) => {
                // No transaction: the jobs are dropped unrun and their callers see `Closed`.
                Err(e.to_string())
            }
        };
        if let Err(e) = &commit {
            tracing::error!(error = %e, "database commit failed");
        }
        for reply in replies {
            reply(&commit);
        }
    }
    // All handles dropped: make sure the WAL is checkpointed into the main file.
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
///
/// Append new steps at the end; never edit a released step.
const MIGRATIONS: &[fn(&Transaction<'_>) -> rusqlite::Result<()>] = &[
    |tx| tx.execute_batch(registry::SCHEMA),
    |tx| tx.execute_batch(events::SCHEMA),
    |tx| tx.execute_batch(twins::SCHEMA),
    |tx| tx.execute_batch(c2d::SCHEMA),
    |tx| tx.execute_batch(enrollments::SCHEMA),
];

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tx = conn.transaction()?;
    for (i, step) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(done).unwrap_or(0))
    {
        step(&tx)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failing_job_rolls_back_only_itself() {
        let store = Store::open_in_memory().unwrap();
        store
            .call(|tx| Ok(tx.execute_batch("CREATE TABLE t (x INTEGER)")?))
            .await
            .unwrap();
        let ok = store.call(|tx| Ok(tx.execute("INSERT INTO t VALUES (1)", [])?));
        let bad = store.call(|tx| {
            tx.execute("INSERT INTO t VALUES (2)", [])?;
            Err::<(), _>(StoreError::Corrupt("boom"))
        });
        let (ok, bad) = tokio::join!(ok, bad);
        assert_eq!(ok.unwrap(), 1);
        assert!(bad.is_err());
        let rows: Vec<i64> = store
            .call(|tx| {
                let mut st = tx.prepare("SELECT x FROM t")?;
                let v = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(v)
            })
            .await
            .unwrap();
        assert_eq!(rows, vec![1]);
    }

    #[tokio::test]
    async fn failing_single_statement_job_rolls_back_only_itself() {
        let store = Store::open_in_memory().unwrap();
        store
            .call(|tx| Ok(tx.execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")?))
            .await
            .unwrap();
        let ok = store.call_single_statement(|tx| Ok(tx.execute("INSERT INTO t VALUES (1)", [])?));
        // A multi-row INSERT failing on its second row: SQLite undoes the first row too.
        let bad = store
            .call_single_statement(|tx| Ok(tx.execute("INSERT INTO t VALUES (2), (NULL)", [])?));
        let later =
            store.call_single_statement(|tx| Ok(tx.execute("INSERT INTO t VALUES (3)", [])?));
        let (ok, bad, later) = tokio::join!(ok, bad, later);
        assert_eq!(ok.unwrap(), 1);
        assert!(bad.is_err());
        assert_eq!(later.unwrap(), 1);
        let rows: Vec<i64> = store
            .call(|tx| {
                let mut st = tx.prepare("SELECT x FROM t ORDER BY x")?;
                let v = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(v)
            })
            .await
            .unwrap();
        assert_eq!(rows, vec![1, 3]);
    }

    #[test]
    fn reopening_a_file_keeps_committed_rows_and_skips_done_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .call_blocking(|tx| {
                    Ok(tx.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7)")?)
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let x: i64 = store
            .call_blocking(|tx| Ok(tx.query_row("SELECT x FROM t", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(x, 7);
        let mode: String = store
            .call_blocking(|tx| Ok(tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
