//! A TCP chat pair: `chat-server` and `chat-client` let people talk by
//! typing lines, over the length-prefixed protocol in `docs/PROTOCOL.md`.
//!
//! Layers, each using only those above it:
//! - The wire: [`frame`] (a 4-byte big-endian length before each payload),
//!   [`display`] (a peer's text made safe to show), [`scan`] (vectorized
//!   scans of whole buffers), [`farewell`] (the refusal's form), and the
//!   room's forms in `room::wire`.
//! - State machines with no I/O and no clock of their own, fed the time:
//!   [`ending`] (how a connection ends), `room::state` (who is in a room,
//!   what goes to whom), `room::pace` (how fast a member may talk),
//!   `tls::code`'s `ServerExchange` and `Gate` (the shared code), and
//!   [`throttle`], [`access`].
//! - The console: [`terminal`] (plain lines or the line editor), [`output`]
//!   (everything shown, through one queue), [`input`] (typed lines turned
//!   into frames), [`outbox`] (the bounded queue from the user's lines to a
//!   connection), [`event`] (what a program's main thread reacts to).
//! - The I/O engine: [`engine`], the server's one event loop over every
//!   socket (the listener, clients at the gate, conversations, room
//!   members), with TLS by rustls' non-blocking API and timers as a
//!   deadline heap; [`transport`] and [`connection`], the client's socket
//!   and its two threads; [`tls`], identities and trust; [`platform`].
//! - The programs: [`server`] (one conversation at a time, a waiting line),
//!   [`room`] (everyone in one room), [`client`]; the binaries in `src/bin/`
//!   only parse arguments, run one of these, and report. [`errors`] words
//!   failures for all of them; [`outcome`] holds the typed errors they give
//!   back to the binaries, and is the one place that turns an outcome into
//!   an exit status.
//!
//! Not yet so: the console and the client's connection still know rooms
//! (the client's hold for a room's greeting in [`outbox`] and [`connection`],
//! room commands answered in [`input`], room lines in [`output`]); they are
//! to move up into the client program.
//!
//! Threads. The server: its main thread runs the event loop, which reads,
//! writes and decides for every connection; besides it only the operator's
//! console has threads, one reading input (the plain reader or the editor's
//! key reader) and one showing output (the plain writer or the editor). The
//! client: its main thread decides; its connection has a receiving thread
//! (socket to output) and a sending thread (outbox to socket); the console
//! has the same two threads as the server's.
//!
//! Where a received byte goes (server): the loop reads it into its one
//! scratch buffer ([`engine::conn::Conn`]); whole frames go to the program
//! (`Service::readable`): in a conversation they are made safe to show and
//! queued on [`output`], whose thread writes them (or the loop itself, when
//! stdout takes them at once); in a room, `room::state` relays each message
//! to the other members' connections, whose queued frames the loop writes
//! at the end of its round. A typed line: the input thread frames it into
//! an [`outbox`], which wakes the loop; the loop moves it to the
//! connection as far as the peer takes it.
//!
//! Who decides that a connection ends: its [`ending::Closing`], stepped by
//! the loop with the bytes moved and what happened (the peer's end of
//! stream, a failure, the operator's `q`, Ctrl-C, the idle timeout); the
//! program is told (`engine::News`) and says why to the people concerned.
//! Exit statuses are [`Exit`]'s, chosen in [`outcome`] alone.

// The layout above links to private modules on purpose: it is for readers
// of the source (`cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod access;
pub mod client;
pub mod clock;
mod connection;
mod conversation;
mod display;
mod ending;
mod engine;
mod errors;
mod event;
mod farewell;
pub mod frame;
mod input;
mod outbox;
mod outcome;
mod output;
mod platform;
pub mod room;
mod scan;
pub mod server;
mod terminal;
mod throttle;
pub mod tls;
mod transport;

pub use event::Shutdown;
pub use outcome::{Error, Exit, parse_args, report};
pub use terminal::Stdio;

/// Locks `mutex`, poisoned or not: nothing here can leave shared state half
/// updated when a thread panics, so the state is still good to use.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks that `text` has the form `HOST:PORT` (IPv6 as `[::1]:PORT`), for
/// the command lines: a malformed address is a bad argument (status 2), one
/// that does not resolve or connect is a failure (status 1).
pub fn parse_address(text: &str) -> Result<String, String> {
    let expected = "expected HOST:PORT, such as 127.0.0.1:9527 or [::1]:9527";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("no port: {expected}"));
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("no host: {expected}"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("an IPv6 address goes in brackets: {expected}"));
    }
    match port.parse::<u16>() {
        Ok(_) => Ok(text.to_string()),
        Err(_) => Err(format!(
            "the port must be a number from 0 to 65535: {expected}"
        )),
    }
}

/// Parses `--idle-timeout`: whole seconds, at least 1.
pub fn parse_idle_seconds(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs >= 1 => Ok(secs),
        _ => Err("expected a whole number of seconds, at least 1".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_address;

    #[test]
    fn addresses_are_checked_for_form() {
        for good in [
            "127.0.0.1:9527",
            "localhost:0",
            "[::1]:9527",
            "example.com:65535",
        ] {
            assert_eq!(parse_address(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:99999",
            ":9527",
            "::1:9527",
            "host:",
            "[]:1",
            "a:b",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?}");
        }
    }
}
