//! What a connection holds for its peer: frames the socket has not yet
//! taken, as a queue of buffers.
//!
//! Two ways in. A notice or a room's relayed line is copied onto the last
//! buffer. A batch of the user's lines (a piped flood comes in batches of
//! half a megabyte) is taken whole, without a copy: the batch's buffer joins
//! the queue, and its owner gets an emptied one back to fill next. Copying
//! the batches of a flood kept every byte twice, once in the console's
//! outbox and once here, and put a client's peak memory 4 MiB above the
//! build before the event loop.
//!
//! A buffer written out is let go, but one: kept to lend the next batch's
//! owner (a steady flood then allocates nothing), or, on a connection that
//! never took a batch (a room member), kept only if it is small.

use std::collections::VecDeque;
use std::mem;

/// Buffers of a connection larger than this are let go once empty, so an
/// idle member that once had a burst holds nothing.
pub const KEEP_CAPACITY: usize = 4 * 1024;

#[derive(Default)]
pub struct Outgoing {
    /// Oldest first; the first from `start` on.
    buffers: VecDeque<Vec<u8>>,
    start: usize,
    /// Bytes from `start` on, in all the buffers.
    len: usize,
    /// An emptied buffer: the next copy goes into it, or it is lent to
    /// the next batch's owner.
    spare: Option<Vec<u8>>,
    /// A batch has come in: its buffers are worth keeping.
    lends: bool,
}

impl Outgoing {
    /// Bytes not yet taken.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` in after what is held.
    pub fn push_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.buffers.back_mut() {
            Some(last) => last.extend_from_slice(bytes),
            None => {
                let mut buffer = self.spare.take().unwrap_or_default();
                buffer.extend_from_slice(bytes);
                self.buffers.push_back(buffer);
            }
        }
        self.len += bytes.len();
    }

    /// Takes `batch`'s buffer in after what is held, leaving `batch` an
    /// empty buffer (one written out before, if there is one).
    pub fn push_batch(&mut self, batch: &mut Vec<u8>) {
        if batch.is_empty() {
            return;
        }
        self.lends = true;
        self.len += batch.len();
        let spare = self.spare.take().unwrap_or_default();
        self.buffers.push_back(mem::replace(batch, spare));
    }

    /// The next bytes to write, up to `most`: one buffer's (empty when
    /// nothing is held).
    pub fn front(&self, most: usize) -> &[u8] {
        match self.buffers.front() {
            Some(first) => {
                let rest = &first[self.start..];
                &rest[..rest.len().min(most)]
            }
            None => &[],
        }
    }

    /// The first `n` bytes of [`front`](Self::front) were taken.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        self.len -= n;
        if self
            .buffers
            .front()
            .is_some_and(|first| self.start == first.len())
        {
            self.start = 0;
            let mut done = self.buffers.pop_front().expect("a buffer");
            if self.spare.is_none() && (self.lends || done.capacity() <= KEEP_CAPACITY) {
                done.clear();
                self.spare = Some(done);
            }
        }
    }

    /// Drops everything held, the spare too.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `outgoing` holds, written `step` bytes at a time.
    fn drain(outgoing: &mut Outgoing, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !outgoing.is_empty() {
            let piece = outgoing.front(step).to_vec();
            assert!(!piece.is_empty(), "held bytes but offered none");
            out.extend_from_slice(&piece);
            outgoing.consume(piece.len());
        }
        out
    }

    #[test]
    fn copies_and_batches_go_out_in_the_order_they_came() {
        let mut outgoing = Outgoing::default();
        outgoing.push_copy(b"ab");
        let mut batch = b"cde".to_vec();
        outgoing.push_batch(&mut batch);
        assert!(batch.is_empty());
        outgoing.push_copy(b"f");
        outgoing.push_batch(&mut b"gh".to_vec());
        assert_eq!(outgoing.len(), 8);
        assert_eq!(drain(&mut outgoing, 2), b"abcdefgh");
        assert_eq!(outgoing.len(), 0);
        assert_eq!(outgoing.front(10), b"");
    }

    #[test]
    fn a_batch_is_taken_without_a_copy_and_its_buffer_lent_back_once_written() {
        let mut outgoing = Outgoing::default();
        let mut batch = Vec::with_capacity(1000);
        batch.extend_from_slice(&[7; 600]);
        let first = batch.as_ptr();
        outgoing.push_batch(&mut batch);
        assert_eq!(outgoing.front(usize::MAX).as_ptr(), first, "copied");
        assert_eq!(batch.capacity(), 0, "nothing written out to lend yet");
        drain(&mut outgoing, 256);
        batch.extend_from_slice(&[8; 10]);
        outgoing.push_batch(&mut batch);
        assert_eq!(batch.as_ptr(), first, "the written buffer was not lent");
        assert!(batch.is_empty() && batch.capacity() >= 1000);
    }

    #[test]
    fn copies_alone_keep_a_small_buffer_and_let_a_large_one_go() {
        let mut outgoing = Outgoing::default();
        outgoing.push_copy(&[1; 100]);
        drain(&mut outgoing, 64);
        assert!(outgoing.spare.is_some(), "a small buffer was let go");
        outgoing.push_copy(&[1; KEEP_CAPACITY * 2]);
        drain(&mut outgoing, 4096);
        assert!(outgoing.buffers.is_empty() && outgoing.spare.is_none());
    }
}
