//! One write for many frames: a transport whose writes are handed to a writer task.
//!
//! fe2o3-amqp sends every frame on its own: encode, write, flush. On a connection reading a
//! partition that is one `send` (and, over TLS, one record) per event, and the kernel's
//! per-call cost was the largest single share of the emulator's CPU while a consumer drained
//! the log (BENCHMARKS.md, "Back end over AMQP"). [`Coalesced`] takes the bytes of each write
//! into a buffer and lets a task of its own write them out: while that task is in a `send`,
//! the frames encoded meanwhile gather and leave in the next one. An idle connection's frame
//! still leaves at once (the task is woken by the first byte).
//!
//! A flush returns once the bytes are handed over (the task writes them as soon as the
//! transport takes them); a shutdown waits until everything is written and the transport is
//! shut down, so a CLOSE frame is on the wire before the connection ends. Reads go straight
//! to the transport.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::Notify;

use crate::lock::lock;

/// Bytes held for the writer task before a write waits for it to take them. The task may
/// hold as much again in the write it is doing: a connection holds at most about twice this.
const HIGH_WATER: usize = 64 * 1024;
/// How long the task may still write what was handed over after the connection dropped the
/// transport without shutting it down (a peer that stopped reading must not keep it alive).
const DRAIN_AFTER_DROP: Duration = Duration::from_secs(5);

/// A transport whose writes a writer task sends, many frames at a time (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct Coalesced<IO> {
    read: ReadHalf<IO>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer task: bytes to write, or the end.
    wake_writer: Notify,
    /// Signalled (once, with a stored permit) when the connection dropped the transport.
    dropped: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Handed over, not yet taken by the task.
    pending: Vec<u8>,
    /// Set by a shutdown or by dropping the transport: write what is left, then stop.
    ending: bool,
    /// Set when the connection dropped the transport.
    dropped: bool,
    /// Set once the task has stopped (everything written and shut down, or failed).
    finished: bool,
    /// The transport's write error, reported to every later write.
    failed: Option<io::ErrorKind>,
    /// The connection's task, waiting for room or for the end.
    waiting: Option<Waker>,
}

impl<IO> Coalesced<IO>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    /// Splits `io` and starts its writer task (on the current tokio runtime).
    pub(crate) fn spawn(io: IO) -> Self {
        let (read, write) = tokio::io::split(io);
        let shared = Arc::new(Shared::default());
        tokio::spawn(write_out(write, shared.clone()));
        Self { read, shared }
    }
}

/// The writer task: takes whatever was handed over, writes it in one go, and again.
async fn write_out<IO: AsyncWrite>(mut write: WriteHalf<IO>, shared: Arc<Shared>) {
    let mut out = Vec::new();
    loop {
        let ending = {
            let mut state = lock(&shared.state);
            std::mem::swap(&mut out, &mut state.pending);
            if let Some(w) = state.waiting.take() {
                w.wake();
            }
            state.ending
        };
        if out.is_empty() {
            if ending {
                let _ = bounded(&shared, write.shutdown()).await;
                break;
            }
            shared.wake_writer.notified().await;
            continue;
        }
        let result = bounded(&shared, async {
            write.write_all(&out).await?;
            write.flush().await
        })
        .await;
        out.clear();
        if let Err(e) = result {
            lock(&shared.state).failed = Some(e.kind());
            break;
        }
    }
    let mut state = lock(&shared.state);
    state.finished = true;
    state.pending = Vec::new();
    if let Some(w) = state.waiting.take() {
        w.wake();
    }
}

/// Runs a write; once the connection has dropped the transport, a peer that stops reading
/// gets [`DRAIN_AFTER_DROP`] more, not forever.
async fn bounded(shared: &Shared, write: impl Future<Output = io::Result<()>>) -> io::Result<()> {
    let abandoned = async {
        if !lock(&shared.state).dropped {
            shared.dropped.notified().await;
        }
        tokio::time::sleep(DRAIN_AFTER_DROP).await;
    };
    tokio::select! {
        result = write => result,
        () = abandoned => Err(io::ErrorKind::TimedOut.into()),
    }
}

impl<IO: AsyncRead> AsyncRead for Coalesced<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<IO> AsyncWrite for Coalesced<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.shared.state);
        if let Some(kind) = state.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if state.ending || state.finished {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if state.pending.len() >= HIGH_WATER {
            state.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let first = state.pending.is_empty();
        state.pending.extend_from_slice(buf);
        drop(state);
        if first {
            self.shared.wake_writer.notify_one();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Handed over is as far as a flush goes: the writer task sends without being asked.
        match lock(&self.shared.state).failed {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = lock(&self.shared.state);
        if state.finished {
            return Poll::Ready(match state.failed {
                Some(kind) => Err(kind.into()),
                None => Ok(()),
            });
        }
        state.waiting = Some(cx.waker().clone());
        let first = !state.ending;
        state.ending = true;
        drop(state);
        if first {
            self.shared.wake_writer.notify_one();
        }
        Poll::Pending
    }
}

impl<IO> Drop for Coalesced<IO> {
    fn drop(&mut self) {
        // The task writes what was handed over (for a bounded time) and stops.
        let mut state = lock(&self.shared.state);
        state.ending = true;
        state.dropped = true;
        drop(state);
        self.shared.wake_writer.notify_one();
        self.shared.dropped.notify_one();
    }
}

#[cfg(test)]
mod tests;
