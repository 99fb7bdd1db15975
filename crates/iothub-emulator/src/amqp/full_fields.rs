//! Every field of every performative on the wire (docs/amqp.md "Choices").
//!
//! AMQP lets a peer leave out a performative's trailing fields that are null or default
//! (AMQP 1.0 §2.7: a field left out means the same as null), and fe2o3-amqp does. Event Hubs
//! itself always sends every field, and azure-eventhub's own AMQP stack (pyamqp) relies on
//! that: it reads fields by position (`frame[2]` for a DETACH's error, `frame[5]` for a
//! DISPOSITION's `batchable`) and fails on a shorter list. [`FieldPadder`] rewrites the
//! emulator's outgoing frames so each performative's list carries its full field count, the
//! missing trailing ones as explicit nulls; frames that already do pass through unchanged.
//!
//! It works on the outgoing byte stream below fe2o3-amqp ([`FullFields`] wraps the
//! connection's transport), so it sees exactly what goes on the wire. The stream is the
//! emulator's own output, but the padder still never panics on any input: bytes it cannot
//! frame are passed on as they are.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A protocol header (`AMQP` + protocol id + version), sent before SASL and before AMQP.
const HEADER_LEN: usize = 8;
/// The 8-byte frame header: size (4), data offset (1), type (1), channel (2).
const FRAME_HEADER_LEN: usize = 8;
/// A described type's constructor and a small-ulong descriptor: `0x00 0x53 code`.
const DESCRIPTOR: [u8; 2] = [0x00, 0x53];
const NULL: u8 = 0x40;
const LIST0: u8 = 0x45;
const LIST8: u8 = 0xc0;
const LIST32: u8 = 0xd0;
/// Output held back before a write waits for the transport to take some.
const OUT_HIGH_WATER: usize = 256 * 1024;

/// How many fields a performative has (AMQP 1.0 §2.7 and §5.3.3), by frame type and
/// descriptor code; `None` for anything else.
fn full_field_count(frame_type: u8, code: u8) -> Option<usize> {
    match (frame_type, code) {
        (0, 0x10) => Some(10), // open
        (0, 0x11) => Some(8),  // begin
        (0, 0x12) => Some(14), // attach
        (0, 0x13) => Some(11), // flow
        (0, 0x14) => Some(11), // transfer
        (0, 0x15) => Some(6),  // disposition
        (0, 0x16) => Some(3),  // detach
        (0, 0x17) => Some(1),  // end
        (0, 0x18) => Some(1),  // close
        (1, 0x40) => Some(1),  // sasl-mechanisms
        (1, 0x41) => Some(3),  // sasl-init
        (1, 0x42) => Some(1),  // sasl-challenge
        (1, 0x43) => Some(1),  // sasl-response
        (1, 0x44) => Some(2),  // sasl-outcome
        _ => None,
    }
}

/// The sans-IO rewriter: bytes in ([`FieldPadder::push`]), rewritten bytes out
/// ([`FieldPadder::output`], [`FieldPadder::consume`]).
#[derive(Debug, Default)]
pub struct FieldPadder {
    /// Bytes of a frame not yet complete.
    partial: Vec<u8>,
    /// Rewritten bytes not yet taken.
    out: Vec<u8>,
    /// How much of `out` was taken.
    taken: usize,
    /// Set once the stream could not be framed: everything after passes through.
    raw: bool,
}

impl FieldPadder {
    /// Takes the next bytes of the stream; whole frames become output at once.
    ///
    /// ```
    /// use iothub_emulator::amqp::full_fields::FieldPadder;
    /// let mut p = FieldPadder::default();
    /// // CLOSE with no fields (an empty list) becomes CLOSE with its one field, null.
    /// p.push(&[0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x18, 0x45]);
    /// assert_eq!(p.output(), &[0, 0, 0, 15, 2, 0, 0, 0, 0x00, 0x53, 0x18, 0xc0, 2, 1, 0x40]);
    /// ```
    pub fn push(&mut self, bytes: &[u8]) {
        if self.raw {
            self.out.extend_from_slice(bytes);
            return;
        }
        self.partial.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            match next_unit(&self.partial[at..]) {
                Unit::Complete(len) => {
                    let unit = &self.partial[at..at + len];
                    if !pad_frame(unit, &mut self.out) {
                        self.out.extend_from_slice(unit);
                    }
                    at += len;
                }
                Unit::Incomplete => break,
                Unit::Unframeable => {
                    self.raw = true;
                    self.out.extend_from_slice(&self.partial[at..]);
                    at = self.partial.len();
                    break;
                }
            }
        }
        self.partial.drain(..at);
    }

    /// Rewritten bytes not yet taken.
    ///
    /// ```
    /// use iothub_emulator::amqp::full_fields::FieldPadder;
    /// let mut p = FieldPadder::default();
    /// p.push(b"AMQP\x00\x01\x00");
    /// assert!(p.output().is_empty()); // a header is passed on whole
    /// p.push(b"\x00");
    /// assert_eq!(p.output(), b"AMQP\x00\x01\x00\x00");
    /// ```
    #[must_use]
    pub fn output(&self) -> &[u8] {
        &self.out[self.taken..]
    }

    /// Marks `n` bytes of [`FieldPadder::output`] as taken.
    ///
    /// ```
    /// use iothub_emulator::amqp::full_fields::FieldPadder;
    /// let mut p = FieldPadder::default();
    /// p.push(b"AMQP\x00\x01\x00\x00");
    /// p.consume(6);
    /// assert_eq!(p.output(), b"\x00\x00");
    /// ```
    pub fn consume(&mut self, n: usize) {
        self.taken = (self.taken + n).min(self.out.len());
        if self.taken == self.out.len() {
            self.out.clear();
            self.taken = 0;
        }
    }
}

/// What starts a stretch of the stream.
enum Unit {
    /// A protocol header or frame of this many bytes, all present.
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
    /// Not a header nor a frame size.
    Unframeable,
}

fn next_unit(bytes: &[u8]) -> Unit {
    if bytes.len() >= 4 && bytes[..4] == *b"AMQP" {
        return if bytes.len() >= HEADER_LEN {
            Unit::Complete(HEADER_LEN)
        } else {
            Unit::Incomplete
        };
    }
    let Some(size) = bytes.get(..4) else {
        return Unit::Incomplete;
    };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size < FRAME_HEADER_LEN {
        Unit::Unframeable
    } else if bytes.len() >= size {
        Unit::Complete(size)
    } else {
        Unit::Incomplete
    }
}

/// Appends `frame` to `out` with its performative's list padded to the full field count;
/// `false` (nothing written) when the frame needs no change or is not a performative it
/// knows.
fn pad_frame(frame: &[u8], out: &mut Vec<u8>) -> bool {
    let doff = usize::from(frame[4]) * 4;
    let frame_type = frame[5];
    let Some(body) = frame.get(doff..).filter(|_| doff >= FRAME_HEADER_LEN) else {
        return false;
    };
    let Some(rest) = body.strip_prefix(&DESCRIPTOR) else {
        return false;
    };
    let Some((&code, list)) = rest.split_first() else {
        return false;
    };
    let Some(full) = full_field_count(frame_type, code) else {
        return false;
    };
    let Some((count, items, after)) = split_list(list) else {
        return false;
    };
    if count >= full {
        return false;
    }
    let mut padded = Vec::with_capacity(items.len() + full - count + 9);
    let item_bytes = items.len() + (full - count);
    match (u8::try_from(item_bytes + 1), u8::try_from(full)) {
        (Ok(size), Ok(count)) => padded.extend_from_slice(&[LIST8, size, count]),
        _ => {
            let size = u32::try_from(item_bytes + 4).unwrap_or(u32::MAX);
            padded.push(LIST32);
            padded.extend_from_slice(&size.to_be_bytes());
            padded.extend_from_slice(&u32::try_from(full).unwrap_or(u32::MAX).to_be_bytes());
        }
    }
    padded.extend_from_slice(items);
    padded.resize(padded.len() + (full - count), NULL);
    let new_size = doff + DESCRIPTOR.len() + 1 + padded.len() + after.len();
    let Ok(new_size) = u32::try_from(new_size) else {
        return false;
    };
    out.extend_from_slice(&new_size.to_be_bytes());
    out.extend_from_slice(&frame[4..doff]);
    out.extend_from_slice(&DESCRIPTOR);
    out.push(code);
    out.extend_from_slice(&padded);
    out.extend_from_slice(after);
    true
}

/// A list's field count, the encoded fields, and what follows the list (a transfer's
/// payload); `None` when it is not a well-formed list header.
fn split_list(list: &[u8]) -> Option<(usize, &[u8], &[u8])> {
    let (&constructor, rest) = list.split_first()?;
    match constructor {
        LIST0 => Some((0, &[], rest)),
        LIST8 => {
            let (&size, rest) = rest.split_first()?;
            let (&count, rest) = rest.split_first()?;
            let items_len = usize::from(size).checked_sub(1)?;
            (rest.len() >= items_len)
                .then(|| (usize::from(count), &rest[..items_len], &rest[items_len..]))
        }
        LIST32 => {
            let size = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
            let count = u32::from_be_bytes(rest.get(4..8)?.try_into().ok()?);
            let items_len = usize::try_from(size).ok()?.checked_sub(4)?;
            let rest = &rest[8..];
            (rest.len() >= items_len).then(|| {
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                (count, &rest[..items_len], &rest[items_len..])
            })
        }
        _ => None,
    }
}

/// A transport whose written frames go through a [`FieldPadder`]; reads pass through.
#[derive(Debug)]
pub(crate) struct FullFields<IO> {
    inner: IO,
    padder: FieldPadder,
}

impl<IO> FullFields<IO> {
    pub(crate) fn new(inner: IO) -> Self {
        Self {
            inner,
            padder: FieldPadder::default(),
        }
    }
}

impl<IO: AsyncWrite + Unpin> FullFields<IO> {
    /// Writes rewritten output to the transport until it is all taken or the transport
    /// would block.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.padder.output().is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, self.padder.output()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.padder.consume(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FullFields<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FullFields<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // Back-pressure: take no more while the transport has not taken what is held.
        if this.padder.output().len() >= OUT_HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.padder.push(buf);
        // Start sending now; what the transport cannot take yet goes at the next write or
        // flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
