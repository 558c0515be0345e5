//! Members that hold a seat and send nothing (`--speak-within`): let go
//! once their time is up, told why, and the room too (see
//! [`crate::state::first_words`] for what counts and why); a newcomer to a
//! full room takes the seat of the one silent longest, or is turned away,
//! which the operator is told of once a second at most.

use std::time::Instant;

use std::net::SocketAddr;

use super::service::{Over, RoomService};
use crate::engine::{Id, Io};
use crate::state::ending::Happening;
use crate::state::first_words::{Heard, Making, sent_nothing, unfair_share};
use crate::state::room::{Admission, Spoken, Who, World};
use crate::wire::frame::encode_frame;
use crate::wire::room as wire;

impl RoomService {
    /// Lets go the members whose `--speak-within` ran out with not one
    /// whole frame from them: each is told why (the last it reads), the
    /// room sees it leave as any other, and its connection ends; the
    /// operator's reports of them are grouped, once a second with a count.
    /// Returns when to look again.
    pub(super) fn let_go_silent(&mut self, io: &mut Io) -> Option<Instant> {
        let now = io.now();
        if let Some(within) = self.first_words.within() {
            let silent = self
                .first_words
                .due(now, |id| io.first_frame(id).unwrap_or(Heard::Frame));
            let why = sent_nothing(within, "joining");
            for id in silent {
                self.let_go(io, id, &why, "");
            }
        }
        for told in [&mut self.told, &mut self.turned_away] {
            if let Some(report) = told.overdue(now) {
                self.output.status(report);
            }
        }
        [
            self.first_words.wake_at(),
            self.told.wake_at(),
            self.turned_away.wake_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Newcomer `id` from `peer` joins the room, in the seat of the member
    /// silent longest if the room is full (see [`Self::make_room`]), or
    /// is turned away, the operator told once a second at most with a
    /// count (a stream of newcomers to a full room wrote a line each).
    pub(super) fn join(&mut self, io: &mut Io, id: Id, peer: SocketAddr) -> Admission {
        if self.room.is_full() {
            self.make_room(io, peer);
        }
        let now = io.now();
        if !self.room.is_full() {
            let mut world = Self::over(io, &self.output, &self.room);
            return self.room.join(id, peer, now, &mut world);
        }
        let mut world = TurnedAway {
            over: Self::over(io, &self.output, &self.room),
            told: &mut self.turned_away,
            now,
        };
        self.room.join(id, peer, now, &mut world)
    }

    /// The room is full: a member that has said nothing gives its seat to
    /// newcomer `peer`, if the rules of `crate::state::first_words` say
    /// one must (its network holds more than its share of the seats, or it
    /// has held its own for half of `--speak-within`).
    pub(super) fn make_room(&mut self, io: &mut Io, peer: SocketAddr) {
        let Some(within) = self.first_words.within() else {
            return;
        };
        let made = self.first_words.make_room(io.now(), peer.ip(), |id| {
            io.first_frame(id).unwrap_or(Heard::Frame)
        });
        match made {
            Some((id, Making::Age)) => {
                let why = sent_nothing(within / 2, "joining");
                self.let_go(io, id, &why, ", and a newcomer needed the seat");
            }
            Some((id, Making::Share { network, held })) => {
                let held = format!("{network} held {held} of the room's seats");
                let (you, it) = (
                    unfair_share("you", "your", &held),
                    unfair_share("it", "its", &held),
                );
                self.let_go_as(io, id, &you, &it);
            }
            None => {}
        }
    }

    /// Lets go member `id`, which sent nothing: `why` (`sent nothing
    /// within 10 s of joining`), `and` what more is to be said of it.
    fn let_go(&mut self, io: &mut Io, id: Id, why: &str, and: &str) {
        self.let_go_as(
            io,
            id,
            &format!("you {why}{and}"),
            &format!("it {why}{and}"),
        );
    }

    /// Lets go member `id`, which sent nothing, as `you` tells it and `it`
    /// tells the room and the operator (`it sent nothing within…`): told
    /// why, the last it reads; the room sees it leave as any other; its
    /// connection ends.
    fn let_go_as(&mut self, io: &mut Io, id: Id, you: &str, it: &str) {
        if !self.room.is_here(id) || self.cut.contains(&id) {
            return;
        }
        let Some(peer) = io.peer(id) else {
            return;
        };
        let text = format!(
            "{you}, so your place in the room was given up (a member that only reads keeps it by sending an empty frame first)"
        );
        let mut notice = Vec::new();
        let _ = encode_frame(&mut notice, &wire::notice(&text), usize::MAX);
        io.send(id, &notice);
        let mut world = Grouped(Self::over(io, &self.output, &self.room));
        let reason = it.strip_prefix("it ").unwrap_or(it);
        self.room.leave(id, Some(reason), &mut world);
        io.happen(id, Happening::Quit);
        let line = format!("{peer} let go: {it}");
        if let Some(report) = self.told.let_go(line, io.now()) {
            self.output.status(report);
        }
    }
}

/// The room's world, but the operator's status line for a member let go
/// is left to the grouped report: a thousand idle connections let go at
/// once are one line a second on the operator's screen, not a thousand.
struct Grouped<'a>(Over<'a>);

impl World for Grouped<'_> {
    fn deliver(&mut self, to: Who, frames: &[u8]) {
        self.0.deliver(to, frames);
    }

    fn end(&mut self, who: Who) {
        self.0.end(who);
    }

    fn status(&mut self, _text: String) {}

    fn error(&mut self, text: String) {
        self.0.error(text);
    }

    fn show(&mut self, spoken: Spoken) -> bool {
        self.0.show(spoken)
    }
}

/// The room's world while it turns a newcomer away: its line to the
/// operator goes into the grouped reports.
struct TurnedAway<'a> {
    over: Over<'a>,
    told: &'a mut crate::state::first_words::Told,
    now: Instant,
}

impl World for TurnedAway<'_> {
    fn deliver(&mut self, to: Who, frames: &[u8]) {
        self.over.deliver(to, frames);
    }

    fn end(&mut self, who: Who) {
        self.over.end(who);
    }

    fn status(&mut self, text: String) {
        if let Some(report) = self.told.let_go(text, self.now) {
            self.over.output.status(report);
        }
    }

    fn error(&mut self, text: String) {
        self.over.error(text);
    }

    fn show(&mut self, spoken: Spoken) -> bool {
        self.over.show(spoken)
    }
}
