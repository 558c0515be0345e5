//! The queue of encoded frames between the side that accepts lines from the
//! user and the thread that writes them to the socket.
//!
//! It is bounded in bytes, not messages, so a piped flood applies back-pressure
//! to its source, while lines from the line editor are always taken at once
//! (the user's keys must stay live even when the peer reads nothing). Frames
//! are appended in batches and taken whole, so the writer, the socket's only
//! writer, sends one large write per batch under load and a lone typed line
//! the moment it arrives.

use std::collections::VecDeque;
use std::mem;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// How many bytes may wait for the socket before a waiting push blocks.
pub const OUTBOX_LIMIT: usize = 1 << 20;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Called when a push starts waiting for room: the peer is holding us up.
    on_backlog: Option<Box<dyn Fn() + Send + Sync>>,
    /// Signalled when frames arrive or the outbox closes.
    filled: Condvar,
    /// Signalled when the writer takes frames or the outbox closes.
    drained: Condvar,
}

/// Emptied buffers kept for reuse, so a steady flow allocates nothing: as
/// many as can be queued under the limit in batches of one read of piped
/// input (128 KiB), or a flood faults in fresh pages for most batches.
const SPARE_BUFFERS: usize = 8;

#[derive(Default)]
struct State {
    /// Batches of frames, oldest first; moved, never copied.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Every byte ever queued, for the count of what was not delivered.
    accepted: u64,
    spare: Vec<Vec<u8>>,
    /// Pushes waiting for room.
    waiting: usize,
    /// Nothing is handed to the writer before this, unless released: the
    /// frames a reply to the peer's first frame must go before are held.
    held_until: Option<Instant>,
    released: bool,
    /// The writer waits for frames. (Waking a condition variable costs a
    /// system call even when nobody waits: a room pushes to every member
    /// for every read, so only a waiting writer is woken.)
    taker_waiting: bool,
    /// No more frames will be accepted; the writer sends what is queued and stops.
    closed: bool,
    /// Queued frames are discarded and the writer stops at once.
    aborted: bool,
}

/// What became of a batch handed to [`Outbox::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The conversation is ending; the batch was not queued.
    Closed,
}

/// Whether a push may wait for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Wait while the outbox is over its limit: a piped flood is read no
    /// faster than the peer takes it.
    Wait,
    /// Queue at once, over the limit if need be: what a person types or
    /// pastes is bounded by the person, and their keys must stay live.
    Take,
}

impl Outbox {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// An outbox that calls `on_backlog` whenever a push starts waiting for
    /// room.
    pub fn with_backlog_alarm(on_backlog: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            on_backlog: Some(Box::new(on_backlog)),
            ..Self::default()
        }
    }

    /// Whether a push is waiting for room now.
    pub fn is_backlogged(&self) -> bool {
        self.lock().waiting > 0
    }

    /// Queues the frames in `batch`, leaving it empty (its allocation swapped
    /// for a spare one); with [`Room::Wait`], waits while the outbox is over
    /// its limit.
    pub fn push(&self, batch: &mut Vec<u8>, room: Room) -> Pushed {
        let mut state = self.lock();
        let full = |state: &State| {
            room == Room::Wait
                && state.queued_bytes >= OUTBOX_LIMIT
                && !state.closed
                && !state.aborted
        };
        if full(&state) {
            state.waiting += 1;
            if let Some(alarm) = &self.on_backlog {
                alarm();
            }
            while full(&state) {
                state = self.drained.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.waiting -= 1;
        }
        if state.closed || state.aborted {
            batch.clear();
            return Pushed::Closed;
        }
        if batch.is_empty() {
            return Pushed::Queued;
        }
        state.queued_bytes += batch.len();
        state.accepted += batch.len() as u64;
        let spare = state.spare.pop().unwrap_or_default();
        state.queue.push_back(mem::replace(batch, spare));
        let wake = state.taker_waiting;
        drop(state);
        if wake {
            self.filled.notify_one();
        }
        Pushed::Queued
    }

    /// Holds what is pushed from the writer until [`release`](Self::release)
    /// or `until`, whichever comes first.
    /// (Not once released: the two may come in either order.)
    pub fn hold_until(&self, until: Instant) {
        let mut state = self.lock();
        if !state.released {
            state.held_until = Some(until);
        }
    }

    /// Hands what is held to the writer, and what will be pushed.
    pub fn release(&self) {
        let mut state = self.lock();
        state.held_until = None;
        state.released = true;
        let wake = state.taker_waiting;
        drop(state);
        if wake {
            self.filled.notify_one();
        }
    }

    /// Queues the frames in `batch` before everything queued: for a reply
    /// that must go first while the outbox is held. Taken even once the
    /// outbox is closed (the writer has not finished while it holds).
    pub fn push_front(&self, batch: &mut Vec<u8>) {
        let mut state = self.lock();
        if state.aborted || batch.is_empty() {
            batch.clear();
            return;
        }
        state.queued_bytes += batch.len();
        state.accepted += batch.len() as u64;
        state.queue.push_front(mem::take(batch));
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
        for mut batch in batches.drain(..) {
            if state.spare.len() < SPARE_BUFFERS {
                batch.clear();
                state.spare.push(batch);
            }
        }
        loop {
            if state.aborted {
                break;
            }
            if let Some(until) = state.held_until {
                let now = Instant::now();
                if now < until {
                    state.taker_waiting = true;
                    state = self
                        .filled
                        .wait_timeout(state, until - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    state.taker_waiting = false;
                    continue;
                }
                state.held_until = None;
            }
            if !state.queue.is_empty() || state.closed {
                break;
            }
            state.taker_waiting = true;
            state = self.filled.wait(state).unwrap_or_else(|e| e.into_inner());
            state.taker_waiting = false;
        }
        if state.aborted || state.queue.is_empty() {
            return false;
        }
        batches.extend(state.queue.drain(..));
        state.queued_bytes = 0;
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.drained.notify_all();
        }
        true
    }

    pub fn is_aborted(&self) -> bool {
        self.lock().aborted
    }

    /// Every byte ever queued.
    pub fn accepted(&self) -> u64 {
        self.lock().accepted
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
    use std::time::Duration;

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
            assert_eq!(outbox.push(&mut batch, Room::Wait), Pushed::Queued);
            assert!(batch.is_empty());
        }
        outbox.close();
        assert_eq!(writer.join().unwrap(), expected);
        assert_eq!(outbox.push(&mut vec![1], Room::Wait), Pushed::Closed);
    }

    #[test]
    fn abort_releases_a_blocked_pusher() {
        let outbox = Arc::new(Outbox::new());
        assert_eq!(
            outbox.push(&mut vec![0; OUTBOX_LIMIT], Room::Wait),
            Pushed::Queued
        );
        let pusher = {
            let outbox = Arc::clone(&outbox);
            thread::spawn(move || outbox.push(&mut vec![0; 10], Room::Wait))
        };
        thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !pusher.is_finished(),
            "a full outbox makes a waiting push wait"
        );
        assert!(outbox.is_backlogged());
        outbox.abort();
        assert_eq!(pusher.join().unwrap(), Pushed::Closed);
        assert!(!outbox.is_backlogged());
        assert!(!outbox.take(&mut Vec::new()));
    }

    #[test]
    fn a_taking_push_never_waits_and_counts_what_it_accepted() {
        let outbox = Outbox::new();
        assert_eq!(
            outbox.push(&mut vec![0; OUTBOX_LIMIT], Room::Take),
            Pushed::Queued
        );
        assert_eq!(outbox.push(&mut vec![0; 10], Room::Take), Pushed::Queued);
        assert_eq!(outbox.accepted(), OUTBOX_LIMIT as u64 + 10);
    }

    #[test]
    fn written_batches_come_back_as_spares() {
        let outbox = Outbox::new();
        let mut batch = Vec::with_capacity(4096);
        batch.extend_from_slice(b"frames");
        outbox.push(&mut batch, Room::Wait);
        let mut batches = Vec::new();
        assert!(outbox.take(&mut batches));
        assert_eq!(batches, [b"frames".to_vec()]);
        outbox.push(&mut b"more".to_vec(), Room::Wait);
        assert!(outbox.take(&mut batches));
        assert_eq!(batches, [b"more".to_vec()]);
        // The first batch's allocation is handed to the next pusher.
        let mut next = b"x".to_vec();
        outbox.push(&mut next, Room::Wait);
        assert!(next.is_empty() && next.capacity() >= 4096);
    }

    #[test]
    fn held_frames_wait_for_the_release_and_an_answer_goes_first_even_after_close() {
        let outbox = Arc::new(Outbox::new());
        outbox.hold_until(Instant::now() + Duration::from_secs(600));
        outbox.push(&mut b"line".to_vec(), Room::Wait);
        outbox.close();
        let taker = {
            let outbox = Arc::clone(&outbox);
            thread::spawn(move || {
                let mut batches = Vec::new();
                let mut taken = Vec::new();
                while outbox.take(&mut batches) {
                    taken.extend(batches.iter().cloned());
                }
                taken
            })
        };
        thread::sleep(Duration::from_millis(100));
        assert!(!taker.is_finished(), "held");
        outbox.push_front(&mut b"answer".to_vec());
        outbox.release();
        assert_eq!(
            taker.join().unwrap(),
            [b"answer".to_vec(), b"line".to_vec()]
        );
        // Once released, a later hold is too late to hold anything.
        outbox.hold_until(Instant::now() + Duration::from_secs(600));
        assert!(!outbox.take(&mut Vec::new()), "closed and empty, at once");
    }

    #[test]
    fn a_hold_ends_by_itself_at_its_time() {
        let outbox = Outbox::new();
        outbox.hold_until(Instant::now() + Duration::from_millis(50));
        outbox.push(&mut b"line".to_vec(), Room::Wait);
        let mut batches = Vec::new();
        assert!(outbox.take(&mut batches));
        assert_eq!(batches, [b"line".to_vec()]);
    }
}
