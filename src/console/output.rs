//! What the user is shown: the peer's messages, status lines and errors, in
//! the order they happened, through one queue with one consumer (the line
//! editor's), or with plain output two, one for each stream (see below).
//!
//! Nothing that decides (the event loop, a conversation's ending) ever
//! waits on stdout or stderr: it queues, and the consumer (the plain
//! writers here, or the line editor's thread in a terminal) does the
//! writing. So a stdout that nobody reads, a terminal on hold or a closed
//! stderr can delay what is shown but never `q`, Ctrl-C or the next client.
//!
//! One exception, for speed: with the plain writer, the loop, finding
//! nothing queued or being written, writes received messages to stdout
//! itself, as far as stdout takes them without waiting, and queues the rest
//! ([`Output::show_now`]); the writer waits meanwhile, so the order holds
//! and stdout has one writer at a time.
//!
//! Messages are bounded in bytes: while the queue is full the loop reads
//! nothing more from that peer ([`Output::has_room`]; which is TCP flow
//! control towards it) and is woken when there is room. Status lines and
//! errors never wait.
//!
//! Plain output has two consumers: status lines and errors (what goes to
//! stderr) are taken from a queue of their own by a thread of their own,
//! so that a stdout nobody reads, where the messages' writer waits,
//! cannot hold them too (issue 21, item 5: a newcomer's place in line, a
//! peer that stopped responding, Ctrl-C's last words were shown only once
//! stdout drained, or never). The order between the two streams:
//! - a status line is written once every message queued before it has
//!   reached stdout, and a message once every status line queued before it
//!   has reached stderr: while both streams take what they are given, what
//!   is seen (on one terminal, or `2>&1`) is the order things happened;
//! - but a stream that has taken nothing for [`ORDER_PATIENCE`] while it
//!   has something to write is taken as blocked, and the other goes ahead
//!   of it: a stdout nobody reads never holds status lines for longer than
//!   that (nor a blocked stderr messages); what was held follows when the
//!   blocked stream drains. Each stream keeps its own order always.
//!
//! Status lines are bounded too ([`LINES_LIMIT`]): past half of it they
//! wait for no message; past all of it stderr itself takes nothing, and
//! further lines are dropped and counted, the count shown in their place
//! once stderr takes lines again. In the editor (a terminal, where both
//! streams are the same screen) nothing of this applies: one queue, one
//! consumer.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anstyle::Style;

use crate::console::event::{Event, Events};
use crate::console::look::{self, Palette, Shape};
pub use crate::wire::display::Said;

/// How many bytes of messages may wait for the screen before receiving waits.
const QUEUE_LIMIT: usize = 1 << 20;

/// Plain output is handed to the kernel in writes up to this size.
const WRITE_BATCH: usize = 256 * 1024;

/// Messages of at least this many bytes (a whole read's worth, under a
/// flood) are written as they are rather than copied into a batch.
const WRITE_DIRECTLY: usize = 16 * 1024;

/// Stdout is written this much at a time when it is slow, each slice making
/// room in the queue as it is taken: a reader of 2 KB/s still lets the
/// loop read the peer's socket every 8 s, within a peer's stall timeout.
const DRAIN_SLICE: usize = 16 * 1024;

/// With plain output, how long a status line waits for the messages before
/// it while stdout takes nothing (and a message for the status lines
/// before it while stderr takes nothing): longer, and that stream is taken
/// as blocked (a pipe nobody reads) and the other goes ahead of it. Short
/// enough that Ctrl-C's last words and a newcomer's place in line are seen
/// at once; far longer than a stream that is read takes for one write.
const ORDER_PATIENCE: Duration = Duration::from_millis(500);

/// With plain output, how many bytes of status lines and errors may wait
/// for stderr (each counted with [`LINE_COST`]): past half of it they no
/// longer wait for the messages before them; past all of it stderr is not
/// taking them, and more are dropped and counted, not kept (a log nobody
/// reads must not grow memory). Some thousands of lines.
const LINES_LIMIT: usize = 256 * 1024;

/// What an entry of the stderr queue costs besides its text.
const LINE_COST: usize = 64;

/// Writes what the destination takes of the bytes at once, never waiting:
/// how many bytes that was (0 if none, or on an error the consumer's next
/// write meets again), or `None` if it cannot be written that way.
type WriteNow = Box<dyn Fn(&[u8]) -> Option<usize> + Send + Sync>;

/// One thing to show.
#[derive(Debug)]
pub enum Shown {
    /// Messages from one peer, already made safe to show: each line ends in
    /// `\n` and contains no other line end.
    Messages {
        from: Arc<str>,
        text: Vec<u8>,
    },
    Status(String),
    Error(String),
    /// Lines from one named sender (a room member's), already made safe to
    /// show: each line ends in `\n`; `earlier` ones are from before we
    /// joined, and were said at `said_at`, if the room says.
    Named {
        said: Said,
        earlier: bool,
        from: Arc<str>,
        lines: Vec<u8>,
        said_at: Option<std::time::SystemTime>,
    },
}

/// Turns a peer's lines into what is shown, for a peer whose lines carry
/// more than text (a room server's: see `crate::programs::room::view`).
pub trait Interpret: Send {
    /// `text` is lines, each ending in `\n`, received from `from`.
    fn interpret(&mut self, from: &Arc<str>, text: Vec<u8>) -> Vec<Shown>;
}

impl Shown {
    fn weight(&self) -> usize {
        match self {
            Shown::Messages { text, .. } => text.len(),
            Shown::Named { lines, .. } => lines.len(),
            Shown::Status(text) | Shown::Error(text) => text.len(),
        }
    }

    /// Whether plain output writes it to stderr (else to stdout).
    fn for_stderr(&self) -> bool {
        matches!(
            self,
            Shown::Status(_) | Shown::Error(_) | Shown::Named { earlier: true, .. }
        )
    }

    /// Its bytes that go to stdout, in plain output.
    fn stdout_weight(&self) -> u64 {
        match self.for_stderr() {
            true => 0,
            false => self.weight() as u64,
        }
    }
}

/// Something in the queue, and how many entries of the stderr queue were
/// queued before it (plain output: see [`State::apart`]).
#[derive(Debug)]
struct Queued {
    after: u64,
    shown: Shown,
}

/// What the stderr writer is given (plain output).
#[derive(Debug)]
pub(crate) enum ForStderr {
    Shown(Shown),
    /// This many lines were dropped here: stderr was not taking them.
    Dropped(u64),
}

impl ForStderr {
    /// What it counts for against [`LINES_LIMIT`].
    fn cost(&self) -> usize {
        LINE_COST
            + match self {
                ForStderr::Shown(shown) => shown.weight(),
                ForStderr::Dropped(_) => 0,
            }
    }
}

/// An entry of the stderr queue, and how many bytes of messages were
/// queued for stdout before it.
#[derive(Debug)]
struct Line {
    after: u64,
    what: ForStderr,
}

/// How far one of plain output's two streams has got, for the other to
/// keep its place after it.
#[derive(Default)]
struct Progress {
    /// Units ever queued for it (stdout: message bytes; stderr: entries).
    queued: u64,
    /// Units ever written (or dropped).
    done: u64,
    /// When it last wrote something, or had something to write after
    /// having nothing: how long it has been blocked is counted from there.
    moved: Option<Instant>,
}

impl Progress {
    fn add(&mut self, units: u64) {
        if units > 0 && self.idle() {
            self.moved = Some(Instant::now());
        }
        self.queued += units;
    }

    fn wrote(&mut self, units: u64) {
        self.done = self.done.saturating_add(units).min(self.queued);
        self.moved = Some(Instant::now());
    }

    fn idle(&self) -> bool {
        self.done == self.queued
    }

    /// Whether everything queued before `mark` has been written.
    fn past(&self, mark: u64) -> bool {
        self.done >= mark
    }

    /// When it counts as blocked if it writes nothing before, having
    /// something to write for `patience`; `None` if it has nothing.
    fn blocked_at(&self, patience: Duration) -> Option<Instant> {
        match self.idle() {
            true => None,
            false => self.moved.map(|moved| moved + patience),
        }
    }

    fn blocked(&self, patience: Duration) -> bool {
        self.blocked_at(patience)
            .is_some_and(|at| Instant::now() >= at)
    }
}

/// The queue between everything that shows something and the one thread
/// that writes it.
pub struct Output {
    state: Mutex<State>,
    /// Signalled when something is queued (for a plain consumer) or the
    /// queue has room or closes (for waiting producers).
    changed: Condvar,
    /// How an editor-thread consumer is woken; `None` for a plain one.
    waker: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// What reads received lines before they are shown, if anything does.
    interpreter: Mutex<Option<Box<dyn Interpret>>>,
    /// Messages may be written to stdout by the thread that has them, when
    /// nothing is queued or being written and stdout takes them without
    /// waiting (see [`Output::show_now`]): set by the plain consumer.
    write_now: OnceLock<WriteNow>,
    /// Stdout cannot be written that way after all.
    write_now_refused: AtomicBool,
    /// Called when the queue has room again after a producer that never
    /// waits (an event loop) found it full.
    on_room: OnceLock<Box<dyn Fn() + Send + Sync>>,
    events: Events,
    /// The user's name in a room, if in one: a message that names it is
    /// a mention.
    me: Me,
}

/// The user's name in a room, kept by whoever learns it (the client's
/// reading of the room, the room itself for its operator).
pub(crate) type Me = Arc<Mutex<Option<Arc<str>>>>;

/// Emptied message buffers kept for reuse: a steady flow of messages then
/// allocates (and faults in) nothing.
const SPARE_BUFFERS: usize = 4;

#[derive(Default)]
struct State {
    /// Everything to show; with plain output, only what goes to stdout.
    items: VecDeque<Queued>,
    spare: Vec<Vec<u8>>,
    queued: usize,
    /// The consumer has taken items and not finished writing them.
    writing: bool,
    /// Bytes of the items being written already counted off `queued`.
    credited: usize,
    /// A producer is writing its messages to stdout itself.
    writing_now: bool,
    /// A producer that never waits found the queue full and is to be told
    /// when it has room.
    full_seen: bool,
    /// Stdout is gone: messages are dropped from now on.
    closed: bool,
    /// The program is done: the consumer stops once the queue is empty.
    stopped: bool,
    /// Plain output: what goes to stderr has a queue (`lines`) and a
    /// writer of its own, so that a stdout nobody reads cannot hold it.
    apart: bool,
    lines: VecDeque<Line>,
    /// Bytes in `lines` (see [`LINES_LIMIT`]).
    lines_bytes: usize,
    /// The stderr writer has taken lines and not finished writing them.
    lines_writing: bool,
    /// How far each stream has got (plain output), for the order between them.
    stdout: Progress,
    stderr: Progress,
    /// [`ORDER_PATIENCE`] (a test's own, in unit tests).
    patience: Duration,
}

impl State {
    /// Whether a producer that never waits may hand over more: messages
    /// under their bound, and status lines under theirs unless stderr has
    /// stopped taking them (a slow stderr that takes them holds the reader
    /// back, as a slow stdout does; one stuck for the patience has its
    /// lines dropped and counted instead, so that it cannot hold the
    /// conversation).
    fn has_room(&self) -> bool {
        let lines_wait = self.lines_bytes >= LINES_LIMIT && !self.stderr.blocked(self.patience);
        self.closed || (self.queued < QUEUE_LIMIT && !lines_wait)
    }

    /// How many items at the front of the queue may be written now: with
    /// plain output, those after which no stderr line queued earlier waits
    /// (unless stderr is blocked).
    fn ready(&self) -> usize {
        if !self.apart || self.stderr.blocked(self.patience) {
            return self.items.len();
        }
        // Marks never decrease along the queue.
        self.items
            .partition_point(|item| self.stderr.past(item.after))
    }

    /// How many stderr lines at the front may be written now: those after
    /// which no message queued earlier waits, unless stdout is blocked,
    /// gone or done, or too many lines wait.
    fn lines_ready(&self) -> usize {
        let go_ahead = self.closed
            || self.stopped
            || self.lines_bytes >= LINES_LIMIT / 2
            || self.stdout.blocked(self.patience);
        if go_ahead {
            return self.lines.len();
        }
        // Marks never decrease along the queue.
        self.lines
            .partition_point(|line| self.stdout.past(line.after))
    }
}

impl Output {
    /// `events` is told once if stdout goes away.
    pub fn new(events: Events) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                patience: ORDER_PATIENCE,
                ..State::default()
            }),
            changed: Condvar::new(),
            waker: Mutex::new(None),
            interpreter: Mutex::new(None),
            write_now: OnceLock::new(),
            write_now_refused: AtomicBool::new(false),
            on_room: OnceLock::new(),
            events,
            me: Me::default(),
        })
    }

    /// The user's name in a room is now `name`.
    pub fn set_me(&self, name: &str) {
        *crate::lock(&self.me) = Some(Arc::from(name));
    }

    /// Where the user's name in a room is kept, for a reader of the room.
    pub(crate) fn me_cell(&self) -> Me {
        Arc::clone(&self.me)
    }

    /// The user's name in a room, if known.
    pub(crate) fn me(&self) -> Option<Arc<str>> {
        crate::lock(&self.me).clone()
    }

    pub fn status(&self, text: impl Into<String>) {
        self.queue(Shown::Status(text.into()));
    }

    pub fn error(&self, text: impl Into<String>) {
        self.queue(Shown::Error(text.into()));
    }

    /// Shows messages: written to stdout at once by the calling thread if
    /// nothing is queued or being written and stdout takes them without
    /// waiting, as much as it takes; queued for the consumer otherwise, or
    /// whatever was not taken, ahead of what was queued meanwhile. So
    /// received lines reach stdout without waking the consumer thread, and
    /// a stdout that nobody reads still never holds up the caller: a write
    /// that would wait is not made (Linux: `RWF_NOWAIT`, on pipes; not on
    /// terminals, which then always go through the consumer).
    fn show_now(&self, mut state: MutexGuard<'_, State>, from: &Arc<str>, mut text: Vec<u8>) {
        let write_now = match self.write_now.get() {
            Some(write_now) if !self.write_now_refused.load(Ordering::Relaxed) => write_now,
            _ => {
                let from = Arc::clone(from);
                self.push(state, Shown::Messages { from, text });
                return;
            }
        };
        // Nor while a status line waits for stderr: the messages come
        // after it.
        if !state.items.is_empty() || state.writing || state.writing_now || !state.stderr.idle() {
            let from = Arc::clone(from);
            self.push(state, Shown::Messages { from, text });
            return;
        }
        state.writing_now = true;
        // Counted as queued before it is written, so that status lines
        // queued meanwhile wait for it (and for what is left of it).
        state.stdout.add(text.len() as u64);
        let after = state.stderr.queued;
        drop(state);
        let written = write_now(&text);
        let mut state = self.lock();
        state.writing_now = false;
        let written = match written {
            Some(written) => written,
            None => {
                // Not for this stdout: the consumer writes everything.
                self.write_now_refused.store(true, Ordering::Relaxed);
                0
            }
        };
        if written > 0 {
            state.stdout.wrote(written as u64);
        }
        if written < text.len() && !state.closed {
            text.drain(..written);
            state.queued += text.len();
            let from = Arc::clone(from);
            let shown = Shown::Messages { from, text };
            state.items.push_front(Queued { after, shown });
        } else if state.spare.len() < SPARE_BUFFERS {
            text.clear();
            state.spare.push(text);
        }
        // The consumers wait while this write goes on.
        let waiting = !state.items.is_empty() || !state.lines.is_empty();
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
    }

    /// For a producer that never waits (an event loop): whether the queue
    /// has room for messages now. If not, `on_room` is called once it has.
    pub fn has_room(&self) -> bool {
        let mut state = self.lock();
        let room = state.has_room();
        state.full_seen |= !room;
        room
    }

    /// Calls `on_room` whenever the queue has room again after
    /// [`has_room`](Self::has_room) said it had none.
    pub fn when_room(&self, on_room: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_room.set(Box::new(on_room));
    }

    /// Shows messages from `from` without waiting, whether or not the
    /// queue has room (ask [`has_room`](Self::has_room) before taking
    /// them); false if stdout is gone.
    pub fn messages_now(&self, from: &Arc<str>, text: Vec<u8>) -> bool {
        let interpreted = match crate::lock(&self.interpreter).as_mut() {
            Some(interpreter) => Ok(interpreter.interpret(from, text)),
            None => Err(text),
        };
        let state = self.lock();
        if state.closed {
            return false;
        }
        match interpreted {
            // A plain server's lines, read through the client's
            // interpreter: written at once like uninterpreted ones, not
            // handed to the consumer (a thread wake-up per received line).
            Ok(items) => match <[Shown; 1]>::try_from(items) {
                Ok([Shown::Messages { from, text }]) => self.show_now(state, &from, text),
                Ok([item]) => {
                    drop(state);
                    self.queue(item);
                }
                Err(items) => {
                    drop(state);
                    for item in items {
                        self.queue(item);
                    }
                }
            },
            Err(text) => self.show_now(state, from, text),
        }
        true
    }

    /// Tells a producer that never waits that the queue has room, if one
    /// found it full.
    fn room_again(&self, mut state: MutexGuard<'_, State>) {
        if state.full_seen && state.has_room() {
            state.full_seen = false;
            drop(state);
            if let Some(on_room) = self.on_room.get() {
                on_room();
            }
        }
    }

    /// Queues `item` unless the queue is full (or stdout gone); never
    /// waits. False if it was dropped.
    pub fn offer(&self, item: Shown) -> bool {
        let state = self.lock();
        if state.queued >= QUEUE_LIMIT || state.closed {
            return false;
        }
        self.push(state, item);
        true
    }

    /// Lets producers write messages with `write_now` (once; for the
    /// consumer that writes to the same place).
    fn set_write_now(&self, write_now: WriteNow) {
        let _ = self.write_now.set(write_now);
    }

    /// Has `interpreter` read every received line from now on.
    pub fn set_interpreter(&self, interpreter: Box<dyn Interpret>) {
        *crate::lock(&self.interpreter) = Some(interpreter);
    }

    /// An empty buffer for [`messages_now`](Self::messages_now), reused when one is
    /// at hand.
    pub fn buffer(&self) -> Vec<u8> {
        self.lock().spare.pop().unwrap_or_default()
    }

    /// Waits until everything queued has been written (messages: or
    /// stdout is gone), or the output made no progress for `patience`;
    /// true if it all went out.
    #[cfg(test)]
    pub fn drain(&self, patience: Duration) -> bool {
        self.settle(patience, true, None)
    }

    /// [`drain`](Self::drain), but once `cut` says so (Ctrl-C meanwhile),
    /// for at most `cut_to` from then.
    pub fn drain_unless(
        &self,
        patience: Duration,
        cut: &dyn Fn() -> bool,
        cut_to: Duration,
    ) -> bool {
        self.settle(patience, true, Some((cut, cut_to)))
    }

    /// Waits until every status line and error queued has been written to
    /// stderr, or stderr took none for `patience` (plain output, where they
    /// have a writer of their own; see [`drain`](Self::drain) for the rest).
    pub fn drain_stderr(&self, patience: Duration) -> bool {
        self.settle(patience, false, None)
    }

    fn settle(
        &self,
        patience: Duration,
        messages_too: bool,
        mut cut: Option<(&dyn Fn() -> bool, Duration)>,
    ) -> bool {
        let mut state = self.lock();
        let mut last = ((state.queued, state.stderr.done), Instant::now());
        // Cut short: over by then, moving or not.
        let mut over_at = None;
        loop {
            if let Some((_, cut_to)) = cut.take_if(|(cut, _)| cut()) {
                over_at = Some(Instant::now() + cut_to);
            }
            let messages_out = !messages_too
                || state.closed
                || (state.items.is_empty() && !state.writing && !state.writing_now);
            if messages_out && state.lines.is_empty() && !state.lines_writing {
                return true;
            }
            if (state.queued, state.stderr.done) != last.0 {
                last = ((state.queued, state.stderr.done), Instant::now());
            }
            let Some(left) = patience.checked_sub(last.1.elapsed()) else {
                return false;
            };
            let left = match over_at {
                Some(at) if at <= Instant::now() => return false,
                Some(at) => left.min(at - Instant::now()),
                None => left,
            };
            let wait = left.min(Duration::from_millis(50));
            state = match self.changed.wait_timeout(state, wait) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
        }
    }

    fn queue(&self, shown: Shown) {
        let state = self.lock();
        self.push(state, shown);
    }

    fn push(&self, mut state: MutexGuard<'_, State>, shown: Shown) {
        if state.apart && shown.for_stderr() {
            self.push_line(state, shown);
            return;
        }
        let was_idle = state.items.is_empty();
        state.queued += shown.weight();
        state.stdout.add(shown.stdout_weight());
        let after = state.stderr.queued;
        state.items.push_back(Queued { after, shown });
        drop(state);
        self.changed.notify_all();
        if was_idle && let Some(wake) = crate::lock(&self.waker).as_ref() {
            wake();
        }
    }

    /// Queues a line for the stderr writer (plain output), or counts it
    /// dropped if stderr is not taking them (see [`LINES_LIMIT`]).
    fn push_line(&self, mut state: MutexGuard<'_, State>, shown: Shown) {
        let after = state.stdout.queued;
        // Past the bound, kept while stderr still takes lines (the reader
        // then waits for it: see `State::has_room`, which bounds this to a
        // read's worth); dropped once it has taken nothing for the
        // patience.
        if state.lines_bytes >= LINES_LIMIT && state.stderr.blocked(state.patience) {
            let lines = match &shown {
                Shown::Named { lines, .. } => memchr::memchr_iter(b'\n', lines).count() as u64,
                _ => 1,
            };
            // Counted where they were dropped: one count for a run of them.
            if let Some(Line {
                what: ForStderr::Dropped(dropped),
                ..
            }) = state.lines.back_mut()
            {
                *dropped += lines;
                return;
            }
            // (A count never follows a count: these stay few.)
            let what = ForStderr::Dropped(lines);
            state.lines_bytes += what.cost();
            state.lines.push_back(Line { after, what });
        } else {
            let what = ForStderr::Shown(shown);
            state.lines_bytes += what.cost();
            state.lines.push_back(Line { after, what });
        }
        state.stderr.add(1);
        drop(state);
        self.changed.notify_all();
    }

    /// For the stderr writer: moves the lines that may be written now into
    /// `into`, waiting for some first (see [`ORDER_PATIENCE`]); then call
    /// [`lines_done`](Self::lines_done). False once the output is stopped
    /// and every line was taken.
    pub(crate) fn take_lines(&self, into: &mut Vec<ForStderr>) -> bool {
        let mut state = self.lock();
        loop {
            let ready = state.lines_ready();
            if ready > 0 {
                let bytes: usize = state.lines.iter().take(ready).map(|l| l.what.cost()).sum();
                state.lines_bytes = state.lines_bytes.saturating_sub(bytes);
                into.extend(state.lines.drain(..ready).map(|line| line.what));
                state.lines_writing = true;
                return true;
            }
            if state.stopped && state.lines.is_empty() {
                return false;
            }
            // Lines held for messages wait until stdout writes, or until
            // it counts as blocked.
            let until = match state.lines.is_empty() {
                true => None,
                false => state.stdout.blocked_at(state.patience),
            };
            state = self.wait(state, until);
        }
    }

    /// For the stderr writer: the `entries` it took are written (or
    /// failed: a broken stderr is not ours to report).
    pub(crate) fn lines_done(&self, entries: usize) {
        let mut state = self.lock();
        state.stderr.wrote(entries as u64);
        state.lines_writing = false;
        drop(state);
        self.changed.notify_all();
        // A reader held back for the status lines may go on.
        self.room_again(self.lock());
    }

    /// Waits to be told something changed, or until `until`.
    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        until: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        let Some(until) = until else {
            return self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        };
        // At least a millisecond: `until` may have just passed, and what
        // it waited for is then seen at the next look, not in a spin.
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match self.changed.wait_timeout(state, left) {
            Ok((state, _)) => state,
            Err(e) => e.into_inner().0,
        }
    }

    /// For the consumer: wakes it with `waker` rather than the condition
    /// variable (the line editor waits on its own channel).
    pub(crate) fn set_waker(&self, waker: Option<Box<dyn Fn() + Send>>) {
        *crate::lock(&self.waker) = waker;
    }

    /// The program is done showing: the consumer thread ends once it has
    /// written what is queued (see [`take`](Self::take)).
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
        if let Some(wake) = crate::lock(&self.waker).as_ref() {
            wake();
        }
    }

    /// For the consumer: moves everything queued into `into`; waits for
    /// something first if `wait`, unless the output is stopped. Call
    /// [`done`](Self::done) once written. False when there is nothing more
    /// to show, ever: the output was stopped and everything was taken.
    /// With plain output, what waits for status lines queued before it is
    /// not taken yet (see [`ORDER_PATIENCE`]).
    pub(crate) fn take(&self, into: &mut Vec<Shown>, wait: bool) -> bool {
        let mut state = self.lock();
        loop {
            // Never while a producer writes to stdout itself.
            if state.writing_now {
                if !wait || state.stopped {
                    return true;
                }
                state = self.wait(state, None);
                continue;
            }
            let ready = state.ready();
            if ready > 0 || !wait || (state.stopped && state.items.is_empty()) {
                into.extend(state.items.drain(..ready).map(|item| item.shown));
                state.writing = !into.is_empty();
                return !(state.stopped && into.is_empty());
            }
            // Items held for status lines wait until stderr writes, or
            // until it counts as blocked.
            let until = match state.items.is_empty() {
                true => None,
                false => state.stderr.blocked_at(state.patience),
            };
            state = self.wait(state, until);
        }
    }

    /// For the consumer: `bytes` of what it took have reached stdout. The
    /// queue has that much room at once, not only once all it took is
    /// written: the loop reads nothing from the peer while the queue is
    /// full, and a peer whose bytes are
    /// not taken for its stall timeout cuts us off, though stdout is read
    /// (slowly) all along.
    pub(crate) fn drained(&self, bytes: usize) {
        let mut state = self.lock();
        state.queued = state.queued.saturating_sub(bytes);
        state.credited += bytes;
        // Moving, not blocked: the status lines after it wait on.
        state.stdout.moved = Some(Instant::now());
        self.room_again(state);
        self.changed.notify_all();
    }

    /// For the consumer: `items` were written (or dropped); the queue has room.
    pub(crate) fn done(&self, items: &mut Vec<Shown>) {
        let mut state = self.lock();
        let weight: usize = items.iter().map(Shown::weight).sum();
        let left = weight.saturating_sub(std::mem::take(&mut state.credited));
        state.queued = state.queued.saturating_sub(left);
        state.writing = false;
        let out = items.iter().map(Shown::stdout_weight).sum();
        state.stdout.wrote(out);
        for item in items.drain(..) {
            if let Shown::Messages { mut text, .. } = item
                && state.spare.len() < SPARE_BUFFERS
            {
                text.clear();
                state.spare.push(text);
            }
        }
        self.room_again(state);
        self.changed.notify_all();
    }

    /// For the consumer: stdout is gone. Said once to the main thread.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.closed = true;
        state
            .items
            .retain(|item| !matches!(item.shown, Shown::Messages { .. }));
        // Nothing waits for messages that will never be written.
        state.stdout.wrote(u64::MAX);
        drop(state);
        self.changed.notify_all();
        let _ = self.events.send(Event::OutputClosed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }
}

/// Where the plain consumer writes: messages to `stdout`, status and errors
/// to `stderr`; `write_now`, if given, writes to the same stdout without
/// waiting (see [`Output::show_now`]).
pub struct Sinks {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    pub write_now: Option<WriteNow>,
}

impl Sinks {
    /// The process's own stdout and stderr.
    pub fn process() -> Self {
        Self {
            stdout: Box::new(io::stdout()),
            stderr: Box::new(io::stderr()),
            write_now: Some(Box::new(crate::platform::write_stdout_now)),
        }
    }
}

/// Starts the plain consumers: messages to stdout as lines, by one thread;
/// status and errors to stderr, by another (so that a stdout nobody reads
/// cannot hold them: see the module's doc for the order between the two).
/// The threads end once the output is stopped and everything queued was
/// written.
pub(crate) fn spawn_plain_writer(
    output: &Arc<Output>,
    sinks: Sinks,
    shape: Arc<Shape>,
) -> io::Result<()> {
    let Sinks {
        mut stdout,
        mut stderr,
        write_now,
    } = sinks;
    // Messages written at once go as received: not when they are to be
    // given a time, a colour, or a copy in the transcript.
    if let Some(write_now) = write_now
        && shape.is_plain()
    {
        output.set_write_now(write_now);
    }
    // Before anything is queued: every status line from now on goes to the
    // stderr writer's queue.
    output.lock().apart = true;
    {
        let (output, shape) = (Arc::clone(output), Arc::clone(&shape));
        thread::Builder::new()
            .name("status".into())
            .spawn(move || write_lines(&output, &mut stderr, &shape))?;
    }
    let output = Arc::clone(output);
    thread::Builder::new()
        .name("output".into())
        .spawn(move || write_plain(&output, &mut stdout, &mut io::sink(), &shape))?;
    Ok(())
}

/// The stderr writer's loop (plain output), until the output is stopped. A
/// closed or broken stderr is not our failure: its lines are dropped,
/// never a panic.
fn write_lines(output: &Output, stderr: &mut dyn Write, shape: &Shape) {
    let mut taken = Vec::new();
    let mut text = Vec::new();
    let mut log = Vec::new();
    while output.take_lines(&mut taken) {
        let time = shape.stamps.then(look::full_time);
        for what in &taken {
            match what {
                ForStderr::Shown(shown) => {
                    piped_form(
                        shown,
                        time.as_deref(),
                        &shape.palette,
                        None,
                        false,
                        &mut text,
                    );
                    shape.log(output, shown, &mut log);
                }
                ForStderr::Dropped(1) => text.extend_from_slice(
                    b"error: 1 status line was dropped: stderr was not taking it\n",
                ),
                ForStderr::Dropped(n) => text.extend_from_slice(
                    format!("error: {n} status lines were dropped: stderr was not taking them\n")
                        .as_bytes(),
                ),
            }
        }
        let _ = stderr.write_all(&text);
        let _ = stderr.flush();
        text.clear();
        output.lines_done(taken.len());
        taken.clear();
    }
}

/// Appends the piped form of `shown` to `out`, each line ending in `\n`:
/// what plain output writes (messages to stdout, the rest to stderr) and,
/// with `labels`, what the transcript keeps, where a conversation's
/// messages are under their sender's name and status lines begin with
/// `-- `, so that the two cannot be taken for each other. `time` goes
/// before each line, but lines from before we joined get the time they
/// were said (none if the room did not say); `me`, the user's name, marks
/// the lines that name it.
pub(crate) fn piped_form(
    shown: &Shown,
    time: Option<&str>,
    palette: &Palette,
    me: Option<&str>,
    labels: bool,
    out: &mut Vec<u8>,
) {
    let stamp = |out: &mut Vec<u8>| {
        if let Some(time) = time {
            let style = palette.time();
            out.extend_from_slice(format!("{style}{time}{style:#} ").as_bytes());
        }
    };
    match shown {
        Shown::Status(text) => {
            stamp(out);
            let style = palette.status;
            let mark = if labels { "-- " } else { "" };
            out.extend_from_slice(format!("{style}{mark}{text}{style:#}\n").as_bytes());
        }
        Shown::Error(text) => {
            stamp(out);
            let style = palette.error;
            out.extend_from_slice(format!("{style}error:{style:#} {text}\n").as_bytes());
        }
        Shown::Messages { from, text } => {
            for line in text.split_inclusive(|&b| b == b'\n') {
                stamp(out);
                if labels {
                    let style = palette.peer;
                    out.extend_from_slice(format!("{style}{from}:{style:#} ").as_bytes());
                }
                out.extend_from_slice(line);
            }
        }
        Shown::Named {
            said,
            earlier,
            from,
            lines,
            said_at,
        } => {
            let style = palette.name(from);
            for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let line = String::from_utf8_lossy(line);
                let mark = match earlier {
                    true => {
                        if let (Some(_), Some(at)) = (time, said_at) {
                            let (style, at) = (palette.time(), look::full_time_of(*at));
                            out.extend_from_slice(format!("{style}{at}{style:#} ").as_bytes());
                        }
                        "-- earlier: "
                    }
                    false => {
                        stamp(out);
                        ""
                    }
                };
                let label = match said {
                    Said::Message => format!("{mark}{style}{from}:{style:#} "),
                    Said::Action => format!("{mark}{style}* {from}{style:#} "),
                    Said::Private => format!("{mark}{style}{from}{style:#} \u{2192} you: "),
                    Said::PrivateSent => format!("{mark}you \u{2192} {style}{from}{style:#}: "),
                };
                out.extend_from_slice(label.as_bytes());
                let mention = match me {
                    _ if *said == Said::Private => !earlier,
                    Some(me) if !earlier => look::names(&line, me),
                    _ => false,
                };
                let style = if mention {
                    palette.mention
                } else {
                    Style::new()
                };
                out.extend_from_slice(format!("{style}{line}{style:#}\n").as_bytes());
            }
        }
    }
}

/// The plain consumer's loop, until the output is stopped: messages to
/// `stdout`; status lines and errors to `stderr` if they come this way (the
/// editor's, once it has given the terminal back; not the plain writer's,
/// whose status lines have a thread of their own).
pub(crate) fn write_plain(
    output: &Output,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    shape: &Shape,
) {
    let mut items = Vec::new();
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut text = Vec::new();
    let mut log = Vec::new();
    let mut stdout_open = true;
    loop {
        if !output.take(&mut items, true) {
            return;
        }
        let time = shape.stamps.then(look::full_time);
        // The editor's last status lines, after it gave the terminal back.
        let status_time = match shape.terminal {
            true => shape.stamps.then(look::short_time),
            false => time.clone(),
        };
        let me = output.me();
        for item in &items {
            shape.log(output, item, &mut log);
            match item {
                Shown::Messages { text, .. } => {
                    if !stdout_open {
                        continue;
                    }
                    if time.is_some() {
                        piped_form(
                            item,
                            time.as_deref(),
                            &shape.palette,
                            None,
                            false,
                            &mut batch,
                        );
                    } else if text.len() >= WRITE_DIRECTLY {
                        // Large already: written as it is, without a copy.
                        stdout_open = flush_batch(&mut batch, output, stdout)
                            && write_stdout(text, output, stdout);
                        continue;
                    } else {
                        // (Stamped above: not again unstamped; every
                        // message was written twice so.)
                        batch.extend_from_slice(text);
                    }
                    if batch.len() >= WRITE_BATCH {
                        stdout_open = flush_batch(&mut batch, output, stdout);
                    }
                }
                Shown::Status(_) | Shown::Error(_) | Shown::Named { earlier: true, .. } => {
                    stdout_open = stdout_open && flush_batch(&mut batch, output, stdout);
                    let time = match item {
                        Shown::Status(_) | Shown::Error(_) => &status_time,
                        _ => &time,
                    };
                    piped_form(
                        item,
                        time.as_deref(),
                        &shape.palette,
                        None,
                        false,
                        &mut text,
                    );
                    let _ = stderr.write_all(&text);
                    let _ = stderr.flush();
                    text.clear();
                }
                Shown::Named { .. } => {
                    if !stdout_open {
                        continue;
                    }
                    let me = me.as_deref();
                    piped_form(item, time.as_deref(), &shape.palette, me, false, &mut batch);
                    if batch.len() >= WRITE_BATCH {
                        stdout_open = flush_batch(&mut batch, output, stdout);
                    }
                }
            }
        }
        if stdout_open {
            stdout_open = flush_batch(&mut batch, output, stdout);
        }
        batch.clear();
        output.done(&mut items);
    }
}

/// Writes and empties `batch`; false (and the output closed) if stdout is gone.
fn flush_batch(batch: &mut Vec<u8>, output: &Output, stdout: &mut dyn Write) -> bool {
    let open = batch.is_empty() || write_stdout(batch, output, stdout);
    batch.clear();
    open
}

/// Writes `bytes`, a slice at a time, each counted as drained once
/// written (see [`Output::drained`]); false (and the output closed) if
/// stdout is gone.
fn write_stdout(bytes: &[u8], output: &Output, out: &mut dyn Write) -> bool {
    for slice in bytes.chunks(DRAIN_SLICE) {
        match out.write_all(slice).and_then(|()| out.flush()) {
            Ok(()) => output.drained(slice.len()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                output.close();
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A stdout that takes what a test allows, and checks that it never has
    /// two writers at once.
    #[derive(Default)]
    struct Stdout {
        bytes: Mutex<Vec<u8>>,
        busy: AtomicBool,
    }

    impl Stdout {
        fn write(&self, bytes: &[u8]) {
            assert!(!self.busy.swap(true, Ordering::SeqCst), "two writers");
            thread::yield_now();
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    proptest::proptest! {
        /// With messages written at once by the event loop as far as
        /// stdout takes them (all, some, none, or refused outright), what
        /// reaches stdout is every message once, in order, from one writer
        /// at a time, as through the consumer alone.
        #[test]
        fn messages_written_at_once_match_the_consumer_path(
            texts in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 1..40), 0..40),
            takes in proptest::collection::vec(proptest::option::weighted(0.9, 0usize..50), 1..10),
        ) {
            let stdout = Arc::new(Stdout::default());
            let (tx, _rx) = mpsc::channel();
            let output = Output::new(crate::console::event::Events::new(tx));
            let turn = std::sync::atomic::AtomicUsize::new(0);
            {
                let stdout = Arc::clone(&stdout);
                output.set_write_now(Box::new(move |bytes| {
                    let i = turn.fetch_add(1, Ordering::SeqCst);
                    let n = takes[i % takes.len()]?.min(bytes.len());
                    stdout.write(&bytes[..n]);
                    Some(n)
                }));
            }
            {
                let (output, stdout) = (Arc::clone(&output), Arc::clone(&stdout));
                thread::spawn(move || {
                    let mut items = Vec::new();
                    loop {
                        output.take(&mut items, true);
                        for item in &items {
                            match item {
                                Shown::Messages { text, .. } => stdout.write(text),
                                Shown::Status(text) => stdout.write(text.as_bytes()),
                                _ => {}
                            }
                        }
                        output.done(&mut items);
                    }
                });
            }
            // Status lines from another thread meanwhile (upper case here,
            // to be told apart), as the main thread says things.
            let statuses = {
                let output = Arc::clone(&output);
                thread::spawn(move || {
                    for _ in 0..20 {
                        output.status("S");
                        thread::yield_now();
                    }
                })
            };
            let from: Arc<str> = Arc::from("peer");
            let mut expected = Vec::new();
            for text in texts {
                expected.extend_from_slice(&text);
                proptest::prop_assert!(output.messages_now(&from, text));
            }
            statuses.join().unwrap();
            proptest::prop_assert!(output.drain(Duration::from_secs(10)));
            let mut shown = stdout.bytes.lock().unwrap().clone();
            proptest::prop_assert_eq!(shown.iter().filter(|&&b| b == b'S').count(), 20);
            shown.retain(|&b| b != b'S');
            proptest::prop_assert_eq!(shown, expected);
        }
    }

    #[test]
    fn a_closed_output_drops_messages_keeps_status_and_says_so_once() {
        let (tx, rx) = mpsc::channel();
        let output = Output::new(crate::console::event::Events::new(tx));
        let from: Arc<str> = Arc::from("peer");
        assert!(output.messages_now(&from, b"a\n".to_vec()));
        output.status("s");
        output.close();
        output.close();
        assert!(!output.messages_now(&from, b"b\n".to_vec()));
        let mut items = Vec::new();
        output.take(&mut items, false);
        assert!(matches!(&items[..], [Shown::Status(s)] if s == "s"));
        assert_eq!(rx.try_iter().count(), 1);
        assert!(output.drain(Duration::ZERO));
    }

    /// Both streams of plain output on one screen, as a terminal or `2>&1`
    /// shows them; either can be held (its writes wait) until let go.
    #[derive(Default)]
    struct Screen {
        log: Mutex<Vec<u8>>,
        held: Mutex<[bool; 2]>,
        let_go: Condvar,
    }

    const STDOUT: usize = 0;
    const STDERR: usize = 1;

    impl Screen {
        fn hold(&self, stream: usize) {
            self.held.lock().unwrap()[stream] = true;
        }

        fn let_go(&self, stream: usize) {
            self.held.lock().unwrap()[stream] = false;
            self.let_go.notify_all();
        }

        fn shown(&self) -> String {
            String::from_utf8(self.log.lock().unwrap().clone()).unwrap()
        }

        /// Waits (10 s at most) until `text` has been shown.
        fn wait_for(&self, text: &str) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.shown().contains(text) {
                assert!(
                    Instant::now() < deadline,
                    "{text:?} not shown: {:?}",
                    self.shown()
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    struct Stream(Arc<Screen>, usize);

    impl Write for Stream {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut held = self.0.held.lock().unwrap();
            while held[self.1] {
                held = self.0.let_go.wait(held).unwrap();
            }
            drop(held);
            self.0.log.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Plain output onto `screen`, a stream taken as blocked after
    /// `patience` without a write.
    fn plain(screen: &Arc<Screen>, patience: Duration, write_now: Option<WriteNow>) -> Arc<Output> {
        let (tx, _) = mpsc::channel();
        let output = Output::new(crate::console::event::Events::new(tx));
        output.lock().patience = patience;
        let sinks = Sinks {
            stdout: Box::new(Stream(Arc::clone(screen), STDOUT)),
            stderr: Box::new(Stream(Arc::clone(screen), STDERR)),
            write_now,
        };
        spawn_plain_writer(&output, sinks, Arc::new(Shape::default())).unwrap();
        output
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// While both streams take what they are given, plain output shows
        /// messages, status lines and errors in the order they happened,
        /// on one screen, though two threads write them (and the loop some
        /// messages itself, all, some or none of them, or refused).
        #[test]
        fn plain_output_keeps_the_order_between_messages_and_status_lines(
            said in proptest::collection::vec(0u8..4, 1..60),
            takes in proptest::collection::vec(proptest::option::weighted(0.9, 0usize..12), 1..8),
        ) {
            let screen = Arc::new(Screen::default());
            let write_now: WriteNow = {
                let screen = Arc::clone(&screen);
                let turn = std::sync::atomic::AtomicUsize::new(0);
                Box::new(move |bytes| {
                    let i = turn.fetch_add(1, Ordering::SeqCst);
                    let n = takes[i % takes.len()]?.min(bytes.len());
                    screen.log.lock().unwrap().extend_from_slice(&bytes[..n]);
                    Some(n)
                })
            };
            // Never taken as blocked here: the order must hold throughout.
            let output = plain(&screen, Duration::from_secs(600), Some(write_now));
            let from: Arc<str> = Arc::from("peer");
            let mut expected = String::new();
            for (i, what) in said.iter().enumerate() {
                match what {
                    0 => {
                        output.status(format!("status {i}"));
                        expected.push_str(&format!("status {i}\n"));
                    }
                    1 => {
                        output.error(format!("error {i}"));
                        expected.push_str(&format!("error: error {i}\n"));
                    }
                    _ => {
                        let text = format!("message {i}\nand its second line\n");
                        proptest::prop_assert!(output.messages_now(&from, text.clone().into_bytes()));
                        expected.push_str(&text);
                    }
                }
            }
            proptest::prop_assert!(output.drain(Duration::from_secs(10)));
            output.stop();
            proptest::prop_assert_eq!(screen.shown(), expected);
        }
    }

    #[test]
    fn a_blocked_stdout_holds_no_status_line_and_its_messages_follow_in_order() {
        let screen = Arc::new(Screen::default());
        let output = plain(&screen, Duration::from_millis(50), None);
        let from: Arc<str> = Arc::from("peer");
        screen.hold(STDOUT);
        assert!(output.messages_now(&from, b"a\n".to_vec()));
        output.status("one");
        screen.wait_for("one\n");
        assert!(output.messages_now(&from, b"b\n".to_vec()));
        output.error("two");
        screen.wait_for("error: two\n");
        assert_eq!(screen.shown(), "one\nerror: two\n");
        // Reading from the peer still waits for the screen: the queue's
        // room is messages' alone.
        assert!(output.has_room());
        screen.let_go(STDOUT);
        assert!(output.drain(Duration::from_secs(10)));
        assert_eq!(screen.shown(), "one\nerror: two\na\nb\n");
        output.stop();
    }

    /// A program's last words: a status line still held for messages that
    /// stdout has not taken (not yet for the whole patience) goes once the
    /// output is stopped.
    #[test]
    fn once_stopped_status_lines_wait_for_no_message() {
        let screen = Arc::new(Screen::default());
        let output = plain(&screen, Duration::from_secs(600), None);
        let from: Arc<str> = Arc::from("peer");
        screen.hold(STDOUT);
        assert!(output.messages_now(&from, b"a\n".to_vec()));
        output.status("interrupted");
        assert!(!output.drain(Duration::from_millis(100)));
        assert_eq!(screen.shown(), "");
        output.stop();
        assert!(output.drain_stderr(Duration::from_secs(10)));
        assert_eq!(screen.shown(), "interrupted\n");
        screen.let_go(STDOUT);
    }

    /// With stderr taking nothing, status lines are kept up to a bound,
    /// the rest counted, and the count shown in their place; messages wait
    /// for them no longer than the patience.
    #[test]
    fn status_lines_stderr_does_not_take_are_bounded_and_counted() {
        let screen = Arc::new(Screen::default());
        let output = plain(&screen, Duration::from_millis(50), None);
        let from: Arc<str> = Arc::from("peer");
        screen.hold(STDERR);
        let line = "x".repeat(99);
        // Stderr takes nothing for the patience: from then on it is stuck.
        output.status(line.clone());
        std::thread::sleep(Duration::from_millis(100));
        let said = 3 * LINES_LIMIT / (LINE_COST + line.len()) - 1;
        for _ in 0..said {
            output.status(line.clone());
            // At most one line past the limit, and the count of those dropped.
            let kept = output.lock().lines_bytes;
            assert!(
                kept <= LINES_LIMIT + 2 * LINE_COST + line.len(),
                "{kept} bytes kept"
            );
        }
        assert!(output.messages_now(&from, b"through\n".to_vec()));
        screen.wait_for("through\n");
        screen.let_go(STDERR);
        assert!(output.drain(Duration::from_secs(10)));
        output.stop();
        let shown = screen.shown();
        let kept = shown.lines().filter(|l| *l == line).count();
        // One count for each run of lines dropped: one run, or two if the
        // writer took the first count (and made room) before stderr held
        // it, which depends on when its thread ran.
        let dropped: Vec<&str> = shown.lines().filter(|l| l.contains("dropped")).collect();
        assert!(
            (1..=2).contains(&dropped.len()),
            "counts of the dropped lines: {dropped:?}"
        );
        let n: usize = dropped
            .iter()
            .map(|count| {
                count
                    .strip_prefix("error: ")
                    .and_then(|c| c.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("{count:?}"))
            })
            .sum();
        assert!(
            n > 0 && kept + n == said + 1,
            "{kept} kept, {n} dropped of {}",
            said + 1
        );
        // The count where they were dropped: after the lines kept up to
        // the bound.
        let before = shown
            .lines()
            .take_while(|l| !l.contains("dropped"))
            .filter(|l| *l == line)
            .count();
        assert!(
            before >= LINES_LIMIT / (LINE_COST + line.len()),
            "the first count after {before} lines"
        );
    }
}
