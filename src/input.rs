//! The user's lines: read, checked, and turned into frames for the current
//! conversation.
//!
//! [`Composer`] holds the rules every typed line goes through (a trailing `\r`
//! dropped, empty lines skipped, `q` alone quits, a line over the maximum refused
//! locally). [`read_plain`] feeds it from a pipe or file, batching every line
//! already at hand into one hand-over; the line editor feeds it one line at a
//! time (see [`crate::terminal`]).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::conversation::{Event, Input, lowercase_os_error};
use crate::frame::{TooLong, encode_frame};
use crate::outbox::{Outbox, Pushed};
use crate::screen::Screen;

/// Read buffer for piped input.
const READ_BUFFER: usize = 256 * 1024;

/// A batch is handed over at this size even if more lines are at hand.
const BATCH_LIMIT: usize = 256 * 1024;

/// Where typed lines go: the current conversation's outbox, if there is one.
#[derive(Default)]
pub struct Recipient {
    slot: Mutex<Option<Arc<Outbox>>>,
}

impl Recipient {
    pub fn set(&self, outbox: Option<Arc<Outbox>>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = outbox;
    }

    fn current(&self) -> Option<Arc<Outbox>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
    max_message_size: usize,
    batch: Vec<u8>,
    lines_in_batch: usize,
    recipient: Arc<Recipient>,
    screen: Arc<dyn Screen>,
}

impl Composer {
    pub fn new(
        max_message_size: usize,
        recipient: Arc<Recipient>,
        screen: Arc<dyn Screen>,
    ) -> Self {
        Self {
            max_message_size,
            batch: Vec::new(),
            lines_in_batch: 0,
            recipient,
            screen,
        }
    }

    /// Takes one line without its `\n`.
    pub fn enter(&mut self, line: &[u8]) -> Entered {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Entered::Accepted;
        }
        if line == b"q" {
            self.flush();
            return Entered::Quit;
        }
        // The protocol carries UTF-8; anything else is sent with U+FFFD in place.
        let text = String::from_utf8_lossy(line);
        let text: &[u8] = match &text {
            Cow::Borrowed(s) => s.as_bytes(),
            Cow::Owned(s) => s.as_bytes(),
        };
        match encode_frame(&mut self.batch, text, self.max_message_size) {
            Ok(()) => self.lines_in_batch += 1,
            Err(_) => self.refuse(text.len()),
        }
        if self.batch.len() >= BATCH_LIMIT {
            self.flush();
        }
        Entered::Accepted
    }

    /// Hands the lines taken so far to the current conversation.
    pub fn flush(&mut self) {
        if self.lines_in_batch == 0 {
            return;
        }
        let lines = std::mem::take(&mut self.lines_in_batch);
        let pushed = match self.recipient.current() {
            Some(outbox) => outbox.push(&mut self.batch),
            None => Pushed::Closed,
        };
        if pushed == Pushed::Closed {
            self.batch.clear();
            let what = if lines == 1 {
                "1 line".to_string()
            } else {
                format!("{lines} lines")
            };
            self.screen
                .error(&format!("nobody is connected; {what} not sent"));
        }
    }

    /// Reports a line over the maximum, which is not sent.
    pub fn refuse(&self, len: usize) {
        let too_long = TooLong {
            len,
            max: self.max_message_size,
        };
        self.screen.error(&format!("{too_long}; not sent"));
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

/// Reads lines from a pipe or file until it ends, reporting `q` and the end of
/// input as events. Lines already buffered are handed over together; a line is
/// never held back waiting for more input.
pub fn read_plain(
    input: impl Read,
    mut composer: Composer,
    events: Sender<Event>,
    after_quit: AfterQuit,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, input);
    let mut line = Vec::new();
    // Room for a maximal line and its "\r\n": anything longer is refused.
    let limit = composer.max_message_size as u64 + 2;
    loop {
        line.clear();
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                composer.flush();
                composer.screen.error(&format!(
                    "cannot read standard input: {}",
                    lowercase_os_error(&e)
                ));
                break;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() as u64 == limit {
            let rest = skip_line(&mut reader);
            composer.refuse(line.len() + rest);
            continue;
        }
        if composer.enter(&line) == Entered::Quit {
            let _ = events.send(Event::Input(Input::Quit));
            if after_quit == AfterQuit::Stop {
                return;
            }
        }
        if reader.buffer().is_empty() {
            composer.flush();
        }
    }
    composer.flush();
    let _ = events.send(Event::Input(Input::Closed));
}

/// Discards the rest of an over-long line, returning how many bytes it had.
fn skip_line(reader: &mut impl BufRead) -> usize {
    let mut skipped = 0;
    loop {
        let (used, done) = match reader.fill_buf() {
            Ok([]) | Err(_) => return skipped,
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buf.len(), false),
            },
        };
        reader.consume(used);
        if done {
            return skipped + used - 1;
        }
        skipped += used;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameReader;
    use std::sync::mpsc;

    struct Quiet;
    impl Screen for Quiet {
        fn status(&self, _: &str) {}
        fn error(&self, _: &str) {}
        fn messages(&self, _: &str) -> Box<dyn crate::screen::MessageSink> {
            unimplemented!()
        }
    }

    fn sent_for(input: &[u8], max: usize) -> (Vec<String>, Vec<String>) {
        let recipient = Arc::new(Recipient::default());
        let outbox = Arc::new(Outbox::new());
        recipient.set(Some(Arc::clone(&outbox)));
        let (tx, rx) = mpsc::channel();
        let composer = Composer::new(max, recipient, Arc::new(Quiet));
        read_plain(input, composer, tx, AfterQuit::Continue);
        outbox.close();
        let mut bytes = Vec::new();
        let mut buf = Vec::new();
        while outbox.take(&mut buf) {
            bytes.append(&mut buf);
        }
        let mut frames = FrameReader::new(&bytes[..], max);
        let mut sent = Vec::new();
        while let Some(payload) = frames.read_frame().unwrap() {
            sent.push(String::from_utf8(payload.to_vec()).unwrap());
        }
        let events = rx.try_iter().map(|e| format!("{e:?}")).collect();
        (sent, events)
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
        let input = b"12345\n123456\n1234567890\n12345\r\nok";
        let (sent, _) = sent_for(input, 5);
        assert_eq!(sent, ["12345", "12345", "ok"]);
    }
}
