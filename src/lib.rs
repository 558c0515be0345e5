//! A TCP chat pair: `chat-server` and `chat-client` let two people talk by
//! typing lines, full duplex, over the length-prefixed protocol in
//! `PROTOCOL.md`.
//!
//! Layout:
//! - [`frame`]: the wire format, a 4-byte big-endian length before each payload.
//! - [`display`]: how a peer's text is made safe to show.
//! - [`ending`]: how a conversation ends, a state machine fed the time.
//! - [`connection`]: one socket, its receiving thread and its only writer.
//! - [`outbox`]: the bounded queue between the user's lines and that writer.
//! - [`conversation`]: drives a connection by the ending's decisions.
//! - [`output`]: everything shown, through one queue and one consumer.
//! - [`input`]: the user's lines turned into frames.
//! - [`terminal`]: the user's side: plain pipes or the line editor.
//! - [`event`]: what the main thread reacts to.
//! - [`errors`]: how failures are worded.
//! - [`queue`]: the server's line of waiting clients.
//! - [`room`]: room mode, everyone with everyone under names nobody can
//!   fake; its own `//!` doc has its layout and threads.
//! - [`scan`]: vectorized scans of whole buffers (printable text, line ends).
//! - [`throttle`]: reports of recurring trouble, at most one per period.
//! - [`platform`]: what differs between operating systems.
//! - [`transport`]: what carries a connection's frames: TCP, or TLS over it.
//! - [`tls`]: the server's identity, whom a client trusts, the shared code.
//! - [`access`]: which addresses may connect to the server.
//! - [`gate`]: what every accepted connection goes through first: access
//!   control, then TLS and the code, for the waiting line and the room alike.
//! - [`farewell`]: how a client the server will not serve is told why and
//!   let go.
//! - [`server`], [`client`]: the two programs, called by the binaries in
//!   `src/bin/`, which only parse arguments.
//!
//! Threads: the main thread runs the programs and every decision; it never
//! writes to the terminal, stdout or stderr and never waits on them. Each
//! connection has a receiving thread (socket to output queue) and a sending
//! thread (outbox to socket). One thread reads the user's input (the plain
//! reader, or the line editor's key reader), one consumes the output queue
//! (the plain writer, or the line editor). The server adds an accepting
//! thread and one that tidies its line of waiting clients. Two hand-offs
//! are skipped when the thread handed to is idle and nothing is queued:
//! whoever pushes lines to a conversation's outbox sends them itself, and
//! the receiving thread writes to stdout itself, each only as far as the
//! socket or stdout takes the bytes without waiting (what is left goes to
//! the other thread as before), so neither can be held up by a peer or a
//! stdout that reads nothing, and each socket and stdout still has one
//! writer at a time.

// The layout above links to private modules on purpose: it is for readers
// of the source (`cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod access;
pub mod client;
mod connection;
mod conversation;
mod display;
mod ending;
mod engine;
pub mod errors;
mod event;
mod farewell;
pub mod frame;
mod input;
mod outbox;
mod output;
mod platform;
pub mod room;
mod scan;
pub mod server;
mod terminal;
mod throttle;
pub mod tls;
mod transport;

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

/// Parses the command line, printing clap's message (help, version, or a
/// bad argument with status 2) without panicking on a closed stream.
pub fn parse_args<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            std::process::exit(e.exit_code());
        }
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
