//! Where things are shown: received messages on stdout, status and errors on
//! stderr.
//!
//! [`Screen`] is what the rest of the crate talks to; [`PlainScreen`] is the
//! form for pipes and files, where each received message is written as exactly
//! its (escaped) text and `\n`. The line-editor form lives in
//! [`crate::terminal`].

use std::io::{self, Write};

use crate::display::push_visible;

/// Plain output is flushed when this much is buffered even if more messages are
/// at hand, so memory stays flat under a flood.
const FLUSH_AT: usize = 64 * 1024;

/// The user's side of the program: what the peer said, and what is going on.
pub trait Screen: Send + Sync {
    /// A status line: listening, connected, waiting, left.
    fn status(&self, text: &str);
    /// A one-line error, for the user and not the peer.
    fn error(&self, text: &str);
    /// A sink for one peer's messages, used from that conversation's receiving
    /// thread. `from` names the peer.
    fn messages(&self, from: &str) -> Box<dyn MessageSink>;
}

/// Shows one peer's messages in the order they arrive.
pub trait MessageSink: Send {
    /// Shows one message. `more` says whether another is already at hand, so
    /// output can be batched under load and still shown at once when it stops.
    /// An error means the output is gone (for example a closed pipe).
    fn show(&mut self, payload: &[u8], more: bool) -> io::Result<()>;
}

/// Messages to stdout, status to stderr, no decoration.
pub struct PlainScreen;

impl Screen for PlainScreen {
    fn status(&self, text: &str) {
        eprintln!("{text}");
    }

    fn error(&self, text: &str) {
        eprintln!("error: {text}");
    }

    fn messages(&self, _from: &str) -> Box<dyn MessageSink> {
        Box::new(PlainSink {
            buf: Vec::with_capacity(FLUSH_AT + 4096),
        })
    }
}

struct PlainSink {
    buf: Vec<u8>,
}

impl MessageSink for PlainSink {
    fn show(&mut self, payload: &[u8], more: bool) -> io::Result<()> {
        push_visible(&mut self.buf, payload);
        self.buf.push(b'\n');
        if !more || self.buf.len() >= FLUSH_AT {
            let mut out = io::stdout().lock();
            let written = out.write_all(&self.buf).and_then(|()| out.flush());
            self.buf.clear();
            written?;
        }
        Ok(())
    }
}
