//! A TCP chat pair: `chat-server` and `chat-client` let people talk by
//! typing lines, over the length-prefixed protocol in `docs/PROTOCOL.md`.
//!
//! Layers, one folder each, each using only those listed before it:
//! - [`wire`]: the protocol's forms. [`wire::frame`] (a 4-byte big-endian
//!   length before each payload), the room's forms ([`wire::room`]) and
//!   names ([`wire::names`]), the refusal's ([`wire::farewell`]), the
//!   waiting line's notices ([`wire::line`]), version 2's offer and control
//!   frames ([`wire::session`]), a peer's text made safe to show
//!   ([`wire::display`]), whole-buffer scans.
//! - [`state`]: state machines with no I/O and no clock of their own, fed
//!   the time: how a connection ends ([`state::ending`]), the room (who is
//!   in it, what goes to whom, each member's pace: [`state::room`]), a
//!   version 2 session's acknowledgements and heartbeats
//!   ([`state::session`]), the first-message deadline of clients that
//!   hold a place ([`state::first_words`]), the network an address counts
//!   in ([`state::prefix`]), [`state::throttle`],
//!   [`state::access`]; and
//!   [`state::clock`], where the
//!   programs take the time from (the system's, or one a test moves).
//! - [`console`]: the user's side. Plain lines or the line editor, on the
//!   process's standard streams or any others ([`Stdio`]);
//!   [`console::output`] (everything shown, through one queue),
//!   [`console::input`] (typed lines turned into frames),
//!   [`console::outbox`] (the bounded queue from the user's lines to a
//!   connection), [`console::event`] (what a program reacts to, and the
//!   [`Shutdown`] request the binaries point Ctrl-C at).
//! - [`engine`]: the I/O. One event loop per program over every socket
//!   (the server's listener, clients at its gate, conversations, room
//!   members; the client's one connection, adopted once made), with TLS by
//!   rustls' non-blocking API and timers as a deadline heap, each
//!   connection ([`engine::conn`], what it holds for its peer in
//!   [`engine::outgoing`]) written by the loop or, while the loop holds
//!   nothing for it, by the thread that read a typed line;
//!   [`engine::tls`] (identities, trust, the shared code, and the client's
//!   blocking handshake before its loop starts).
//! - [`programs`]: [`server`] (one conversation at a time and a waiting
//!   line, or with [`room`] everyone in one room), [`client`], and
//!   [`programs::outcome`], the typed errors they give back and the one
//!   place that turns an outcome into an exit status. The binaries in
//!   `src/bin/` only parse arguments, run one of these, and report.
//!
//! At the root, for every layer: [`errors`] (how failures are worded: one
//! lowercase line) and [`platform`] (what differs between systems).
//!
//! The console never names the room: what the client's reading of a room
//! found goes to the client program ([`programs::room::view::Found`]), not
//! through the console's events; the room's unknown commands are answered
//! through a hook the program sets ([`console::input::Recipient`]); the
//! console shows lines from named senders, whoever names them.
//!
//! Threads, the same in both programs: the thread that calls
//! [`server::Server::run`] or [`client::run`] runs the event loop, which
//! reads, writes and decides for every connection; besides it only the
//! user's console has threads, one reading input (the plain reader or the
//! editor's key reader) and one showing output (the editor; with plain
//! output two, one writing messages to stdout and one status lines and
//! errors to stderr, so that a stdout nobody reads cannot hold the status
//! lines: [`console::output`] says in what order they go). `run` returns
//! once the loop is done and the output threads have shown what they
//! could; the input thread ends at its input's end (a blocking read of a
//! process's stdin cannot be taken back portably).
//!
//! Where a received byte goes: the loop reads it into its one
//! scratch buffer ([`engine::conn::Conn`]); whole frames go to the program
//! (`Service::readable`): in a conversation (either program) they are made
//! safe to show and queued on [`console::output`], whose thread writes
//! them (or the loop itself, when stdout takes them at once); in a room,
//! [`state::room`] relays each message to the other members' connections,
//! whose queued frames the loop writes at the end of its round. A typed
//! line: the input thread frames it into an [`console::outbox`] and writes
//! it to the socket itself if the loop holds nothing for that connection
//! (Unix; sealed in the session it shares with the loop, under TLS);
//! otherwise the outbox wakes the loop, which moves it
//! to the connection as far as the peer takes it.
//!
//! Version 2 between our programs: each connection's
//! [`engine::conn::Conn`] keeps a peer's control frames apart from its
//! messages, and the loop keeps the session ([`state::session::Session`]):
//! it answers the offer, acknowledges what the service took, sends
//! heartbeats, and tells the ending how long the peer has been silent.
//!
//! Who decides that a connection ends: its [`state::ending::Closing`],
//! stepped by the loop with the time, the bytes moved and what happened
//! (the peer's end of stream, a failure, the operator's `q`, a shutdown
//! request, the idle timeout); the program is told (`engine::News`) and
//! says why to the people concerned. Exit statuses are [`Exit`]'s, chosen
//! in [`programs::outcome`] alone.

// The layout above links to private modules on purpose: it is for readers
// of the source (`cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

mod console;
mod engine;
mod errors;
mod platform;
mod programs;
mod state;
mod wire;

pub use console::event::Shutdown;
pub use console::look::{Bell, Color, Look, Transcript, learn_local_offset};
pub use console::{Stdio, restore_terminal};
pub use engine::tls;
pub use programs::outcome::{
    Error, Exit, Generate, LookArgs, VERSION, generate, parse_args, report,
};
pub use programs::{client, room, server};
pub use state::{access, clock};
pub use wire::frame;

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

/// The largest `--max-message-size`: a message is held whole in memory
/// (by the room, once for each member it waits for), so the setting is a
/// bound on memory and must stay a sane one.
pub const MAX_MESSAGE_CEILING: u64 = 64 << 20;

/// Parses `--max-message-size`: bytes, from 1 to [`MAX_MESSAGE_CEILING`].
pub fn parse_max_message_size(text: &str) -> Result<u32, String> {
    match text.parse::<u64>() {
        Ok(bytes) if (1..=MAX_MESSAGE_CEILING).contains(&bytes) => Ok(bytes as u32),
        _ => Err(format!(
            "expected a number of bytes from 1 to {MAX_MESSAGE_CEILING} (64 MiB): a message is held whole in memory"
        )),
    }
}

/// `--dead-after`'s default: long enough for a Wi-Fi hiccup or a busy
/// link, short enough that a vanished peer is noticed while one waits.
pub const DEFAULT_DEAD_AFTER_SECS: u64 = 15;

/// Parses `--dead-after`: whole seconds, 0 (off) or at least 3 (the
/// system's probes count whole seconds, a first one and four more).
pub fn parse_dead_after(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs == 0 || (3..=86_400).contains(&secs) => Ok(secs),
        _ => Err("expected a whole number of seconds from 3 to 86400, or 0 for never".to_string()),
    }
}

/// `--resume-for`'s default: a laptop that sleeps a few minutes, a train
/// through a tunnel, a change of network, and the conversation goes on.
pub const DEFAULT_RESUME_FOR_SECS: u64 = 300;

/// Parses `--resume-for`: whole seconds, 0 (off) to a day.
pub fn parse_resume_for(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs <= 86_400 => Ok(secs),
        _ => Err("expected a whole number of seconds from 0 (never resume) to 86400".to_string()),
    }
}

/// `--speak-within`'s default: a client that holds a place in the waiting
/// line or the room must have sent something (one whole frame of any kind)
/// within this of getting it. Ours does within a round trip, so 10 s is
/// ample on a slow, lossy link (300 ms, a lost packet or two resent after
/// a second or more), and short enough that connections opened only to
/// hold places free them soon (see `state::first_words`).
pub const DEFAULT_SPEAK_WITHIN_SECS: u64 = 10;

/// Parses `--speak-within`: whole seconds, 0 (never) to an hour.
pub fn parse_speak_within(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs <= 3600 => Ok(secs),
        _ => Err("expected a whole number of seconds from 1 to 3600, or 0 for never".to_string()),
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
