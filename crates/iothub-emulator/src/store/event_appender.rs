//! Appending telemetry from many connections as one database job per group commit.
//!
//! Every connection hands over its messages as soon as it has read them (a PUBACK waits for
//! the durable append). Queued as a job each, the database thread paid, for every
//! connection's handful of rows, a savepoint, a stamp lookup, a partition-counter read and
//! write: with 100 connections that was about as much work as the rows themselves
//! (BENCHMARKS.md, "Run 8"). The appender gathers the rows handed over while the database
//! thread is busy into one job: the first caller of a batch queues the job, later callers
//! only add their rows, and the job takes whatever has gathered when it runs. Each caller is
//! answered with its own rows' positions once the batch is durable; every caller of a batch
//! that failed gets the batch's error.

use std::mem;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::events::{self, Appended, EncodedEvent};
use super::{Store, StoreError};
use crate::lock::lock;

/// What a caller waits on: its rows' positions, or the batch's error.
type Answer = oneshot::Sender<Result<Vec<Appended>, StoreError>>;

/// Rows handed over and not yet taken by a job, with who waits for them.
#[derive(Default)]
struct Pending {
    rows: Vec<EncodedEvent>,
    /// Each caller's row count, in the order of `rows`.
    waiters: Vec<(usize, Answer)>,
}

/// Appends event rows through one job per batch of callers (see the module documentation).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use iothub_emulator::store::{EventAppender, Store};
/// use iothub_emulator::store::events::{EncodedEvent, TelemetryEvent};
/// let store = Store::open_in_memory().unwrap();
/// let appender = EventAppender::new(store);
/// let event = TelemetryEvent {
///     seq: 0, partition: 0, partition_seq: 0, device_id: "d1".into(), module_id: None,
///     enqueued_ms: 0, system_properties: Default::default(),
///     application_properties: Default::default(), body: "{}".into(),
/// };
/// let row = || EncodedEvent::encode(&event).unwrap().in_partition(1);
/// // Handed over together: one job, each caller answered with its own rows.
/// let (a, b) = (appender.append(vec![row(), row()]), appender.append(vec![row()]));
/// let (a, b) = (a.await.unwrap(), b.await.unwrap());
/// assert_eq!(a.iter().map(|x| x.partition_seq).collect::<Vec<_>>(), [0, 1]);
/// assert_eq!((b[0].partition_seq, b[0].seq), (2, a[1].seq + 1));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct EventAppender {
    store: Store,
    pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("rows", &self.rows.len())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl EventAppender {
    /// An appender writing through `store`.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store,
            pending: Arc::default(),
        }
    }

    /// Hands `rows` over now (in call order with every other append) and returns their
    /// positions once they are durable.
    ///
    /// # Errors
    /// [`StoreError::Closed`] when the database thread is gone, [`StoreError::CommitFailed`]
    /// when the batch's commit failed, [`StoreError::InBatch`] with the error that failed
    /// the batch's inserts.
    pub fn append(
        &self,
        rows: Vec<EncodedEvent>,
    ) -> impl Future<Output = Result<Vec<Appended>, StoreError>> + Send + use<> {
        let (answer, answered) = oneshot::channel();
        let first = {
            let mut pending = lock(&self.pending);
            let first = pending.waiters.is_empty();
            pending.waiters.push((rows.len(), answer));
            pending.rows.extend(rows);
            first
        };
        // The first caller of a batch queues the job that will take it; the rest ride along.
        if first {
            self.queue_job();
        }
        async move { answered.await.map_err(|_| StoreError::Closed)? }
    }

    fn queue_job(&self) {
        let job = Job {
            pending: self.pending.clone(),
            taken: false,
        };
        let taken = Arc::new(Mutex::new(Vec::new()));
        let answers = taken.clone();
        let queued = self.store.submit_then(
            move |tx| {
                let mut job = job;
                let Pending { rows, waiters } = mem::take(&mut *lock(&job.pending));
                job.taken = true;
                *lock(&taken) = waiters;
                events::insert_all(tx, &rows)
            },
            move |outcome| answer(mem::take(&mut *lock(&answers)), outcome),
        );
        // Not queued (the store stopped): the job was dropped, and with it the batch's callers
        // were answered `Closed`.
        let _ = queued;
    }
}

/// The job's hold on the pending batch: if the job is dropped unrun (the store stopped), the
/// batch's callers are answered [`StoreError::Closed`] rather than left waiting, and the next
/// caller starts a new batch.
struct Job {
    pending: Arc<Mutex<Pending>>,
    /// Set once the job took the batch.
    taken: bool,
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.taken {
            let waiters = mem::take(&mut *lock(&self.pending)).waiters;
            answer(waiters, Err(StoreError::Closed));
        }
    }
}

/// Answers each caller with its share of `outcome`.
fn answer(waiters: Vec<(usize, Answer)>, outcome: Result<Vec<Appended>, StoreError>) {
    match outcome {
        Ok(appended) => {
            let mut appended = appended.into_iter();
            for (count, answer) in waiters {
                let _ = answer.send(Ok(appended.by_ref().take(count).collect()));
            }
        }
        Err(e) => {
            let shared = Arc::new(e);
            for (_, answer) in waiters {
                let _ = answer.send(Err(match shared.as_ref() {
                    StoreError::Closed => StoreError::Closed,
                    StoreError::CommitFailed => StoreError::CommitFailed,
                    _ => StoreError::InBatch(shared.clone()),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::store::events::TelemetryEvent;

    fn row(device: &str, partition: u32, t: i64) -> EncodedEvent {
        let event = TelemetryEvent {
            seq: 0,
            partition: 0,
            partition_seq: 0,
            device_id: device.into(),
            module_id: None,
            enqueued_ms: t,
            system_properties: Default::default(),
            application_properties: Default::default(),
            body: bytes::Bytes::from_static(b"{}"),
        };
        EncodedEvent::encode(&event)
            .unwrap()
            .in_partition(partition)
    }

    #[tokio::test]
    async fn appends_made_while_the_database_is_busy_share_one_job_and_each_gets_its_rows() {
        let store = Store::open_in_memory().unwrap();
        let appender = EventAppender::new(store.clone());
        // Hold the database thread so that the appends gather.
        let (release, held) = mpsc::channel::<()>();
        let blocker = store.queue(move |_| {
            held.recv().ok();
            Ok(())
        });
        let calls: Vec<_> = (0..10)
            .map(|i| {
                appender.append(
                    (0..=i % 3)
                        .map(|k| row(&format!("d{i}"), (i % 2) as u32, i * 10 + k))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(lock(&appender.pending).waiters.len(), 10, "one batch");
        release.send(()).unwrap();
        blocker.await.unwrap();
        let mut seqs = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            let got = call.await.unwrap();
            assert_eq!(got.len(), i % 3 + 1);
            let times: Vec<i64> = store
                .call({
                    let got = got.clone();
                    move |tx| {
                        got.iter()
                            .map(|a| {
                                Ok(tx.query_row(
                                    "SELECT enqueued_ms FROM events WHERE seq = ?1",
                                    [a.seq],
                                    |r| r.get(0),
                                )?)
                            })
                            .collect()
                    }
                })
                .await
                .unwrap();
            let i = i as i64;
            assert_eq!(times, (0..=i % 3).map(|k| i * 10 + k).collect::<Vec<_>>());
            seqs.extend(got.iter().map(|a| a.seq));
        }
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert!(lock(&appender.pending).waiters.is_empty());
        // The next append starts a batch of its own.
        let next = appender.append(vec![row("d", 0, 1)]).await.unwrap();
        assert_eq!(next[0].seq, seqs.last().unwrap() + 1);
    }

    #[tokio::test]
    async fn every_caller_of_a_failed_batch_gets_its_error_and_the_next_batch_runs() {
        let store = Store::open_in_memory().unwrap();
        let appender = EventAppender::new(store.clone());
        store
            .call(|tx| Ok(tx.execute_batch("ALTER TABLE events RENAME TO gone")?))
            .await
            .unwrap();
        let (a, b) = (
            appender.append(vec![row("a", 0, 1)]),
            appender.append(vec![row("b", 1, 2)]),
        );
        for call in [a, b] {
            match call.await {
                Err(StoreError::InBatch(e)) => {
                    assert!(matches!(*e, StoreError::Sqlite(_)), "{e:?}")
                }
                other => panic!("expected the batch's error, got {other:?}"),
            }
        }
        store
            .call(|tx| Ok(tx.execute_batch("ALTER TABLE gone RENAME TO events")?))
            .await
            .unwrap();
        assert_eq!(
            appender.append(vec![row("a", 0, 3)]).await.unwrap().len(),
            1
        );
    }

    #[tokio::test]
    async fn a_job_dropped_unrun_answers_its_callers_closed_and_frees_the_next_batch() {
        let store = Store::open_in_memory().unwrap();
        let appender = EventAppender::new(store);
        let (answer, answered) = oneshot::channel();
        lock(&appender.pending).waiters.push((1, answer));
        lock(&appender.pending).rows.push(row("a", 0, 1));
        drop(Job {
            pending: appender.pending.clone(),
            taken: false,
        });
        assert!(matches!(answered.await, Ok(Err(StoreError::Closed))));
        assert!(lock(&appender.pending).waiters.is_empty());
        assert!(lock(&appender.pending).rows.is_empty());
    }
}
