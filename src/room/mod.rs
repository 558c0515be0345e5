//! Room mode (`chat-server --room`): every client and the operator in one
//! room, each message relayed to everyone else under its sender's name.
//!
//! Layout:
//! - [`names`]: what a name may be, and how a taken one gets a suffix.
//! - [`commands`]: `/who`, `/me`, `/nick`, `/help` and `//text`.
//! - [`wire`]: the room's forms on the wire (room protocol 2), built by the
//!   server and read by the client.
//! - [`relay`]: the room's state and the relay, under one lock.
//! - [`clock`]: the room's own deadlines (each member's ending is a
//!   [`crate::ending::Closing`]).
//! - [`view`]: the client's side: how it reads a room server's frames.
//!
//! Threads: each member has a [`Connection`](crate::connection::Connection)
//! of its own, whose receiving thread relays what it reads under the room's
//! lock and whose sending thread is its socket's only writer. Nothing under
//! the lock waits. The operator's lines go through an outbox to a thread
//! that hands them to the room like a member's. The main thread steps every
//! member's ending by the time and its connection's reports; the accepting
//! thread admits newcomers.

mod clock;
pub(crate) mod commands;
mod names;
mod pace;
mod relay;
pub(crate) mod view;
mod wire;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::Exit;
use crate::access::Access;
use crate::ending::Happening;
use crate::errors::{describe_receive_error, describe_send_error};
use crate::event::{Event, Input, ReceiveEnd};
use crate::farewell::Farewells;
use crate::gate::{Admit, TlsConfig, open_gate};
use crate::input::AfterQuit;
use crate::outbox::Outbox;
use crate::output::Output;
use crate::terminal::Console;
use relay::{Finished, OPERATOR, Room};

/// How often refused connections counted meanwhile are looked at, to be
/// reported once their period is over.
const REFUSALS_TIDY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    /// Members at most; one more is told the room is full.
    pub max_clients: usize,
    /// Bytes a member may fall behind before it is disconnected.
    pub backlog: usize,
    /// Bytes a second a member may talk, sustained; past it, its lines are
    /// taken more slowly.
    pub rate: usize,
    /// The operator's name.
    pub name: String,
    pub idle_timeout: Option<Duration>,
    /// TLS, if the server speaks it.
    pub tls: Option<TlsConfig>,
    pub access: Access,
}

/// Whether a server's first frame is a room's greeting.
pub fn is_greeting(first: &[u8]) -> bool {
    std::str::from_utf8(first).is_ok_and(wire::is_room_greeting)
}

/// The largest message a room takes from a member, by its greeting.
pub fn takes(first: &[u8]) -> Option<usize> {
    wire::takes(first)
}

/// The largest frame a room's greeting (its first frame) says it sends.
pub fn declared_max(first: &[u8]) -> Option<usize> {
    wire::declared_max(first)
}

/// Checks a name given on the command line.
pub fn parse_name(text: &str) -> Result<String, String> {
    names::check(text).map(|()| text.to_string())
}

/// Runs the room on `listener`, which is already bound, until the operator
/// closes it (`q`) or Ctrl-C.
pub fn run(listener: TcpListener, mut config: Config) -> io::Result<Exit> {
    // A member must be able to take at least one message of the largest size.
    config.backlog = config.backlog.max(config.max_message_size + 64);
    let (events, inbox) = mpsc::channel();
    let console = Console::open(config.max_message_size, &events, "> ")?;
    let output = Arc::clone(&console.output);
    let address = listener.local_addr()?;
    let name = config.name.clone();
    let (access, tls) = (config.access.clone(), config.tls.clone());
    let farewells = Arc::new(Farewells::default());
    let room = Room::new(
        config,
        events.clone(),
        Arc::clone(&output),
        Arc::clone(&farewells),
    );
    let lines = Arc::new(Outbox::with_backlog_alarm(|| {}));
    console.recipient.set(Some(Arc::clone(&lines)));
    console.recipient.set_room();
    // The operator keeps the members' pace too, until it closes the room:
    // then what it said before is relayed at once.
    let closing = Arc::new(AtomicBool::new(false));
    let operator = {
        let (room, lines, closing) = (Arc::clone(&room), Arc::clone(&lines), Arc::clone(&closing));
        thread::Builder::new()
            .name("operator".into())
            .spawn(move || {
                let mut batches = Vec::new();
                let mut pace = room.pace();
                while lines.take(&mut batches) {
                    for batch in &batches {
                        room.hear(OPERATOR, batch);
                        relay::pause(pace.take(batch.len(), Instant::now()), &[&closing]);
                    }
                }
            })?
    };
    // The operator's lines typed before `q` are queued before `q` is
    // reported; they are relayed before the room closes.
    let mut operator = Some(operator);
    let mut last_words = move || {
        closing.store(true, Ordering::SeqCst);
        lines.close();
        if let Some(thread) = operator.take() {
            let _ = thread.join();
        }
    };
    let refusals = open_gate(
        listener,
        &access,
        tls.as_ref(),
        Arc::clone(&room) as Arc<dyn Admit>,
        &output,
        &farewells,
    )?;
    {
        let output = Arc::clone(&output);
        thread::Builder::new().name("tidy".into()).spawn(move || {
            loop {
                thread::sleep(REFUSALS_TIDY);
                farewells.tidy(Instant::now());
                refusals.report_overdue(&output);
            }
        })?;
    }
    output.status(format!("listening on {address}"));
    output.status(format!(
        "the room is open; you are {name}; /help lists the commands, q closes the room"
    ));
    console.start_input(&events, AfterQuit::Continue)?;
    let exit = serve(&room, &output, &inbox, &mut last_words);
    console.close();
    console.finish_for(exit);
    Ok(exit)
}

/// Reacts to events until the room has closed and every member is gone.
fn serve(
    room: &Room,
    output: &Output,
    inbox: &Receiver<Event>,
    last_words: &mut dyn FnMut(),
) -> Exit {
    let mut exit = None;
    loop {
        let tick = room.tick(Instant::now());
        finish(tick.finished, output);
        if let Some(exit) = exit
            && tick.empty
        {
            return exit;
        }
        let event = match tick.wake_at {
            Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => unreachable!("main holds a sender"),
            },
            None => inbox.recv().expect("main holds a sender"),
        };
        let now = Instant::now();
        let finished = match event {
            Event::Received { id, end } => {
                let happening = match end {
                    ReceiveEnd::Closed => Happening::PeerClosed,
                    ReceiveEnd::Failed(e) => Happening::ReceiveFailed(describe_receive_error(&e)),
                };
                room.happen(id, happening, now)
            }
            Event::Sent { id, result } => {
                let happening = match result {
                    Ok(()) => Happening::SendFinished,
                    Err(e) => Happening::SendFailed(describe_send_error(&e)),
                };
                room.happen(id, happening, now)
            }
            Event::Input(Input::Quit) => {
                last_words();
                let operator = room.operator_name();
                exit.get_or_insert(Exit::Success);
                room.close(Some(&wire::closed_by(&operator)), Happening::Quit, now)
            }
            Event::Input(Input::Closed) => {
                output.status("standard input has ended: from now on, only relaying");
                Vec::new()
            }
            Event::Interrupt | Event::Input(Input::Interrupted) => {
                exit = Some(Exit::Interrupted);
                room.close(
                    Some("the room is closing: the server was interrupted"),
                    Happening::Interrupted,
                    now,
                )
            }
            Event::OutputClosed => {
                exit.get_or_insert(Exit::Success);
                room.close(
                    Some("the room is closing: the server's output has gone"),
                    Happening::OutputClosed,
                    now,
                )
            }
            _ => Vec::new(),
        };
        finish(finished, output);
    }
}

fn finish(finished: Vec<Finished>, output: &Output) {
    for member in finished {
        member.report(output);
    }
}
