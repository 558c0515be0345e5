//! The room on the server's event loop: [`crate::state::room::Room`] decides, this
//! carries it out over the loop's connections and the operator's console.
//!
//! A member is read when its socket is readable and its pace allows, a
//! portion at a time; one held back by its pace is simply not read until
//! then (TCP holds the rest back in its client), and the loop's next tick
//! reads it again. The operator's lines come from its console's outbox,
//! at the same pace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::Exit;
use crate::console::event::{Event, Input};
use crate::console::outbox::Outbox;
use crate::console::output::{Output, Shown};
use crate::engine::{Id, Io, News, Service, Tick};
use crate::errors::describe_failure;
use crate::state::ending::{Ending, Happening};
use crate::state::room::{Admission, OPERATOR, Room, Spoken, Who, World};
use crate::wire::room as wire;

/// A member is read this much in one round of the loop at most (its pace
/// usually stops it long before); the rest next round, so that no talker
/// holds the loop.
const READ_PER_ROUND: usize = 4 << 20;

pub(super) struct RoomService {
    pub room: Room,
    pub output: Arc<Output>,
    /// The operator's lines.
    pub lines: Arc<Outbox>,
    pub inbox: Receiver<Event>,
    /// Operator's batches taken and not yet heard (its pace).
    pub held: Vec<Vec<u8>>,
    /// The program's exit, once the room is closing.
    pub exit: Option<Exit>,
    /// Members not read because of their pace, to be read again.
    pub paused: BTreeSet<Id>,
    pub frames: Vec<u8>,
}

/// The room's world: the loop's connections and the operator's screen.
struct Over<'a> {
    io: &'a mut Io,
    output: &'a Output,
    backlog: usize,
}

impl World for Over<'_> {
    fn deliver(&mut self, to: Who, frames: &[u8], bounded: bool) -> bool {
        if bounded && self.io.unsent(to) + frames.len() > self.backlog {
            return false;
        }
        self.io.send(to, frames);
        true
    }

    fn end(&mut self, who: Who) {
        self.io.happen(who, Happening::Quit);
    }

    fn status(&mut self, text: String) {
        self.output.status(text);
    }

    fn error(&mut self, text: String) {
        self.output.error(text);
    }

    fn show(&mut self, spoken: Spoken) -> bool {
        self.output.offer(Shown::Named {
            said: spoken.said,
            earlier: false,
            from: spoken.from,
            lines: spoken.lines,
            said_at: None,
        })
    }
}

impl RoomService {
    fn over<'a>(io: &'a mut Io, output: &'a Output, room: &Room) -> Over<'a> {
        Over {
            io,
            output,
            backlog: room.backlog(),
        }
    }

    /// Reads member `id` as far as its pace allows; one no longer in the
    /// room is read to its end and what it says dropped.
    fn read(&mut self, io: &mut Io, id: Id) {
        let mut read = 0;
        loop {
            if read >= READ_PER_ROUND {
                io.read_later(id);
                return;
            }
            self.frames.clear();
            if !self.room.is_here(id) || self.room.is_closing() {
                if !io.read(id, &mut self.frames, usize::MAX) {
                    return;
                }
                read += self.frames.len().max(1);
                continue;
            }
            if self
                .room
                .paced_until(id)
                .is_some_and(|until| until > io.now())
            {
                self.paused.insert(id);
                return;
            }
            let more = io.read(id, &mut self.frames, self.room.portion());
            read += self.frames.len();
            if !self.frames.is_empty() {
                let now = io.now();
                let mut world = Self::over(io, &self.output, &self.room);
                self.room.hear(id, &self.frames, now, &mut world);
            }
            if !more {
                return;
            }
        }
    }

    /// Hears the operator's lines as far as its pace allows (all of them,
    /// when `all`: its last words before the room closes).
    fn hear_operator(&mut self, io: &mut Io, all: bool) {
        loop {
            if self.held.is_empty() {
                self.lines.take_now(&mut self.held);
                if self.held.is_empty() {
                    return;
                }
                self.held.reverse();
            }
            let paced = self
                .room
                .paced_until(OPERATOR)
                .is_some_and(|until| until > io.now());
            if paced && !all {
                return;
            }
            let batch = self.held.pop().expect("a batch");
            let now = io.now();
            let mut world = Self::over(io, &self.output, &self.room);
            self.room.hear(OPERATOR, &batch, now, &mut world);
            // A `/nick` may have renamed the operator: mentions follow.
            self.output.set_me(self.room.operator_name());
        }
    }

    /// Closes the room with `why`: every connection ends as `happening`
    /// says (again: a second Ctrl-C cuts them off).
    fn close(&mut self, io: &mut Io, why: &str, happening: Happening) {
        let sending: BTreeSet<Id> = self
            .room
            .members()
            .into_iter()
            .filter(|&id| io.can_read(id))
            .collect();
        let now = io.now();
        let mut world = Self::over(io, &self.output, &self.room);
        let members = self
            .room
            .close(why, |id| sending.contains(&id), now, &mut world);
        for id in members {
            io.happen(id, happening.clone());
        }
    }

    fn event(&mut self, io: &mut Io, event: Event) {
        match event {
            Event::Input(Input::Quit) => {
                // What the operator typed before `q` is relayed first.
                self.hear_operator(io, true);
                self.exit.get_or_insert(Exit::Success);
                let why = wire::closed_by(self.room.operator_name());
                self.close(io, &why, Happening::Quit);
            }
            Event::Input(Input::Closed) => {
                self.output
                    .status("standard input has ended: from now on, only relaying");
            }
            Event::Interrupt | Event::Input(Input::Interrupted) => {
                self.exit = Some(Exit::Interrupted);
                self.close(
                    io,
                    "the room is closing: the server was interrupted",
                    Happening::Interrupted,
                );
            }
            Event::OutputClosed => {
                self.exit.get_or_insert(Exit::Success);
                self.close(
                    io,
                    "the room is closing: the server's output has gone",
                    Happening::OutputClosed,
                );
            }
        }
    }

    /// Tells the operator how a member's connection ended, if badly and
    /// not yet told (its leaving said why it failed; a cut-off, after it
    /// was asked to leave, is news).
    fn report(&self, name: &str, peer: std::net::SocketAddr, announced: bool, ending: &Ending) {
        let told = announced && !matches!(ending, Ending::CutOff { .. });
        if let Some(why) = describe_failure(ending)
            && !told
        {
            self.output.error(format!("{name} ({peer}): {why}"));
        }
    }
}

impl Service for RoomService {
    fn admit(&mut self, io: &mut Io, id: Id) {
        let Some(peer) = io.peer(id) else {
            return;
        };
        let now = io.now();
        let mut world = Self::over(io, &self.output, &self.room);
        match self.room.join(id, peer, now, &mut world) {
            Admission::Member => {
                // Relays are not kept for the member's acknowledgement.
                io.keep_nothing(id);
                io.start_ending(id);
                self.read(io, id);
            }
            Admission::Refused(notice) => io.refuse(id, &notice),
        }
    }

    fn readable(&mut self, io: &mut Io, id: Id) {
        self.read(io, id);
    }

    fn news(&mut self, io: &mut Io, id: Id, news: News) {
        let mut world = Self::over(io, &self.output, &self.room);
        match news {
            // A member's session is not kept for a resume (yet): the room
            // never allows one.
            News::Away { .. } | News::Back { .. } | News::NotResumed { .. } => {}
            News::PeerClosed => self.room.leave(id, None, &mut world),
            News::Failed(why) => self.room.leave(id, Some(&why), &mut world),
            News::WentIdle(idle) => self.room.went_idle(id, idle, &mut world),
            News::StillWaiting { .. } | News::SessionOpened | News::Unacknowledged { .. } => {}
            News::Ended(ending) => {
                self.paused.remove(&id);
                // Ended with no word before (a peer lost to silence, its
                // heartbeats or its system's answers gone): the room is
                // told why it left, as for any other leave.
                if self.room.is_here(id) {
                    let why = match &ending {
                        Ending::Failed { why, .. } => Some(why.clone()),
                        Ending::CutOff { why, .. } => describe_failure(&Ending::CutOff {
                            why: *why,
                            undelivered: 0,
                        }),
                        _ => None,
                    };
                    self.room.leave(id, why.as_deref(), &mut world);
                    self.room.forget(id);
                    return;
                }
                if let Some((name, peer, announced)) = self.room.forget(id) {
                    self.report(&name, peer, announced, &ending);
                }
            }
        }
    }

    fn woken(&mut self, io: &mut Io) {
        while let Ok(event) = self.inbox.try_recv() {
            self.event(io, event);
        }
        if self.exit.is_none() {
            self.hear_operator(io, false);
        }
    }

    fn tick(&mut self, io: &mut Io) -> Tick {
        let now = io.now();
        let due: Vec<Id> = self
            .paused
            .iter()
            .copied()
            .filter(|&id| self.room.paced_until(id).is_none_or(|until| until <= now))
            .collect();
        for id in due {
            self.paused.remove(&id);
            self.read(io, id);
        }
        if self.exit.is_none() {
            self.hear_operator(io, false);
        }
        let mut world = Self::over(io, &self.output, &self.room);
        let room_at = self.room.tick(now, &mut world);
        let paused_at = self
            .paused
            .iter()
            .filter_map(|&id| self.room.paced_until(id))
            .min();
        let operator_at = (!self.held.is_empty())
            .then(|| self.room.paced_until(OPERATOR))
            .flatten();
        Tick {
            wake_at: [room_at, paused_at, operator_at]
                .into_iter()
                .flatten()
                .min(),
            done: self.exit.is_some() && self.room.is_empty(),
        }
    }
}
