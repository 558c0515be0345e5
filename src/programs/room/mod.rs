//! Room mode (`chat-server --room`): every client and the operator in one
//! room, each message relayed to everyone else under its sender's name.
//!
//! The room's parts live in their layers: its forms on the wire and what
//! a name may be in [`crate::wire::room`] and [`crate::wire::names`]; the
//! room itself (who is here, what was said, each member's pace, what goes
//! to whom, its commands and deadlines), a state machine with no I/O, in
//! [`crate::state::room`]. Here: [`service`], the room on the server's
//! event loop ([`crate::engine`]), and [`view`], the client's side (how it
//! reads a room server's frames).
//!
//! Threads: one, the event loop, runs the room and every member's
//! connection; besides it only the operator's console has threads (its
//! input, and its output). The operator's lines reach the loop through an
//! outbox that wakes it.

mod service;
mod silent;
pub(crate) mod view;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use crate::console::input::AfterQuit;
use crate::console::outbox::Outbox;
use crate::engine::Listening;
pub use crate::engine::TlsConfig;
use crate::programs::server::{Opened, Surroundings, open, run_to_end};
use crate::state::access::Access;
use crate::state::room::flow::{self, Flow};
use crate::state::room::{Room, Settings};
use crate::wire::names;
use crate::wire::room as wire;
use crate::{Error, Exit};
use service::RoomService;

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    /// Members at most; one more is told the room is full.
    pub max_clients: usize,
    /// Bytes that may wait for a member while the room reads its talkers:
    /// past it, nobody is read until that member takes some.
    pub backlog: usize,
    /// Bytes a second a member may talk, sustained; past it, its lines are
    /// taken more slowly.
    pub rate: usize,
    /// The operator's name.
    pub name: String,
    pub idle_timeout: Option<Duration>,
    /// A member must have sent something (one whole frame) within this of
    /// joining, or it is let go (`None`: never; see
    /// [`crate::state::first_words`]).
    pub speak_within: Option<Duration>,
    /// A peer that answers nothing this long is taken as lost (`None`: TCP's own
    /// limits, about 15 minutes while bytes are in flight, never while idle).
    pub dead_after: Option<Duration>,
    /// Speak version 2 with peers that offer it (acknowledgements and
    /// heartbeats); false: version 1 only.
    pub sessions: bool,
    /// How long a member's place is kept after its connection is lost, for
    /// it to come back (`None`: not at all).
    pub resume_for: Option<Duration>,
    /// TLS, if the server speaks it.
    pub tls: Option<TlsConfig>,
    pub access: Access,
}

/// Whether a server's first frame is a room's greeting.
pub(crate) fn is_greeting(first: &[u8]) -> bool {
    std::str::from_utf8(first).is_ok_and(wire::is_room_greeting)
}

/// The largest message a room takes from a member, by its greeting.
pub(crate) fn takes(first: &[u8]) -> Option<usize> {
    wire::takes(first)
}

/// The largest frame a room's greeting (its first frame) says it sends.
pub(crate) fn declared_max(first: &[u8]) -> Option<usize> {
    wire::declared_max(first)
}

/// Checks a name given on the command line. The room's word for the
/// reader of a private message is nobody's name (the room would give a
/// member a suffix, `you-2`; the operator has no other way to be told).
pub fn parse_name(text: &str) -> Result<String, String> {
    names::check(text)?;
    if wire::names_the_reader(text) {
        return Err(format!(
            "a room calls the reader of a private message {:?} (\"alice \u{2192} you: hi\"), so nobody may be",
            wire::READER
        ));
    }
    Ok(text.to_string())
}

/// Runs the room on `listener`, which is already bound, until the operator
/// closes it (`q`) or is told to stop.
pub(crate) fn run(
    listener: TcpListener,
    config: Config,
    around: Surroundings,
) -> Result<Exit, Error> {
    let listening = Listening::new(
        config.tls.as_ref(),
        &config.access,
        config.idle_timeout,
        config.dead_after,
        config.max_message_size,
        config.sessions,
    );
    let Opened {
        events,
        inbox,
        console,
        mut engine,
        address,
    } = open(listener, listening, "> ", around)?;
    engine.keep_sessions(config.sessions && config.resume_for.is_some());
    let output = Arc::clone(&console.output);
    let lines = {
        let events = events.clone();
        Arc::new(Outbox::waking(move || events.wake()))
    };
    // The room takes the operator's messages of several lines whole, as
    // any member's that can send them, and relays each as its reader takes it.
    lines.take_line_breaks();
    console.recipient.set(Some(Arc::clone(&lines)));
    console
        .recipient
        .answer_locally(Box::new(crate::state::room::commands::answered_locally));
    let name = config.name.clone();
    output.set_me(&name);
    let mut service = RoomService {
        room: Room::new(Settings {
            max_message_size: config.max_message_size,
            max_clients: config.max_clients,
            backlog: config.backlog,
            rate: config.rate,
            operator: config.name,
        }),
        output: Arc::clone(&output),
        lines,
        inbox,
        held: Vec::new(),
        exit: None,
        paused: BTreeSet::new(),
        turns: Default::default(),
        flow: Flow::new(config.backlog, flow::STALL),
        cut: BTreeSet::new(),
        frames: Vec::new(),
        resume_for: config.resume_for,
        backlog: config.backlog,
        first_words: crate::state::first_words::FirstWords::new(config.speak_within),
        told: Default::default(),
        turned_away: crate::state::first_words::Told::new("clients turned away"),
    };
    output.status(format!("listening on {address}"));
    output.status(format!(
        "the room is open; you are {name}; /help lists the commands, q closes the room"
    ));
    console.start_input(&events, AfterQuit::Continue)?;
    Ok(run_to_end(
        &mut engine,
        &mut service,
        &console,
        &events,
        |s| s.exit,
    ))
}
