//! A TCP chat pair: `chat-server` and `chat-client` let two people talk by
//! typing lines, full duplex, over the length-prefixed protocol in
//! `PROTOCOL.md`.
//!
//! Layout:
//! - [`frame`]: the wire format, a 4-byte big-endian length before each payload.
//! - [`display`]: how a peer's text is made safe to show.
//! - [`outbox`]: the bounded queue between the user's lines and the socket.
//! - [`event`]: what the main thread reacts to.
//! - [`conversation`]: one conversation, its two threads, and how it ends.
//! - [`errors`]: how failures are worded.
//! - [`input`]: the user's lines turned into frames.
//! - [`screen`]: where messages and status are shown.
//! - [`terminal`]: the user's side: plain pipes or the line editor.
//! - [`queue`]: the server's line of waiting clients.
//! - [`server`], [`client`]: the two programs, called by the binaries in
//!   `src/bin/`, which only parse arguments.

pub mod client;
pub mod conversation;
pub mod display;
pub mod errors;
pub mod event;
pub mod frame;
pub mod input;
pub mod outbox;
pub mod queue;
pub mod screen;
pub mod server;
pub mod terminal;

/// Locks `mutex`, poisoned or not: nothing here can leave shared state half
/// updated when a thread panics, so the state is still good to use.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exit status by kind of outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The connection could not be made or failed.
    Failure = 1,
    /// Ctrl-C, as shells report a SIGINT.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}
