//! The user's lines: read, checked, and turned into frames for the current
//! conversation.
//!
//! [`Composer`] holds the rules every typed line goes through (a trailing `\r`
//! dropped, empty lines skipped, `q` alone quits, a line over the maximum refused
//! locally). [`read_plain`] feeds it from a pipe or file, a whole read at a
//! time; the line editor feeds it one line at a time (see [`crate::console`]).

use std::io::{ErrorKind, Read};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::console::event::{Event, Events, Input};
use crate::console::outbox::{Outbox, Pushed, Room};
use crate::console::output::Output;
use crate::errors::lowercase_os_error;
use crate::state::throttle::Throttle;
use crate::wire::frame::{TooLong, encode_frame};
use crate::wire::scan::LineEnds;

/// Piped input is read this much at a time when this thread sends the
/// frames itself (see [`Outbox::write_at_once`]): each read's frames go
/// out in one write, and on loopback the receiving side's work per write
/// (its wake-ups, acknowledgements, reads) is much of the cost; 512 KiB cost
/// the two programs less CPU per line than 128, 256 or 1024 KiB did.
const READ_SENDING: usize = 512 * 1024;

/// Piped input is read this much at a time when the frames are handed to
/// the event loop (TLS, or Windows, where a send cannot be made without
/// waiting): small enough that a batch stays in the caches while the loop
/// takes it (with 512 KiB handed over, the TLS client cost a sixth more
/// CPU per line, before it sent its own frames).
const READ_HANDING_OVER: usize = 128 * 1024;

/// A batch is handed over at this size even within one read.
const BATCH_LIMIT: usize = 1024 * 1024;

/// Answers a command line here instead of sending it (`None`: send it).
pub type LocalAnswer = Box<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Where typed lines go: the current conversation's outbox, if there is one.
#[derive(Default)]
pub struct Recipient {
    slot: Mutex<Option<Arc<Outbox>>>,
    /// Lines that start with `/` it answers are not sent (a room's
    /// unknown commands, which the program knows).
    answer: OnceLock<LocalAnswer>,
    /// A maximum smaller than ours that the server takes (0: none said).
    limit: AtomicUsize,
}

impl Recipient {
    pub fn set(&self, outbox: Option<Arc<Outbox>>) {
        *crate::lock(&self.slot) = outbox;
    }

    /// From now on lines starting with `/` that `answer` answers are
    /// answered here, not sent (once: a second answer is ignored).
    pub fn answer_locally(&self, answer: LocalAnswer) {
        let _ = self.answer.set(answer);
    }

    /// The server takes messages of at most `max` bytes: longer lines are
    /// refused here, rather than sent and taken as a protocol error.
    pub fn set_limit(&self, max: usize) {
        self.limit.store(max.max(1), Ordering::SeqCst);
    }

    /// The peer takes messages of at most `max` bytes, if it said (`None`:
    /// as far as we know, any): for the conversation from now on.
    pub fn limit_to(&self, max: Option<usize>) {
        self.limit
            .store(max.map_or(0, |max| max.max(1)), Ordering::SeqCst);
    }

    /// The most the server takes, as far as we know.
    pub fn limit(&self) -> usize {
        match self.limit.load(Ordering::Relaxed) {
            0 => usize::MAX,
            max => max,
        }
    }

    fn current(&self) -> Option<Arc<Outbox>> {
        crate::lock(&self.slot).clone()
    }
}

/// What to do with one line the user entered.
#[derive(Debug, PartialEq, Eq)]
pub enum Entered {
    /// Queued in the current batch (or skipped, if empty).
    Accepted,
    /// `q` alone: the batch so far has been handed over.
    Quit,
}

/// Turns the user's lines into frames and hands them to the recipient.
pub struct Composer {
    /// The largest line sent now: our own maximum, or a room's if smaller.
    max_message_size: usize,
    /// Our own maximum.
    own_max: usize,
    batch: Vec<u8>,
    lines_in_batch: usize,
    recipient: Arc<Recipient>,
    output: Arc<Output>,
    room: Room,
    /// One conversation only (the client): once it has ended, lines are
    /// dropped without a word (the ending itself is reported, with what was
    /// not delivered) and reading stops.
    once: bool,
    ended: bool,
    /// Lines typed with nobody connected, told at most once a second with
    /// a count (a piped flood into a server with nobody connected made an
    /// error a read, thousands a second).
    not_sent: Throttle,
}

impl Composer {
    /// `room` says whether handing lines over may wait for the peer (piped
    /// input) or never does (the line editor).
    pub fn new(
        max_message_size: usize,
        recipient: Arc<Recipient>,
        output: Arc<Output>,
        room: Room,
        once: bool,
    ) -> Self {
        Self {
            max_message_size,
            own_max: max_message_size,
            batch: Vec::new(),
            lines_in_batch: 0,
            recipient,
            output,
            room,
            once,
            ended: false,
            not_sent: Throttle::new(Duration::from_secs(1)),
        }
    }

    /// Takes up a smaller maximum the recipient learned (a room's), for the
    /// lines from now on.
    fn follow_limit(&mut self) {
        self.max_message_size = self.own_max.min(self.recipient.limit());
    }

    /// Whether the one conversation of a client has ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Takes one line without its `\n`.
    pub fn enter(&mut self, line: &[u8]) -> Entered {
        self.enter_text(line, false)
    }

    /// Takes one line; `known_utf8` says it was already checked, as part of a
    /// larger chunk (one check per chunk costs far less than one per line).
    fn enter_text(&mut self, line: &[u8], known_utf8: bool) -> Entered {
        self.follow_limit();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Entered::Accepted;
        }
        if line == b"q" {
            return self.quit();
        }
        // The protocol carries UTF-8; anything else is sent with U+FFFD in place.
        let repaired;
        let text = match known_utf8 || std::str::from_utf8(line).is_ok() {
            true => line,
            false => {
                repaired = String::from_utf8_lossy(line).into_owned();
                repaired.as_bytes()
            }
        };
        if text[0] == b'/'
            && let Some(answer) = self.recipient.answer.get().and_then(|answer| answer(text))
        {
            self.output.error(answer);
            return Entered::Accepted;
        }
        if memchr::memchr(b'\n', text).is_some() {
            self.enter_lines(text);
        } else {
            match encode_frame(&mut self.batch, text, self.max_message_size) {
                Ok(()) => self.lines_in_batch += 1,
                Err(_) => self.refuse_cold(text.len()),
            }
        }
        if self.batch.len() >= BATCH_LIMIT {
            self.flush();
        }
        Entered::Accepted
    }

    /// A message of several lines (the line editor's, UTF-8): one message
    /// to a peer that takes them, else each line that is not empty as a
    /// message of its own, in order. A command of several lines to a peer
    /// that does not take them is not sent: its later lines would go as
    /// messages (a `/msg`'s to everyone).
    #[cold]
    fn enter_lines(&mut self, text: &[u8]) {
        // In a room (whose commands we know), only /msg and /me take text:
        // any other command's later lines would be dropped without a word.
        let takes_text = [&b"/msg"[..], b"/me"].iter().any(|command| {
            text.strip_prefix(*command)
                .is_some_and(|rest| rest.first().is_some_and(u8::is_ascii_whitespace))
        });
        if self.recipient.answer.get().is_some()
            && text.starts_with(b"/")
            && !text.starts_with(b"//")
            && !takes_text
        {
            self.output
                .error("only /msg and /me take several lines: a command is one line; not sent");
            return;
        }
        // With nobody connected, it is one message not sent.
        let whole = self
            .recipient
            .current()
            .is_none_or(|outbox| outbox.takes_line_breaks());
        if whole {
            let unix;
            let text = match memchr::memchr(b'\r', text) {
                None => text,
                Some(_) => {
                    unix = String::from_utf8_lossy(text).replace("\r\n", "\n");
                    unix.as_bytes()
                }
            };
            match encode_frame(&mut self.batch, text, self.max_message_size) {
                Ok(()) => self.lines_in_batch += 1,
                Err(_) => self.refuse(text.len()),
            }
            return;
        }
        if text.starts_with(b"/") {
            self.output
                .error("the peer takes one line at a time: a command of several lines is not sent");
            return;
        }
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match encode_frame(&mut self.batch, line, self.max_message_size) {
                Ok(()) => self.lines_in_batch += 1,
                Err(_) => self.refuse(line.len()),
            }
        }
    }

    /// The common case of [`enter_text`](Self::enter_text), for a line known
    /// to be UTF-8: framed at once if it is at least two bytes (so neither
    /// empty nor `q`), not over the maximum and not a command (`/`, which a
    /// room may answer here); false, with nothing done, for everything else.
    /// Inlined into the loop over a chunk's lines.
    #[inline(always)]
    fn enter_plain(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() < 2 || line.len() > self.max_message_size || line[0] == b'/' {
            return false;
        }
        let Ok(len) = u32::try_from(line.len()) else {
            return false;
        };
        self.batch.extend_from_slice(&len.to_be_bytes());
        self.batch.extend_from_slice(line);
        self.lines_in_batch += 1;
        if self.batch.len() >= BATCH_LIMIT {
            self.flush_cold();
        }
        true
    }

    #[cold]
    fn flush_cold(&mut self) {
        self.flush();
    }

    /// `q`: hands the batch over.
    #[cold]
    fn quit(&mut self) -> Entered {
        self.flush();
        Entered::Quit
    }

    #[cold]
    fn refuse_cold(&self, len: usize) {
        self.refuse(len);
    }

    /// Whether the current conversation's outbox lets this thread send
    /// what it pushes itself.
    fn sends_at_once(&self) -> bool {
        self.recipient
            .current()
            .is_some_and(|outbox| outbox.writes_at_once())
    }

    /// Hands the lines taken so far to the current conversation.
    pub fn flush(&mut self) {
        if self.lines_in_batch == 0 {
            return;
        }
        let lines = std::mem::take(&mut self.lines_in_batch);
        let pushed = match self.recipient.current() {
            Some(outbox) => outbox.push_lines(&mut self.batch, self.room, Some(lines as u64)),
            None => Pushed::Closed,
        };
        if pushed == Pushed::Closed {
            self.batch.clear();
            if self.once {
                self.ended = true;
                return;
            }
            if let Some(count) = self.not_sent.occurred_times(lines as u64, Instant::now()) {
                self.tell_not_sent(count);
            }
            return;
        }
        // Someone is connected now: the lines not sent before it came and
        // not yet told are told now.
        self.tell_rest();
    }

    /// Whether input may be read for the current conversation; if so, it
    /// counts as in hand until [`end_input`](Self::end_input) (see
    /// [`Outbox::stop_input`]).
    pub(super) fn begin_input(&self) -> bool {
        match self.recipient.current() {
            Some(outbox) => outbox.begin_input(),
            // The client's conversation is over; the server's next one
            // is not there yet, and what is typed meanwhile is refused
            // and told.
            None => !self.once,
        }
    }

    /// What was read is handed over (or refused, and counted).
    pub(super) fn end_input(&self) {
        if let Some(outbox) = self.recipient.current() {
            outbox.end_input();
        }
    }

    /// Tells the lines not sent since the last time it was told.
    pub fn tell_rest(&mut self) {
        if let Some(count) = self.not_sent.rest() {
            self.tell_not_sent(count);
        }
    }

    fn tell_not_sent(&self, lines: u64) {
        let what = match lines {
            1 => "1 line".to_string(),
            n => format!("{n} lines"),
        };
        self.output
            .error(format!("nobody is connected; {what} not sent"));
    }

    /// A line entered once the conversation took no more: counted as not
    /// delivered (see [`Outbox::refuse_line`]).
    pub(super) fn refuse_late(&self, line: &[u8]) {
        if let Some(outbox) = self.recipient.current() {
            outbox.refuse_line(line);
        }
    }

    /// Reports a line over the maximum, which is not sent.
    pub fn refuse(&self, len: usize) {
        // Piped input (whose pushes wait for room: nobody watches it) has
        // its refusals counted, for the exit status; a person at the
        // editor saw it and typed on.
        if self.room == Room::Wait
            && let Some(outbox) = self.recipient.current()
        {
            outbox.count_too_long(1);
        }
        let too_long = TooLong {
            len,
            max: self.max_message_size,
        };
        self.output.error(format!("{too_long}; not sent"));
    }
}

/// How the input thread reacts to `q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterQuit {
    /// Stop reading (the client: the program is ending).
    Stop,
    /// Go on: later lines are for the next conversation (the server).
    Continue,
}

/// What the input thread reads lines from: the process's standard input,
/// or a test's bytes.
pub trait LineSource: Read + Send {
    /// Waits until there is something to read (or its end), so that the
    /// read that follows takes input only once it is still wanted (see
    /// [`Outbox::stop_input`]).
    fn wait_readable(&mut self) {}
}

impl LineSource for std::io::Stdin {
    fn wait_readable(&mut self) {
        crate::platform::wait_readable(self);
    }
}

impl<R: LineSource + ?Sized> LineSource for Box<R> {
    fn wait_readable(&mut self) {
        (**self).wait_readable();
    }
}

/// Input read as it comes, without waiting first (a test's bytes).
pub struct Unwatched<R>(pub R);

impl<R: Read> Read for Unwatched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Send> LineSource for Unwatched<R> {}

/// Reads lines from a pipe or file until it ends, reporting `q` and the end of
/// input as events. The lines of each read are handed over together, at
/// once: a line is never held back waiting for more input, and under a flood
/// the loop writes everything queued meanwhile in one go.
pub fn read_plain(
    mut input: impl LineSource,
    mut composer: Composer,
    events: Events,
    after_quit: AfterQuit,
) {
    let mut buffer = vec![0; READ_SENDING];
    // Room for a maximal line and its '\r': anything longer is refused.
    let mut lines = LineSplitter::new(composer.max_message_size + 1);
    loop {
        let size = match composer.sends_at_once() {
            true => READ_SENDING,
            false => READ_HANDING_OVER,
        };
        // Read only while the conversation still takes lines: a line read
        // once it is over would be dropped unsaid.
        input.wait_readable();
        if !composer.begin_input() {
            return;
        }
        let chunk = match input.read(&mut buffer[..size]) {
            Ok(0) => break,
            Ok(read) => &buffer[..read],
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let e = lowercase_os_error(&e);
                composer.flush();
                composer
                    .output
                    .error(format!("cannot read standard input: {e}"));
                break;
            }
        };
        let used = chunk.len();
        composer.follow_limit();
        // Room for the frames of this read at once (lines of a dozen bytes
        // or more), rather than growing the batch step by step.
        composer.batch.reserve(used + used / 4);
        let flow = lines.split(chunk, &mut composer, |composer, line| {
            let entered = match line {
                Line::Complete(line, utf8) => composer.enter_text(line, utf8),
                Line::TooLong(len) => {
                    composer.refuse(len);
                    Entered::Accepted
                }
            };
            match entered {
                Entered::Accepted => ControlFlow::Continue(()),
                Entered::Quit => quit(&events, after_quit),
            }
        });
        if flow.is_break() {
            composer.end_input();
            return;
        }
        composer.flush();
        composer.end_input();
        if composer.ended() {
            return;
        }
    }
    match lines.finish() {
        Some(Line::Complete(line, _)) if composer.enter(line) == Entered::Quit => {
            let _ = events.send(Event::Input(Input::Quit));
            if after_quit == AfterQuit::Stop {
                return;
            }
        }
        Some(Line::TooLong(len)) => composer.refuse(len),
        _ => {}
    }
    composer.flush();
    composer.end_input();
    composer.tell_rest();
    let _ = events.send(Event::Input(Input::Closed));
}

/// Reports `q` and says whether to read on.
#[cold]
fn quit(events: &Events, after_quit: AfterQuit) -> ControlFlow<()> {
    let _ = events.send(Event::Input(Input::Quit));
    match after_quit {
        AfterQuit::Stop => ControlFlow::Break(()),
        AfterQuit::Continue => ControlFlow::Continue(()),
    }
}

/// One line of input, without its `\n`.
enum Line<'a> {
    /// The line, and whether it is known to be valid UTF-8.
    Complete(&'a [u8], bool),
    /// Over the limit: only its length was kept.
    TooLong(usize),
}

/// Cuts chunks of input into lines. A line inside one chunk is handed out
/// where it lies; only a line that spans chunks is copied, and only up to the
/// limit, so an endless line costs no memory.
struct LineSplitter {
    limit: usize,
    /// The start of a line that spans chunks (at most `limit` bytes of it).
    partial: Vec<u8>,
    /// Its length so far, counting what did not fit in `partial`.
    partial_len: usize,
    /// The last line handed out that had to be assembled.
    assembled: Vec<u8>,
}

impl LineSplitter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            partial: Vec::new(),
            partial_len: 0,
            assembled: Vec::new(),
        }
    }

    /// Hands each complete line in `chunk` to `each` until it breaks; the
    /// unterminated rest is kept for later.
    fn split(
        &mut self,
        chunk: &[u8],
        composer: &mut Composer,
        mut each: impl FnMut(&mut Composer, Line<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut start = 0;
        // One check for every complete line in the chunk; ASCII, the common
        // case, is the cheaper one.
        let lines_utf8 = memchr::memrchr(b'\n', chunk).is_some_and(|last| {
            let lines = &chunk[..last];
            lines.is_ascii() || std::str::from_utf8(lines).is_ok()
        });
        let mut ends = LineEnds::new(chunk);
        if self.partial_len != 0 {
            // Only the first line of a chunk can have begun in an earlier one.
            let Some(end) = ends.next() else {
                self.extend(chunk);
                return ControlFlow::Continue(());
            };
            self.complete(&chunk[..end], composer, &mut each)?;
            start = end + 1;
        }
        // Every line here lies whole in the chunk: the loop that runs for
        // every line. The common line is framed inline; the rest (empty,
        // `q`, too long, not UTF-8) go through `each`, out of line.
        for end in ends {
            let piece = &chunk[start..end];
            start = end + 1;
            if !(lines_utf8 && composer.enter_plain(piece)) {
                self.special(piece, lines_utf8, composer, &mut each)?;
            }
        }
        if start < chunk.len() {
            self.extend(&chunk[start..]);
        }
        ControlFlow::Continue(())
    }

    /// Hands out the line that began in an earlier chunk and ends with
    /// `piece`. Called through `dyn`, so that the hot loop stays the only
    /// place `each` is inlined.
    #[inline(never)]
    fn complete(
        &mut self,
        piece: &[u8],
        composer: &mut Composer,
        each: &mut dyn FnMut(&mut Composer, Line<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.extend(piece);
        self.assembled.clear();
        std::mem::swap(&mut self.assembled, &mut self.partial);
        let len = std::mem::take(&mut self.partial_len);
        each(composer, self.check_assembled(len))
    }

    /// Hands out a line the common case did not take.
    #[inline(never)]
    fn special(
        &self,
        piece: &[u8],
        utf8: bool,
        composer: &mut Composer,
        each: &mut dyn FnMut(&mut Composer, Line<'_>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        each(composer, self.check(piece, utf8))
    }

    /// The last line, if the input ended without a line end.
    fn finish(&mut self) -> Option<Line<'_>> {
        if self.partial_len == 0 {
            return None;
        }
        self.assembled.clear();
        std::mem::swap(&mut self.assembled, &mut self.partial);
        let len = std::mem::take(&mut self.partial_len);
        Some(self.check_assembled(len))
    }

    fn extend(&mut self, piece: &[u8]) {
        let room = self.limit.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&piece[..piece.len().min(room)]);
        self.partial_len += piece.len();
    }

    fn check<'a>(&self, line: &'a [u8], utf8: bool) -> Line<'a> {
        if line.len() > self.limit {
            Line::TooLong(line.len() - usize::from(line.ends_with(b"\r")))
        } else {
            Line::Complete(line, utf8)
        }
    }

    fn check_assembled(&self, len: usize) -> Line<'_> {
        if len > self.limit {
            Line::TooLong(len)
        } else {
            Line::Complete(&self.assembled, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::FrameReader;
    use proptest::prelude::*;
    use std::sync::mpsc;

    /// Hands out at most `size` bytes per read, so lines span reads.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn sent_for(input: &[u8], max: usize) -> (Vec<String>, Vec<String>) {
        let whole = sent_in_reads_of(input, max, usize::MAX);
        for size in [1, 2, 3, 7] {
            assert_eq!(sent_in_reads_of(input, max, size), whole, "reads of {size}");
        }
        whole
    }

    fn sent_in_reads_of(input: &[u8], max: usize, size: usize) -> (Vec<String>, Vec<String>) {
        let recipient = Arc::new(Recipient::default());
        let outbox = Arc::new(Outbox::new());
        recipient.set(Some(Arc::clone(&outbox)));
        let (tx, rx) = mpsc::channel();
        let (shown, _) = mpsc::channel();
        let composer = Composer::new(
            max,
            recipient,
            Output::new(crate::console::event::Events::new(shown)),
            Room::Wait,
            false,
        );
        read_plain(
            Unwatched(Trickle(input, size)),
            composer,
            crate::console::event::Events::new(tx.clone()),
            AfterQuit::Continue,
        );
        outbox.close();
        let mut bytes = Vec::new();
        let mut batches = Vec::new();
        while outbox.take_now(&mut batches) {
            batches.iter().for_each(|b| bytes.extend_from_slice(b));
        }
        let mut frames = FrameReader::new(&bytes[..], max);
        let mut sent = Vec::new();
        while let Some(payload) = frames.read_frame().unwrap() {
            sent.push(String::from_utf8(payload.to_vec()).unwrap());
        }
        let events = rx.try_iter().map(|e| format!("{e:?}")).collect();
        (sent, events)
    }

    /// What the rules say becomes of `input`, one line at a time: the
    /// reference the batched path must match.
    fn sent_by_the_rules(input: &[u8], max: usize) -> (Vec<String>, Vec<String>) {
        let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|last| last.is_empty()) {
            lines.pop();
        }
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        for line in lines {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if line == b"q" {
                events.push("Input(Quit)".to_string());
                continue;
            }
            let text = String::from_utf8_lossy(line).into_owned();
            if line.len() <= max && text.len() <= max {
                sent.push(text);
            }
        }
        events.push("Input(Closed)".to_string());
        (sent, events)
    }

    /// Lines of every kind: plain, with `\r`, empty, `q`, long, not UTF-8.
    fn input() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            6 => proptest::collection::vec(0x20u8..0x7f, 2..80),
            1 => Just(b"q".to_vec()),
            1 => Just(Vec::new()),
            1 => proptest::collection::vec(0x20u8..0x7f, 0..3),
            1 => proptest::collection::vec(any::<u8>(), 0..40),
            1 => Just("你好 é".as_bytes().to_vec()),
            1 => proptest::collection::vec(b'x'..=b'x', 90..300),
        ];
        let ending = prop_oneof![4 => Just(&b"\n"[..]), 1 => Just(&b"\r\n"[..])];
        (
            proptest::collection::vec((line, ending), 0..60),
            proptest::collection::vec(0x20u8..0x7f, 0..5),
        )
            .prop_map(|(lines, last)| {
                let mut input: Vec<u8> = lines
                    .into_iter()
                    .flat_map(|(l, e)| [l, e.to_vec()].concat())
                    .collect();
                input.extend_from_slice(&last);
                input
            })
    }

    proptest! {
        /// Under any chunking, the batched path sends exactly what the
        /// rules say, line by line, in order.
        #[test]
        fn batched_lines_match_the_rules_line_by_line(
            input in input(),
            size in 1usize..400,
            max in 1usize..120,
        ) {
            let expected = sent_by_the_rules(&input, max);
            prop_assert_eq!(sent_in_reads_of(&input, max, size), expected.clone());
            prop_assert_eq!(sent_in_reads_of(&input, max, usize::MAX), expected);
        }
    }

    #[test]
    fn lines_become_frames_by_the_rules() {
        let (sent, events) = sent_for(
            b"hi\r\n\n\r\n\xe4\xbd\xa0\xe5\xa5\xbd\nbad \xff\nq\nafter\nlast",
            16,
        );
        assert_eq!(sent, ["hi", "你好", "bad \u{fffd}", "after", "last"]);
        assert_eq!(events, ["Input(Quit)", "Input(Closed)"]);
    }

    #[test]
    fn lines_over_the_maximum_are_refused_and_the_rest_go_on() {
        let input = b"12345\n123456\n1234567890\n12345\r\n123456\r\nok";
        let (sent, _) = sent_for(input, 5);
        assert_eq!(sent, ["12345", "12345", "ok"]);
        let (sent, _) = sent_for(b"12\n1234567\rxyz", 5);
        assert_eq!(sent, ["12"]);
    }

    /// Issue 20, item 1: a message of several lines (the editor's) goes
    /// whole to a peer that takes line breaks, and a line each, empty ones
    /// left out, to one that does not; a command of several lines to the
    /// latter is not sent at all (its later lines would go as messages).
    #[test]
    fn a_message_of_several_lines_goes_whole_or_a_line_each() {
        for whole in [true, false] {
            let recipient = Arc::new(Recipient::default());
            let outbox = Arc::new(Outbox::new());
            if whole {
                outbox.take_line_breaks();
            }
            recipient.set(Some(Arc::clone(&outbox)));
            let (shown, errors) = mpsc::channel();
            let output = Output::new(crate::console::event::Events::new(shown));
            let mut composer =
                Composer::new(100, recipient, Arc::clone(&output), Room::Take, false);
            composer.enter(b"one\n\ntwo\r\nthree");
            composer.enter(b"/msg bob hi\nthere");
            composer.enter(b"plain");
            composer.flush();
            outbox.close();
            let mut bytes = Vec::new();
            let mut batches = Vec::new();
            while outbox.take_now(&mut batches) {
                batches.iter().for_each(|b| bytes.extend_from_slice(b));
            }
            let mut frames = FrameReader::new(&bytes[..], 100);
            let mut sent = Vec::new();
            while let Some(payload) = frames.read_frame().unwrap() {
                sent.push(String::from_utf8(payload.to_vec()).unwrap());
            }
            match whole {
                true => {
                    assert_eq!(sent, ["one\n\ntwo\nthree", "/msg bob hi\nthere", "plain"]);
                    assert_eq!(outbox.lines(), 3);
                }
                false => {
                    assert_eq!(sent, ["one", "two", "three", "plain"]);
                    assert_eq!(outbox.lines(), 4);
                    let mut said = Vec::new();
                    output.take(&mut said, false);
                    assert!(
                        format!("{said:?}").contains("a command of several lines is not sent"),
                        "{said:?}"
                    );
                }
            }
            drop(errors);
        }
    }

    /// In a room, a command of several lines other than /msg and /me is
    /// refused whole (its later lines went nowhere without a word); with
    /// nobody connected, a message of several lines is one not sent.
    #[test]
    fn a_command_of_several_lines_is_refused_and_nobody_connected_counts_one() {
        let recipient = Arc::new(Recipient::default());
        recipient.answer_locally(Box::new(|_| None));
        let outbox = Arc::new(Outbox::new());
        outbox.take_line_breaks();
        recipient.set(Some(Arc::clone(&outbox)));
        let (shown, _keep) = mpsc::channel();
        let output = Output::new(crate::console::event::Events::new(shown));
        let mut composer = Composer::new(
            100,
            Arc::clone(&recipient),
            Arc::clone(&output),
            Room::Take,
            false,
        );
        for text in [
            &b"/who\nmore"[..],
            b"/me waves\nagain",
            b"//x\ny",
            b"/msgx\ny",
        ] {
            composer.enter(text);
        }
        composer.flush();
        assert_eq!(outbox.lines(), 2, "/me and //x went");
        let mut said = Vec::new();
        output.take(&mut said, false);
        let said = format!("{said:?}");
        assert_eq!(
            said.matches("only /msg and /me take several lines").count(),
            2,
            "{said}"
        );
        recipient.set(None);
        composer.enter(b"a\nb\nc");
        composer.flush();
        composer.tell_rest();
        let mut said = Vec::new();
        output.take(&mut said, false);
        assert!(format!("{said:?}").contains("1 line not sent"), "{said:?}");
    }
}
