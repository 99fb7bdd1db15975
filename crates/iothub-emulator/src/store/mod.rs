//! SQLite persistence: one database thread owning the connection, group commit, migrations.
//!
//! Every read and write goes through [`Store::call`]: the closure runs on the database thread
//! inside a transaction shared with every other job queued at the time (each inside its own
//! savepoint, so a failing job rolls back alone), and its caller is answered once that
//! transaction is durable: committed and its WAL synced to disk (`commit.rs`). With
//! `journal_mode=WAL` a caller that got its answer knows its write is on disk (so a PUBACK
//! only ever follows a durable append), and many concurrent appends share one
//! sync (group commit).
//!
//! In-memory mode ([`Store::open_in_memory`]) uses the same code path over a private
//! `:memory:` database, for fast tests.

use std::path::Path;

use rusqlite::{Connection, Transaction};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use self::commit::{Job, Message, SyncWal};
pub use self::event_appender::EventAppender;

pub mod blobs;
mod busy;
pub mod c2d;
mod commit;
pub mod consumer_groups;
pub mod enrollments;
pub mod event_appender;
pub mod events;
pub mod file_uploads;
pub mod registry;
pub mod sessions;
pub mod twins;

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
    /// The store was created with another partition count (fixed for the data dir's life).
    #[error(
        "this data dir was created with {stored} partitions (asked for {requested}); \
         start with that count or use a new data dir"
    )]
    PartitionCount {
        /// The count recorded when the data dir was created.
        stored: u32,
        /// The count asked for now.
        requested: u32,
    },
    /// The write was batched with others (one job for the telemetry of many connections,
    /// [`EventAppender`]) and the batch failed with this error.
    #[error("a batch of writes failed")]
    InBatch(#[source] std::sync::Arc<StoreError>),
    /// A partition id outside `0..count`.
    #[error("no partition {partition} (this hub has {count})")]
    UnknownPartition {
        /// The partition asked for.
        partition: u32,
        /// The hub's partition count.
        count: u32,
    },
}

/// A cheap-to-clone handle to the database thread.
#[derive(Clone, Debug)]
pub struct Store {
    jobs: UnboundedSender<Message>,
}

impl Store {
    /// Opens (creating if needed) the database file `path` in WAL mode and runs the
    /// migrations. Every answered write is durable: its WAL frames are synced to disk first.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when the file cannot be opened or migrated.
    ///
    /// # Example
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = iothub_emulator::store::Store::open(&dir.path().join("hub.db")).unwrap();
    /// let mode: String = store
    ///     .call_blocking(|tx| Ok(tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
    ///     .unwrap();
    /// assert_eq!(mode, "wal");
    /// ```
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_sync(path, commit::fdatasync_wal(path))
    }

    /// [`Store::open`] with `sync` making the WAL durable (tests hold or fail it).
    pub(crate) fn open_with_sync(path: &Path, sync: SyncWal) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::Open)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL: COMMIT writes the WAL without syncing it; the sync thread syncs it before any
        // caller is answered (`commit.rs`), so an answered write survives kill -9 and power
        // loss as with FULL. SQLite itself still syncs the WAL and the database file around
        // every checkpoint.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::start(conn, Some(sync))
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
        Self::start(Connection::open_in_memory()?, None)
    }

    fn start(mut conn: Connection, sync: Option<SyncWal>) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Room for the savepoint pair, the ingest INSERT and the registry/twin/C2D statements.
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        let jobs = commit::start(conn, sync)?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the database thread inside the current group-commit transaction and returns
    /// its result once that transaction has committed and is on disk (so writes made by `f`
    /// are durable).
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
        self.queue(f).await
    }

    /// [`Store::call`] whose job is queued right away, in call order, rather than when the
    /// returned future is first polled: a connection hands over part of a burst while it is
    /// still reading the rest, so the database thread works in parallel.
    ///
    /// # Errors
    /// As [`Store::call`].
    ///
    /// # Example
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = iothub_emulator::store::Store::open_in_memory().unwrap();
    /// let create = store.queue(|tx| Ok(tx.execute_batch("CREATE TABLE t (x INTEGER)")?));
    /// // Queued before `create` is awaited, and still after it.
    /// let insert = store.queue(|tx| Ok(tx.execute("INSERT INTO t VALUES (1)", [])?));
    /// create.await.unwrap();
    /// assert_eq!(insert.await.unwrap(), 1);
    /// # });
    /// ```
    pub fn queue<T, F>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let queued = self.submit(f, tx);
        async move {
            queued?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
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

    fn submit<T, F>(
        &self,
        f: F,
        reply: oneshot::Sender<Result<T, StoreError>>,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_then(f, move |out| {
            // The caller may have gone away (connection closed); nothing to do then.
            let _ = reply.send(out);
        })
    }

    /// Queues `f` like [`Store::queue`] and calls `done` with its outcome once the batch is
    /// committed and synced, on the database side. Dropped unrun (the store stopped), `done`
    /// is never called.
    pub(crate) fn submit_then<T, F, D>(&self, f: F, done: D) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
        D: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        // The answer waits until the batch is committed and synced (group commit, `commit.rs`).
        let job: Job = Box::new(move |tx: &Transaction<'_>| -> commit::Reply {
            let result = run_in_savepoint(tx, f);
            Box::new(move |commit: &Result<(), String>| {
                done(match commit {
                    Ok(()) => result,
                    Err(_) => Err(StoreError::CommitFailed),
                });
            })
        });
        self.jobs
            .send(Message::Job(job))
            .map_err(|_| StoreError::Closed)
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

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
///
/// Append new steps at the end; never edit a released step.
const MIGRATIONS: &[fn(&Transaction<'_>) -> rusqlite::Result<()>] = &[
    |tx| tx.execute_batch(registry::SCHEMA),
    |tx| tx.execute_batch(events::SCHEMA),
    |tx| tx.execute_batch(twins::SCHEMA),
    |tx| tx.execute_batch(c2d::SCHEMA),
    |tx| tx.execute_batch(enrollments::SCHEMA),
    |tx| tx.execute_batch(events::SCHEMA_STAMPS),
    |tx| tx.execute_batch(sessions::SCHEMA),
    // Event Hub partitions and consumer groups.
    |tx| {
        tx.execute_batch(events::SCHEMA_PARTITIONS)?;
        tx.execute_batch(consumer_groups::SCHEMA)
    },
    FILE_UPLOADS_STEP,
    // File upload notifications, queued durably (they were in memory before).
    |tx| tx.execute_batch(file_uploads::SCHEMA_NOTIFICATIONS),
];

/// File uploads and their outcomes (docs/file-upload.md), a step of its own.
const FILE_UPLOADS_STEP: fn(&Transaction<'_>) -> rusqlite::Result<()> =
    |tx| tx.execute_batch(file_uploads::SCHEMA);

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
