//! The queue of encoded frames between the side that accepts lines from the
//! user and the thread that writes them to the socket.
//!
//! It is bounded in bytes, not messages, so a flood applies back-pressure to its
//! source while a typing user never waits on a slow peer: the limit is far above
//! anything a person types. Frames are appended in batches and taken whole, so
//! the writer sends one large write per batch under load and a lone typed line
//! the moment it arrives.

use std::collections::VecDeque;
use std::io;
use std::io::Write;
use std::mem;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::conversation::Activity;

/// How many bytes may wait for the socket before pushes block.
pub const OUTBOX_LIMIT: usize = 1 << 20;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    direct: Option<Direct>,
    /// Signalled when frames arrive or the outbox closes.
    filled: Condvar,
    /// Signalled when the writer takes frames or the outbox closes.
    drained: Condvar,
}

/// Batches up to this size (typed lines, small bursts) are written by the
/// pushing thread itself. Larger ones come from a flood and go to the writer
/// thread, so that reading and framing run on one core while sending, which
/// on loopback also carries the receiving side's TCP work, runs on another.
/// Measured on the 64-byte flood: ours/nc 0.91 writing everything directly,
/// 0.99 with this split (medians of six paired runs of eleven rounds).
const DIRECT_LIMIT: usize = 64 * 1024;

/// Emptied buffers kept for reuse, so a steady flow allocates nothing.
const SPARE_BUFFERS: usize = 2;

#[derive(Default)]
struct State {
    /// Batches of frames, oldest first; moved, never copied.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    spare: Vec<Vec<u8>>,
    /// No more frames will be accepted; the writer sends what is queued and stops.
    closed: bool,
    /// Queued frames are discarded and the writer stops at once.
    aborted: bool,
    /// The writer has taken batches and not yet come back for more.
    writer_busy: bool,
}

/// The socket, for sending a small batch from the pushing thread itself when
/// nothing is queued or being written ahead of it. The socket has a short send
/// timeout ([`SEND_PATIENCE`]), so this never blocks the user's side for
/// longer; what the socket does not take by then goes to the writer thread.
/// A typed line thus leaves without a hand-over between threads.
struct Direct {
    stream: TcpStream,
    activity: Arc<Activity>,
}

/// How long one write may wait for room in the socket before the rest of a
/// batch is left to the writer thread. Also the writer's own retry period.
pub const SEND_PATIENCE: Duration = Duration::from_millis(100);

impl Direct {
    /// Sends what the socket takes within about [`SEND_PATIENCE`]; returns how
    /// much that was. Bounded in time even for a peer that reads a trickle,
    /// since the outbox stays locked meanwhile.
    fn send(&self, bytes: &[u8]) -> usize {
        let deadline = Instant::now() + SEND_PATIENCE;
        let mut sent = 0;
        while sent < bytes.len() && Instant::now() < deadline {
            match (&self.stream).write(&bytes[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Full for too long, or failing: the writer takes the rest and
                // meets any error itself.
                Err(_) => break,
            }
        }
        if sent > 0 {
            self.activity.touch();
        }
        sent
    }
}

/// What became of a batch handed to [`Outbox::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The conversation is ending; the batch was not queued.
    Closed,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// An outbox that sends straight to `stream` when it can do so in order,
    /// touching `activity` when it does. `stream` must have a send timeout.
    pub(crate) fn with_direct_sends(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            direct: Some(Direct { stream, activity }),
            ..Self::default()
        }
    }

    /// Queues the frames in `batch`, leaving it empty (its allocation swapped
    /// for a spare one), waiting while the outbox is over its limit.
    pub fn push(&self, batch: &mut Vec<u8>) -> Pushed {
        let mut state = self.lock();
        while state.queued_bytes >= OUTBOX_LIMIT && !state.closed && !state.aborted {
            state = self.drained.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed || state.aborted {
            batch.clear();
            return Pushed::Closed;
        }
        if batch.is_empty() {
            return Pushed::Queued;
        }
        if let Some(direct) = &self.direct
            && batch.len() <= DIRECT_LIMIT
            && state.queue.is_empty()
            && !state.writer_busy
        {
            let sent = direct.send(batch);
            if sent == batch.len() {
                batch.clear();
                return Pushed::Queued;
            }
            batch.drain(..sent);
        }
        state.queued_bytes += batch.len();
        let spare = state.spare.pop().unwrap_or_default();
        state.queue.push_back(mem::replace(batch, spare));
        drop(state);
        self.filled.notify_one();
        Pushed::Queued
    }

    /// No more frames: the writer sends what is queued, then ends its side.
    pub fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_all();
        self.drained.notify_all();
    }

    /// Drops what is queued; the writer stops without sending it.
    pub fn abort(&self) {
        let mut state = self.lock();
        state.aborted = true;
        state.queue.clear();
        state.queued_bytes = 0;
        drop(state);
        self.filled.notify_all();
        self.drained.notify_all();
    }

    /// For the writer: returns the batches it has written (in `batches`) for
    /// reuse, then waits for more and moves them all into `batches`, oldest
    /// first. Returns false when there is nothing more to send: the outbox was
    /// closed and is empty, or was aborted.
    pub fn take(&self, batches: &mut Vec<Vec<u8>>) -> bool {
        let mut state = self.lock();
        state.writer_busy = false;
        for mut batch in batches.drain(..) {
            if state.spare.len() < SPARE_BUFFERS {
                batch.clear();
                state.spare.push(batch);
            }
        }
        while state.queue.is_empty() && !state.closed && !state.aborted {
            state = self.filled.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.aborted || state.queue.is_empty() {
            return false;
        }
        batches.extend(state.queue.drain(..));
        state.queued_bytes = 0;
        state.writer_busy = true;
        drop(state);
        self.drained.notify_all();
        true
    }

    pub fn is_aborted(&self) -> bool {
        self.lock().aborted
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-updated, so a poisoned lock
        // is still usable.
        crate::lock(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn frames_arrive_in_order_and_close_ends_after_draining() {
        let outbox = Arc::new(Outbox::new());
        let writer = {
            let outbox = Arc::clone(&outbox);
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut batches = Vec::new();
                while outbox.take(&mut batches) {
                    for batch in &batches {
                        got.extend_from_slice(batch);
                    }
                }
                got
            })
        };
        let mut expected = Vec::new();
        for i in 0..1000u32 {
            let mut batch = i.to_be_bytes().to_vec();
            expected.extend_from_slice(&batch);
            assert_eq!(outbox.push(&mut batch), Pushed::Queued);
            assert!(batch.is_empty());
        }
        outbox.close();
        assert_eq!(writer.join().unwrap(), expected);
        assert_eq!(outbox.push(&mut vec![1]), Pushed::Closed);
    }

    #[test]
    fn abort_releases_a_blocked_pusher() {
        let outbox = Arc::new(Outbox::new());
        assert_eq!(outbox.push(&mut vec![0; OUTBOX_LIMIT]), Pushed::Queued);
        let pusher = {
            let outbox = Arc::clone(&outbox);
            thread::spawn(move || outbox.push(&mut vec![0; 10]))
        };
        outbox.abort();
        assert_eq!(pusher.join().unwrap(), Pushed::Closed);
        assert!(!outbox.take(&mut Vec::new()));
    }

    #[test]
    fn written_batches_come_back_as_spares() {
        let outbox = Outbox::new();
        let mut batch = Vec::with_capacity(4096);
        batch.extend_from_slice(b"frames");
        outbox.push(&mut batch);
        let mut batches = Vec::new();
        assert!(outbox.take(&mut batches));
        assert_eq!(batches, [b"frames".to_vec()]);
        outbox.push(&mut b"more".to_vec());
        assert!(outbox.take(&mut batches));
        assert_eq!(batches, [b"more".to_vec()]);
        // The first batch's allocation is handed to the next pusher.
        let mut next = b"x".to_vec();
        outbox.push(&mut next);
        assert!(next.is_empty() && next.capacity() >= 4096);
    }
}
