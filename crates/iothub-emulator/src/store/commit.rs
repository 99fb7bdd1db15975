//! Group commit with the WAL sync off the writer thread.
//!
//! Two threads share the work of a durable write:
//! - the **writer** (`iothub-db`) owns the SQLite connection. It runs every queued job inside
//!   one transaction and COMMITs. For a database file the connection runs with
//!   `synchronous=NORMAL`: SQLite writes the transaction's WAL frames at COMMIT but does not
//!   sync them (it still syncs the WAL and the database file around every checkpoint, so a WAL
//!   restart never overwrites frames whose pages are not yet on disk);
//! - the **syncer** (`iothub-db-sync`) then makes the committed batch durable with one
//!   `fdatasync` of the WAL file, and only then answers the batch's callers.
//!
//! So a caller is answered exactly when it would be with `synchronous=FULL` (its transaction's
//! WAL frames are on disk), but the writer does not sit in `fsync` meanwhile: while the syncer
//! syncs batch N, the writer keeps batch N+1's transaction open and runs every job that
//! arrives, and commits it as soon as the syncer is free. The batch size adapts to the disk:
//! the slower the sync, the more jobs share it (PUBACK only after the append
//! is durable, group commit so that throughput does not suffer).
//!
//! A failed sync stops the store (fail-stop, as databases do after an `fsync` error: the kernel
//! may have dropped the unsynced pages, so a later successful sync proves nothing): that
//! batch's callers get [`StoreError::CommitFailed`], every later call [`StoreError::Closed`].
//!
//! A batch that wrote nothing (only reads) is answered at COMMIT, as SQLite's FULL mode does
//! not sync a read-only transaction either. An in-memory database has nothing to sync: its
//! callers are answered at COMMIT.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread;

use rusqlite::{Connection, Transaction};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, WeakUnboundedSender};

use super::StoreError;

/// A boxed job for the writer; it returns the callback that answers its caller once the
/// batch's outcome (committed and, for a file, synced) is known.
pub(super) type Job = Box<dyn FnOnce(&Transaction<'_>) -> Reply + Send>;

/// Answers one caller with the outcome of its batch.
pub(super) type Reply = Box<dyn FnOnce(&Result<(), String>) + Send>;

/// Makes everything written to the WAL so far durable (`fdatasync` in production; tests
/// inject their own to hold or fail a sync).
pub(crate) type SyncWal = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// What the writer's queue carries.
pub(super) enum Message {
    /// Run this job in the open (or next) transaction.
    Job(Job),
    /// The syncer finished the previous batch: the next one may be committed.
    Synced,
}

/// A committed batch on its way to the syncer.
struct Committed {
    replies: Vec<Reply>,
    outcome: Result<(), String>,
}

/// Starts the writer (and, with `sync`, the syncer) over `conn`; returns the writer's queue.
///
/// # Errors
/// [`StoreError::Open`] when a thread cannot be spawned.
pub(super) fn start(
    conn: Connection,
    sync: Option<SyncWal>,
) -> Result<UnboundedSender<Message>, StoreError> {
    let (jobs, rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let syncer = match sync {
        // The syncer holds only a weak handle to the queue: when every `Store` is dropped the
        // writer still sees its queue close and stops.
        Some(sync) => Some(Syncer::spawn(sync, jobs.downgrade())?),
        None => None,
    };
    thread::Builder::new()
        .name("iothub-db".into())
        .spawn(move || write_loop(conn, rx, syncer))
        .map_err(StoreError::Open)?;
    Ok(jobs)
}

/// The production [`SyncWal`] for the database at `db`: `fdatasync` of `<db>-wal`.
///
/// The file is opened for every sync rather than kept open, so the sync always reaches the
/// WAL SQLite is writing now. SQLite takes no POSIX locks on the WAL file (its WAL locks live
/// in `-shm`), so closing our descriptor cannot drop one of its locks.
pub(super) fn fdatasync_wal(db: &Path) -> SyncWal {
    let mut wal = OsString::from(db.as_os_str());
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    Box::new(move || std::fs::File::open(&wal)?.sync_data())
}

/// The writer: wait for a job, open a transaction, run jobs until the queue is empty and the
/// syncer is free, commit, hand the batch over; repeat.
fn write_loop(conn: Connection, mut rx: UnboundedReceiver<Message>, syncer: Option<Syncer>) {
    // Whether the syncer holds a batch (the next commit waits for it).
    let mut sync_busy = false;
    // The schema cookie last read, to tell a batch that only ran DDL from one that only read.
    let mut schema = super::busy::schema_version(&conn);
    loop {
        let first = match rx.blocking_recv() {
            Some(Message::Job(job)) => job,
            Some(Message::Synced) => {
                sync_busy = false;
                continue;
            }
            None => break,
        };
        if syncer.as_ref().is_some_and(Syncer::failed) {
            // Fail-stop: the job is dropped unrun (its caller sees `Closed`), and so is the
            // queue, so every later call fails at once.
            return;
        }
        let tx = match super::busy::begin_immediate(&conn) {
            Ok(tx) => tx,
            Err(e) => {
                // No transaction: the job is dropped unrun and its caller sees `Closed`.
                tracing::error!(error = %e, "cannot begin a transaction");
                continue;
            }
        };
        // `BEGIN IMMEDIATE` makes every transaction a write transaction: whether a batch
        // wrote is told by the rows it changed and the schema changes it made.
        let changes = tx.total_changes();
        let mut replies = vec![first(&tx)];
        loop {
            let message = match rx.try_recv() {
                Ok(m) => m,
                // Nothing queued, but the disk is still busy with the previous batch: keep the
                // transaction open for whatever arrives until it is free.
                Err(TryRecvError::Empty) if sync_busy => match rx.blocking_recv() {
                    Some(m) => m,
                    None => break,
                },
                Err(_) => break,
            };
            match message {
                Message::Job(job) => replies.push(job(&tx)),
                Message::Synced => sync_busy = false,
            }
        }
        // A batch that only read wrote no WAL frames: as with SQLite's own FULL mode it needs
        // no sync (and the previous batch's sync is over: commits wait for it). Rows changed
        // tell almost every batch (all of ingest) without a query; only a batch without
        // them reads the schema cookie, against the last one read: a schema change made by
        // another process between batches, or missed in a batch that also changed rows,
        // costs one needless sync, never a missing one.
        let wrote = tx.total_changes() != changes || {
            let now = super::busy::schema_version(&tx);
            std::mem::replace(&mut schema, now) != now
        };
        let outcome = tx.commit().map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "database commit failed");
        }
        match &syncer {
            Some(syncer) if wrote => {
                if syncer.failed() {
                    answer(replies, &Err("an earlier WAL sync failed".into()));
                    return;
                }
                syncer
                    .queue
                    .send(Committed { replies, outcome })
                    .map_or_else(
                        // The syncer is gone only if it panicked: nothing will be durable.
                        |std_mpsc::SendError(batch)| {
                            answer(batch.replies, &Err("the WAL sync thread is gone".into()));
                        },
                        |()| sync_busy = true,
                    );
            }
            _ => answer(replies, &outcome),
        }
    }
    // Every handle is gone: checkpoint the WAL into the main file (synced by SQLite).
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

/// The writer's handle on the syncer thread.
struct Syncer {
    queue: std_mpsc::Sender<Committed>,
    /// Set for good once a sync failed (fail-stop).
    failed: Arc<AtomicBool>,
}

impl Syncer {
    fn spawn(mut sync: SyncWal, writer: WeakUnboundedSender<Message>) -> Result<Self, StoreError> {
        let (queue, rx) = std_mpsc::channel::<Committed>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        thread::Builder::new()
            .name("iothub-db-sync".into())
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    let outcome = batch.outcome.and_then(|()| {
                        if flag.load(Ordering::Acquire) {
                            return Err("an earlier WAL sync failed".to_owned());
                        }
                        sync().map_err(|e| {
                            tracing::error!(error = %e, "cannot sync the WAL to disk: the store stops");
                            flag.store(true, Ordering::Release);
                            format!("WAL sync failed: {e}")
                        })
                    });
                    // Let the writer commit the next batch while this one is answered.
                    if let Some(writer) = writer.upgrade() {
                        let _ = writer.send(Message::Synced);
                    }
                    answer(batch.replies, &outcome);
                }
            })
            .map_err(StoreError::Open)?;
        Ok(Self { queue, failed })
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

fn answer(replies: Vec<Reply>, outcome: &Result<(), String>) {
    for reply in replies {
        reply(outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use futures_util::FutureExt;

    use crate::store::{Store, StoreError};

    /// A WAL sync the test controls: each sync reports that it started, then waits for the
    /// test's go-ahead (`Ok` or an error to fail with).
    fn held_sync() -> (
        super::SyncWal,
        mpsc::Receiver<()>,
        mpsc::Sender<std::io::Result<()>>,
    ) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<std::io::Result<()>>();
        let sync: super::SyncWal = Box::new(move || {
            let _ = started_tx.send(());
            release_rx.recv().unwrap_or(Ok(()))
        });
        (sync, started, release)
    }

    fn store_with(sync: super::SyncWal) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with_sync(&dir.path().join("hub.db"), sync).unwrap();
        (dir, store)
    }

    fn insert(store: &Store, x: i64) -> impl Future<Output = Result<usize, StoreError>> + use<> {
        let store = store.clone();
        async move {
            store
                .call(move |tx| Ok(tx.execute("INSERT INTO t VALUES (?1)", [x])?))
                .await
        }
    }

    /// Creates table `t` (one sync, released at once).
    async fn table(
        store: &Store,
        started: &mpsc::Receiver<()>,
        release: &mpsc::Sender<std::io::Result<()>>,
    ) {
        let create = store.call(|tx| Ok(tx.execute_batch("CREATE TABLE t (x INTEGER)")?));
        tokio::pin!(create);
        assert!((&mut create).now_or_never().is_none());
        started.recv().unwrap();
        release.send(Ok(())).unwrap();
        create.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_only_after_its_wal_sync_returns() {
        let (sync, started, release) = held_sync();
        let (_dir, store) = store_with(sync);
        table(&store, &started, &release).await;

        let write = insert(&store, 1);
        tokio::pin!(write);
        assert!((&mut write).now_or_never().is_none());
        // The batch is committed and its sync is running (held by the test): the caller
        // still has no answer, because only the sync thread answers, after the sync.
        started.recv().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!((&mut write).now_or_never().is_none());
        release.send(Ok(())).unwrap();
        assert_eq!(write.await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_during_a_sync_share_the_next_commit_and_sync() {
        let (sync, started, release) = held_sync();
        let (_dir, store) = store_with(sync);
        table(&store, &started, &release).await;

        let first = tokio::spawn(insert(&store, 0));
        started.recv().unwrap();
        // While the first write's sync is held, ten more arrive: the writer runs them in one
        // open transaction and commits it once the disk is free.
        // Polling a call once queues its job, so all eleven are queued in this order.
        let mut rest: Vec<_> = (1..=10).map(|x| Box::pin(insert(&store, x))).collect();
        for w in &mut rest {
            assert!(w.as_mut().now_or_never().is_none());
        }
        let count = store
            .call(|tx| Ok(tx.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?));
        tokio::pin!(count);
        assert!((&mut count).now_or_never().is_none());
        release.send(Ok(())).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        // One more sync covers all ten writes (and the read).
        started.recv().unwrap();
        release.send(Ok(())).unwrap();
        for w in rest {
            assert_eq!(w.await.unwrap(), 1);
        }
        assert_eq!(count.await.unwrap(), 11);
        assert!(
            started.try_recv().is_err(),
            "the eleven writes needed exactly two syncs"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_only_reads_is_answered_without_a_sync() {
        let (sync, started, release) = held_sync();
        let (_dir, store) = store_with(sync);
        table(&store, &started, &release).await;

        // No release is ever sent for this one: a sync would hold it until the timeout.
        let read = store
            .call(|tx| Ok(tx.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?));
        let n = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a read waited for a sync")
            .unwrap();
        assert_eq!(n, 0);
        assert!(started.try_recv().is_err(), "no sync for a read");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_fails_its_batch_and_stops_the_store() {
        let (sync, started, release) = held_sync();
        let (_dir, store) = store_with(sync);
        table(&store, &started, &release).await;

        let write = tokio::spawn(insert(&store, 1));
        started.recv().unwrap();
        release
            .send(Err(std::io::Error::other("disk gone")))
            .unwrap();
        assert!(matches!(
            write.await.unwrap(),
            Err(StoreError::CommitFailed)
        ));
        // Fail-stop: nothing is acknowledged any more once durability is in doubt.
        let later = insert(&store, 2).await;
        assert!(
            matches!(later, Err(StoreError::CommitFailed | StoreError::Closed)),
            "{later:?}"
        );
        let after = insert(&store, 3).await;
        assert!(matches!(after, Err(StoreError::Closed)), "{after:?}");
    }
}
