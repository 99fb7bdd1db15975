//! An MQTT stream that holds its listener [`Admission`] until the hub accepts its CONNECT.
//!
//! The first packet a hub writes on an MQTT connection is the CONNACK (`0x20 0x02 flags
//! code`); when its return code is 0 the connection is authenticated and its place among the
//! unauthenticated ones is freed. A refused CONNECT keeps the place until the connection
//! closes. Watching the bytes written keeps the MQTT session code unaware of listener limits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Admission;

/// `S` holding `admission` until an accepting CONNACK has been written.
pub(crate) struct AdmittedUntilConnack<S> {
    inner: S,
    admission: Option<Admission>,
    /// The first four bytes written so far.
    head: [u8; 4],
    seen: usize,
}

impl<S> AdmittedUntilConnack<S> {
    pub(crate) fn new(inner: S, admission: Option<Admission>) -> Self {
        Self {
            inner,
            admission,
            head: [0; 4],
            seen: 0,
        }
    }

    fn observe(&mut self, written: &[u8]) {
        if self.admission.is_none() || self.seen == self.head.len() {
            return;
        }
        for &b in written {
            if let Some(slot) = self.head.get_mut(self.seen) {
                *slot = b;
                self.seen += 1;
            }
        }
        if self.seen == self.head.len() && self.head[0] == 0x20 && self.head[3] == 0 {
            self.admission = None;
        }
    }

    /// Whether the connection still counts as unauthenticated.
    #[cfg(test)]
    fn counts(&self) -> bool {
        self.admission.is_some()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AdmittedUntilConnack<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AdmittedUntilConnack<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.observe(buf.get(..n).unwrap_or_default());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::super::Gate;
    use super::*;

    #[tokio::test]
    async fn an_accepting_connack_frees_the_place_even_when_split() {
        let gate = Gate::new("test", 1);
        let (a, _b) = tokio::io::duplex(64);
        let mut s = AdmittedUntilConnack::new(a, gate.admit());
        assert!(gate.admit().is_none());
        s.write_all(&[0x20, 0x02]).await.unwrap();
        assert!(s.counts());
        s.write_all(&[0x00, 0x00, 0xd0, 0x00]).await.unwrap();
        assert!(!s.counts());
        assert!(gate.admit().is_some());
    }

    #[tokio::test]
    async fn a_refusing_connack_keeps_the_place() {
        let gate = Gate::new("test", 1);
        let (a, _b) = tokio::io::duplex(64);
        let mut s = AdmittedUntilConnack::new(a, gate.admit());
        s.write_all(&[0x20, 0x02, 0x00, 0x05]).await.unwrap();
        assert!(s.counts());
        assert!(gate.admit().is_none());
    }
}
