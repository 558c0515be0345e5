//! The queue of encoded frames between the side that accepts lines from the
//! user and the thread that writes them to the socket.
//!
//! It is bounded in bytes, not messages, so a piped flood applies back-pressure
//! to its source, while lines from the line editor are always taken at once
//! (the user's keys must stay live even when the peer reads nothing). Frames
//! are appended in batches and taken whole, so the writer, the socket's only
//! writer, sends one large write per batch under load and a lone typed line
//! the moment it arrives.
//!
//! An outbox may also be given a way to write at once, without waiting
//! (a non-blocking send): then a batch pushed while the writer is idle and
//! nothing is queued is written by the pushing thread itself, as much as the
//! socket takes, and only the rest is queued. A typed line then goes out
//! without waking the writer (a thread, or an event loop), and a flood's
//! frames are written by the thread that framed them while they are still
//! in its cache. The socket still has one writer at a time: the writer
//! waits while a push writes (an event loop does not wait: it is woken when
//! the push is done), and a push writes only while the writer has nothing
//! in hand.
//!
//! A version 2 session's messages are numbered and kept until the peer
//! acknowledges them, which the loop does: then a push that writes its
//! batch at once hands the batch itself to the loop, with what it wrote of
//! it ([`Outbox::keep_what_is_written`], [`Written`]), so that the thread
//! that framed the bytes writes them while they are in its cache, and the
//! loop only counts and keeps them (a piped flood cost half again as much
//! CPU when the loop wrote every batch of a session, another thread woken
//! for each, three threads busy on two cores).

use crate::wire::frame::{HEADER_LEN, split_frames};
use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How many bytes may wait for the socket before a waiting push blocks.
pub const OUTBOX_LIMIT: usize = 1 << 20;

/// A batch a push wrote at once, or began to, in a session: the loop numbers
/// and keeps its messages, and writes what the socket did not take before
/// anything else.
pub struct Written {
    pub frames: Vec<u8>,
    /// Messages in it: its frames with a payload.
    pub messages: u64,
    /// Bytes of it the socket took.
    pub written: usize,
}

/// Writes what it can of the bytes at once, never waiting, and says how
/// many that was (0 if none, or on any error: the writer, the loop, meets
/// the error itself when it writes the rest); `None` if they cannot be
/// written that way (they are queued for the loop).
pub type WriteNow = Box<dyn Fn(&[u8]) -> Option<usize> + Send + Sync>;

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Lets a push write at once when the writer is idle: through the
    /// connection of the moment (each connection of a resumed session,
    /// and a server's session once it opens, gives its own).
    write_now: Mutex<Option<Arc<WriteNow>>>,
    /// Called when a push starts waiting for room: the peer is holding us up.
    on_backlog: Option<Box<dyn Fn() + Send + Sync>>,
    /// Called when frames are queued for the writer, an event loop.
    on_queued: Option<Box<dyn Fn() + Send + Sync>>,
    /// Signalled when the writer takes frames or the outbox closes.
    drained: Condvar,
    /// The peer takes messages of several lines as one (its `HELLO` said
    /// so); until then each line of one goes as a message of its own.
    takes_line_breaks: AtomicBool,
}

/// Emptied buffers kept for reuse, so a steady flow allocates nothing: as
/// many as can be queued under the limit in batches of one read of piped
/// input (512 KiB, see `input.rs`) and one more, or a flood faults in
/// fresh pages for most batches. Not more: each is a batch's size, and
/// eight of them could hold 5 MiB that nothing needs.
const SPARE_BUFFERS: usize = 3;

#[derive(Default)]
struct State {
    /// Batches of frames, oldest first; moved, never copied.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Every byte ever queued, for the count of what was not delivered.
    accepted: u64,
    /// Every line ever queued, as its pusher counted them.
    lines: u64,
    spare: Vec<Vec<u8>>,
    /// Pushes waiting for room.
    waiting: usize,
    /// The writer holds batches it has taken and not yet written (an
    /// event loop: it holds the socket, see [`Outbox::claim_socket`]).
    sending: bool,
    /// A push is writing its batch itself.
    writing_now: bool,
    /// An event loop found a push writing and waits to be woken when it
    /// is done.
    loop_waits: bool,
    /// No more frames will be accepted; the writer sends what is queued and stops.
    closed: bool,
    /// Queued frames are discarded and the writer stops at once.
    aborted: bool,
    /// The first bytes of the queue are the rest of a frame a push began
    /// to write on the socket itself: they must follow it at once.
    rest_at_front: usize,
    /// A push that writes at once hands what it wrote to the loop (see
    /// [`Written`]).
    keeps: bool,
    /// Batches written at once and not yet taken by the loop.
    written: Vec<Written>,
    /// The loop looks for batches written at once within a moment without
    /// being woken for them (it found some when it last looked).
    loop_polls: bool,
    /// Messages pushed after the outbox closed or was aborted: read from
    /// the user's input, and never sent.
    refused: u64,
    /// The first of them, its payload.
    first_refused: Option<Vec<u8>>,
    /// The input thread holds input it read and has not yet pushed.
    input_in_hand: bool,
    /// No more input is read for this outbox.
    input_stopped: bool,
    /// Lines refused for their length where they were typed.
    too_long: u64,
}

impl State {
    /// Keeps the batches a writer has written (emptied) for reuse, as many
    /// as are worth keeping.
    fn recycle(&mut self, batches: &mut Vec<Vec<u8>>) {
        for mut batch in batches.drain(..) {
            // (A connection that took a batch's buffer may have had none
            // to give back.)
            if self.spare.len() < SPARE_BUFFERS && batch.capacity() > 0 {
                batch.clear();
                self.spare.push(batch);
            }
        }
    }
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

    /// An outbox whose writer is an event loop: `wake` is called whenever
    /// frames are queued, it closes, a push starts waiting for room, or a
    /// push that the loop waited for is done writing; the loop takes the
    /// frames with [`take_now`](Self::take_now).
    pub fn waking(wake: impl Fn() + Send + Sync + 'static) -> Self {
        let wake = std::sync::Arc::new(wake);
        let on_backlog = std::sync::Arc::clone(&wake);
        Self {
            on_queued: Some(Box::new(move || wake())),
            on_backlog: Some(Box::new(move || on_backlog())),
            ..Self::default()
        }
    }

    /// For a writer that never waits: moves what is queued into `batches`
    /// (after returning the batches it holds for reuse); false once there
    /// is nothing more to send (closed and empty, or aborted). While a push
    /// writes at once nothing is taken (what it cannot write goes ahead of
    /// the queue): the writer is woken when it is done.
    pub fn take_now(&self, batches: &mut Vec<Vec<u8>>) -> bool {
        let mut state = self.lock();
        state.recycle(batches);
        if state.aborted {
            return false;
        }
        // Nothing to wait for then: a push that cannot write everything
        // queues the rest and wakes the writer anyway.
        if state.queue.is_empty() {
            // (Batches written at once the loop has yet to take are
            // something to do.)
            return !state.closed || !state.written.is_empty();
        }
        // Numbered after what was written at once before them: the loop
        // takes that first (it was woken for it).
        if state.writing_now || !state.written.is_empty() {
            state.loop_waits = true;
            return true;
        }
        batches.extend(state.queue.drain(..));
        state.queued_bytes = 0;
        state.rest_at_front = 0;
        // Until they are written, a push must not write past them.
        state.sending = true;
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.drained.notify_all();
        }
        true
    }

    /// [`write_at_once`](Self::write_at_once), as it is made.
    #[cfg(test)]
    pub fn writing_at_once(self, write_now: WriteNow) -> Self {
        self.write_at_once(write_now);
        self
    }

    /// Lets a push write its batch itself with `write_now` while the writer
    /// (the loop) holds nothing and nothing is queued, in place of the one
    /// given before: that one's connection is gone or superseded. (Kept
    /// once given, the first held a copy of its socket open after the
    /// connection was closed: a server that parked a stopped client sent
    /// it no reset, and the client, continued, waited out its own
    /// `--dead-after`, 15 s, to notice; a user trial.)
    pub fn write_at_once(&self, write_now: WriteNow) {
        *crate::lock(&self.write_now) = Some(Arc::new(write_now));
    }

    fn writer(&self) -> Option<Arc<WriteNow>> {
        crate::lock(&self.write_now).clone()
    }

    /// For an event loop that writes the socket `write_now` writes: it is
    /// about to write (what it took, or its end of stream). True if it may;
    /// false while a push is writing, and then the loop is woken when the
    /// push is done. From now until [`socket_idle`](Self::socket_idle), a
    /// push queues what it is given.
    pub fn claim_socket(&self) -> bool {
        let mut state = self.lock();
        if state.writing_now {
            state.loop_waits = true;
            return false;
        }
        state.sending = true;
        true
    }

    /// For an event loop: everything it took is written, so a push may
    /// write at once again (if nothing is queued).
    pub fn socket_idle(&self) {
        let mut state = self.lock();
        // Not while a batch a push began to write waits for the loop to
        // take it (written at once since the loop last looked): the rest
        // of it goes first, from the loop.
        state.sending = state.written.iter().any(|w| w.written < w.frames.len());
    }

    /// From now on a push that writes at once hands the loop what it wrote
    /// (a session's: see [`Written`]).
    pub fn keep_what_is_written(&self) {
        self.lock().keeps = true;
    }

    /// For the loop: the batches written at once since the last call, in
    /// order, into `into`; `spares`, emptied buffers, are kept for the
    /// pushes to fill. Taken before the loop reads the peer's
    /// acknowledgements and before it writes: a push writes and hands its
    /// batch over in one hold of the lock, so what the peer can have
    /// acknowledged is here.
    ///
    /// Returns whether there were any: then the loop looks again within a
    /// moment (a timer), and a push that wrote its batch whole does not
    /// wake it, until the loop looks at its time (`polled`) and finds
    /// none: then the next push wakes it. Each wake-up of the loop costs a
    /// switch of threads on a busy core: a flood's batches, a wake each,
    /// cost more CPU than their acknowledgements.
    pub fn take_written(
        &self,
        into: &mut Vec<Written>,
        spares: &mut Vec<Vec<u8>>,
        polled: bool,
    ) -> bool {
        let mut state = self.lock();
        let found = !state.written.is_empty();
        if found || polled {
            state.loop_polls = found;
        }
        into.append(&mut state.written);
        while let Some(spare) = spares.pop() {
            if state.spare.len() >= SPARE_BUFFERS {
                break;
            }
            state.spare.push(spare);
        }
        spares.clear();
        found
    }

    /// For the loop: emptied buffers for the pushes to fill.
    pub fn give_spares(&self, spares: &mut Vec<Vec<u8>>) {
        let mut state = self.lock();
        while let Some(spare) = spares.pop() {
            if state.spare.len() >= SPARE_BUFFERS {
                break;
            }
            state.spare.push(spare);
        }
        spares.clear();
    }

    /// Whether a push may write its batch itself.
    pub fn writes_at_once(&self) -> bool {
        crate::lock(&self.write_now).is_some()
    }

    /// The peer takes messages of several lines as one, from now on.
    pub fn take_line_breaks(&self) {
        self.takes_line_breaks.store(true, Ordering::Relaxed);
    }

    /// Whether a message of several lines goes as one.
    pub fn takes_line_breaks(&self) -> bool {
        self.takes_line_breaks.load(Ordering::Relaxed)
    }

    /// Whether a push is waiting for room now.
    pub fn is_backlogged(&self) -> bool {
        self.lock().waiting > 0
    }

    /// Queues the frames in `batch`, leaving it empty (its allocation swapped
    /// for a spare one); with [`Room::Wait`], waits while the outbox is over
    /// its limit.
    pub fn push(&self, batch: &mut Vec<u8>, room: Room) -> Pushed {
        self.push_lines(batch, room, None)
    }

    /// [`push`](Self::push) of a batch of `lines` messages (frames with a
    /// payload), counted by its pusher: they are counted as queued lines
    /// (see [`lines`](Self::lines)), and the batch is not walked again to
    /// count them (6.5 % of a piped flood's client, by `perf`).
    pub fn push_lines(&self, batch: &mut Vec<u8>, room: Room, lines: Option<u64>) -> Pushed {
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
            let mut messages = split_frames(batch).filter(|frame| frame.len() > HEADER_LEN);
            if state.first_refused.is_none() {
                state.first_refused = messages.next().map(|frame| frame[HEADER_LEN..].to_vec());
                state.refused += u64::from(state.first_refused.is_some());
            }
            state.refused += messages.count() as u64;
            batch.clear();
            return Pushed::Closed;
        }
        if batch.is_empty() {
            return Pushed::Queued;
        }
        state.accepted += batch.len() as u64;
        state.lines += lines.unwrap_or(0);
        if let Some(write_now) = self.writer()
            && state.queue.is_empty()
            && !state.sending
            && !state.writing_now
            && state.keeps
        {
            // Under the lock: the loop takes the batch before it reads an
            // acknowledgement of it (the peer may send one before the write
            // returns).
            let written = write_now(batch).unwrap_or(0);
            let messages = lines.unwrap_or_else(|| {
                split_frames(batch)
                    .filter(|frame| frame.len() > HEADER_LEN)
                    .count() as u64
            });
            // What the socket did not take goes first, from the loop, which
            // holds the socket until it is written.
            let whole = written == batch.len();
            if !whole {
                state.sending = true;
            }
            let spare = state.spare.pop().unwrap_or_default();
            let frames = mem::replace(batch, spare);
            state.written.push(Written {
                frames,
                messages,
                written,
            });
            if !whole || !state.loop_polls || state.loop_waits {
                self.wake_writer(state);
            }
            return Pushed::Queued;
        }
        if let Some(write_now) = self.writer()
            && state.queue.is_empty()
            && !state.sending
            && !state.writing_now
        {
            state.writing_now = true;
            drop(state);
            let written = write_now(batch);
            state = self.lock();
            state.writing_now = false;
            // Not for this socket after all: the loop writes it all.
            let written = written.unwrap_or(0);
            if written == batch.len() || state.aborted {
                batch.clear();
                // The writer waits for this write to end only if it has
                // something to do once it has.
                if !state.queue.is_empty() || state.closed || state.aborted || state.loop_waits {
                    self.wake_writer(state);
                }
                return Pushed::Queued;
            }
            state.rest_at_front = rest_of_frame(batch, written);
            batch.drain(..written);
            // Ahead of whatever was pushed meanwhile.
            state.queued_bytes += batch.len();
            let spare = state.spare.pop().unwrap_or_default();
            state.queue.push_front(mem::replace(batch, spare));
            self.wake_writer(state);
            return Pushed::Queued;
        }
        state.queued_bytes += batch.len();
        let spare = state.spare.pop().unwrap_or_default();
        state.queue.push_back(mem::replace(batch, spare));
        self.wake_writer(state);
        Pushed::Queued
    }

    /// For an event loop taking the socket for good (a session's `HELLO`
    /// goes next): the rest of a frame a push began to write on it, which
    /// must go first; what is queued after it stays, for the loop to take
    /// as it takes lines.
    pub fn take_rest(&self) -> Vec<u8> {
        let mut state = self.lock();
        let rest = std::mem::take(&mut state.rest_at_front);
        if rest == 0 {
            return Vec::new();
        }
        let Some(front) = state.queue.front_mut() else {
            return Vec::new();
        };
        let taken: Vec<u8> = front.drain(..rest.min(front.len())).collect();
        if front.is_empty() {
            state.queue.pop_front();
        }
        state.queued_bytes -= taken.len();
        taken
    }

    /// Wakes the writer, an event loop.
    fn wake_writer(&self, mut state: MutexGuard<'_, State>) {
        state.loop_waits = false;
        drop(state);
        if let Some(wake) = &self.on_queued {
            wake();
        }
    }

    /// No more frames: the writer sends what is queued, then ends its side.
    pub fn close(&self) {
        self.lock().closed = true;
        if let Some(wake) = &self.on_queued {
            wake();
        }
        self.drained.notify_all();
    }

    /// Drops what is queued; the writer stops without sending it.
    pub fn abort(&self) {
        let mut state = self.lock();
        state.aborted = true;
        state.queue.clear();
        state.queued_bytes = 0;
        drop(state);
        self.drained.notify_all();
    }

    /// The input thread is about to read input: `false` if no more is
    /// wanted (see [`stop_input`](Self::stop_input)).
    pub fn begin_input(&self) -> bool {
        let mut state = self.lock();
        state.input_in_hand = !state.input_stopped;
        state.input_in_hand
    }

    /// The input thread pushed all it read (or had it refused).
    pub fn end_input(&self) {
        self.lock().input_in_hand = false;
        self.drained.notify_all();
    }

    /// No more input is read for this outbox: waits (up to `most`) for what
    /// the input thread read to be pushed (or refused, and counted: see
    /// [`refused`](Self::refused)). A line read just as the peer's end came
    /// was dropped, and the client said nothing of it; input not read yet
    /// stays unread.
    pub fn stop_input(&self, most: Duration) {
        let mut state = self.lock();
        state.input_stopped = true;
        let waited = self
            .drained
            .wait_timeout_while(state, most, |state| state.input_in_hand);
        drop(waited.unwrap_or_else(|e| e.into_inner()));
    }

    /// A line the user entered once no more was taken (the line editor's,
    /// after [`stop_input`](Self::stop_input)): counted as refused.
    pub fn refuse_line(&self, payload: &[u8]) {
        let mut state = self.lock();
        state.refused += 1;
        state.first_refused.get_or_insert_with(|| payload.to_vec());
    }

    /// How many messages were read from the user and refused, never sent,
    /// as the conversation had ended (pushed after the outbox closed or was
    /// aborted, or entered after input stopped), and the first one's
    /// payload.
    pub fn refused(&self) -> (u64, Option<Vec<u8>>) {
        let state = self.lock();
        (state.refused, state.first_refused.clone())
    }

    /// A line over the maximum was refused where it was typed (and said).
    pub fn count_too_long(&self, lines: u64) {
        self.lock().too_long += lines;
    }

    /// Lines refused for their length so far.
    pub fn too_long(&self) -> u64 {
        self.lock().too_long
    }

    /// Lines (messages) queued and not yet taken.
    pub fn queued_lines(&self) -> u64 {
        let state = self.lock();
        let frames = state.queue.iter().flat_map(|batch| split_frames(batch));
        let queued = frames.filter(|frame| frame.len() > HEADER_LEN).count() as u64;
        // Written at once and not yet taken by the loop: not delivered either.
        queued + state.written.iter().map(|w| w.messages).sum::<u64>()
    }

    /// Bytes queued and not yet taken.
    pub fn queued(&self) -> usize {
        self.lock().queued_bytes
    }

    /// Every byte ever queued.
    pub fn accepted(&self) -> u64 {
        self.lock().accepted
    }

    /// Every line queued so far (as counted by [`push_lines`](Self::push_lines)).
    pub fn lines(&self) -> u64 {
        self.lock().lines
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-updated, so a poisoned lock
        // is still usable.
        crate::lock(&self.state)
    }
}

/// How many bytes after the first `written` of `batch` (whole frames,
/// from a frame's start) finish the frame they fall in: 0 if `written`
/// ends on a frame's end.
fn rest_of_frame(batch: &[u8], written: usize) -> usize {
    let mut end = 0;
    while end < written {
        let Some(header) = batch.get(end..end + HEADER_LEN) else {
            return batch.len() - written;
        };
        let len = u32::from_be_bytes(header.try_into().expect("four bytes")) as usize;
        end += HEADER_LEN + len;
    }
    end.min(batch.len()) - written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

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
        assert!(!outbox.take_now(&mut Vec::new()));
    }

    /// Input read as the conversation ended is counted, never dropped
    /// unsaid: the end waits for what the input thread holds, and no input
    /// is read after it.
    #[test]
    fn lines_pushed_after_the_end_are_counted_once_the_input_thread_is_done() {
        let outbox = Arc::new(Outbox::new());
        assert!(outbox.begin_input());
        outbox.close();
        let stopper = {
            let outbox = Arc::clone(&outbox);
            thread::spawn(move || {
                outbox.stop_input(Duration::from_secs(60));
                outbox.refused()
            })
        };
        while !outbox.lock().input_stopped {
            thread::yield_now();
        }
        assert!(!stopper.is_finished(), "it waits for the input in hand");
        let mut batch = Vec::new();
        for payload in [&b"late"[..], b"", b"later"] {
            crate::wire::frame::encode_frame(&mut batch, payload, 100).unwrap();
        }
        assert_eq!(outbox.push(&mut batch, Room::Wait), Pushed::Closed);
        outbox.end_input();
        let (refused, first) = stopper.join().unwrap();
        assert_eq!((refused, first.as_deref()), (2, Some(&b"late"[..])));
        assert!(!outbox.begin_input(), "no input is read once stopped");
        outbox.refuse_line(b"entered after");
        assert_eq!(outbox.refused(), (3, Some(b"late".to_vec())));
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

    /// A socket that takes what a test allows, and checks that it never
    /// has two writers at once.
    #[derive(Default)]
    struct Socket {
        bytes: Mutex<Vec<u8>>,
        busy: std::sync::atomic::AtomicBool,
    }

    impl Socket {
        fn write(&self, bytes: &[u8]) {
            use std::sync::atomic::Ordering;
            assert!(!self.busy.swap(true, Ordering::SeqCst), "two writers");
            thread::yield_now();
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    #[test]
    fn frames_arrive_in_order_and_close_ends_after_draining() {
        let outbox = Outbox::new();
        let mut expected = Vec::new();
        let (mut got, mut batches) = (Vec::new(), Vec::new());
        for i in 0..1000u32 {
            let mut batch = i.to_be_bytes().to_vec();
            expected.extend_from_slice(&batch);
            assert_eq!(outbox.push(&mut batch, Room::Wait), Pushed::Queued);
            assert!(batch.is_empty());
            if i % 7 == 0 {
                assert!(outbox.take_now(&mut batches));
                batches
                    .iter()
                    .for_each(|batch| got.extend_from_slice(batch));
            }
        }
        outbox.close();
        assert_eq!(outbox.push(&mut vec![1], Room::Wait), Pushed::Closed);
        while outbox.take_now(&mut batches) {
            batches
                .iter()
                .for_each(|batch| got.extend_from_slice(batch));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn taken_batches_come_back_as_spares() {
        let outbox = Outbox::new();
        let mut batch = Vec::with_capacity(4096);
        batch.extend_from_slice(b"frames");
        outbox.push(&mut batch, Room::Wait);
        let mut batches = Vec::new();
        assert!(outbox.take_now(&mut batches));
        assert_eq!(batches, [b"frames".to_vec()]);
        outbox.push(&mut b"more".to_vec(), Room::Wait);
        assert!(outbox.take_now(&mut batches));
        assert_eq!(batches, [b"more".to_vec()]);
        // The first batch's allocation is handed to the next pusher.
        let mut next = b"x".to_vec();
        outbox.push(&mut next, Room::Wait);
        assert!(next.is_empty() && next.capacity() >= 4096);
    }

    /// An event loop's turn at the socket, as the server's engine takes
    /// it: it takes what is queued into its own buffer, writes that once it
    /// may claim the socket, and lets pushes write again once its buffer is
    /// empty; it sleeps only until it is woken.
    fn run_loop_writer(outbox: &Outbox, woken: &std::sync::mpsc::Receiver<()>, socket: &Socket) {
        let mut held = Vec::new();
        let mut batches = Vec::new();
        loop {
            let more = outbox.take_now(&mut batches);
            batches
                .iter()
                .for_each(|batch| held.extend_from_slice(batch));
            batches.iter_mut().for_each(Vec::clear);
            if !held.is_empty() && outbox.claim_socket() {
                socket.write(&std::mem::take(&mut held));
            }
            if held.is_empty() {
                outbox.socket_idle();
                if !more {
                    return;
                }
            }
            woken
                .recv_timeout(Duration::from_secs(10))
                .expect("a wake-up was lost");
        }
    }

    /// An outbox whose writer is an event loop (woken through the
    /// receiver) and whose pushes write `socket` at once, taking all, some
    /// or nothing of each batch by turns, as `takes` says.
    fn on_a_socket(
        socket: &Arc<Socket>,
        takes: Vec<usize>,
    ) -> (Outbox, std::sync::mpsc::Receiver<()>) {
        let (wake, woken) = std::sync::mpsc::channel();
        let turn = std::sync::atomic::AtomicUsize::new(0);
        let socket = Arc::clone(socket);
        let wake = Mutex::new(wake);
        let outbox = Outbox::waking(move || {
            let _ = crate::lock(&wake).send(());
        })
        .writing_at_once(Box::new(move |bytes| {
            let i = turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let n = takes[i % takes.len()].min(bytes.len());
            socket.write(&bytes[..n]);
            Some(n)
        }));
        (outbox, woken)
    }

    proptest::proptest! {
        /// With an event loop as the writer and pushes writing at once
        /// what the socket takes (all, some or nothing, by turns) while
        /// the loop holds nothing, everything arrives in order, once, from
        /// one writer at a time, and the loop is woken whenever it has
        /// something to do.
        #[test]
        fn a_loop_writer_and_pushes_take_turns(
            batches in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..50), 0..40),
            takes in proptest::collection::vec(0usize..60, 1..10),
        ) {
            let socket = Arc::new(Socket::default());
            let (outbox, woken) = on_a_socket(&socket, takes);
            let outbox = Arc::new(outbox);
            let writer = {
                let (outbox, socket) = (Arc::clone(&outbox), Arc::clone(&socket));
                thread::spawn(move || run_loop_writer(&outbox, &woken, &socket))
            };
            let mut expected = Vec::new();
            for batch in &batches {
                expected.extend_from_slice(batch);
                proptest::prop_assert_eq!(outbox.push(&mut batch.clone(), Room::Wait), Pushed::Queued);
            }
            outbox.close();
            writer.join().unwrap();
            proptest::prop_assert_eq!(&*socket.bytes.lock().unwrap(), &expected);
        }
    }

    /// An event loop keeping a session's messages (see [`Written`]): it
    /// takes what pushes wrote (writing what the socket did not take of
    /// it), then what was queued, and numbers everything in the order it
    /// takes it. Returns what it numbered. It is not woken for batches
    /// written whole while it polls: it looks every few milliseconds.
    fn run_keeping_loop(
        outbox: &Outbox,
        woken: &std::sync::mpsc::Receiver<()>,
        socket: &Socket,
    ) -> (Vec<u8>, u64) {
        let (mut numbered, mut messages) = (Vec::new(), 0);
        let (mut batches, mut written, mut spares) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            outbox.take_written(&mut written, &mut spares, true);
            for w in written.drain(..) {
                numbered.extend_from_slice(&w.frames);
                messages += w.messages;
                if w.written < w.frames.len() {
                    socket.write(&w.frames[w.written..]);
                }
            }
            let more = outbox.take_now(&mut batches);
            for batch in &mut batches {
                numbered.extend_from_slice(batch);
                messages += split_frames(batch).filter(|f| f.len() > HEADER_LEN).count() as u64;
                socket.write(batch);
                batch.clear();
            }
            outbox.socket_idle();
            if !more {
                return (numbered, messages);
            }
            let _ = woken.recv_timeout(Duration::from_millis(2));
        }
    }

    proptest::proptest! {
        /// Pushes that write a session's batches at once (the socket taking
        /// all, some or nothing, by turns) and a loop that numbers them:
        /// everything reaches the socket once, in order, from one writer at
        /// a time, and the loop numbers the messages in the order they
        /// went, every one of them.
        #[test]
        fn pushes_writing_a_sessions_batches_hand_them_to_the_loop_in_order(
            batches in proptest::collection::vec(proptest::collection::vec(0usize..20, 1..6), 0..40),
            takes in proptest::collection::vec(0usize..200, 1..10),
        ) {
            let socket = Arc::new(Socket::default());
            let (outbox, woken) = on_a_socket(&socket, takes);
            outbox.keep_what_is_written();
            let outbox = Arc::new(outbox);
            let writer = {
                let (outbox, socket) = (Arc::clone(&outbox), Arc::clone(&socket));
                thread::spawn(move || run_keeping_loop(&outbox, &woken, &socket))
            };
            let (mut expected, mut lines) = (Vec::new(), 0);
            for (i, lens) in batches.iter().enumerate() {
                let mut batch = Vec::new();
                for (j, &len) in lens.iter().enumerate() {
                    batch.extend_from_slice(&(len as u32).to_be_bytes());
                    batch.extend((0..len).map(|k| (i + j + k) as u8));
                    lines += u64::from(len > 0);
                }
                expected.extend_from_slice(&batch);
                proptest::prop_assert_eq!(outbox.push(&mut batch, Room::Wait), Pushed::Queued);
            }
            outbox.close();
            let (numbered, messages) = writer.join().unwrap();
            proptest::prop_assert_eq!(&*socket.bytes.lock().unwrap(), &expected);
            proptest::prop_assert_eq!(&numbered, &expected);
            proptest::prop_assert_eq!(messages, lines);
        }
    }

    #[test]
    fn a_loop_writer_holding_the_socket_has_pushes_queue() {
        let wrote = Arc::new(Mutex::new(Vec::new()));
        let outbox = {
            let wrote = Arc::clone(&wrote);
            Outbox::waking(|| {}).writing_at_once(Box::new(move |bytes| {
                crate::lock(&wrote).push(bytes.to_vec());
                Some(bytes.len())
            }))
        };
        assert!(outbox.claim_socket());
        outbox.push(&mut b"queued".to_vec(), Room::Wait);
        assert!(crate::lock(&wrote).is_empty(), "the loop holds the socket");
        outbox.socket_idle();
        // Still behind what is queued.
        outbox.push(&mut b"behind".to_vec(), Room::Wait);
        assert!(crate::lock(&wrote).is_empty());
        let mut batches = Vec::new();
        assert!(outbox.take_now(&mut batches));
        assert_eq!(batches, [b"queued".to_vec(), b"behind".to_vec()]);
        // Taken and not yet written: the loop holds the socket again.
        outbox.push(&mut b"next".to_vec(), Room::Wait);
        assert!(crate::lock(&wrote).is_empty());
        assert!(outbox.take_now(&mut batches));
        outbox.socket_idle();
        outbox.push(&mut b"at once".to_vec(), Room::Wait);
        assert_eq!(*crate::lock(&wrote), [b"at once".to_vec()]);
    }

    #[test]
    fn the_rest_of_a_frame_begun_on_the_socket_is_told_apart_from_whole_lines() {
        let mut batch = Vec::new();
        for line in [&b"hello"[..], b"world"] {
            batch.extend_from_slice(&(line.len() as u32).to_be_bytes());
            batch.extend_from_slice(line);
        }
        assert_eq!(rest_of_frame(&batch, 0), 0);
        assert_eq!(rest_of_frame(&batch, 3), 6, "inside the first header");
        assert_eq!(rest_of_frame(&batch, 9), 0, "the first frame whole");
        assert_eq!(rest_of_frame(&batch, 10), 8);
        assert_eq!(rest_of_frame(&batch, 18), 0);
    }
}
