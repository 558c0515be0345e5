//! The room itself, as a state machine with no I/O and no clock of its
//! own: who is here under which name, what was said lately, each member's
//! pace, and every decision about what goes to whom. What it decides goes
//! out through [`World`], which the server implements over its event loop
//! and the unit tests over a record.
//!
//! Members are told every message in the order the room heard them, and
//! nothing said is ever dropped: a room that relays faster than its
//! members take reads its talkers more slowly instead ([`flow`], in turns:
//! [`turns`]), and a talker faster than its pace is read more slowly too.
//! Only a member that takes nothing at all for [`flow::STALL`] is cut off
//! ([`Room::cut_off`]), told why, and the room too.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub(crate) mod clock;
pub(crate) mod commands;
pub(crate) mod flow;
mod pace;
pub(crate) mod turns;

use self::clock::{Deadlines, HELLO_WAIT};
use self::commands::{Command, HELP};
use self::pace::Pace;
use crate::wire::display::{Breaks, LINE_BREAK, Said};
use crate::wire::frame::encode_frame;
use crate::wire::names;
use crate::wire::room as wire;

/// Members' lines for the operator's screen: one sender's, said one way,
/// each line ending in `\n`.
#[derive(Debug)]
pub struct Spoken {
    pub said: Said,
    pub from: Arc<str>,
    pub lines: Vec<u8>,
}

/// Who is speaking or spoken to: a member (by its connection's id) or
/// the operator.
pub type Who = usize;

/// The operator's id; a connection never has it.
pub const OPERATOR: Who = usize::MAX;

/// How many messages a newcomer is shown from before it joined.
pub const HISTORY: usize = 20;

/// How many bytes a newcomer's lines may take while they wait for it to be
/// announced; past this it is announced under the name it has.
const HELD_BEFORE_NAMED: usize = 64 * 1024;

/// Messages the operator's screen had to drop are reported at most this often.
const SCREEN_REPORT_PERIOD: Duration = Duration::from_secs(5);

/// What the room does to the world.
pub trait World {
    /// Queues `frames` for member `to` (never refused: how much waits for
    /// members is bounded by reading the talkers less, see [`flow`]).
    fn deliver(&mut self, to: Who, frames: &[u8]);
    /// Ends member `who`'s connection: what is queued goes first.
    fn end(&mut self, who: Who);
    /// A status line for the operator.
    fn status(&mut self, text: String);
    /// An error for the operator.
    fn error(&mut self, text: String);
    /// Offers members' messages to the operator's screen: false if it has
    /// no room for them now.
    fn show(&mut self, spoken: Spoken) -> bool;
}

/// What the room is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_message_size: usize,
    pub max_clients: usize,
    /// Bytes that may wait for a member while the room reads on.
    pub backlog: usize,
    /// Bytes a second a member may talk, sustained.
    pub rate: usize,
    pub operator: String,
}

struct Member {
    name: String,
    /// What its name is compared by (see [`names::Key`]).
    key: names::Key,
    peer: SocketAddr,
    /// In the room: gets what is said and holds its name.
    present: bool,
    /// The room was told it joined.
    announced: bool,
    /// Frames it sent before it was announced, handled once it is.
    early: Vec<u8>,
    /// What the room said to it before it was announced, sent after the
    /// history and its announcement (up to half its bound).
    pending: Vec<u8>,
    /// Frames of the room's not kept in `pending`, past its bound.
    pending_lost: u64,
    /// How many messages the room had kept in its history in all when it
    /// connected: those after are in `pending`, not its history.
    said_before: u64,
    pace: Pace,
    /// Not read before this: it talked faster than its pace.
    paced_until: Option<Instant>,
    /// It was told once that it talks faster than the room takes.
    told_pace: bool,
    /// Its connection was lost and its place is kept for it to come back:
    /// what the room says is kept for it meanwhile.
    away: bool,
    /// It takes messages of several lines, and sends them (its `HELLO`
    /// said so): else they go to it a line each, and a line end it sends
    /// is text.
    breaks: bool,
    /// It offered version 2, and its `HELLO` is on its way: its
    /// announcement (and so its history) waits for it, within
    /// [`HELLO_WAIT`] of its coming.
    hello_due: bool,
    /// It chose its name while its `HELLO` was due: the note for its
    /// announcement, which waits.
    named: Option<Option<String>>,
}

pub struct Room {
    settings: Settings,
    /// What the operator's name is compared by.
    operator_key: names::Key,
    /// What [`wire::READER`] is compared by: nobody may be called so.
    reader_key: names::Key,
    members: BTreeMap<Who, Member>,
    operator: String,
    operator_pace: Pace,
    /// The operator's lines are not taken before this.
    paced_operator: Option<Instant>,
    /// The last [`HISTORY`] messages, as relayed (without the frame header),
    /// and no more than a newcomer could be shown ([`Room::history_bytes`]).
    history: VecDeque<Vec<u8>>,
    /// When each message in `history` was said, for a newcomer to show.
    /// The system's wall clock, read as they are heard: it is only shown,
    /// and nothing the room decides depends on it (that goes by the time
    /// it is fed).
    history_at: VecDeque<SystemTime>,
    /// How many messages were ever put in `history` (the newest is the
    /// `history_total`th).
    history_total: u64,
    /// What `history` holds, as counted for a newcomer (see [`said_cost`]).
    history_cost: usize,
    guests: u64,
    /// The room is closing: nobody joins, nothing more is relayed.
    closing: bool,
    /// Newcomers not yet announced, by when they will be.
    arrivals: Deadlines<Who>,
    /// Messages the operator's screen had no room for, not yet reported.
    unshown: u64,
    unshown_told: Option<Instant>,
}

/// Messages said in a row by one sender, relayed together.
#[derive(Default)]
struct Run {
    /// Their frames, as every other member gets them.
    frames: Vec<u8>,
    /// The same a line each, for members that do not take line breaks,
    /// once one of the messages has some.
    lines: Option<Vec<u8>>,
    /// Their payloads, for the history.
    said: Vec<Vec<u8>>,
    /// What the operator's screen shows.
    screen: Vec<Spoken>,
}

/// Whether a member's connection is to be let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Member,
    /// Told this in one frame and let go.
    Refused(String),
}

impl Room {
    pub fn new(mut settings: Settings) -> Self {
        // A member must be able to take at least one message of the largest size.
        settings.backlog = settings.backlog.max(settings.max_message_size + 64);
        let pace = Self::pace_of(&settings);
        Self {
            operator: settings.operator.clone(),
            operator_key: names::Key::of(&settings.operator),
            reader_key: names::Key::of(wire::READER),
            operator_pace: pace,
            paced_operator: None,
            settings,
            members: BTreeMap::new(),
            history: VecDeque::with_capacity(HISTORY),
            history_at: VecDeque::with_capacity(HISTORY),
            history_cost: 0,
            history_total: 0,
            guests: 0,
            closing: false,
            arrivals: Deadlines::default(),
            unshown: 0,
            unshown_told: None,
        }
    }

    /// A talker's pace: the room's rate, and half a second of it at once
    /// (a line typed after a pause is never held back).
    fn pace_of(settings: &Settings) -> Pace {
        Pace::new(settings.rate, settings.rate / 2)
    }

    /// The most a talker's frames are read in one turn.
    pub fn portion(&self) -> usize {
        turns::TURN
    }

    /// Bytes a second a member may talk, sustained.
    pub fn rate(&self) -> usize {
        self.settings.rate
    }

    /// A client `who` from `peer` connected (and passed the gate): a
    /// member, greeted (and shown what was said lately once it is
    /// announced), or refused.
    pub fn join(
        &mut self,
        who: Who,
        peer: SocketAddr,
        now: Instant,
        world: &mut impl World,
    ) -> Admission {
        let present = self.present();
        if self.closing {
            return Admission::Refused(wire::closing());
        }
        if present >= self.settings.max_clients {
            world.status(format!(
                "{peer} turned away: the room is full ({})",
                wire::members(present)
            ));
            return Admission::Refused(wire::full(self.settings.max_clients));
        }
        self.guests += 1;
        let guest = format!("guest-{}", self.guests);
        let name = names::free_form(&guest, |key| self.is_taken(key, None));
        let mut hello = Vec::new();
        let _ = encode_frame(
            &mut hello,
            wire::greeting(self.settings.max_message_size).as_bytes(),
            usize::MAX,
        );
        world.deliver(who, &hello);
        self.arrivals.set(who, now + HELLO_WAIT);
        let pace = Self::pace_of(&self.settings);
        self.members.insert(
            who,
            Member {
                key: names::Key::of(&name),
                name,
                peer,
                present: true,
                announced: false,
                early: Vec::new(),
                pending: Vec::new(),
                pending_lost: 0,
                said_before: self.history_total,
                pace,
                paced_until: None,
                told_pace: false,
                away: false,
                breaks: false,
                hello_due: false,
                named: None,
            },
        );
        Admission::Member
    }

    /// Whether the room has no seat for one more.
    pub fn is_full(&self) -> bool {
        self.present() >= self.settings.max_clients
    }

    fn present(&self) -> usize {
        self.members.values().filter(|m| m.present).count()
    }

    /// Whether member `who` is in the room (gets what is said).
    pub fn is_here(&self, who: Who) -> bool {
        who == OPERATOR || self.members.get(&who).is_some_and(|m| m.present)
    }

    /// Member `who`'s connection was lost (`why`) and its place is kept
    /// for it to come back: the room is told, not that it left.
    pub fn away(&mut self, who: Who, why: &str, world: &mut impl World) {
        let Some(member) = self.members.get_mut(&who) else {
            return;
        };
        if !member.present || member.away {
            return;
        }
        member.away = true;
        if !member.announced {
            world.status(format!(
                "{} ({}) lost the connection: {why}",
                member.name, member.peer
            ));
            return;
        }
        let text = format!(
            "{} lost the connection; keeping the place for it to come back",
            member.name
        );
        self.notice_all(who, &text, world);
        world.status(format!("{text} ({why})"));
    }

    /// Member `who` is back after a lost connection, with everything the
    /// room said meanwhile.
    /// (`after` says how long it was away, for the operator.)
    pub fn back(&mut self, who: Who, after: &str, world: &mut impl World) {
        let Some(member) = self.members.get_mut(&who) else {
            return;
        };
        if !std::mem::take(&mut member.away) || !member.present {
            return;
        }
        let text = format!("{} is back", member.name);
        if member.announced {
            self.notice_all(who, &text, world);
        }
        world.status(format!("{text} after {after}"));
    }

    /// Member `who` offered version 2: its `HELLO` is coming, and with it
    /// whether it takes messages of several lines, which its history
    /// needs; our client sends its `/nick` as soon as it sees the
    /// greeting, which the room sends before its offer, so the name may
    /// come first.
    pub fn awaits_hello(&mut self, who: Who) {
        if let Some(member) = self.members.get_mut(&who)
            && !member.announced
        {
            member.hello_due = true;
        }
    }

    /// Member `who`'s `HELLO` came (`breaks`: it takes messages of several
    /// lines); an announcement that waited for it is made.
    pub fn hello_came(&mut self, who: Who, breaks: bool, world: &mut impl World) {
        let Some(member) = self.members.get_mut(&who) else {
            return;
        };
        member.breaks |= breaks;
        member.hello_due = false;
        if let Some(note) = member.named.take()
            && member.present
            && !member.announced
            && !self.closing
        {
            self.announce(who, note, world);
        }
    }

    /// How the line ends in what `who` sends are taken: as breaks from one
    /// that takes them (it sends them only then), else as text.
    fn sent_breaks(&self, who: Who) -> Breaks {
        match self.breaks(who) {
            true => Breaks::Keep,
            false => Breaks::Escape,
        }
    }

    /// Whether `who` takes and sends messages of several lines: the
    /// operator's screen does.
    fn breaks(&self, who: Who) -> bool {
        who == OPERATOR || self.members.get(&who).is_some_and(|m| m.breaks)
    }

    /// Whether member `who`'s connection is lost and its place kept.
    pub fn is_away(&self, who: Who) -> bool {
        self.members.get(&who).is_some_and(|m| m.present && m.away)
    }

    /// Until when `who` is not read (it talked faster than its pace).
    pub fn paced_until(&self, who: Who) -> Option<Instant> {
        match who {
            OPERATOR => self.paced_operator,
            _ => self.members.get(&who).and_then(|m| m.paced_until),
        }
    }

    /// Takes whole frames said by `who` (or the operator) at `now`:
    /// messages are relayed, commands done; its pace is charged, and it is
    /// not to be read again before [`paced_until`](Self::paced_until).
    pub fn hear(&mut self, who: Who, frames: &[u8], now: Instant, world: &mut impl World) {
        self.hear_frames(who, frames, world);
        let rate = self.settings.rate;
        let pace = match who {
            OPERATOR => &mut self.operator_pace,
            _ => match self.members.get_mut(&who) {
                Some(member) => &mut member.pace,
                None => return,
            },
        };
        let wait = pace.take(frames.len(), now);
        let until = (!wait.is_zero()).then(|| now + wait);
        if who == OPERATOR {
            self.paced_operator = until;
        } else if let Some(member) = self.members.get_mut(&who) {
            member.paced_until = until;
            if until.is_some() && !member.told_pace && !self.closing {
                member.told_pace = true;
                let text = format!(
                    "you are sending faster than the room takes ({rate} bytes a second): the server reads your lines more slowly"
                );
                self.tell(who, &text, world);
            }
        }
    }

    fn hear_frames(&mut self, who: Who, frames: &[u8], world: &mut impl World) {
        let mut run = Run::default();
        for payload in wire::frames(frames) {
            if self.closing || !self.is_here(who) {
                break;
            }
            if payload.is_empty() {
                continue;
            }
            if who != OPERATOR && !self.members[&who].announced {
                if let Command::Nick(wanted) = commands::parse(payload) {
                    self.claim(who, wanted, world);
                    continue;
                }
                // Lines sent before the name was chosen (our client sends
                // `/nick` once it sees the greeting; a script's first lines
                // may be on their way already) wait for it, up to a bound.
                let member = self.members.get_mut(&who).expect("a member");
                if member.early.len() + payload.len() <= HELD_BEFORE_NAMED {
                    let _ = encode_frame(&mut member.early, payload, usize::MAX);
                    continue;
                }
                self.announce(who, None, world);
            }
            match commands::parse(payload) {
                Command::Say(text) => self.say(who, Said::Message, text, &mut run, world),
                Command::Me(text) => self.say(who, Said::Action, text, &mut run, world),
                other => {
                    self.relay(who, &mut run, world);
                    self.command(who, other, world);
                }
            }
        }
        self.relay(who, &mut run, world);
    }

    /// Does what is due at `now`: newcomers that did not choose a name are
    /// announced, and the operator told what its screen missed. Returns
    /// when to look again.
    pub fn tick(&mut self, now: Instant, world: &mut impl World) -> Option<Instant> {
        for who in self.arrivals.due(now) {
            if self.is_here(who) && !self.closing {
                let note = self.members.get_mut(&who).and_then(|m| m.named.take());
                self.announce(who, note.flatten(), world);
            }
        }
        let report_at = self.unshown_told.map(|at| at + SCREEN_REPORT_PERIOD);
        if self.unshown > 0 && report_at.is_none_or(|at| now >= at) {
            let n = std::mem::take(&mut self.unshown);
            let what = match n {
                1 => "1 message was".to_string(),
                n => format!("{n} messages were"),
            };
            world.error(format!(
                "the screen fell behind the room: {what} not shown here"
            ));
            self.unshown_told = Some(now);
        }
        let report_at = (self.unshown > 0)
            .then(|| self.unshown_told.map(|at| at + SCREEN_REPORT_PERIOD))
            .flatten();
        [self.arrivals.next(), report_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Member `who` is no longer in the room: it closed (`why` is `None`),
    /// or its connection failed or went idle (`why` says how).
    pub fn leave(&mut self, who: Who, why: Option<&str>, world: &mut impl World) {
        self.arrivals.cancel(who);
        let Some(member) = self.members.get_mut(&who) else {
            return;
        };
        if !member.present {
            return;
        }
        if !member.announced {
            if member.early.is_empty() {
                member.present = false;
                return;
            }
            // A script that said its lines and closed before it was
            // announced: it joins, its lines are relayed, then it leaves.
            self.announce(who, None, world);
        }
        let member = self.members.get_mut(&who).expect("a member");
        member.present = false;
        let name = member.name.clone();
        let text = match why {
            None => format!("{name} left"),
            Some(why) => format!("{name} left ({why})"),
        };
        self.notice_all(who, &text, world);
        world.status(text);
    }

    /// Member `who` went quiet for `idle`: told why (before its side is
    /// closed, so it is the last it reads), and the room too.
    pub fn went_idle(&mut self, who: Who, idle: Duration, world: &mut impl World) {
        if !self.is_here(who) {
            return;
        }
        self.tell(who, &wire::idle(idle), world);
        let why = format!("idle for {} s", idle.as_secs());
        self.leave(who, Some(&why), world);
    }

    /// Member `who`'s connection is gone: forgotten. True if the room was
    /// told it joined (and so, when it left, why).
    pub fn forget(&mut self, who: Who) -> Option<(String, SocketAddr, bool)> {
        self.arrivals.cancel(who);
        self.members
            .remove(&who)
            .map(|m| (m.name, m.peer, m.announced))
    }

    /// Closes the room: everyone is told `why`, a member still sending
    /// (held back by its pace, or with more to read: `sending`) that the
    /// rest will not be relayed; nobody joins and nothing is relayed from
    /// now on. Returns the members still connected.
    pub fn close(
        &mut self,
        why: &str,
        sending: impl Fn(Who) -> bool,
        now: Instant,
        world: &mut impl World,
    ) -> Vec<Who> {
        if !self.closing {
            self.closing = true;
            let ids: Vec<Who> = self.members.keys().copied().collect();
            for &who in &ids {
                let member = &self.members[&who];
                if !member.present {
                    continue;
                }
                let paced = member.paced_until.is_some_and(|until| until > now);
                let text = match paced || sending(who) {
                    true => wire::cut_short(why),
                    false => why.to_string(),
                };
                let mut frame = Vec::new();
                let _ = encode_frame(&mut frame, &wire::notice(&text), usize::MAX);
                // One not yet announced gets what the room said since it
                // came, as it would have at its announcement.
                let pending =
                    std::mem::take(&mut self.members.get_mut(&who).expect("a member").pending);
                world.deliver(who, &pending);
                world.deliver(who, &frame);
            }
            for member in self.members.values_mut() {
                member.present = false;
            }
            if !self.members.is_empty() {
                world.status(format!(
                    "closing the room: waiting for {} to leave",
                    wire::members(self.members.len())
                ));
            }
        }
        self.members.keys().copied().collect()
    }

    /// Every member's connection, in the room or leaving.
    pub fn members(&self) -> Vec<Who> {
        self.members.keys().copied().collect()
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The operator's name as it is now (`/nick` changes it).
    pub fn operator_name(&self) -> &str {
        &self.operator
    }

    /// Relays the messages of `run`, said by `from`, to everyone else.
    fn relay(&mut self, from: Who, run: &mut Run, world: &mut impl World) {
        if run.said.is_empty() {
            return;
        }
        let ids: Vec<Who> = self.members.keys().copied().collect();
        for who in ids {
            if who != from {
                let frames = match &run.lines {
                    Some(lines) if !self.breaks(who) => lines,
                    _ => &run.frames,
                };
                self.deliver(who, frames, world);
            }
        }
        run.lines = None;
        for item in run.screen.drain(..) {
            let lines = item.lines.iter().filter(|&&b| b == b'\n').count();
            if !world.show(item) {
                self.unshown += lines as u64;
            }
        }
        let skip = run.said.len().saturating_sub(HISTORY);
        let at = SystemTime::now();
        for said in run.said.drain(..).skip(skip) {
            self.history_cost += said_cost(&said);
            self.history_total += 1;
            self.history.push_back(said);
            self.history_at.push_back(at);
            // Kept only while a newcomer could be shown it: 30 messages of
            // 19 MB once left 402 MB held for nobody.
            while self.history.len() > HISTORY || self.history_cost >= self.history_bytes() {
                let Some(oldest) = self.history.pop_front() else {
                    break;
                };
                self.history_at.pop_front();
                self.history_cost -= said_cost(&oldest);
            }
        }
        run.frames.clear();
    }

    /// A message or action from `who`, added to the run.
    fn say(&mut self, who: Who, how: Said, text: &[u8], run: &mut Run, world: &mut impl World) {
        let name = self.name_of(who).to_string();
        let breaks = self.sent_breaks(who);
        let payload = match how {
            Said::Message => wire::message(&name, text, breaks),
            Said::Action => wire::action(&name, text, breaks),
            Said::Private | Said::PrivateSent => unreachable!("said to one: Room::private"),
        };
        let before = run.frames.len();
        if encode_frame(&mut run.frames, &payload, self.settings.max_message_size).is_err() {
            self.relay(who, run, world);
            let text = format!(
                "your message is too long for the room: {} bytes as relayed, over the maximum of {}; not sent",
                payload.len(),
                self.settings.max_message_size
            );
            self.tell(who, &text, world);
            return;
        }
        // Readers that do not take line breaks get this run a line each
        // from the first message that has some.
        if run.lines.is_some() || memchr::memchr(b'\n', &payload).is_some() {
            let lines = run
                .lines
                .get_or_insert_with(|| run.frames[..before].to_vec());
            wire::encode_for(lines, b"", &payload, false);
        }
        if who != OPERATOR {
            let start = payload.len() - visible_len(&payload, &name, how);
            let line = &payload[start..];
            match run.screen.last_mut() {
                Some(Spoken { said, lines, .. }) if *said == how => {
                    push_screen_line(lines, line);
                }
                _ => {
                    let mut lines = Vec::new();
                    push_screen_line(&mut lines, line);
                    run.screen.push(Spoken {
                        said: how,
                        from: Arc::from(name.as_str()),
                        lines,
                    });
                }
            }
        }
        run.said.push(payload);
    }

    fn command(&mut self, who: Who, command: Command<'_>, world: &mut impl World) {
        match command {
            Command::Say(_) | Command::Me(_) => unreachable!("said, not a command"),
            Command::Who => {
                let mut here = vec![self.operator.clone()];
                here.extend(
                    self.members
                        .values()
                        .filter(|m| m.present && m.announced)
                        .map(|m| match m.away {
                            true => format!("{} (away)", m.name),
                            false => m.name.clone(),
                        }),
                );
                let text = format!("here ({}): {}", here.len(), here.join(", "));
                self.tell(who, &text, world);
            }
            Command::Help => {
                let help = match who {
                    OPERATOR => HELP.replace("q alone on a line leaves", "q closes the room"),
                    _ => HELP.to_string(),
                };
                self.tell(who, &help, world);
            }
            Command::Usage(how) => self.tell(who, how, world),
            Command::Unknown(word) => self.tell(who, &commands::unknown(word), world),
            Command::Nick(wanted) => self.rename(who, wanted, world),
            Command::Msg { to, text } => self.private(who, to, text, world),
        }
    }

    /// `/msg NAME TEXT` from `who`: TEXT goes to the one called NAME (as
    /// names are compared for uniqueness: `Bob` finds `bob`) and nobody
    /// else, the operator included unless it is one of the two, and `who`
    /// is told it went. It is never kept for newcomers. Its sender's pace
    /// was charged for it like any line (see [`Room::hear`]).
    fn private(&mut self, who: Who, to: &[u8], text: &[u8], world: &mut impl World) {
        let wanted = String::from_utf8_lossy(to);
        let Some(target) = self.called(&wanted) else {
            let text = format!("no one here is called {}", shown_name(&wanted));
            self.tell(who, &text, world);
            return;
        };
        if target == who {
            self.tell(
                who,
                "that is you: /msg NAME TEXT says TEXT to someone else",
                world,
            );
            return;
        }
        let (from, to) = (
            self.name_of(who).to_string(),
            self.name_of(target).to_string(),
        );
        let breaks = self.sent_breaks(who);
        let received = wire::private(&from, text, breaks);
        let sent = wire::private_sent(&to, text, breaks);
        let max = self.settings.max_message_size;
        let longest = received.len().max(sent.len());
        if longest > max {
            let text = format!(
                "your message is too long for the room: {longest} bytes as relayed, over the maximum of {max}; not sent"
            );
            self.tell(who, &text, world);
            return;
        }
        // The operator's screen takes the text alone, after the label.
        let text_of = |payload: &[u8], name: &str, how: Said| {
            let label = match how {
                Said::Private => wire::private(name, b"", Breaks::Escape),
                _ => wire::private_sent(name, b"", Breaks::Escape),
            };
            let mut lines = Vec::new();
            push_screen_line(&mut lines, &payload[label.len()..]);
            lines
        };
        for (whom, payload, name, how) in [
            (target, &received, &from, Said::Private),
            (who, &sent, &to, Said::PrivateSent),
        ] {
            if whom == OPERATOR {
                let lines = text_of(payload, name, how);
                let spoken = Spoken {
                    said: how,
                    from: Arc::from(name.as_str()),
                    lines,
                };
                if !world.show(spoken) {
                    self.unshown += 1;
                }
                continue;
            }
            let mut frame = Vec::new();
            wire::encode_for(&mut frame, b"", payload, self.breaks(whom));
            self.deliver(whom, &frame, world);
        }
    }

    /// Who in the room is called `name`, or a name that passes for it:
    /// the operator, or a member that was announced (as `/who` lists them).
    fn called(&self, name: &str) -> Option<Who> {
        // Longer than any name: nobody (and a long line is never compared
        // whole). Shorter, it is compared even if it is no valid name:
        // `bоb` with a Cyrillic `о` could not be taken, but finds bob.
        if name.chars().nth(names::MAX_NAME_CHARS).is_some() {
            return None;
        }
        let key = names::Key::of(name);
        if self.operator_key.same(&key) {
            return Some(OPERATOR);
        }
        self.members
            .iter()
            .find(|(_, m)| m.present && m.announced && m.key.same(&key))
            .map(|(&who, _)| who)
    }

    /// `/nick` from someone already announced.
    fn rename(&mut self, who: Who, wanted: &[u8], world: &mut impl World) {
        let wanted = String::from_utf8_lossy(wanted);
        if let Err(why) = names::check(&wanted) {
            self.tell(who, &format!("cannot use that name: {why}"), world);
            return;
        }
        let old = self.name_of(who).to_string();
        if wanted == old {
            self.tell(who, &format!("you are already {old}"), world);
            return;
        }
        if self.is_taken(&names::Key::of(&wanted), Some(who)) {
            let text = format!("the name {wanted} is taken; you are still {old}");
            self.tell(who, &text, world);
            return;
        }
        self.set_name(who, wanted.to_string());
        self.tell(who, &format!("you are now {wanted}"), world);
        self.notice_all(who, &format!("{old} is now {wanted}"), world);
        if who != OPERATOR {
            world.status(format!("{old} is now {wanted}"));
        }
    }

    /// The first `/nick` of a newcomer: the name it asked for, or the first
    /// free form of it, and the room is told it joined.
    fn claim(&mut self, who: Who, wanted: &[u8], world: &mut impl World) {
        let wanted = String::from_utf8_lossy(wanted);
        let note = match names::check(&wanted) {
            Err(why) => Some(format!("cannot use that name: {why}")),
            Ok(()) => {
                let name = names::free_form(&wanted, |key| self.is_taken(key, Some(who)));
                let note = (name != wanted)
                    .then(|| format!("the name {wanted} is taken, so you are {name}"));
                self.set_name(who, name);
                note
            }
        };
        let member = self.members.get_mut(&who).expect("a member");
        if member.hello_due && !member.announced {
            member.named = Some(note);
            return;
        }
        self.announce(who, note, world);
    }

    /// Tells the room that `who` joined, and `who` who is here.
    fn announce(&mut self, who: Who, note: Option<String>, world: &mut impl World) {
        self.arrivals.cancel(who);
        let Some(member) = self.members.get_mut(&who) else {
            return;
        };
        member.announced = true;
        let (name, peer) = (member.name.clone(), member.peer);
        let mut here = vec![self.operator.clone()];
        here.extend(
            self.members
                .iter()
                .filter(|(other, m)| **other != who && m.present && m.announced)
                .map(|(_, m)| m.name.clone()),
        );
        self.show_history(who, world);
        let note = note.map(|n| format!("{n}; ")).unwrap_or_default();
        let text = format!(
            "{note}you joined as {name}; here: {} (/nick NEW changes your name)",
            here.join(", ")
        );
        self.tell(who, &text, world);
        self.notice_all(who, &format!("{name} joined"), world);
        world.status(format!("{name} joined ({peer})"));
        let member = self.members.get_mut(&who).expect("a member");
        let (pending, lost) = (
            std::mem::take(&mut member.pending),
            std::mem::take(&mut member.pending_lost),
        );
        world.deliver(who, &pending);
        if lost > 0 {
            let text = format!(
                "{lost} more messages were said as you joined, more than were kept for you"
            );
            self.tell(who, &text, world);
        }
        let early = std::mem::take(&mut self.members.get_mut(&who).expect("a member").early);
        if !early.is_empty() {
            self.hear_frames(who, &early, world);
        }
    }

    /// Sends member `who`, as it is announced, the newest messages said
    /// before it connected that fit in half its bound (so that what it
    /// holds stays within the bound from the start), after when each was
    /// said. Sent then, not when it connected: its `HELLO` has come by then
    /// if it sends one (our client's comes before its `/nick`), so a
    /// message of several lines goes to it whole if it takes them. What the
    /// room said since it connected waits for it meanwhile (see
    /// [`Room::deliver`]), and follows its announcement.
    fn show_history(&mut self, who: Who, world: &mut impl World) {
        let said_since = self.history_total - self.members[&who].said_before;
        let before = self
            .history
            .len()
            .saturating_sub(usize::try_from(said_since).unwrap_or(usize::MAX));
        let mut budget = self.history_bytes();
        let fitting = self
            .history
            .iter()
            .take(before)
            .rev()
            .take_while(|said| {
                budget = budget.saturating_sub(said_cost(said));
                budget > 0
            })
            .count();
        if fitting == 0 {
            return;
        }
        let skip = before - fitting;
        let breaks = self.breaks(who);
        // A time for each frame: a message of several lines goes a line each
        // to a member that does not take them, each line with its time.
        let times: Vec<SystemTime> = self
            .history
            .iter()
            .zip(&self.history_at)
            .take(before)
            .skip(skip)
            .flat_map(|(said, &at)| {
                let frames = match breaks {
                    true => 1,
                    false => wire::frames_for_lines(said),
                };
                std::iter::repeat_n(at, frames)
            })
            .collect();
        let mut out = Vec::new();
        // Not in a room whose frames are too small for it (a client takes
        // none larger than the greeting says): the earlier messages then
        // come without their times.
        let said_at = wire::said_at(&times);
        if said_at.len() <= wire::largest_frame(self.settings.max_message_size) {
            let _ = encode_frame(&mut out, said_at.as_bytes(), usize::MAX);
        }
        for said in self.history.iter().take(before).skip(skip) {
            wire::encode_for(&mut out, wire::EARLIER_MARK, said, breaks);
        }
        self.deliver(who, &out, world);
    }

    /// Member `who` took nothing of what waited for it for `stalled`: it
    /// is told why (after what is queued for it, which it may still
    /// read), the room too, and its connection ended. True if it was here.
    pub fn cut_off(&mut self, who: Who, stalled: Duration, world: &mut impl World) -> bool {
        self.arrivals.cancel(who);
        let Some(member) = self.members.get_mut(&who) else {
            return false;
        };
        if !member.present {
            return false;
        }
        member.present = false;
        let (name, announced) = (member.name.clone(), member.announced);
        let mut notice = Vec::new();
        let _ = encode_frame(
            &mut notice,
            &wire::notice(&wire::stalled(stalled)),
            usize::MAX,
        );
        world.deliver(who, &notice);
        let text = format!(
            "{name} was disconnected: it took nothing the room sent for {} s",
            stalled.as_secs()
        );
        if announced {
            self.notice_all(who, &text, world);
        }
        world.status(text);
        world.end(who);
        true
    }

    /// Tells `who` alone.
    fn tell(&mut self, who: Who, text: &str, world: &mut impl World) {
        if who == OPERATOR {
            world.status(text.to_string());
            return;
        }
        let mut frame = Vec::new();
        let _ = encode_frame(&mut frame, &wire::notice(text), usize::MAX);
        // Said to it alone: at once, announced or not.
        if self.members.get(&who).is_some_and(|m| m.present) {
            world.deliver(who, &frame);
        }
    }

    /// Tells every member but `except` (the operator is told by the caller,
    /// in its own words).
    fn notice_all(&mut self, except: Who, text: &str, world: &mut impl World) {
        let mut frame = Vec::new();
        let _ = encode_frame(&mut frame, &wire::notice(text), usize::MAX);
        let ids: Vec<Who> = self.members.keys().copied().collect();
        for who in ids {
            if who != except {
                self.deliver(who, &frame, world);
            }
        }
    }

    /// Queues `frames` for member `who`, if it is in the room; held until
    /// it is announced, if it is not yet (see [`Room::show_history`]).
    fn deliver(&mut self, who: Who, frames: &[u8], world: &mut impl World) {
        let history_bytes = self.history_bytes();
        match self.members.get_mut(&who) {
            Some(m) if m.present && m.announced => world.deliver(who, frames),
            Some(m) if m.present => match m.pending.len() + frames.len() <= history_bytes {
                true => m.pending.extend_from_slice(frames),
                false => m.pending_lost += wire::frames(frames).count() as u64,
            },
            _ => {}
        }
    }

    fn name_of(&self, who: Who) -> &str {
        match who {
            OPERATOR => &self.operator,
            _ => &self.members[&who].name,
        }
    }

    /// The most of the history a newcomer is shown: half a member's bound,
    /// so that what a member holds stays within the bound from the start.
    fn history_bytes(&self) -> usize {
        self.settings.backlog / 2
    }

    fn set_name(&mut self, who: Who, name: String) {
        let key = names::Key::of(&name);
        match who {
            OPERATOR => {
                self.operator = name;
                self.operator_key = key;
            }
            _ => {
                let member = self.members.get_mut(&who).expect("a member");
                member.name = name;
                member.key = key;
            }
        }
    }

    /// Whether a name that `key` is of, or one it would pass for, is held
    /// by someone other than `by`.
    fn is_taken(&self, key: &names::Key, by: Option<Who>) -> bool {
        // The room's own word for a private message's reader (`you → bob:`).
        key.same(&self.reader_key)
            || (by != Some(OPERATOR) && self.operator_key.same(key))
            || self
                .members
                .iter()
                .any(|(who, m)| Some(*who) != by && m.present && m.key.same(key))
    }
}

/// Appends `text` (made displayable, its line breaks kept) as one line of
/// the operator's screen: its breaks as [`LINE_BREAK`]s, then `\n`.
fn push_screen_line(lines: &mut Vec<u8>, text: &[u8]) {
    let mut mark = [0; 4];
    let mark = LINE_BREAK.encode_utf8(&mut mark).as_bytes();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if n > 0 {
            lines.extend_from_slice(mark);
        }
        lines.extend_from_slice(line);
    }
    lines.push(b'\n');
}

/// A name asked for, as a notice shows it: made displayable, and cut
/// after a name's length (what is asked for need not be a name at all).
fn shown_name(name: &str) -> String {
    let mut cut: String = name.chars().take(names::MAX_NAME_CHARS).collect();
    if cut.len() < name.len() {
        cut.push('\u{2026}');
    }
    let mut out = Vec::with_capacity(cut.len());
    crate::wire::display::push_visible(&mut out, cut.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// What one earlier message costs a newcomer's bound: its text and room
/// for its frame and `-- earlier: ` mark.
fn said_cost(said: &[u8]) -> usize {
    said.len() + 64
}

/// How many bytes at the end of `payload` are the text (after the name).
fn visible_len(payload: &[u8], name: &str, how: Said) -> usize {
    let prefix = match how {
        Said::Message => name.len() + 2,
        Said::Action => 2 + name.len() + 1,
        Said::Private | Said::PrivateSent => unreachable!("said to one: Room::private"),
    };
    payload.len() - prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The world as a record of what the room did to it.
    #[derive(Default)]
    struct Record {
        /// Payloads each member was sent, in order.
        got: BTreeMap<Who, Vec<String>>,
        ended: Vec<Who>,
        status: Vec<String>,
        errors: Vec<String>,
        /// The operator's screen takes nothing.
        screen_full: bool,
        shown: usize,
    }

    impl World for Record {
        fn deliver(&mut self, to: Who, frames: &[u8]) {
            let got = self.got.entry(to).or_default();
            got.extend(
                crate::wire::frame::payloads(frames)
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            );
        }
        fn end(&mut self, who: Who) {
            self.ended.push(who);
        }
        fn status(&mut self, text: String) {
            self.status.push(text);
        }
        fn error(&mut self, text: String) {
            self.errors.push(text);
        }
        fn show(&mut self, _spoken: Spoken) -> bool {
            self.shown += 1;
            !self.screen_full
        }
    }

    impl Record {
        /// What `who` was sent since the last look.
        fn take(&mut self, who: Who) -> Vec<String> {
            self.got.remove(&who).unwrap_or_default()
        }
    }

    const KIB: usize = 1024;

    fn room() -> Room {
        Room::new(Settings {
            max_message_size: 64 * KIB,
            max_clients: 3,
            backlog: 400 * KIB,
            rate: 100 * KIB,
            operator: "server".into(),
        })
    }

    fn frames(lines: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines {
            encode_frame(&mut out, line.as_bytes(), usize::MAX).unwrap();
        }
        out
    }

    fn peer(n: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, n], 5000))
    }

    /// `who` joins and names itself `name` at `now`.
    fn named(room: &mut Room, world: &mut Record, who: Who, name: &str, now: Instant) {
        assert_eq!(
            room.join(who, peer(who as u8), now, world),
            Admission::Member
        );
        room.hear(who, &frames(&[&format!("/nick {name}")]), now, world);
    }

    #[test]
    fn members_are_greeted_named_and_relayed_to_everyone_else_in_order() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        let alice = world.take(1);
        assert!(wire::is_room_greeting(&alice[0]), "{alice:?}");
        assert!(
            alice[1].starts_with("-- you joined as alice; here: server"),
            "{alice:?}"
        );
        named(&mut room, &mut world, 2, "bob", t0);
        assert_eq!(world.take(1), ["-- bob joined"]);
        assert!(world.take(2)[1].contains("here: server, alice"));
        room.hear(1, &frames(&["hi", "/me waves", "there"]), t0, &mut world);
        assert_eq!(
            world.take(2),
            ["alice: hi", "* alice waves", "alice: there"]
        );
        assert_eq!(world.take(1), Vec::<String>::new(), "not to its sender");
        room.hear(OPERATOR, &frames(&["hello"]), t0, &mut world);
        assert_eq!(world.take(1), ["server: hello"]);
        assert_eq!(world.take(2), ["server: hello"]);
        // A newcomer sees what was said, marked as earlier, after when
        // each was said.
        named(&mut room, &mut world, 3, "carol", t0);
        let carol = world.take(3);
        let times = carol[1]
            .strip_prefix("-- ")
            .and_then(wire::read_said_at)
            .unwrap_or_else(|| panic!("{:?}", carol[1]));
        assert_eq!(times.len(), 4);
        assert_eq!(carol[2], "-- earlier: alice: hi");
        assert_eq!(carol[5], "-- earlier: server: hello");
        // One more than max_clients is refused, and the operator told.
        let full = room.join(4, peer(4), t0, &mut world);
        assert_eq!(full, Admission::Refused(wire::full(3)));
        assert!(
            world
                .status
                .last()
                .unwrap()
                .contains("turned away: the room is full")
        );
    }

    /// A member whose connection is lost keeps its place and name: the
    /// room is told it is away, not that it left; it is still sent what is
    /// said (kept for it); `/who` marks it; back, the room is told once.
    #[test]
    fn a_member_away_keeps_its_place_and_is_told_of_as_away_and_back() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        world.take(1);
        world.take(2);
        room.away(1, "nothing came back for 15 s", &mut world);
        room.away(1, "again", &mut world);
        assert_eq!(
            world.take(2),
            ["-- alice lost the connection; keeping the place for it to come back"]
        );
        assert!(room.is_here(1) && room.is_away(1));
        assert!(
            world
                .status
                .last()
                .unwrap()
                .contains("(nothing came back for 15 s)")
        );
        room.hear(2, &frames(&["while you were out", "/who"]), t0, &mut world);
        assert_eq!(world.take(1), ["bob: while you were out"]);
        assert_eq!(world.take(2), ["-- here (3): server, alice (away), bob"]);
        // Its name is still taken.
        named(&mut room, &mut world, 3, "alice", t0);
        let carol = world.take(3);
        assert!(carol.iter().any(|l| l.contains("alice-2")), "{carol:?}");
        world.take(2);
        assert_eq!(world.take(1), ["-- alice-2 joined"], "kept for it");
        room.back(1, "42 s", &mut world);
        room.back(1, "43 s", &mut world);
        assert_eq!(world.take(2), ["-- alice is back"]);
        assert_eq!(world.take(1), Vec::<String>::new(), "not to itself");
        assert_eq!(world.status.last().unwrap(), "alice is back after 42 s");
        assert!(!room.is_away(1));
        room.hear(2, &frames(&["/who"]), t0, &mut world);
        assert_eq!(world.take(2), ["-- here (4): server, alice, bob, alice-2"]);
    }

    /// Issue 20, item 1: a message of several lines from a member that
    /// sends them goes whole to members that take them, and a line each,
    /// under its sender's name, to the others and in a newcomer's history
    /// (with a time for each); in the same order as the lines around it.
    /// A line end from a member that did not say it sends them is text.
    #[test]
    fn a_message_of_several_lines_goes_whole_or_a_line_each_to_each_reader() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        named(&mut room, &mut world, 3, "carol", t0);
        room.hello_came(1, true, &mut world);
        room.hello_came(2, true, &mut world);
        for who in 1..=3 {
            world.take(who);
        }
        room.hear(
            1,
            &frames(&["before", "one\n\ntwo \x1b", "after"]),
            t0,
            &mut world,
        );
        assert_eq!(
            world.take(2),
            ["alice: before", "alice: one\n\ntwo \\x1b", "alice: after"]
        );
        assert_eq!(
            world.take(3),
            [
                "alice: before",
                "alice: one",
                "alice: two \\x1b",
                "alice: after"
            ]
        );
        room.hear(
            1,
            &frames(&["/me waves\nand waves", "/msg carol a\nb"]),
            t0,
            &mut world,
        );
        assert_eq!(world.take(2), ["* alice waves\nand waves"]);
        assert_eq!(
            world.take(3),
            [
                "* alice waves",
                "* alice and waves",
                "alice \u{2192} you: a",
                "alice \u{2192} you: b"
            ]
        );
        assert_eq!(world.take(1), ["you \u{2192} carol: a\nb"]);
        // From carol, which did not say it sends them: text.
        room.hear(3, &frames(&["x\ny"]), t0, &mut world);
        assert_eq!(world.take(2), ["carol: x\\ny"]);
        // A newcomer is sent the history a line each, a time for each.
        room.forget(3);
        named(&mut room, &mut world, 4, "dave", t0);
        assert_eq!(
            earlier_with_times(&world.take(4)),
            [
                "-- earlier: alice: before",
                "-- earlier: alice: one",
                "-- earlier: alice: two \\x1b",
                "-- earlier: alice: after",
                "-- earlier: * alice waves",
                "-- earlier: * alice and waves",
                "-- earlier: carol: x\\ny",
            ]
        );
        // One whose `HELLO` came before its name (our client's does) is
        // sent each message whole, with one time each.
        room.forget(4);
        assert_eq!(room.join(5, peer(5), t0, &mut world), Admission::Member);
        room.hello_came(5, true, &mut world);
        room.hear(5, &frames(&["/nick erin"]), t0, &mut world);
        assert_eq!(
            earlier_with_times(&world.take(5)),
            [
                "-- earlier: alice: before",
                "-- earlier: alice: one\n\ntwo \\x1b",
                "-- earlier: alice: after",
                "-- earlier: * alice waves\nand waves",
                "-- earlier: carol: x\\ny",
            ]
        );
    }

    /// The earlier messages among what a newcomer `got`, checked to come
    /// with one time each.
    fn earlier_with_times(got: &[String]) -> Vec<&str> {
        let earlier: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with("-- earlier: "))
            .collect();
        let times = got
            .iter()
            .find_map(|l| l.strip_prefix("-- ").and_then(wire::read_said_at))
            .expect("the times");
        assert_eq!(times.len(), earlier.len(), "a time for each: {got:?}");
        earlier
    }

    /// A newcomer that offered version 2 and named itself before its
    /// `HELLO` came is announced when the `HELLO` comes (so its history
    /// fits what it takes), or at [`HELLO_WAIT`] if it never does.
    #[test]
    fn a_name_before_the_hello_is_announced_when_the_hello_comes() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        room.hello_came(1, true, &mut world);
        room.hear(1, &frames(&["one\ntwo"]), t0, &mut world);
        world.take(1);
        for (who, hello) in [(2, true), (3, false)] {
            assert_eq!(
                room.join(who, peer(who as u8), t0, &mut world),
                Admission::Member
            );
            room.awaits_hello(who);
            room.hear(who, &frames(&["/nick bob", "early"]), t0, &mut world);
            let got = world.take(who);
            assert_eq!(got.len(), 1, "the greeting alone: {got:?}");
            assert!(world.take(1).is_empty(), "not yet announced");
            match hello {
                true => room.hello_came(who, true, &mut world),
                false => {
                    room.tick(t0 + HELLO_WAIT, &mut world);
                }
            }
            let got = world.take(who);
            let expected_name = ["bob", "bob-2"][who - 2];
            let history = match hello {
                true => "-- earlier: alice: one\ntwo",
                false => "-- earlier: alice: one",
            };
            assert!(got.contains(&history.to_string()), "{got:?}");
            let told = got
                .iter()
                .find(|l| l.contains("you joined as"))
                .expect("told");
            assert!(
                told.contains(&format!("you joined as {expected_name};")),
                "{told}"
            );
            assert_eq!(
                world.take(1),
                [
                    format!("-- {expected_name} joined"),
                    format!("{expected_name}: early")
                ]
            );
        }
    }

    /// What waits for a newcomer until its announcement is bounded (half
    /// its bound, as the history): past that, counted and told, not kept.
    #[test]
    fn what_waits_for_a_newcomer_is_bounded_and_what_is_not_kept_is_told() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        assert_eq!(room.join(2, peer(2), t0, &mut world), Admission::Member);
        let long = "x".repeat(50 * KIB);
        for _ in 0..6 {
            room.hear(1, &frames(&[&long]), t0, &mut world);
        }
        let waiting = room.members[&2].pending.len();
        assert!(waiting <= room.history_bytes(), "{waiting}");
        room.tick(t0 + HELLO_WAIT, &mut world);
        let got = world.take(2);
        let told = got
            .iter()
            .find(|l| l.contains("more than were kept for you"))
            .expect("told");
        assert_eq!(
            told,
            "-- 3 more messages were said as you joined, more than were kept for you"
        );
        let live = got.iter().filter(|l| l.starts_with("alice: x")).count();
        assert_eq!(live, 3, "kept: {}", got.len());
    }

    /// A newcomer is shown the history when it is announced (when its
    /// `HELLO` has told whether it takes messages of several lines), and
    /// what was said between its connecting and its announcement after
    /// that: everything once, in order, nothing live before the history.
    #[test]
    fn a_newcomer_is_shown_the_history_at_its_announcement_then_what_it_missed() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        room.hear(1, &frames(&["first"]), t0, &mut world);
        assert_eq!(room.join(2, peer(2), t0, &mut world), Admission::Member);
        room.hear(1, &frames(&["second"]), t0, &mut world);
        named(&mut room, &mut world, 3, "carol", t0);
        room.hear(2, &frames(&["/nick bob"]), t0, &mut world);
        room.hear(1, &frames(&["third"]), t0, &mut world);
        let bob = world.take(2);
        assert!(wire::is_room_greeting(&bob[0]), "{bob:?}");
        let shown: Vec<&str> = bob[1..]
            .iter()
            .filter(|l| wire::read_said_at(l.trim_start_matches("-- ")).is_none())
            .map(String::as_str)
            .collect();
        assert_eq!(
            shown,
            [
                "-- earlier: alice: first",
                "-- you joined as bob; here: server, alice, carol (/nick NEW changes your name)",
                "alice: second",
                "-- carol joined",
                "alice: third"
            ]
        );
    }

    #[test]
    fn a_private_message_reaches_its_one_reader_and_no_newcomer() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        named(&mut room, &mut world, 3, "carol", t0);
        for who in 1..=3 {
            world.take(who);
        }
        let shown = world.shown;
        // `Bob` is bob, as names are compared.
        room.hear(1, &frames(&["/msg Bob lunch?", "public"]), t0, &mut world);
        assert_eq!(
            world.take(2),
            ["alice \u{2192} you: lunch?", "alice: public"]
        );
        assert_eq!(world.take(1), ["you \u{2192} bob: lunch?"]);
        assert_eq!(world.take(3), ["alice: public"]);
        assert_eq!(
            world.shown,
            shown + 1,
            "the operator saw the public line only"
        );
        // To and from the operator, by the name it has.
        room.hear(3, &frames(&["/msg server psst"]), t0, &mut world);
        assert_eq!(world.take(3), ["you \u{2192} server: psst"]);
        assert_eq!(world.shown, shown + 2);
        room.hear(OPERATOR, &frames(&["/msg carol ok"]), t0, &mut world);
        assert_eq!(world.take(3), ["server \u{2192} you: ok"]);
        assert_eq!(world.shown, shown + 3, "its own, confirmed on its screen");
        for who in [1, 2] {
            assert_eq!(world.take(who), Vec::<String>::new());
        }
        // Nobody by that name, oneself, no text: told to the sender alone.
        room.hear(
            1,
            &frames(&["/msg dave hi", "/msg alice hi", "/msg bob"]),
            t0,
            &mut world,
        );
        let told = world.take(1);
        assert_eq!(told[0], "-- no one here is called dave");
        assert!(told[1].starts_with("-- that is you"), "{told:?}");
        assert!(
            told[2].starts_with("-- /msg needs a name and a message"),
            "{told:?}"
        );
        let long = format!("/msg \x1b{}", "x".repeat(100));
        room.hear(1, &frames(&[&format!("{long} hi")]), t0, &mut world);
        let told = world.take(1);
        assert!(
            told[0].starts_with("-- no one here is called \\x1bxxx"),
            "{told:?}"
        );
        assert!(told[0].len() < 80, "{told:?}");
        for who in [2, 3] {
            assert_eq!(world.take(who), Vec::<String>::new());
        }
        // A look-alike that no one could take as a name still finds bob.
        room.hear(1, &frames(&["/msg b\u{43e}b hi"]), t0, &mut world);
        assert_eq!(world.take(1), ["you \u{2192} bob: hi"]);
        assert_eq!(world.take(2), ["alice \u{2192} you: hi"]);
        // Nobody may take the name the private forms call their reader.
        room.hear(2, &frames(&["/nick You"]), t0, &mut world);
        assert_eq!(
            world.take(2),
            ["-- the name You is taken; you are still bob"]
        );
        // Not in what a newcomer is shown.
        room.forget(3);
        named(&mut room, &mut world, 4, "dave", t0);
        let dave = world.take(4);
        assert_eq!(
            dave.iter()
                .filter(|l| l.starts_with("-- earlier: "))
                .collect::<Vec<_>>(),
            ["-- earlier: alice: public"]
        );
    }

    /// A private message is a line like any other for its sender's pace.
    #[test]
    fn private_messages_are_paced_as_any_line() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        // 60 KiB past a burst of 50 KiB at 100 KiB/s: about 0.1 s.
        let line = format!("/msg bob {}", "x".repeat(KIB - 13));
        room.hear(1, &frames(&vec![line.as_str(); 60]), t0, &mut world);
        let wait = room.paced_until(1).expect("paced") - t0;
        assert!(
            wait > Duration::from_millis(90) && wait < Duration::from_millis(110),
            "{wait:?}"
        );
        let got = world.take(2);
        let private = got
            .iter()
            .filter(|l| l.starts_with("alice \u{2192} you: x"));
        assert_eq!(private.count(), 60, "all delivered all the same");
    }

    /// The room keeps of what was said only what a newcomer could be
    /// shown (half a member's bound), not twenty messages whatever their
    /// size; and a newcomer is shown the newest that fit.
    #[test]
    fn the_history_holds_no_more_than_a_newcomer_is_shown() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        // Thirty messages of 60 KiB, paced or not: 1.8 MB said.
        for n in 0..30 {
            let line = format!("{n:02} {}", "x".repeat(60 * KIB));
            let at = t0 + Duration::from_secs(n);
            room.hear(1, &frames(&[&line]), at, &mut world);
            room.tick(at, &mut world);
            assert!(
                room.history_cost < room.history_bytes(),
                "{} bytes held for newcomers, more than the {} one is shown",
                room.history_cost,
                room.history_bytes()
            );
        }
        let held: usize = room.history.iter().map(Vec::len).sum();
        assert!(held <= 200 * KIB, "{held} bytes held");
        named(
            &mut room,
            &mut world,
            2,
            "bob",
            t0 + Duration::from_secs(60),
        );
        let bob = world.take(2);
        let earlier: Vec<&String> = bob
            .iter()
            .filter(|l| l.starts_with("-- earlier:"))
            .collect();
        assert_eq!(earlier.len(), room.history.len(), "shown all that is kept");
        assert!(
            earlier
                .last()
                .unwrap()
                .starts_with("-- earlier: alice: 29 "),
            "the newest last"
        );
    }

    #[test]
    fn a_newcomer_that_names_no_one_is_announced_after_a_second_with_its_lines() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        world.take(1);
        assert_eq!(room.join(2, peer(2), t0, &mut world), Admission::Member);
        room.hear(2, &frames(&["early words"]), t0, &mut world);
        assert_eq!(
            world.take(1),
            Vec::<String>::new(),
            "held until it is named"
        );
        let next = room.tick(t0 + Duration::from_millis(100), &mut world);
        assert_eq!(next, Some(t0 + HELLO_WAIT));
        assert_eq!(world.take(1), Vec::<String>::new());
        room.tick(t0 + HELLO_WAIT, &mut world);
        assert_eq!(world.take(1), ["-- guest-2 joined", "guest-2: early words"]);
    }

    #[test]
    fn a_script_that_speaks_and_leaves_before_it_is_named_is_heard_first() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        world.take(1);
        room.join(2, peer(2), t0, &mut world);
        room.hear(2, &frames(&["one line"]), t0, &mut world);
        room.leave(2, None, &mut world);
        assert_eq!(
            world.take(1),
            ["-- guest-2 joined", "guest-2: one line", "-- guest-2 left"]
        );
    }

    #[test]
    fn a_talker_past_its_burst_is_paced_and_told_once_at_the_rate() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        world.take(1);
        // The burst is half a second of the rate: 50 KiB; 10 KiB more
        // waits 0.1 s at 100 KiB/s.
        let line = "x".repeat(KIB - 4);
        let lines: Vec<&str> = vec![line.as_str(); 60];
        let bytes = frames(&lines);
        room.hear(1, &bytes, t0, &mut world);
        let until = room.paced_until(1).expect("paced");
        let wait = until - t0;
        assert!(
            wait > Duration::from_millis(95) && wait < Duration::from_millis(105),
            "{wait:?}"
        );
        assert!(
            world
                .take(1)
                .iter()
                .any(|n| n.contains("faster than the room takes"))
        );
        // Paced again ten minutes later, with a full burst: not paced, and
        // never told twice.
        let later = t0 + Duration::from_secs(600);
        room.hear(1, &frames(&["calm"]), later, &mut world);
        assert_eq!(room.paced_until(1), None);
        room.hear(1, &bytes, later, &mut world);
        assert!(room.paced_until(1).is_some());
        assert!(!world.take(1).iter().any(|n| n.contains("faster")));
    }

    #[test]
    fn a_stalled_member_is_told_cut_off_and_the_room_hears_why() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        world.take(1);
        world.take(2);
        assert!(room.cut_off(2, flow::STALL, &mut world));
        assert_eq!(
            world.take(2),
            [String::from_utf8(wire::notice(&wire::stalled(flow::STALL))).unwrap()]
        );
        assert_eq!(world.ended, [2]);
        assert!(!room.is_here(2));
        assert_eq!(
            world.take(1),
            ["-- bob was disconnected: it took nothing the room sent for 5 s"]
        );
        // It gets nothing more, and is cut off once only.
        room.hear(1, &frames(&["three"]), t0, &mut world);
        assert_eq!(world.take(2), Vec::<String>::new());
        assert!(!room.cut_off(2, flow::STALL, &mut world));
        assert_eq!(world.ended, [2]);
    }

    #[test]
    fn closing_tells_everyone_and_a_paced_talker_that_its_rest_was_not_relayed() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        named(&mut room, &mut world, 3, "carol", t0);
        let line = "x".repeat(KIB);
        room.hear(1, &frames(&vec![line.as_str(); 200]), t0, &mut world);
        assert!(room.paced_until(1).is_some());
        for who in 1..=3 {
            world.take(who);
        }
        let why = wire::closed_by("server");
        // Carol has more to read (the loop says so); Bob has not.
        let left = room.close(&why, |who| who == 3, t0, &mut world);
        assert_eq!(left, [1, 2, 3]);
        assert_eq!(world.take(1), [format!("-- {}", wire::cut_short(&why))]);
        assert_eq!(world.take(2), [format!("-- {why}")]);
        assert_eq!(world.take(3), [format!("-- {}", wire::cut_short(&why))]);
        // Nothing more is relayed and nobody joins.
        room.hear(2, &frames(&["late"]), t0, &mut world);
        assert_eq!(world.take(1), Vec::<String>::new());
        assert_eq!(
            room.join(4, peer(4), t0, &mut world),
            Admission::Refused(wire::closing())
        );
        // It is empty once every connection is forgotten.
        for who in 1..=3 {
            assert!(room.forget(who).is_some());
        }
        assert!(room.is_empty());
    }

    #[test]
    fn an_idle_member_is_told_why_before_the_room_hears_it_left() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        named(&mut room, &mut world, 2, "bob", t0);
        world.take(1);
        world.take(2);
        room.went_idle(2, Duration::from_secs(2), &mut world);
        assert_eq!(
            world.take(2),
            [String::from_utf8(wire::notice(&wire::idle(Duration::from_secs(2)))).unwrap()]
        );
        assert_eq!(world.take(1), ["-- bob left (idle for 2 s)"]);
        assert!(!room.is_here(2));
    }

    #[test]
    fn what_the_operators_screen_misses_is_counted_and_told_every_five_seconds() {
        let (mut room, mut world, t0) = (room(), Record::default(), Instant::now());
        named(&mut room, &mut world, 1, "alice", t0);
        world.screen_full = true;
        room.hear(1, &frames(&["a", "b"]), t0, &mut world);
        room.tick(t0, &mut world);
        assert_eq!(
            world.errors,
            ["the screen fell behind the room: 2 messages were not shown here"]
        );
        room.hear(
            1,
            &frames(&["c"]),
            t0 + Duration::from_millis(100),
            &mut world,
        );
        let next = room.tick(t0 + Duration::from_millis(100), &mut world);
        assert_eq!(next, Some(t0 + SCREEN_REPORT_PERIOD));
        assert_eq!(world.errors.len(), 1);
        room.tick(t0 + SCREEN_REPORT_PERIOD, &mut world);
        assert_eq!(
            world.errors[1],
            "the screen fell behind the room: 1 message was not shown here"
        );
    }
}
