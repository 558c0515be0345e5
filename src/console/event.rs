//! What a program's event loop reacts to besides its sockets: the user's
//! input, the request to stop, and a stdout that went away.

use std::sync::mpsc::{SendError, Sender};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the events for a program's main thread go: its channel, and the
/// waker of its event loop if it runs one (the server), so that an event
/// wakes the loop.
#[derive(Clone)]
pub struct Events {
    sender: Sender<Event>,
    /// Set once the loop exists; shared by every clone.
    waker: Arc<OnceLock<Arc<mio::Waker>>>,
}

impl Events {
    pub fn new(sender: Sender<Event>) -> Self {
        Self {
            sender,
            waker: Arc::default(),
        }
    }

    /// From now on every event (from any clone) also wakes the loop that
    /// `waker` belongs to.
    pub fn wake_with(&self, waker: Arc<mio::Waker>) {
        let _ = self.waker.set(waker);
    }

    pub fn send(&self, event: Event) -> Result<(), SendError<Event>> {
        let sent = self.sender.send(event);
        self.wake();
        sent
    }

    /// Wakes the loop, if there is one, without an event: it has something
    /// else to look at (the operator's lines).
    pub fn wake(&self) {
        if let Some(waker) = self.waker.get() {
            let _ = waker.wake();
        }
    }
}

/// A request from outside to stop a program: the binaries point Ctrl-C,
/// SIGTERM and hangups at it; a test calls [`request`](Self::request).
/// Cheap to clone; clones are the same request.
#[derive(Clone, Default)]
pub struct Shutdown {
    state: Arc<Mutex<Stopping>>,
}

#[derive(Default)]
struct Stopping {
    requested: bool,
    /// The running program's events, once it listens.
    events: Option<Events>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the program to stop, as Ctrl-C does. False if no program
    /// listens yet (one that starts later is told at once).
    pub fn request(&self) -> bool {
        let mut state = crate::lock(&self.state);
        state.requested = true;
        match &state.events {
            Some(events) => {
                let _ = events.send(Event::Interrupt);
                true
            }
            None => false,
        }
    }

    /// Whether a stop was asked for.
    pub(crate) fn requested(&self) -> bool {
        crate::lock(&self.state).requested
    }

    /// From now on a request is an [`Event::Interrupt`] on `events`, and at
    /// once if one came already.
    pub(crate) fn tell(&self, events: &Events) {
        let mut state = crate::lock(&self.state);
        if state.requested {
            let _ = events.send(Event::Interrupt);
        }
        state.events = Some(events.clone());
    }
}

#[derive(Debug)]
pub enum Event {
    /// From the user's input.
    Input(Input),
    /// SIGINT, SIGTERM or a hangup (Ctrl-C or a closed console on Windows).
    Interrupt,
    /// Stdout is gone (a closed pipe): nothing more can be shown.
    OutputClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `q`, or Ctrl-D in the line editor: end the conversation.
    Quit,
    /// Standard input ended: the user has nothing more to say.
    Closed,
    /// Ctrl-C in the line editor (which reads it as a key).
    Interrupted,
}
