//! One conversation with one peer, and the rules for ending it without losing
//! a message.
//!
//! A conversation owns two threads: one receives frames and shows them, the
//! other writes what the user typed (taken from the [`Outbox`]). Both report to
//! the program's single event channel, where [`Conversation::run`] decides what
//! happens next. Whoever ends a conversation first sends everything already
//! accepted, shuts down its sending half and keeps reading until the peer closes
//! too, so no socket is closed with unread data (which would reset the
//! connection and could destroy data in flight). A peer that makes no progress
//! for [`STALL_TIMEOUT`] while we wait on it is cut off.

use std::io::{self, ErrorKind, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::errors::{describe_receive_error, describe_send_error};
use crate::event::{Event, Input, ReceiveEnd};
use crate::frame::FrameReader;
use crate::outbox::{Outbox, SEND_PATIENCE};
use crate::screen::Screen;

/// How long a closing conversation waits on a peer that makes no progress.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a conversation we ended may go on before the peer closes its side
/// too, however much it keeps sending: a peer that never stops cannot hold
/// the server.
const CLOSING_LIMIT: Duration = Duration::from_secs(10);

/// How long Ctrl-C waits on the peer before it gives up.
const INTERRUPT_TIMEOUT: Duration = Duration::from_secs(1);

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The peer closed its side first.
    PeerLeft,
    /// Our user ended it.
    Quit,
    /// Ctrl-C.
    Interrupted,
    /// No traffic either way for the idle timeout.
    Idle(Duration),
    /// Our stdout went away; the program should exit quietly.
    OutputClosed,
    /// The connection failed or the peer broke the protocol; the text says how.
    Failed(String),
}

/// Why a closing conversation was cut off.
enum Stall {
    /// Nothing moved either way for this long.
    NoProgress(Duration),
    /// The peer kept the conversation going this long after we ended it.
    NeverClosed(Duration),
}

/// What differs between the two programs' conversations.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Whether the end of standard input ends our sending half (the client), or
    /// only means the user will say nothing more (the server's operator).
    pub input_end_closes: bool,
    pub idle_timeout: Option<Duration>,
}

pub struct Conversation {
    id: u64,
    stream: TcpStream,
    outbox: Arc<Outbox>,
    activity: Arc<Activity>,
    threads: Vec<JoinHandle<()>>,
}

impl Conversation {
    /// Starts receiving from and sending to `stream`. `label` names the peer on
    /// screen.
    pub fn start(
        id: u64,
        stream: TcpStream,
        max_message_size: usize,
        screen: &dyn Screen,
        label: &str,
        events: &Sender<Event>,
    ) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        // No write blocks for long: the user's side must stay free to type `q`.
        stream.set_write_timeout(Some(SEND_PATIENCE))?;
        let reading = stream.try_clone()?;
        let writing = stream.try_clone()?;
        let activity = Arc::new(Activity::new());
        let outbox = Arc::new(Outbox::with_direct_sends(
            stream.try_clone()?,
            Arc::clone(&activity),
        ));
        let mut sink = screen.messages(label);

        let receiver = {
            let events = events.clone();
            let activity = Arc::clone(&activity);
            thread::Builder::new()
                .name("receive".into())
                .spawn(move || {
                    let mut frames = FrameReader::new(reading, max_message_size);
                    let mut output_open = true;
                    let end = loop {
                        match frames.read_frame_and_more() {
                            Ok(Some((payload, more))) => {
                                if !more {
                                    // Once per batch: reading the clock per
                                    // message would cost more than the message.
                                    activity.touch();
                                }
                                // Once our output is gone the socket is still
                                // drained, so that closing it resets nothing.
                                if output_open && sink.show(payload, more).is_err() {
                                    output_open = false;
                                    let _ = events.send(Event::OutputClosed { id });
                                }
                            }
                            Ok(None) => break ReceiveEnd::Closed,
                            Err(e) => break ReceiveEnd::Failed(e),
                        }
                    };
                    let _ = events.send(Event::Received { id, end });
                })?
        };
        let sender = {
            let events = events.clone();
            let outbox = Arc::clone(&outbox);
            let activity = Arc::clone(&activity);
            thread::Builder::new().name("send".into()).spawn(move || {
                let result = send_all(writing, &outbox, &activity);
                let _ = events.send(Event::Sent { id, result });
            })
        };
        let sender = match sender {
            Ok(sender) => sender,
            Err(e) => {
                let _ = stream.shutdown(Shutdown::Both);
                let _ = receiver.join();
                return Err(e);
            }
        };
        Ok(Self {
            id,
            stream,
            outbox,
            activity,
            threads: vec![receiver, sender],
        })
    }

    /// Where the user's lines go while this conversation lasts.
    pub fn outbox(&self) -> Arc<Outbox> {
        Arc::clone(&self.outbox)
    }

    /// Runs the conversation to its end, handling the events that concern it;
    /// every other event goes to `other`. Returns once both threads are done,
    /// which leaves the socket with nothing unread and nothing unsent.
    pub fn run(
        mut self,
        events: &Receiver<Event>,
        rules: Rules,
        mut other: impl FnMut(Event),
    ) -> Ending {
        let mut ending: Option<Ending> = None;
        let mut receiving = true;
        let mut sending = true;
        // While set, a peer that makes no progress for this long is cut off.
        let mut patience: Option<Duration> = None;
        // When we ended our side (by quitting, idling, Ctrl-C or a closed stdout).
        let mut closing_since: Option<Instant> = None;
        let mut cut_off = false;
        let mut stalled: Option<Stall> = None;

        while receiving || sending {
            if closing_since.is_none() && patience.is_some() {
                closing_since = Some(Instant::now());
            }
            let wait = match (patience, rules.idle_timeout) {
                _ if cut_off => None,
                (Some(limit), _) => {
                    let closing_left = CLOSING_LIMIT
                        .saturating_sub(closing_since.map_or(Duration::ZERO, |t| t.elapsed()));
                    Some(
                        limit
                            .saturating_sub(self.activity.quiet_for())
                            .min(closing_left),
                    )
                }
                (None, Some(idle)) if ending.is_none() => {
                    Some(idle.saturating_sub(self.activity.quiet_for()))
                }
                _ => None,
            };
            let event = match wait {
                Some(wait) => match events.recv_timeout(wait) {
                    Ok(event) => Some(event),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => unreachable!("main holds a sender"),
                },
                None => Some(events.recv().expect("main holds a sender")),
            };
            let Some(event) = event else {
                let quiet = self.activity.quiet_for();
                let closing_for = closing_since.map_or(Duration::ZERO, |t| t.elapsed());
                if let Some(limit) = patience {
                    if quiet >= limit {
                        stalled = Some(Stall::NoProgress(limit));
                    } else if closing_for >= CLOSING_LIMIT {
                        stalled = Some(Stall::NeverClosed(CLOSING_LIMIT));
                    }
                    if stalled.is_some() {
                        cut_off = true;
                        self.abort();
                    }
                } else if let Some(idle) = rules.idle_timeout
                    && quiet >= idle
                    && ending.is_none()
                {
                    ending = Some(Ending::Idle(idle));
                    patience = Some(STALL_TIMEOUT);
                    self.outbox.close();
                }
                continue;
            };
            match event {
                Event::Input(Input::Quit) if ending.is_none() => {
                    ending = Some(Ending::Quit);
                    patience = Some(STALL_TIMEOUT);
                    self.outbox.close();
                }
                Event::Input(Input::Closed) if rules.input_end_closes => {
                    // Our side is done; keep showing what the peer sends until
                    // it closes too.
                    self.outbox.close();
                }
                Event::Input(Input::Interrupted) | Event::Interrupt => {
                    if ending == Some(Ending::Interrupted) {
                        cut_off = true;
                        self.abort();
                    } else {
                        ending = Some(Ending::Interrupted);
                        patience = Some(INTERRUPT_TIMEOUT);
                        self.outbox.close();
                    }
                }
                Event::OutputClosed { id } if id == self.id => {
                    if ending.is_none() {
                        ending = Some(Ending::OutputClosed);
                    }
                    patience = Some(INTERRUPT_TIMEOUT);
                    self.outbox.close();
                }
                Event::Received { id, end } if id == self.id => {
                    receiving = false;
                    match end {
                        ReceiveEnd::Closed => {
                            if ending.is_none() {
                                ending = Some(Ending::PeerLeft);
                            }
                            // Deliver what is still queued, then close our half.
                            patience.get_or_insert(STALL_TIMEOUT);
                            self.outbox.close();
                        }
                        ReceiveEnd::Failed(e) => {
                            if !cut_off && !matches!(ending, Some(Ending::Failed(_))) {
                                ending = Some(Ending::Failed(describe_receive_error(&e)));
                            }
                            self.abort();
                        }
                    }
                }
                Event::Sent { id, result } if id == self.id => {
                    sending = false;
                    if let Err(e) = result {
                        if !cut_off && ending.is_none() {
                            ending = Some(Ending::Failed(describe_send_error(&e)));
                        }
                        self.abort();
                    }
                }
                Event::Received { .. } | Event::Sent { .. } | Event::OutputClosed { .. } => {
                    // Left over from an earlier conversation.
                }
                other_event => other(other_event),
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        match (ending, stalled) {
            (Some(Ending::Interrupted), _) => Ending::Interrupted,
            (Some(Ending::OutputClosed), _) => Ending::OutputClosed,
            (_, Some(Stall::NoProgress(limit))) => Ending::Failed(format!(
                "stopped responding; closed the connection after {} s",
                limit.as_secs()
            )),
            (_, Some(Stall::NeverClosed(limit))) => Ending::Failed(format!(
                "did not close its side within {} s; closed the connection",
                limit.as_secs()
            )),
            (ending, None) => ending.unwrap_or(Ending::PeerLeft),
        }
    }

    /// Stops both threads now: pending frames are dropped and the socket is shut
    /// down both ways, which wakes a thread blocked on it.
    fn abort(&self) {
        // Shut down first: that also ends a write in progress under the
        // outbox's lock.
        let _ = self.stream.shutdown(Shutdown::Both);
        self.outbox.abort();
    }
}

/// Writes what the outbox hands over until it closes, then shuts down our
/// sending half so the peer sees a clean end.
fn send_all(mut stream: TcpStream, outbox: &Outbox, activity: &Activity) -> io::Result<()> {
    let mut batches = Vec::new();
    while outbox.take(&mut batches) {
        write_all_vectored(&mut stream, &batches)?;
        activity.touch();
    }
    if outbox.is_aborted() {
        return Ok(());
    }
    match stream.shutdown(Shutdown::Write) {
        // The peer may already be gone entirely; that is its end, not our error.
        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Writes every batch, as few system calls as the kernel allows. The socket's
/// send timeout only makes a write return early: a slow peer is waited for
/// here, and cut off by [`Conversation::run`] if it makes no progress at all.
fn write_all_vectored(stream: &mut TcpStream, batches: &[Vec<u8>]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batches.iter().map(|b| IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// When anything last moved either way.
pub(crate) struct Activity {
    start: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_millis.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}
