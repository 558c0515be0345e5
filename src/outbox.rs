//! The queue of encoded frames between the side that accepts lines from the
//! user and the thread that writes them to the socket.
//!
//! It is bounded in bytes, not messages, so a flood applies back-pressure to its
//! source while a typing user never waits on a slow peer: the limit is far above
//! anything a person types. Frames are appended in batches and taken whole, so
//! the writer sends one large write per batch under load and a lone typed line
//! the moment it arrives.

use std::mem;
use std::sync::{Condvar, Mutex, MutexGuard};

/// How many bytes may wait for the socket before pushes block.
pub const OUTBOX_LIMIT: usize = 1 << 20;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Signalled when frames arrive or the outbox closes.
    filled: Condvar,
    /// Signalled when the writer takes frames or the outbox closes.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// No more frames will be accepted; the writer sends what is pending and stops.
    closed: bool,
    /// Pending frames are discarded and the writer stops at once.
    aborted: bool,
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

    /// Queues the frames in `batch` (leaving it empty, its allocation possibly
    /// swapped for another), waiting while the outbox is over its limit.
    pub fn push(&self, batch: &mut Vec<u8>) -> Pushed {
        let mut state = self.lock();
        while state.pending.len() >= OUTBOX_LIMIT && !state.closed && !state.aborted {
            state = self.drained.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed || state.aborted {
            batch.clear();
            return Pushed::Closed;
        }
        if state.pending.is_empty() {
            mem::swap(&mut state.pending, batch);
        } else {
            state.pending.extend_from_slice(batch);
            batch.clear();
        }
        drop(state);
        self.filled.notify_one();
        Pushed::Queued
    }

    /// No more frames: the writer sends what is pending, then ends its side.
    pub fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_all();
        self.drained.notify_all();
    }

    /// Drops what is pending; the writer stops without sending it.
    pub fn abort(&self) {
        let mut state = self.lock();
        state.aborted = true;
        state.pending = Vec::new();
        drop(state);
        self.filled.notify_all();
        self.drained.notify_all();
    }

    /// For the writer: waits for frames and moves them into `buf` (which must be
    /// empty). Returns false when there is nothing more to send: the outbox was
    /// closed and is empty, or was aborted.
    pub fn take(&self, buf: &mut Vec<u8>) -> bool {
        debug_assert!(buf.is_empty());
        let mut state = self.lock();
        while state.pending.is_empty() && !state.closed && !state.aborted {
            state = self.filled.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.aborted || state.pending.is_empty() {
            return false;
        }
        mem::swap(&mut state.pending, buf);
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
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
                let mut buf = Vec::new();
                while outbox.take(&mut buf) {
                    got.extend_from_slice(&buf);
                    buf.clear();
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
}
