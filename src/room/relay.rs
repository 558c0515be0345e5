//! The room's shared state and everything done to it: who is here under
//! which name, what was said lately, and the relay that hands each message
//! to every other member.
//!
//! Members' receiving threads relay under one lock, so everyone gets the
//! messages in the order the server received them. Nothing done under the
//! lock waits: a member's messages are queued in its connection's outbox,
//! which its own sending thread (the socket's only writer) empties; a
//! member whose queue would grow past the bound is marked as behind and
//! gets nothing more, and the main thread disconnects it. The operator's
//! screen takes what it has room for and says what it had to drop.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::Config;
use super::clock::{Deadlines, HELLO_WAIT};
use super::commands::{self, Command, HELP};
use super::names;
use super::pace::Pace;
use super::wire;
use crate::connection::{Connection, Inbound};
use crate::ending::{Closing, Ending, Happening, Rules};
use crate::errors::{describe_failure, lowercase_os_error};
use crate::event::Event;
use crate::farewell::Farewells;
use crate::frame::{Payload, encode_frame};
use crate::gate::Admit;
use crate::outbox::{Outbox, Room as Space};
use crate::output::{Output, Said, Shown};
use crate::transport::Transport;

/// The operator's id; members count from 1.
pub const OPERATOR: u64 = 0;

/// How many messages a newcomer is shown from before it joined.
pub const HISTORY: usize = 20;

/// How many bytes a newcomer's lines may take while they wait for it to be
/// announced; past this it is announced under the name it has.
const EARLY_LIMIT: usize = 64 * 1024;

/// Messages the operator's screen had to drop are reported at most this often.
const SCREEN_REPORT_PERIOD: Duration = Duration::from_secs(5);

/// A paced talker's thread looks this often whether it is cancelled.
const PAUSE_SLICE: Duration = Duration::from_millis(100);

pub struct Room {
    /// This room, for the members' receiving threads.
    me: Weak<Room>,
    state: Mutex<State>,
    config: Config,
    events: Sender<Event>,
    output: Arc<Output>,
    farewells: Arc<Farewells>,
    /// `State::closing`, readable without the lock (by paced talkers).
    closing_now: AtomicBool,
}

struct Member {
    name: String,
    peer: SocketAddr,
    connection: Connection,
    outbox: Arc<Outbox>,
    closing: Closing,
    wake_at: Option<Instant>,
    /// In the room: gets what is said and holds its name.
    present: bool,
    /// The room was told it joined.
    announced: bool,
    /// Fell behind by more than the bound: it gets nothing more.
    behind: bool,
    /// Frames it sent before it was announced, handled once it is.
    early: Vec<u8>,
    /// Its receiving thread waits for its pace (see [`FromMember`]).
    owing: Arc<AtomicBool>,
}

struct State {
    members: BTreeMap<u64, Member>,
    operator: String,
    /// The last [`HISTORY`] messages, as relayed (without the frame header).
    history: VecDeque<Vec<u8>>,
    next_id: u64,
    guests: u64,
    /// The room is closing: nobody joins, nothing more is relayed.
    closing: bool,
    /// Newcomers not yet announced, by when they will be.
    arrivals: Deadlines<u64>,
    /// Members found behind, for the main thread.
    fell_behind: Vec<u64>,
    /// Members whose idle timeout ran out, for the room to be told.
    went_idle: Vec<(u64, Duration)>,
    /// Messages the operator's screen had no room for, not yet reported.
    unshown: u64,
    /// When that was last reported.
    unshown_told: Option<Instant>,
    /// A buffer for the next member's copy of what is relayed: each push
    /// hands back one of that outbox's emptied buffers, so a steady flow
    /// allocates nothing.
    scratch: Vec<u8>,
}

/// A member whose connection has ended, to be joined and reported outside
/// the lock.
pub struct Finished {
    /// The room was told it joined (and so, when it left, why).
    announced: bool,
    name: String,
    peer: SocketAddr,
    connection: Connection,
    ending: Ending,
}

impl Finished {
    /// Waits for its threads and tells the operator if it ended badly in a
    /// way not yet told (its leaving said why it failed; a cut-off, after
    /// it was asked to leave, is news).
    pub fn report(self, output: &Output) {
        self.connection.join();
        let told = self.announced && !matches!(self.ending, Ending::CutOff { .. });
        if let Some(why) = describe_failure(&self.ending)
            && !told
        {
            output.error(format!("{} ({}): {why}", self.name, self.peer));
        }
    }
}

/// What the main thread needs after a look at the room.
pub struct Tick {
    pub finished: Vec<Finished>,
    pub wake_at: Option<Instant>,
    /// Nobody's connection is left.
    pub empty: bool,
}

/// What a member's receiving thread hands to the room: the frames of one
/// read, relayed under one lock, at the member's pace.
struct FromMember {
    room: Arc<Room>,
    id: u64,
    frames: Vec<u8>,
    pace: Pace,
    /// It was told once that it talks faster than the room takes.
    told_pace: bool,
    /// Set while it waits for its pace: it has more on its way.
    owing: Arc<AtomicBool>,
}

impl Inbound for FromMember {
    fn message(&mut self, payload: Payload<'_>) {
        let _ = encode_frame(&mut self.frames, payload.bytes(), usize::MAX);
    }

    fn flush(&mut self, cancelled: &AtomicBool) -> bool {
        // In portions of at most the burst: one large read relayed at once
        // could put a reader past a small bound however fast it reads.
        for portion in wire::portions(&self.frames, self.pace.burst()) {
            self.room.hear(self.id, portion);
            let wait = self.pace.take(portion.len(), Instant::now());
            if !wait.is_zero() {
                if !self.told_pace {
                    self.told_pace = true;
                    self.room.told_pace(self.id);
                }
                // Not reading meanwhile is the point: TCP holds the rest
                // back in the member's client.
                self.owing.store(true, Ordering::SeqCst);
                // Not once the room closes: nothing more is relayed, and
                // the member's end must be read at once.
                pause(wait, &[cancelled, &self.room.closing_now]);
                self.owing.store(false, Ordering::SeqCst);
            }
        }
        self.frames.clear();
        true
    }
}

/// Sleeps for `wait`, or less once one of `stop` is set.
pub(super) fn pause(wait: Duration, stop: &[&AtomicBool]) {
    let until = Instant::now() + wait;
    loop {
        if stop.iter().any(|flag| flag.load(Ordering::SeqCst)) {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(PAUSE_SLICE));
    }
}

/// Messages said in a row by one sender, relayed together.
#[derive(Default)]
struct Run {
    /// Their frames, as every other member gets them.
    frames: Vec<u8>,
    /// Their payloads, for the history.
    said: Vec<Vec<u8>>,
    /// What the operator's screen shows.
    screen: Vec<Shown>,
}

impl Room {
    pub fn new(
        config: Config,
        events: Sender<Event>,
        output: Arc<Output>,
        farewells: Arc<Farewells>,
    ) -> Arc<Self> {
        let state = State {
            members: BTreeMap::new(),
            operator: config.name.clone(),
            history: VecDeque::with_capacity(HISTORY),
            next_id: OPERATOR + 1,
            guests: 0,
            closing: false,
            arrivals: Deadlines::default(),
            fell_behind: Vec::new(),
            went_idle: Vec::new(),
            unshown: 0,
            unshown_told: None,
            scratch: Vec::new(),
        };
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            state: Mutex::new(state),
            config,
            events,
            output,
            farewells,
            closing_now: AtomicBool::new(false),
        })
    }

    /// Takes in a client that just connected (and passed the gate): a
    /// member, or told the room is full (or closing) and let go.
    pub fn admit(&self, transport: Transport, peer: SocketAddr) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let mut state = self.lock();
        let present = state.members.values().filter(|m| m.present).count();
        if state.closing || present >= self.config.max_clients {
            let why = match state.closing {
                true => wire::closing(),
                false => wire::full(self.config.max_clients),
            };
            drop(state);
            self.farewells.send_off(&transport, &why);
            if present >= self.config.max_clients {
                self.output.status(format!(
                    "{peer} turned away: the room is full ({})",
                    wire::members(present)
                ));
            }
            let _ = self.events.send(Event::RoomChanged);
            return;
        }
        let owing = Arc::new(AtomicBool::new(false));
        let id = state.next_id;
        state.next_id += 1;
        let from = FromMember {
            room: me,
            id,
            frames: Vec::new(),
            pace: self.pace(),
            told_pace: false,
            owing: Arc::clone(&owing),
        };
        // Started under the lock: its first message waits for the greeting.
        let connection = match Connection::start_relaying(
            id,
            transport,
            self.config.max_message_size,
            from,
            &self.events,
        ) {
            Ok(connection) => connection,
            Err(e) => {
                drop(state);
                self.output
                    .error(format!("{peer}: cannot start: {}", lowercase_os_error(&e)));
                return;
            }
        };
        state.guests += 1;
        let guest = format!("guest-{}", state.guests);
        let name = names::free_form(&guest, |key| state.is_taken(key, None));
        let outbox = connection.outbox();
        let mut hello = Vec::new();
        let _ = encode_frame(
            &mut hello,
            wire::greeting(self.config.max_message_size).as_bytes(),
            usize::MAX,
        );
        // The newest earlier messages that fit in half the member's bound,
        // so that what a member holds stays within the bound from the start.
        let mut budget = self.config.backlog / 2;
        let fitting = state
            .history
            .iter()
            .rev()
            .take_while(|said| {
                let cost = said.len() + 64;
                budget = budget.saturating_sub(cost);
                budget > 0
            })
            .count();
        let skip = state.history.len() - fitting;
        for said in state.history.iter().skip(skip) {
            let _ = encode_frame(&mut hello, &wire::earlier(said), usize::MAX);
        }
        outbox.push(&mut hello, Space::Take);
        let now = Instant::now();
        let rules = Rules {
            input_end_closes: false,
            idle_timeout: self.config.idle_timeout,
        };
        state.arrivals.set(id, now + HELLO_WAIT);
        state.members.insert(
            id,
            Member {
                name,
                peer,
                connection,
                outbox,
                closing: Closing::new(rules, now),
                wake_at: None,
                present: true,
                announced: false,
                behind: false,
                early: Vec::new(),
                owing,
            },
        );
        let mut finished = Vec::new();
        state.step(id, None, now, &mut finished);
        drop(state);
        let _ = self.events.send(Event::RoomChanged);
    }

    /// A talker's pace: the room's rate, and a quarter of a member's bound
    /// at once, relayed in portions of at most that, so that a reader that
    /// keeps up with the rate is never more than half its bound behind one
    /// talker.
    pub fn pace(&self) -> Pace {
        Pace::new(self.config.rate, self.config.backlog / 4)
    }

    /// Tells member `id` (once) that it is being slowed.
    fn told_pace(&self, id: u64) {
        let mut state = self.lock();
        let text = format!(
            "you are sending faster than the room takes ({} bytes a second): the server reads your lines more slowly",
            self.config.rate
        );
        self.tell(&mut state, id, &text);
    }

    /// Takes the frames of one read from member `id` (or the operator):
    /// messages are relayed, commands done.
    pub fn hear(&self, id: u64, frames: &[u8]) {
        let mut state = self.lock();
        self.hear_locked(&mut state, id, frames);
    }

    fn hear_locked(&self, state: &mut State, id: u64, frames: &[u8]) {
        let mut run = Run::default();
        for payload in wire::frames(frames) {
            if state.closing || !state.is_here(id) {
                break;
            }
            if payload.is_empty() {
                continue;
            }
            if id != OPERATOR && !state.members[&id].announced {
                let member = state.members.get_mut(&id).expect("a member");
                if let Command::Nick(wanted) = commands::parse(payload) {
                    self.claim(state, id, wanted);
                    continue;
                }
                // Lines sent before the name was chosen (our client sends
                // `/nick` once it sees the greeting; a script's first lines
                // may be on their way already) wait for it, up to a bound.
                if member.early.len() + payload.len() <= EARLY_LIMIT {
                    let _ = encode_frame(&mut member.early, payload, usize::MAX);
                    continue;
                }
                self.announce(state, id, None);
            }
            match commands::parse(payload) {
                Command::Say(text) => self.say(state, id, Said::Message, text, &mut run),
                Command::Me(text) => self.say(state, id, Said::Action, text, &mut run),
                other => {
                    self.relay(state, id, &mut run);
                    self.command(state, id, other);
                }
            }
        }
        self.relay(state, id, &mut run);
    }

    /// Does what is due at `now`: members found behind are disconnected,
    /// newcomers that did not choose a name are announced, endings are
    /// stepped, turned-away clients drained.
    pub fn tick(&self, now: Instant) -> Tick {
        let mut state = self.lock();
        let mut finished = Vec::new();
        for id in std::mem::take(&mut state.fell_behind) {
            self.disconnect_behind(&mut state, id, now, &mut finished);
        }
        for id in state.arrivals.due(now) {
            if state.is_here(id) && !state.closing {
                self.announce(&mut state, id, None);
            }
        }
        let due: Vec<u64> = state
            .members
            .iter()
            .filter(|(_, m)| m.wake_at.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            state.step(id, None, now, &mut finished);
        }
        for (id, idle) in std::mem::take(&mut state.went_idle) {
            if state.is_here(id) {
                let why = format!("idle for {} s", idle.as_secs());
                self.leave(&mut state, id, Some(&why));
            }
        }
        let report_at = state.unshown_told.map(|at| at + SCREEN_REPORT_PERIOD);
        let report_due = state.unshown > 0 && report_at.is_none_or(|at| now >= at);
        if report_due {
            let n = std::mem::take(&mut state.unshown);
            let what = match n {
                1 => "1 message was".to_string(),
                n => format!("{n} messages were"),
            };
            self.output.error(format!(
                "the screen fell behind the room: {what} not shown here"
            ));
            state.unshown_told = Some(now);
        }
        let report_at = (state.unshown > 0)
            .then(|| state.unshown_told.map(|at| at + SCREEN_REPORT_PERIOD))
            .flatten();
        let wake_at = state
            .members
            .values()
            .filter_map(|m| m.wake_at)
            .chain(state.arrivals.next())
            .chain(report_at)
            .min();
        Tick {
            finished,
            wake_at,
            empty: state.members.is_empty(),
        }
    }

    /// Something happened to member `id`'s connection.
    pub fn happen(&self, id: u64, happening: Happening, now: Instant) -> Vec<Finished> {
        let mut state = self.lock();
        let mut finished = Vec::new();
        if !state.members.contains_key(&id) {
            return finished;
        }
        let why = match &happening {
            Happening::PeerClosed => Some(None),
            Happening::ReceiveFailed(why) | Happening::SendFailed(why) => Some(Some(why.clone())),
            _ => None,
        };
        if let Some(why) = why
            && state.is_here(id)
        {
            self.leave(&mut state, id, why.as_deref());
        }
        state.step(id, Some(happening), now, &mut finished);
        finished
    }

    /// Closes the room: everyone is told `why` (if anything), and every
    /// connection is ended as `happening` says (again: a second Ctrl-C).
    pub fn close(&self, why: Option<&str>, happening: Happening, now: Instant) -> Vec<Finished> {
        let mut state = self.lock();
        if !state.closing {
            state.closing = true;
            self.closing_now.store(true, Ordering::SeqCst);
            if let Some(why) = why {
                // A member held back by its pace had more to say: it is
                // told that it will not be relayed.
                let ids: Vec<u64> = state.members.keys().copied().collect();
                for id in ids {
                    let text = match state.members[&id].owing.load(Ordering::SeqCst) {
                        true => wire::cut_short(why),
                        false => why.to_string(),
                    };
                    let mut frame = Vec::new();
                    let _ = encode_frame(&mut frame, &wire::notice(&text), usize::MAX);
                    self.deliver(&mut state, id, &frame);
                }
            }
            for member in state.members.values_mut() {
                member.present = false;
            }
            let left = (!state.members.is_empty()).then(|| wire::members(state.members.len()));
            if let Some(left) = left {
                self.output
                    .status(format!("closing the room: waiting for {left} to leave"));
            }
        }
        let mut finished = Vec::new();
        let ids: Vec<u64> = state.members.keys().copied().collect();
        for id in ids {
            state.step(id, Some(happening.clone()), now, &mut finished);
        }
        finished
    }

    /// Relays the messages of `run`, said by `from`, to everyone else.
    fn relay(&self, state: &mut State, from: u64, run: &mut Run) {
        if run.said.is_empty() {
            return;
        }
        let ids: Vec<u64> = state.members.keys().copied().collect();
        for id in ids {
            if id != from {
                self.deliver(state, id, &run.frames);
            }
        }
        for item in run.screen.drain(..) {
            let lines = match &item {
                Shown::Room { lines, .. } => lines.iter().filter(|&&b| b == b'\n').count(),
                _ => 1,
            };
            if !self.output.offer(item) {
                if state.unshown == 0 {
                    // Once: the main thread reports when the period allows.
                    let _ = self.events.send(Event::RoomChanged);
                }
                state.unshown += lines as u64;
            }
        }
        let skip = run.said.len().saturating_sub(HISTORY);
        for said in run.said.drain(..).skip(skip) {
            if state.history.len() == HISTORY {
                state.history.pop_front();
            }
            state.history.push_back(said);
        }
        run.frames.clear();
    }

    /// A message or action from `id`, added to the run.
    fn say(&self, state: &mut State, id: u64, how: Said, text: &[u8], run: &mut Run) {
        let name = state.name_of(id).to_string();
        let payload = match how {
            Said::Message => wire::message(&name, text),
            Said::Action => wire::action(&name, text),
        };
        if encode_frame(&mut run.frames, &payload, self.config.max_message_size).is_err() {
            self.relay(state, id, run);
            self.tell(
                state,
                id,
                &format!(
                    "your message is too long for the room: {} bytes as relayed, over the maximum of {}; not sent",
                    payload.len(),
                    self.config.max_message_size
                ),
            );
            return;
        }
        if id != OPERATOR {
            let start = payload.len() - visible_len(&payload, &name, how);
            let line = &payload[start..];
            match run.screen.last_mut() {
                Some(Shown::Room { said, lines, .. }) if *said == how => {
                    lines.extend_from_slice(line);
                    lines.push(b'\n');
                }
                _ => {
                    let mut lines = line.to_vec();
                    lines.push(b'\n');
                    run.screen.push(Shown::Room {
                        said: how,
                        earlier: false,
                        from: Arc::from(name.as_str()),
                        lines,
                    });
                }
            }
        }
        run.said.push(payload);
    }

    fn command(&self, state: &mut State, id: u64, command: Command<'_>) {
        match command {
            Command::Say(_) | Command::Me(_) => unreachable!("said, not a command"),
            Command::Who => {
                let mut here = vec![state.operator.clone()];
                here.extend(
                    state
                        .members
                        .values()
                        .filter(|m| m.present && m.announced)
                        .map(|m| m.name.clone()),
                );
                let text = format!("here ({}): {}", here.len(), here.join(", "));
                self.tell(state, id, &text);
            }
            Command::Help => {
                let help = match id {
                    OPERATOR => HELP.replace("q alone on a line leaves", "q closes the room"),
                    _ => HELP.to_string(),
                };
                self.tell(state, id, &help);
            }
            Command::Usage(how) => self.tell(state, id, how),
            Command::Unknown(word) => self.tell(state, id, &commands::unknown(word)),
            Command::Nick(wanted) => self.rename(state, id, wanted),
        }
    }

    /// `/nick` from someone already announced.
    fn rename(&self, state: &mut State, id: u64, wanted: &[u8]) {
        let wanted = String::from_utf8_lossy(wanted);
        if let Err(why) = names::check(&wanted) {
            self.tell(state, id, &format!("cannot use that name: {why}"));
            return;
        }
        let old = state.name_of(id).to_string();
        if wanted == old {
            self.tell(state, id, &format!("you are already {old}"));
            return;
        }
        if state.is_taken(&names::key(&wanted), Some(id)) {
            self.tell(
                state,
                id,
                &format!("the name {wanted} is taken; you are still {old}"),
            );
            return;
        }
        state.set_name(id, wanted.to_string());
        self.tell(state, id, &format!("you are now {wanted}"));
        self.notice_all(state, id, &format!("{old} is now {wanted}"));
        if id != OPERATOR {
            self.output.status(format!("{old} is now {wanted}"));
        }
    }

    /// The first `/nick` of a newcomer: the name it asked for, or the first
    /// free form of it, and the room is told it joined.
    fn claim(&self, state: &mut State, id: u64, wanted: &[u8]) {
        let wanted = String::from_utf8_lossy(wanted);
        let note = match names::check(&wanted) {
            Err(why) => Some(format!("cannot use that name: {why}")),
            Ok(()) => {
                let name = names::free_form(&wanted, |key| state.is_taken(key, Some(id)));
                let note = (name != wanted)
                    .then(|| format!("the name {wanted} is taken, so you are {name}"));
                state.set_name(id, name);
                note
            }
        };
        self.announce(state, id, note);
    }

    /// Tells the room that `id` joined, and `id` who is here.
    fn announce(&self, state: &mut State, id: u64, note: Option<String>) {
        state.arrivals.cancel(id);
        let Some(member) = state.members.get_mut(&id) else {
            return;
        };
        member.announced = true;
        let (name, peer) = (member.name.clone(), member.peer);
        let mut here = vec![state.operator.clone()];
        here.extend(
            state
                .members
                .iter()
                .filter(|(other, m)| **other != id && m.present && m.announced)
                .map(|(_, m)| m.name.clone()),
        );
        let note = note.map(|n| format!("{n}; ")).unwrap_or_default();
        self.tell(
            state,
            id,
            &format!(
                "{note}you joined as {name}; here: {} (/nick NEW changes your name)",
                here.join(", ")
            ),
        );
        self.notice_all(state, id, &format!("{name} joined"));
        self.output.status(format!("{name} joined ({peer})"));
        let early = std::mem::take(&mut state.members.get_mut(&id).expect("a member").early);
        if !early.is_empty() {
            self.hear_locked(state, id, &early);
        }
    }

    /// `id` is no longer in the room (it closed or its connection failed).
    fn leave(&self, state: &mut State, id: u64, why: Option<&str>) {
        state.arrivals.cancel(id);
        let member = state.members.get_mut(&id).expect("a member");
        if !member.announced {
            if member.early.is_empty() {
                member.present = false;
                return;
            }
            // A script that said its lines and closed before it was
            // announced: it joins, its lines are relayed, then it leaves.
            self.announce(state, id, None);
        }
        let member = state.members.get_mut(&id).expect("a member");
        member.present = false;
        let name = member.name.clone();
        let text = match why {
            None => format!("{name} left"),
            Some(why) => format!("{name} left ({why})"),
        };
        self.notice_all(state, id, &text);
        self.output.status(text);
    }

    /// A member found behind: told why (after what it already has queued),
    /// the room too, and its connection ended.
    fn disconnect_behind(
        &self,
        state: &mut State,
        id: u64,
        now: Instant,
        finished: &mut Vec<Finished>,
    ) {
        let bound = self.config.backlog;
        let Some(member) = state.members.get_mut(&id) else {
            return;
        };
        if !member.present {
            return;
        }
        member.present = false;
        state.arrivals.cancel(id);
        let member = &state.members[&id];
        let (name, announced) = (member.name.clone(), member.announced);
        let text = wire::dropped_behind(bound);
        let mut notice = Vec::new();
        let _ = encode_frame(&mut notice, &wire::notice(&text), usize::MAX);
        member.outbox.push(&mut notice, Space::Take);
        let text = format!("{name} was disconnected: it fell more than {bound} bytes behind");
        if announced {
            self.notice_all(state, id, &text);
        }
        self.output.status(text);
        state.step(id, Some(Happening::Quit), now, finished);
    }

    /// Tells `id` alone.
    fn tell(&self, state: &mut State, id: u64, text: &str) {
        if id == OPERATOR {
            self.output.status(text);
            return;
        }
        let mut frame = Vec::new();
        let _ = encode_frame(&mut frame, &wire::notice(text), usize::MAX);
        self.deliver(state, id, &frame);
    }

    /// Tells every member but `except` (the operator is told by the caller,
    /// in its own words).
    fn notice_all(&self, state: &mut State, except: u64, text: &str) {
        let mut frame = Vec::new();
        let _ = encode_frame(&mut frame, &wire::notice(text), usize::MAX);
        let ids: Vec<u64> = state.members.keys().copied().collect();
        for id in ids {
            if id != except {
                self.deliver(state, id, &frame);
            }
        }
    }

    /// Queues `frames` for member `id`, unless that would put it more than
    /// the bound behind: then it is marked for the main thread to
    /// disconnect, and gets nothing more.
    fn deliver(&self, state: &mut State, id: u64, frames: &[u8]) {
        let Some(member) = state.members.get_mut(&id) else {
            return;
        };
        if !member.present || member.behind {
            return;
        }
        let backlog = member.connection.unsent() + frames.len() as u64;
        if backlog > self.config.backlog as u64 {
            member.behind = true;
            state.fell_behind.push(id);
            let _ = self.events.send(Event::RoomChanged);
            return;
        }
        let mut copy = std::mem::take(&mut state.scratch);
        copy.clear();
        copy.extend_from_slice(frames);
        member.outbox.push(&mut copy, Space::Take);
        state.scratch = copy;
    }

    /// The operator's name as it is now (`/nick` changes it).
    pub fn operator_name(&self) -> String {
        self.lock().operator.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }
}

impl State {
    /// Whether `id` is the operator or a member in the room.
    fn is_here(&self, id: u64) -> bool {
        id == OPERATOR || self.members.get(&id).is_some_and(|m| m.present)
    }

    fn name_of(&self, id: u64) -> &str {
        match id {
            OPERATOR => &self.operator,
            _ => &self.members[&id].name,
        }
    }

    fn set_name(&mut self, id: u64, name: String) {
        match id {
            OPERATOR => self.operator = name,
            _ => self.members.get_mut(&id).expect("a member").name = name,
        }
    }

    /// Whether a name whose key is `key` is held by someone other than `by`.
    fn is_taken(&self, key: &str, by: Option<u64>) -> bool {
        (by != Some(OPERATOR) && names::key(&self.operator) == key)
            || self
                .members
                .iter()
                .any(|(id, m)| Some(*id) != by && m.present && names::key(&m.name) == key)
    }

    /// Steps member `id`'s ending and does what it decides; an ended one is
    /// removed and put in `finished`.
    fn step(
        &mut self,
        id: u64,
        happening: Option<Happening>,
        now: Instant,
        finished: &mut Vec<Finished>,
    ) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let seen = member.connection.observe();
        let decision = member.closing.step(now, seen, happening);
        if let Some(idle) = decision.went_idle
            && member.present
        {
            // Told before our side closes, so that it is the last it reads.
            let mut notice = Vec::new();
            let _ = encode_frame(&mut notice, &wire::notice(&wire::idle(idle)), usize::MAX);
            member.outbox.push(&mut notice, Space::Take);
            self.went_idle.push((id, idle));
        }
        if decision.finish_sending {
            member.connection.finish_sending();
        }
        if decision.abort {
            member.connection.abort();
        }
        member.wake_at = decision.wake_at;
        if let Some(ending) = decision.ended {
            let member = self.members.remove(&id).expect("a member");
            self.arrivals.cancel(id);
            finished.push(Finished {
                announced: member.announced,
                name: member.name,
                peer: member.peer,
                connection: member.connection,
                ending,
            });
        }
    }
}

/// How many bytes at the end of `payload` are the text (after the name).
fn visible_len(payload: &[u8], name: &str, how: Said) -> usize {
    let prefix = match how {
        Said::Message => name.len() + 2,
        Said::Action => 2 + name.len() + 1,
    };
    payload.len() - prefix
}

impl Admit for Room {
    fn admit(&self, transport: Transport, peer: SocketAddr) {
        Room::admit(self, transport, peer);
    }
}
