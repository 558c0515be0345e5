//! One conversation, run on the main thread: events from its connection and
//! from the user go into the [`Closing`] state machine with the current time
//! and the bytes moved; what it decides is done to the [`Connection`].

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use crate::console::event::{Event, Input, ReceiveEnd};
use crate::console::output::Output;
use crate::engine::connection::Connection;
use crate::errors::{describe_receive_error, describe_send_error};
use crate::state::ending::{Closing, Ending, Happening, Rules};

/// Runs the conversation with `peer` on `connection` (reporting as `id`) to
/// its end, handling the events that concern it; every other event goes to
/// `other`. Returns once both of its threads are done.
pub fn run(
    id: u64,
    connection: Connection,
    peer: &str,
    output: &Output,
    events: &Receiver<Event>,
    rules: Rules,
    mut other: impl FnMut(Event),
) -> Ending {
    let mut closing = Closing::new(rules, Instant::now());
    let mut happening = None;
    let ending = loop {
        let seen = connection.observe();
        let decision = closing.step(Instant::now(), seen, happening.take());
        if decision.still_waiting {
            output.status(match seen.undelivered {
                0 => format!("waiting for {peer} to close its side (Ctrl-C to stop now)"),
                n => format!(
                    "waiting for {peer} to take the last {n} bytes and close (Ctrl-C to stop now)"
                ),
            });
        }
        if decision.finish_sending {
            connection.finish_sending();
        }
        if decision.abort {
            connection.abort();
        }
        if let Some(ending) = decision.ended {
            break ending;
        }
        let event = match decision.wake_at {
            Some(at) => match events.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => unreachable!("main holds a sender"),
            },
            None => events.recv().expect("main holds a sender"),
        };
        happening = match event {
            Event::Input(Input::Quit) => {
                other(Event::Input(Input::Quit));
                Some(Happening::Quit)
            }
            Event::Input(Input::Closed) => {
                // The program may have more to do with it (the server says so).
                other(Event::Input(Input::Closed));
                Some(Happening::InputEnded)
            }
            Event::Input(Input::Interrupted) | Event::Interrupt => {
                // What is held for the peer's first frame goes now: the
                // interrupt's grace is shorter than the hold.
                connection.outbox().release();
                Some(Happening::Interrupted)
            }
            Event::OutputClosed => Some(Happening::OutputClosed),
            Event::Received { id: from, end } if from == id => Some(match end {
                ReceiveEnd::Closed => Happening::PeerClosed,
                ReceiveEnd::Failed(e) => Happening::ReceiveFailed(describe_receive_error(&e)),
            }),
            Event::Sent { id: from, result } if from == id => Some(match result {
                Ok(()) => Happening::SendFinished,
                Err(e) => Happening::SendFailed(describe_send_error(&e)),
            }),
            // Nothing happened, but what is observed changed.
            Event::Backlogged => None,
            // Left over from an earlier conversation.
            Event::Received { .. } | Event::Sent { .. } => None,
            other_event => {
                other(other_event);
                None
            }
        };
    };
    connection.join();
    ending
}
