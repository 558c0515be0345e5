//! What the user is shown: the peer's messages, status lines and errors, in
//! the order they happened, through one queue with one consumer.
//!
//! Nothing that decides (the event loop, a conversation's ending) ever
//! waits on stdout or stderr: it queues, and the consumer (the plain writer
//! thread here, or the line editor's thread in a terminal) does the
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

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::console::event::{Event, Events};
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
    /// joined.
    Named {
        said: Said,
        earlier: bool,
        from: Arc<str>,
        lines: Vec<u8>,
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
}

/// Emptied message buffers kept for reuse: a steady flow of messages then
/// allocates (and faults in) nothing.
const SPARE_BUFFERS: usize = 4;

#[derive(Default)]
struct State {
    items: VecDeque<Shown>,
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
}

impl Output {
    /// `events` is told once if stdout goes away.
    pub fn new(events: Events) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            waker: Mutex::new(None),
            interpreter: Mutex::new(None),
            write_now: OnceLock::new(),
            write_now_refused: AtomicBool::new(false),
            on_room: OnceLock::new(),
            events,
        })
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
        if !state.items.is_empty() || state.writing || state.writing_now {
            let from = Arc::clone(from);
            self.push(state, Shown::Messages { from, text });
            return;
        }
        state.writing_now = true;
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
        if written < text.len() && !state.closed {
            text.drain(..written);
            state.queued += text.len();
            let from = Arc::clone(from);
            state.items.push_front(Shown::Messages { from, text });
        } else if state.spare.len() < SPARE_BUFFERS {
            text.clear();
            state.spare.push(text);
        }
        // The consumer waits while this write goes on.
        let waiting = !state.items.is_empty();
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
    }

    /// For a producer that never waits (an event loop): whether the queue
    /// has room for messages now. If not, `on_room` is called once it has.
    pub fn has_room(&self) -> bool {
        let mut state = self.lock();
        let room = state.queued < QUEUE_LIMIT || state.closed;
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
        if state.full_seen && state.queued < QUEUE_LIMIT {
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

    /// Waits until everything queued has been written, stdout is gone, or
    /// the output made no progress for `patience`; true if it all went out.
    pub fn drain(&self, patience: Duration) -> bool {
        let mut state = self.lock();
        let mut last = (state.queued, Instant::now());
        loop {
            if state.closed || (state.items.is_empty() && !state.writing && !state.writing_now) {
                return true;
            }
            if state.queued != last.0 {
                last = (state.queued, Instant::now());
            }
            let Some(left) = patience.checked_sub(last.1.elapsed()) else {
                return false;
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
        let was_idle = state.items.is_empty();
        state.queued += shown.weight();
        state.items.push_back(shown);
        drop(state);
        self.changed.notify_all();
        if was_idle && let Some(wake) = crate::lock(&self.waker).as_ref() {
            wake();
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
    pub(crate) fn take(&self, into: &mut Vec<Shown>, wait: bool) -> bool {
        let mut state = self.lock();
        // Never while a producer writes to stdout itself.
        while wait && (state.items.is_empty() || state.writing_now) && !state.stopped {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.writing_now {
            return true;
        }
        into.extend(state.items.drain(..));
        state.writing = !into.is_empty();
        !(state.stopped && into.is_empty())
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
            .retain(|item| !matches!(item, Shown::Messages { .. }));
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

/// Starts the plain consumer: messages to stdout as lines, status and errors
/// to stderr. The thread ends once the output is stopped and everything
/// queued was written.
pub fn spawn_plain_writer(output: &Arc<Output>, mut sinks: Sinks) -> io::Result<()> {
    if let Some(write_now) = sinks.write_now.take() {
        output.set_write_now(write_now);
    }
    let output = Arc::clone(output);
    thread::Builder::new()
        .name("output".into())
        .spawn(move || write_plain(&output, &mut sinks))?;
    Ok(())
}

/// The plain consumer's loop, until the output is stopped.
pub(crate) fn write_plain(output: &Output, sinks: &mut Sinks) {
    let mut items = Vec::new();
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut stdout_open = true;
    loop {
        if !output.take(&mut items, true) {
            return;
        }
        for item in &items {
            match item {
                Shown::Messages { text, .. } => {
                    if !stdout_open {
                        continue;
                    }
                    if text.len() >= WRITE_DIRECTLY {
                        // Large already: written as it is, without a copy.
                        stdout_open = flush_batch(&mut batch, output, sinks)
                            && write_stdout(text, output, sinks);
                        continue;
                    }
                    batch.extend_from_slice(text);
                    if batch.len() >= WRITE_BATCH {
                        stdout_open = flush_batch(&mut batch, output, sinks);
                    }
                }
                Shown::Status(text) => {
                    stdout_open = stdout_open && flush_batch(&mut batch, output, sinks);
                    line_to(&mut sinks.stderr, text);
                }
                Shown::Error(text) => {
                    stdout_open = stdout_open && flush_batch(&mut batch, output, sinks);
                    line_to(&mut sinks.stderr, &format!("error: {text}"));
                }
                Shown::Named {
                    earlier: true,
                    said,
                    from,
                    lines,
                } => {
                    stdout_open = stdout_open && flush_batch(&mut batch, output, sinks);
                    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        let line = String::from_utf8_lossy(line);
                        line_to(
                            &mut sinks.stderr,
                            &match said {
                                Said::Message => format!("-- earlier: {from}: {line}"),
                                Said::Action => format!("-- earlier: * {from} {line}"),
                            },
                        );
                    }
                }
                Shown::Named {
                    said, from, lines, ..
                } => {
                    if !stdout_open {
                        continue;
                    }
                    for line in lines.split_inclusive(|&b| b == b'\n') {
                        match said {
                            Said::Message => {
                                batch.extend_from_slice(from.as_bytes());
                                batch.extend_from_slice(b": ");
                            }
                            Said::Action => {
                                batch.extend_from_slice(b"* ");
                                batch.extend_from_slice(from.as_bytes());
                                batch.push(b' ');
                            }
                        }
                        batch.extend_from_slice(line);
                    }
                    if batch.len() >= WRITE_BATCH {
                        stdout_open = flush_batch(&mut batch, output, sinks);
                    }
                }
            }
        }
        if stdout_open {
            stdout_open = flush_batch(&mut batch, output, sinks);
        }
        batch.clear();
        output.done(&mut items);
    }
}

/// Writes and empties `batch`; false (and the output closed) if stdout is gone.
fn flush_batch(batch: &mut Vec<u8>, output: &Output, sinks: &mut Sinks) -> bool {
    let open = batch.is_empty() || write_stdout(batch, output, sinks);
    batch.clear();
    open
}

/// One line to `err`. A closed or broken stderr is not our failure: the
/// line is dropped, never a panic.
fn line_to(err: &mut dyn Write, line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    let _ = err.write_all(&bytes);
    let _ = err.flush();
}

/// Writes `bytes`, a slice at a time, each counted as drained once
/// written (see [`Output::drained`]); false (and the output closed) if
/// stdout is gone.
fn write_stdout(bytes: &[u8], output: &Output, sinks: &mut Sinks) -> bool {
    let out = &mut sinks.stdout;
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
}
