//! What a connection holds for its peer: frames the socket has not yet
//! taken, as a queue of buffers.
//!
//! Two ways in. A notice or a room's relayed line is copied onto the last
//! buffer, or a new one once the last holds a chunk ([`COPY_CHUNK`]): a
//! buffer goes only once written out whole, so a queue that never runs dry
//! must not keep growing the one the socket is taking. A batch of the
//! user's lines (a piped flood comes in batches of half a megabyte) is
//! taken whole, without a copy: the batch's buffer joins
//! the queue, and its owner gets an emptied one back to fill next. Copying
//! the batches of a flood kept every byte twice, once in the console's
//! outbox and once here, and put a client's peak memory 4 MiB above the
//! build before the event loop.
//!
//! A buffer written out is let go, but one: kept to lend the next batch's
//! owner (a steady flood then allocates nothing), or, on a connection that
//! never took a batch (a room member), kept only if it is small.
//!
//! With a version 2 peer, a buffer written out that holds messages is kept
//! instead, until the peer acknowledges them all ([`Outgoing::acknowledge`]):
//! what was sent and not yet taken is known, without a copy of anything
//! (the first of it is what a failure shows; resending it is what resume
//! will need). At most [`KEEP_LIMIT`] bytes are kept: past that the oldest
//! are let go, and known by their numbers only.

use std::collections::VecDeque;
use std::mem;

use crate::wire::frame::HEADER_LEN;
use crate::wire::session::{self, Header};

/// Written bytes kept for acknowledgement at most, per connection.
pub const KEEP_LIMIT: usize = 8 << 20;

/// Buffers of a connection larger than this are let go once empty, so an
/// idle member that once had a burst holds nothing.
pub const KEEP_CAPACITY: usize = 4 * 1024;

/// Copies go onto the last buffer while it holds at most this (a room's
/// turn), and into a buffer of their own past it; a buffer grows by
/// doubling up to this, and beyond it only to what it must hold. So the
/// written part of a buffer still being written, kept until it is written
/// whole, is at most about this much, and a buffer's capacity at most
/// about twice what it holds (or this).
pub const COPY_CHUNK: usize = 64 * 1024;

#[derive(Default)]
pub struct Outgoing {
    /// Oldest first; the first from `start` on. With each, how many of its
    /// frames are numbered messages (its last data frames with a payload:
    /// numbering starts at our `HELLO`, and goes on from there).
    buffers: VecDeque<(Vec<u8>, u64)>,
    start: usize,
    /// Bytes from `start` on, in all the buffers.
    len: usize,
    /// Emptied buffers: the next copy goes into one, or one is lent to
    /// the next batch's owner.
    spares: Vec<Vec<u8>>,
    /// A batch has come in: its buffers are worth keeping.
    lends: bool,
    /// Written buffers kept until their messages are acknowledged, if the
    /// peer acknowledges.
    kept: Option<Kept>,
}

struct Kept {
    /// Written out, oldest first, each with its count of messages.
    buffers: VecDeque<(Vec<u8>, u64)>,
    bytes: usize,
    /// The number of the first message in `buffers` (of `Outgoing`'s
    /// buffers, while this is empty).
    first: u64,
    /// Bytes kept at most: past it the oldest go, known by number only.
    limit: usize,
}

impl Kept {
    fn from(first: u64) -> Self {
        Self {
            buffers: VecDeque::new(),
            bytes: 0,
            first,
            limit: KEEP_LIMIT,
        }
    }
}

impl Outgoing {
    /// Bytes not yet taken.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes written and kept until acknowledged.
    pub fn kept(&self) -> usize {
        self.kept.as_ref().map_or(0, |kept| kept.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` in after what is held; `numbered` of its frames are
    /// messages of the session.
    pub fn push_copy(&mut self, bytes: &[u8], numbered: u64) {
        if bytes.is_empty() {
            return;
        }
        match self.buffers.back_mut() {
            // Onto the last buffer only while it stays within a chunk (or
            // its capacity): a buffer is let go only once written out
            // whole, so one that kept taking copies while the socket took
            // its front never went. A room member whose queue never ran
            // dry in a flood held everything relayed to it since it last
            // did (113.6 MiB for 50 members, against a bound of about 20).
            Some((last, count)) if last.len() + bytes.len() <= COPY_CHUNK.max(last.capacity()) => {
                append(last, bytes);
                *count += numbered;
            }
            _ => {
                let mut buffer = self.spares.pop().unwrap_or_default();
                append(&mut buffer, bytes);
                self.buffers.push_back((buffer, numbered));
            }
        }
        self.len += bytes.len();
    }

    /// What the buffers take in memory (their capacities, the spares' and
    /// the kept ones' too).
    #[cfg(test)]
    fn footprint(&self) -> usize {
        let kept = self.kept.iter().flat_map(|kept| kept.buffers.iter());
        self.buffers
            .iter()
            .chain(kept)
            .map(|(b, _)| b.capacity())
            .sum::<usize>()
            + self.spares.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Takes `batch`'s buffer in after what is held, leaving `batch` an
    /// empty buffer (one written out before, if there is one); `numbered`
    /// of its frames are messages of the session.
    pub fn push_batch(&mut self, batch: &mut Vec<u8>, numbered: u64) {
        if batch.is_empty() {
            return;
        }
        self.lends = true;
        self.len += batch.len();
        let spare = self.spares.pop().unwrap_or_default();
        self.buffers
            .push_back((mem::replace(batch, spare), numbered));
    }

    /// Takes in `frames`, a batch another thread wrote to the socket (its
    /// first `written` bytes) while this held nothing unwritten but what
    /// was queued after (a heartbeat, an acknowledgement): `numbered` of
    /// its frames are the session's next messages. Kept as if written
    /// here; the rest of it goes before anything queued.
    pub fn take_written(&mut self, frames: Vec<u8>, numbered: u64, written: usize) {
        self.lends = true;
        if written >= frames.len() {
            self.keep_written(frames, numbered);
            return;
        }
        self.len += frames.len() - written;
        match self.start {
            0 => {
                self.buffers.push_front((frames, numbered));
                self.start = written;
            }
            // The socket took part of what was queued here: never while
            // another thread may write (the loop holds the socket until
            // what it took is written); after it, rather than inside it.
            _ => {
                debug_assert!(
                    false,
                    "another thread wrote while a buffer was half written"
                );
                let mut rest = frames;
                rest.drain(..written);
                self.buffers.insert(1, (rest, 0));
            }
        }
    }

    /// An emptied buffer, to lend where batches are filled.
    pub fn spare(&mut self) -> Option<Vec<u8>> {
        self.spares.pop()
    }

    /// From now on, buffers written out are kept until their messages are
    /// acknowledged; the first message queued from now on is number 1.
    pub fn keep_until_acknowledged(&mut self) {
        self.kept.get_or_insert_with(|| Kept::from(1));
    }

    /// Keeps at most `limit` bytes written from now on (at first
    /// [`KEEP_LIMIT`]).
    pub fn keep_at_most(&mut self, limit: usize) {
        if let Some(kept) = &mut self.kept {
            kept.limit = limit;
        }
    }

    /// The peer has taken our first `count` messages: the buffers that
    /// hold nothing after them are let go.
    pub fn acknowledge(&mut self, count: u64) {
        let Some(kept) = &mut self.kept else {
            return;
        };
        while let Some((buffer, messages)) = kept.buffers.front() {
            if kept.first + messages > count + 1 {
                break;
            }
            kept.first += messages;
            kept.bytes -= buffer.len();
            let (buffer, _) = kept.buffers.pop_front().expect("a buffer");
            recycle(&mut self.spares, self.lends, buffer);
        }
    }

    /// The payload of message `number`, if it is still held (queued, or
    /// written and kept).
    pub fn message(&self, number: u64) -> Option<&[u8]> {
        let kept = self.kept.as_ref()?;
        let mut first = kept.first;
        if number < first {
            return None;
        }
        let held = kept.buffers.iter().chain(self.buffers.iter());
        for (buffer, messages) in held {
            if number < first + messages {
                let data: Vec<&[u8]> = data_payloads(buffer).collect();
                let skip = data.len() as u64 - messages + (number - first);
                return data.get(skip as usize).copied();
            }
            first += messages;
        }
        None
    }

    /// Our messages from number `first` on, written or not, as frames to
    /// send again on a new connection, and how many; `None` if the oldest
    /// of them was let go (see [`KEEP_LIMIT`]) or nothing is kept.
    pub fn messages_from(&self, first: u64) -> Option<(Vec<u8>, u64)> {
        let kept = self.kept.as_ref()?;
        if first < kept.first {
            return None;
        }
        let mut frames = Vec::new();
        let mut count = 0;
        let mut number = kept.first;
        for (buffer, messages) in kept.buffers.iter().chain(self.buffers.iter()) {
            let data: Vec<&[u8]> = data_payloads(buffer).collect();
            let numbered = &data[data.len() - *messages as usize..];
            for payload in numbered {
                if number >= first {
                    frames.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                    frames.extend_from_slice(payload);
                    count += 1;
                }
                number += 1;
            }
        }
        Some((frames, count))
    }

    /// Keeps what is written from now on until acknowledged, the first
    /// message queued from now on being number `first` (a resumed session
    /// goes on with its numbers).
    pub fn keep_from(&mut self, first: u64) {
        let limit = self.kept.as_ref().map_or(KEEP_LIMIT, |kept| kept.limit);
        self.kept = Some(Kept {
            limit,
            ..Kept::from(first)
        });
    }

    /// Lets go of what is not acknowledged and is held only for that.
    pub fn forget(&mut self) {
        if let Some(kept) = self.kept.take() {
            for (buffer, _) in kept.buffers {
                self.recycle(buffer);
            }
        }
    }

    /// Keeps `done`, a buffer written out or acknowledged, to lend or fill
    /// next, if one is wanted and it is worth it.
    fn recycle(&mut self, done: Vec<u8>) {
        recycle(&mut self.spares, self.lends, done);
    }

    /// The next bytes to write, up to `most`: one buffer's (empty when
    /// nothing is held).
    pub fn front(&self, most: usize) -> &[u8] {
        match self.buffers.front() {
            Some((first, _)) => {
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
            .is_some_and(|(first, _)| self.start == first.len())
        {
            self.start = 0;
            let (done, messages) = self.buffers.pop_front().expect("a buffer");
            self.keep_written(done, messages);
        }
    }

    /// `done`, written out whole, is kept until its `messages` are
    /// acknowledged, if any and if we keep; let go otherwise.
    fn keep_written(&mut self, done: Vec<u8>, messages: u64) {
        match &mut self.kept {
            Some(kept) if messages > 0 => {
                kept.bytes += done.len();
                kept.buffers.push_back((done, messages));
                // Bounded: the oldest go, known by number only.
                while kept.bytes > kept.limit && kept.buffers.len() > 1 {
                    let (old, messages) = kept.buffers.pop_front().expect("a buffer");
                    kept.bytes -= old.len();
                    kept.first += messages;
                    recycle(&mut self.spares, self.lends, old);
                }
            }
            _ => self.recycle(done),
        }
    }

    /// Drops everything held, the spare too; what is unacknowledged is
    /// kept (for what a failure says), the queued part with it.
    pub fn clear(&mut self) {
        let kept = self.kept.take().map(|mut kept| {
            kept.buffers.extend(self.buffers.drain(..));
            kept
        });
        *self = Self {
            kept,
            ..Self::default()
        };
    }
}

/// Buffers kept to lend where batches come: with a version 2 peer they
/// come back only once acknowledged, a few at a time, and a batch that
/// finds none allocates (and faults in) half a megabyte anew.
const LEND_SPARES: usize = 3;

/// Appends `bytes` to `buffer`, growing it as [`COPY_CHUNK`] says (not
/// by doubling past it: a flood's buffers would be up to half empty).
fn append(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let needed = buffer.len() + bytes.len();
    if needed > buffer.capacity() {
        let target = (2 * buffer.capacity()).min(COPY_CHUNK).max(needed);
        buffer.reserve_exact(target - buffer.len());
    }
    buffer.extend_from_slice(bytes);
}

/// Keeps `done` among `spares` if it is worth keeping: a batch's buffer
/// where batches come (a few of them), one small one otherwise.
fn recycle(spares: &mut Vec<Vec<u8>>, lends: bool, mut done: Vec<u8>) {
    let keep = match lends {
        true => spares.len() < LEND_SPARES,
        false => spares.is_empty() && done.capacity() <= KEEP_CAPACITY,
    };
    if keep {
        done.clear();
        spares.push(done);
    }
}

/// The payloads of the data frames with a payload in `buffer` (not
/// keepalives, not control frames), in order.
fn data_payloads(buffer: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let header = session::read_header(buffer.get(at..)?)?;
            let (len, data) = match header {
                Header::Data(len) => (len, true),
                Header::Control(len) => (len, false),
            };
            let payload = buffer.get(at + HEADER_LEN..at + HEADER_LEN + len)?;
            at += HEADER_LEN + len;
            if data && len > 0 {
                return Some(payload);
            }
        }
    })
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
        outgoing.push_copy(b"ab", 0);
        let mut batch = b"cde".to_vec();
        outgoing.push_batch(&mut batch, 0);
        assert!(batch.is_empty());
        outgoing.push_copy(b"f", 0);
        outgoing.push_batch(&mut b"gh".to_vec(), 0);
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
        outgoing.push_batch(&mut batch, 0);
        assert_eq!(outgoing.front(usize::MAX).as_ptr(), first, "copied");
        assert_eq!(batch.capacity(), 0, "nothing written out to lend yet");
        drain(&mut outgoing, 256);
        batch.extend_from_slice(&[8; 10]);
        outgoing.push_batch(&mut batch, 0);
        assert_eq!(batch.as_ptr(), first, "the written buffer was not lent");
        assert!(batch.is_empty() && batch.capacity() >= 1000);
    }

    #[test]
    fn copies_alone_keep_a_small_buffer_and_let_a_large_one_go() {
        let mut outgoing = Outgoing::default();
        outgoing.push_copy(&[1; 100], 0);
        drain(&mut outgoing, 64);
        assert!(!outgoing.spares.is_empty(), "a small buffer was let go");
        outgoing.push_copy(&[1; KEEP_CAPACITY * 2], 0);
        drain(&mut outgoing, 4096);
        assert!(outgoing.buffers.is_empty() && outgoing.spares.is_empty());
    }

    #[test]
    fn a_queue_that_never_runs_dry_holds_about_what_it_queues() {
        // A room member in a flood: a turn's copies come in while the
        // socket takes as much, and 300 KiB always wait. 64 MiB go through.
        for step in [1000, 25 * 1024, 70 * 1024, 200 * 1024] {
            let mut outgoing = Outgoing::default();
            outgoing.push_copy(&vec![0; 300 * 1024], 0);
            let mut most = 0;
            for _ in 0..(64 << 20) / step {
                outgoing.push_copy(&vec![1; step], 0);
                let mut left = step;
                while left > 0 {
                    let n = outgoing.front(left).len();
                    outgoing.consume(n);
                    left -= n;
                }
                assert!(outgoing.len() >= 300 * 1024, "it ran dry");
                most = most.max(outgoing.footprint());
            }
            // Before: every byte since the queue last ran dry, 64 MiB.
            let bound = 2 * (outgoing.len() + step) + 2 * COPY_CHUNK;
            assert!(most <= bound, "step {step}: {most} > {bound}");
        }
    }

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            crate::wire::frame::encode_frame(&mut out, p, usize::MAX).unwrap();
        }
        out
    }

    #[test]
    fn written_messages_are_kept_until_acknowledged_and_then_let_go() {
        let mut outgoing = Outgoing::default();
        // Before the session: not numbered, not kept.
        outgoing.push_copy(&frames(&[b"greeting"]), 0);
        drain(&mut outgoing, 100);
        outgoing.keep_until_acknowledged();
        let mut hello = Vec::new();
        session::encode(&mut hello, &session::Control::Ping);
        // A control frame and a keepalive among the messages.
        let mut batch = hello.clone();
        batch.extend_from_slice(&frames(&[b"one", b"", b"two"]));
        outgoing.push_batch(&mut batch, 2);
        outgoing.push_copy(&frames(&[b"three"]), 1);
        drain(&mut outgoing, 3);
        outgoing.push_copy(&frames(&[b"four"]), 1);
        assert_eq!(outgoing.message(1), Some(&b"one"[..]));
        assert_eq!(outgoing.message(2), Some(&b"two"[..]));
        assert_eq!(outgoing.message(3), Some(&b"three"[..]));
        assert_eq!(
            outgoing.message(4),
            Some(&b"four"[..]),
            "queued, not written"
        );
        assert_eq!(outgoing.message(5), None);
        // The first buffer holds 1 to 3: let go once all are taken.
        outgoing.acknowledge(2);
        assert_eq!(outgoing.message(1), Some(&b"one"[..]));
        outgoing.acknowledge(3);
        assert_eq!(outgoing.message(3), None);
        assert_eq!(outgoing.message(4), Some(&b"four"[..]));
        // A failure drops the queue, not what tells what was lost.
        outgoing.clear();
        assert_eq!(outgoing.len(), 0);
        assert_eq!(outgoing.message(4), Some(&b"four"[..]));
        outgoing.forget();
        assert_eq!(outgoing.message(4), None);
    }

    /// Batches another thread wrote: one written whole is kept as if
    /// written here; of one begun, the rest goes before what was queued
    /// meanwhile (a heartbeat), and its messages are numbered in order.
    #[test]
    fn batches_written_beside_are_numbered_kept_and_their_rest_goes_first() {
        let mut out = Outgoing::default();
        out.keep_until_acknowledged();
        out.take_written(frames(&[b"one", b"two"]), 2, 14);
        assert_eq!(out.len(), 0, "written whole");
        let mut ping = Vec::new();
        session::encode(&mut ping, &session::Control::Ping);
        out.push_copy(&ping, 0);
        let begun = frames(&[b"three", b"four"]);
        out.take_written(begun.clone(), 2, 6);
        let mut expected = begun[6..].to_vec();
        expected.extend_from_slice(&ping);
        assert_eq!(drain(&mut out, 4), expected);
        for (n, line) in [&b"one"[..], b"two", b"three", b"four"].iter().enumerate() {
            assert_eq!(out.message(n as u64 + 1), Some(*line));
        }
        assert_eq!(
            out.messages_from(2),
            Some((frames(&[b"two", b"three", b"four"]), 3))
        );
        out.acknowledge(2);
        assert_eq!(out.message(2), None);
        assert_eq!(out.message(3), Some(&b"three"[..]));
        // Nothing written of it: all of it goes, numbered all the same.
        out.take_written(frames(&[b"five"]), 1, 0);
        assert_eq!(drain(&mut out, 100), frames(&[b"five"]));
        assert_eq!(out.message(5), Some(&b"five"[..]));
    }

    #[test]
    fn what_is_kept_is_bounded_and_the_oldest_go_first() {
        let mut outgoing = Outgoing::default();
        outgoing.keep_until_acknowledged();
        let line = vec![b'x'; 1 << 20];
        for _ in 0..12 {
            outgoing.push_batch(&mut frames(&[&line]), 1);
            drain(&mut outgoing, usize::MAX);
        }
        let kept = outgoing.kept.as_ref().unwrap();
        assert!(kept.bytes <= KEEP_LIMIT, "{}", kept.bytes);
        assert_eq!(outgoing.message(1), None, "the oldest let go");
        assert_eq!(outgoing.message(12).map(<[u8]>::len), Some(1 << 20));
    }

    #[test]
    fn messages_from_a_number_on_are_framed_again_written_or_not() {
        let mut out = Outgoing::default();
        out.push_copy(&frames(&[b"before"]), 0);
        out.keep_until_acknowledged();
        out.push_copy(&frames(&[b"one", b"two"]), 2);
        drain(&mut out, 1 << 20);
        out.push_copy(&frames(&[b"three"]), 1);
        assert_eq!(
            out.messages_from(2),
            Some((frames(&[b"two", b"three"]), 2)),
            "kept and queued, in order"
        );
        assert_eq!(out.messages_from(4), Some((Vec::new(), 0)));
        out.acknowledge(1);
        assert_eq!(out.messages_from(2), Some((frames(&[b"two", b"three"]), 2)));
        // A session resumed goes on with its numbers.
        let mut next = Outgoing::default();
        next.keep_from(2);
        let (resent, count) = out.messages_from(2).unwrap();
        next.push_copy(&resent, count);
        drain(&mut next, 1 << 20);
        assert_eq!(next.message(3), Some(&b"three"[..]));
        next.acknowledge(3);
        assert_eq!(next.kept(), 0);
    }
}
