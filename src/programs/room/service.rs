//! The room on the server's event loop: [`crate::state::room::Room`] decides, this
//! carries it out over the loop's connections and the operator's console.
//!
//! A member with something to say waits for its turn ([`Turns`]), and is
//! read a turn at a time, while the room's flow allows ([`Flow`]: no
//! member has more than its bound queued) and its pace does; one held back
//! is simply not read until then (TCP holds the rest back in its client),
//! and the loop's next tick reads it again. A member that takes nothing
//! for [`flow::STALL`] is cut off and never read again. The operator's
//! lines come from its console's outbox, at the same pace.

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
use crate::state::room::flow::{self, Flow};
use crate::state::room::turns::Turns;
use crate::state::room::{Admission, OPERATOR, Room, Spoken, Who, World};
use crate::wire::room as wire;

/// Members are read this much in one round of the loop at most (the
/// room's flow usually stops it long before); the rest next round, so that
/// nobody holds the loop.
const READ_PER_ROUND: usize = 4 << 20;

/// A member's socket holds about this much of a second of its pace before
/// we read it: a talker held back sees so at once (its own system's
/// buffers fill), and its pace is not spent on what sat in ours.
const RECEIVE_BUFFER_SECONDS: f64 = 0.25;

/// The least a member's socket holds, however slow its pace.
const MIN_RECEIVE_BUFFER: usize = 8 * 1024;

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
    /// Members with something to say, waiting for their turn.
    pub turns: Turns,
    /// What waits for each member: whether talkers may be read now, and
    /// who has stalled.
    pub flow: Flow,
    /// Members cut off for taking nothing: never read again.
    pub cut: BTreeSet<Id>,
    pub frames: Vec<u8>,
    /// How long a member's place is kept after its connection is lost
    /// (`None`: not at all, and nothing is kept for its acknowledgement).
    pub resume_for: Option<std::time::Duration>,
    /// Bytes kept for a member that is away, at most: past it, its place
    /// is given up (what it missed could not all be sent again).
    pub backlog: usize,
    /// Members that have sent nothing yet, and by when they must
    /// (`--speak-within`: see `super::silent`).
    pub first_words: crate::state::first_words::FirstWords,
    /// Reports of members let go for sending nothing, and of newcomers
    /// turned away from a full room, grouped.
    pub told: crate::state::first_words::Told,
    pub turned_away: crate::state::first_words::Told,
}

/// The room's world: the loop's connections and the operator's screen.
pub(super) struct Over<'a> {
    pub io: &'a mut Io,
    pub output: &'a Output,
}

impl World for Over<'_> {
    fn deliver(&mut self, to: Who, frames: &[u8]) {
        self.io.send(to, frames);
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
    pub(super) fn over<'a>(io: &'a mut Io, output: &'a Output, _room: &Room) -> Over<'a> {
        Over { io, output }
    }

    /// Member `id` may have something to say: it waits for its turn, and
    /// turns are taken as far as the flow allows. One no longer in the
    /// room is read to its end and what it says dropped; one cut off is
    /// never read again.
    fn read(&mut self, io: &mut Io, id: Id) {
        if self.cut.contains(&id) {
            return;
        }
        if !self.room.is_here(id) || self.room.is_closing() {
            self.drop_what_is_said(io, id);
            return;
        }
        if !self.paused.contains(&id) {
            self.turns.ready(id);
            io.defer_reading(id, true);
        }
        self.take_turns(io);
    }

    /// Reads a member no longer in the room, dropping what it says, to its
    /// end (a round's worth at a time).
    fn drop_what_is_said(&mut self, io: &mut Io, id: Id) {
        io.defer_reading(id, false);
        let mut read = 0;
        loop {
            if read >= READ_PER_ROUND {
                io.read_later(id);
                return;
            }
            self.frames.clear();
            if !io.read(id, &mut self.frames, usize::MAX) {
                return;
            }
            read += self.frames.len().max(1);
        }
    }

    /// Brings the flow up to date with what waits for each member now. A
    /// member that is away holds nobody back: what the room says is kept
    /// for it, up to its backlog; past that its place is given up.
    fn observe(&mut self, io: &mut Io) {
        let now = io.now();
        for id in self.room.members() {
            if self.room.is_away(id) {
                self.flow.forget(id);
                if io.queued(id) > self.backlog {
                    io.give_up(
                        id,
                        format!(
                            "away while the room said more than the {} bytes kept for it",
                            self.backlog
                        ),
                    );
                }
                continue;
            }
            match self.room.is_here(id) && !self.cut.contains(&id) {
                true => self.flow.observe(id, io.queued(id), io.sent(id), now),
                false => self.flow.forget(id),
            }
        }
    }

    /// Reads the talkers whose turn it is, a turn each, while no member
    /// has more than its bound waiting (TCP holds the rest in the
    /// talkers' clients meanwhile) and for a round's worth at most.
    fn take_turns(&mut self, io: &mut Io) {
        let mut read = 0;
        while read < READ_PER_ROUND {
            self.observe(io);
            if !self.flow.may_read() {
                return;
            }
            let Some(id) = self.turns.next() else {
                return;
            };
            if self.cut.contains(&id) {
                continue;
            }
            if !self.room.is_here(id) || self.room.is_closing() {
                self.drop_what_is_said(io, id);
                continue;
            }
            if self
                .room
                .paced_until(id)
                .is_some_and(|until| until > io.now())
            {
                self.paused.insert(id);
                continue;
            }
            self.frames.clear();
            let more = io.read(id, &mut self.frames, self.room.portion());
            read += self.frames.len().max(1);
            if !self.frames.is_empty() {
                // A `HELLO` read with these frames is news only after
                // them: what it says counts for them (a newcomer's `/nick`
                // beside it is shown the history whole); one still due
                // holds the newcomer's announcement back.
                let (opened, due) = (io.in_session(id), io.awaits_hello(id));
                let breaks = io.takes_line_breaks(id);
                let now = io.now();
                let mut world = Self::over(io, &self.output, &self.room);
                match (opened, due) {
                    (true, _) => self.room.hello_came(id, breaks, &mut world),
                    (false, true) => self.room.awaits_hello(id),
                    _ => {}
                }
                self.room.hear(id, &self.frames, now, &mut world);
            }
            match more {
                true => self.turns.ready(id),
                false => io.defer_reading(id, false),
            }
        }
    }

    /// Cuts off the members that took nothing for [`flow::STALL`] while
    /// something waited for them: told why, the room too, their
    /// connections ended (what they send is never read again; TCP holds
    /// it in their clients until the connection is reset).
    fn cut_off_stalled(&mut self, io: &mut Io) {
        self.observe(io);
        for id in self.flow.stalled(io.now()) {
            self.flow.forget(id);
            self.turns.forget(id);
            self.paused.remove(&id);
            self.cut.insert(id);
            let mut world = Self::over(io, &self.output, &self.room);
            self.room.cut_off(id, flow::STALL, &mut world);
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
            // A member away cannot leave: the room does not wait for its
            // return (a user trial: the operator's `q` waited 300 s for a
            // member killed in a flood, its reset taken for a loss).
            if !io.give_up(id, "the room closed while it was away".to_string()) {
                io.happen(id, happening.clone());
            }
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
        match self.join(io, id, peer) {
            Admission::Member => {
                match self.resume_for {
                    // What the room relays is kept until the member has
                    // taken it, up to its backlog: a member that comes
                    // back is sent again what it had not.
                    Some(within) => {
                        io.allow_resume(id, Some(within));
                        io.keep_at_most(id, self.backlog);
                    }
                    // Relays are not kept for the member's acknowledgement.
                    None => io.keep_nothing(id),
                }
                let rate = self.room.rate() as f64;
                let buffer = (rate * RECEIVE_BUFFER_SECONDS) as usize;
                io.limit_receive_buffer(id, buffer.max(MIN_RECEIVE_BUFFER));
                io.start_ending(id);
                self.first_words.took_place(id, peer.ip(), io.now());
                self.read(io, id);
            }
            Admission::Refused(notice) => io.refuse(id, &notice),
        }
    }

    fn readable(&mut self, io: &mut Io, id: Id) {
        self.read(io, id);
    }

    fn news(&mut self, io: &mut Io, id: Id, news: News) {
        let takes_breaks = io.takes_line_breaks(id);
        let unsaid = io.closed_unsaid(id);
        let mut world = Self::over(io, &self.output, &self.room);
        match news {
            News::Away { why, .. } => {
                self.flow.forget(id);
                self.turns.forget(id);
                self.paused.remove(&id);
                self.room.away(id, &why, &mut world);
            }
            News::Back { after, .. } => {
                self.room
                    .back(id, &crate::errors::duration_words(after), &mut world);
                let rate = self.room.rate() as f64;
                let buffer = (rate * RECEIVE_BUFFER_SECONDS) as usize;
                io.limit_receive_buffer(id, buffer.max(MIN_RECEIVE_BUFFER));
                self.read(io, id);
            }
            // A client's, not a server's.
            News::NotResumed { .. } => {}
            // A member killed (crashed) is not said to have left as if it
            // had typed `q` (a user trial).
            News::PeerClosed => {
                let why = unsaid.then_some("without a word: its program may have been killed");
                self.room.leave(id, why, &mut world)
            }
            News::Failed(why) => self.room.leave(id, Some(&why), &mut world),
            News::WentIdle(idle) => self.room.went_idle(id, idle, &mut world),
            News::SessionOpened => self.room.hello_came(id, takes_breaks, &mut world),
            // A room's members say why they leave, or are counted lost.
            News::StillWaiting { .. } | News::Unacknowledged { .. } | News::Vanished => {}
            News::Ended(ending) => {
                self.first_words.forget(id);
                self.paused.remove(&id);
                self.turns.forget(id);
                self.flow.forget(id);
                self.cut.remove(&id);
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
        self.cut_off_stalled(io);
        let due: Vec<Id> = self
            .paused
            .iter()
            .copied()
            .filter(|&id| self.room.paced_until(id).is_none_or(|until| until <= now))
            .collect();
        for id in due {
            self.paused.remove(&id);
            self.turns.ready(id);
        }
        self.take_turns(io);
        if self.exit.is_none() {
            self.hear_operator(io, false);
        }
        let mut world = Self::over(io, &self.output, &self.room);
        let room_at = self.room.tick(now, &mut world);
        // After the room's tick: a newcomer due to be announced is, before
        // it is let go, late as the loop may be.
        let silent_at = self.let_go_silent(io);
        let paused_at = self
            .paused
            .iter()
            .filter_map(|&id| self.room.paced_until(id))
            .min();
        let operator_at = (!self.held.is_empty())
            .then(|| self.room.paced_until(OPERATOR))
            .flatten();
        // Turns left for the next round, if the flow allows them now
        // (otherwise a member taking what waits for it wakes the loop).
        self.observe(io);
        let turns_at = (!self.turns.is_empty() && self.flow.may_read()).then_some(now);
        let stall_at = self.flow.wake_at();
        Tick {
            wake_at: [
                room_at,
                paused_at,
                operator_at,
                turns_at,
                stall_at,
                silent_at,
            ]
            .into_iter()
            .flatten()
            .min(),
            done: self.exit.is_some() && self.room.is_empty(),
        }
    }
}
