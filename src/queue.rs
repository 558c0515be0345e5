//! The server's line of waiting clients.
//!
//! The server talks with one client at a time. Clients that connect meanwhile
//! are accepted into a line of at most `max_waiting`, told by an ordinary text
//! message that the server is busy and their place in it, and told again when
//! the line moves. What a waiting client sends is read ahead and kept, up to
//! [`EARLY_LIMIT`], and delivered first when its turn comes; reading it is how
//! the line sees a client that typed a line and then left (its end of stream
//! would otherwise wait behind the unread line). A client that leaves while
//! waiting is dropped from the line; one more than the line holds is told the
//! server is full and turned away.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::event::Event;
use crate::farewell::{Farewells, refusal};
use crate::output::Output;
use crate::transport::Transport;

/// How often the line looks for clients that left, and tells newcomers the
/// server is busy (so within this of their arrival).
pub const TIDY_INTERVAL: Duration = Duration::from_millis(200);

/// What a waiting client sent is kept up to this; past it, the rest waits in
/// the kernel's buffers (and so does the client's end of stream).
pub const EARLY_LIMIT: usize = 256 * 1024;

/// A notice must reach a waiting client's buffers within this.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Client {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// Whether it waited in line (and so was told the server was busy).
    pub waited: bool,
    /// The place in line it was last told; 0 before its first notice.
    told_place: usize,
    /// What it sent while waiting, read ahead (see [`EARLY_LIMIT`]).
    early: Vec<u8>,
}

impl Client {
    fn new(transport: Transport, peer: SocketAddr) -> Self {
        Self {
            transport,
            peer,
            waited: false,
            told_place: 0,
            early: Vec::new(),
        }
    }

    /// The connection, with what was read ahead put back in front.
    pub fn into_transport(self) -> Transport {
        let mut transport = self.transport;
        transport.unread(self.early);
        transport
    }
}

pub struct WaitingLine {
    state: Mutex<State>,
    max_waiting: usize,
    events: Sender<Event>,
    output: Arc<Output>,
    farewells: Arc<Farewells>,
}

#[derive(Default)]
struct State {
    /// The server has a client, or one handed over and not yet taken.
    serving: bool,
    /// A client for an idle server, waiting for the main thread to take it.
    handed_over: Option<Client>,
    waiting: VecDeque<Client>,
}

impl WaitingLine {
    pub fn new(
        max_waiting: usize,
        events: Sender<Event>,
        output: Arc<Output>,
        farewells: Arc<Farewells>,
    ) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_waiting,
            events,
            output,
            farewells,
        }
    }

    /// Takes in a client that just connected.
    pub fn admit(&self, transport: Transport, peer: SocketAddr) {
        let mut state = self.lock();
        if !state.serving {
            state.serving = true;
            state.handed_over = Some(Client::new(transport, peer));
            drop(state);
            let _ = self.events.send(Event::ClientArrived);
            return;
        }
        if state.waiting.len() >= self.max_waiting {
            let waiting = state.waiting.len();
            drop(state);
            let notice = format!("server is full ({waiting} already waiting); try again later");
            self.farewells.send_off(&transport, &refusal(&notice));
            self.output.status(format!(
                "{peer} turned away: the line is full ({waiting} waiting)"
            ));
            return;
        }
        let place = state.waiting.len() + 1;
        // Told at the next tidy, not now: a conversation that is just ending
        // may free the server first, and then this client is simply served.
        state.waiting.push_back(Client::new(transport, peer));
        drop(state);
        self.output
            .status(format!("{peer} is waiting (number {place} in line)"));
        let _ = self.events.send(Event::LineChanged);
    }

    /// The next client to serve, or `None` (and the server counts as idle, so
    /// the next arrival is handed over at once).
    pub fn next(&self) -> Option<Client> {
        let mut state = self.lock();
        if let Some(client) = state.handed_over.take() {
            return Some(client);
        }
        let Some(client) = state.waiting.pop_front() else {
            state.serving = false;
            return None;
        };
        self.tell_places(&mut state);
        Some(client)
    }

    /// How many clients are waiting.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Drops waiting clients that left and finishes turning clients away. Call
    /// every [`TIDY_INTERVAL`].
    pub fn tidy(&self) {
        let mut state = self.lock();
        let mut left = Vec::new();
        state.waiting.retain_mut(|client| {
            let present = read_ahead(client);
            if !present {
                left.push(client.peer);
            }
            present
        });
        self.tell_places(&mut state);
        drop(state);
        if !left.is_empty() {
            let _ = self.events.send(Event::LineChanged);
        }
        for peer in left {
            self.output.status(format!("{peer} left the line"));
        }
    }

    /// Tells each waiting client that the server is busy and its place, once,
    /// and again whenever its place changes. A client that cannot be told is
    /// dropped.
    fn tell_places(&self, state: &mut State) {
        let mut place = 0;
        state.waiting.retain_mut(|client| {
            let here = place + 1;
            let notice = match client.told_place {
                0 => Some(format!(
                    "server is busy; you are number {here} in line. What you type now is delivered when your turn comes."
                )),
                told if told != here => Some(format!("you are now number {here} in line")),
                _ => None,
            };
            if let Some(notice) = notice {
                if !client.transport.send_notice(&notice, NOTICE_TIMEOUT) {
                    return false;
                }
                client.told_place = here;
                client.waited = true;
            }
            place += 1;
            true
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }
}

/// Reads what a waiting client sent since the last look, within
/// [`EARLY_LIMIT`]; false if it has gone (closed or reset).
fn read_ahead(client: &mut Client) -> bool {
    let stream = client.transport.stream();
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut reader = stream;
    let present = loop {
        let room = EARLY_LIMIT - client.early.len();
        if room == 0 {
            // Full: whatever follows waits in the kernel's buffers.
            break true;
        }
        let had = client.early.len();
        client.early.resize(had + room.min(16 * 1024), 0);
        let read = reader.read(&mut client.early[had..]);
        let got = *read.as_ref().unwrap_or(&0);
        client.early.truncate(had + got);
        match read {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    stream.set_nonblocking(false).is_ok() && present
}
