//! `chat-server`: one conversation at a time between the operator and the
//! first client in line, on the server's event loop ([`crate::engine`]).
//!
//! Clients let in by the gate wait in a line of at most `max_waiting`,
//! told by an ordinary text message that the server is busy and their
//! place in it, and told again when the line moves. What a waiting client
//! sends is read ahead and kept, up to [`READ_AHEAD`], and shown first when
//! its turn comes. A client that ends its sending half while it waits has
//! not left: a piped client's input ended, and it reads on. It keeps its
//! place, and its conversation, when its turn comes, is one whose client
//! has finished sending. A client that left altogether is seen by its
//! reset: of its closing with our notices unread, or in answer to a
//! keepalive sent to every waiting client every [`PROBE_EVERY`].
//! One more than the line holds is told the server is full and let go.
//!
//! [`Server`] is either mode as a value: bound, then run until it is done
//! or told to stop, on any console and any clock.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::console::event::{Event, Events, Input, Shutdown};
use crate::console::input::AfterQuit;
use crate::console::outbox::{OUTBOX_LIMIT, Outbox};
use crate::console::output::Output;
use crate::console::{Console, Stdio};
pub use crate::engine::TlsConfig;
use crate::engine::{Engine, Id, Io, Listening, News, Service, Tick, listen};
use crate::errors::describe_failure;
use crate::state::access::Access;
use crate::state::clock::Clock;
use crate::state::ending::{Ending, Happening};
use crate::state::first_words::{FirstWords, Heard, Making, Told, sent_nothing, unfair_share};
use crate::wire::display::push_visible_frames;
use crate::wire::farewell::refusal;
use crate::wire::frame::encode_frame;
use crate::{Error, Exit};

/// Said when the operator's standard input ends.
const INPUT_ENDED: &str = "standard input has ended: from now on, only receiving";

/// The operator's prompt while no client is connected.
const WAITING_PROMPT: &str = "[waiting for a client] > ";

/// What a waiting client sent is kept up to this; past it, the rest waits in
/// the kernel's buffers (and so does the client's end of stream).
const READ_AHEAD: usize = 256 * 1024;

/// Newcomers in line are told the server is busy this long after they
/// arrive: a conversation that is just ending may free the server first,
/// and then they are simply served.
const TELL_AFTER: Duration = Duration::from_millis(200);

/// Waiting clients are sent a keepalive (an empty frame, which every peer
/// skips) this often, so that one that went away without a word that we
/// read (its end of stream behind more than [`READ_AHEAD`]) resets, and
/// leaves the line.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// An empty frame: no message, skipped by every peer.
const KEEPALIVE: [u8; 4] = [0; 4];

/// A received read is shown this much at a time at most.
const SHOW_AT_ONCE: usize = 256 * 1024;

/// A conversation is read this much in one round of the loop at most; the
/// rest next round, so that a flood never holds the operator's `q`, the
/// waiting line or the timers.
const READ_PER_ROUND: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    pub max_waiting: usize,
    /// Serve one conversation, then exit.
    pub once: bool,
    pub idle_timeout: Option<Duration>,
    /// A client waiting in line must have sent something (one whole frame)
    /// within this of taking its place, or it is let go (`None`: never;
    /// see [`crate::state::first_words`]).
    pub speak_within: Option<Duration>,
    /// A peer that answers nothing this long is taken as lost (`None`: TCP's own
    /// limits, about 15 minutes while bytes are in flight, never while idle).
    pub dead_after: Option<Duration>,
    /// Speak version 2 with peers that offer it (acknowledgements and
    /// heartbeats); false: version 1 only.
    pub sessions: bool,
    /// A lost conversation is kept this long for its client to resume it
    /// (version 2 clients; `None`: never).
    pub resume_for: Option<Duration>,
    /// TLS, if the server speaks it.
    pub tls: Option<TlsConfig>,
    pub access: Access,
}

/// What a server serves.
pub enum Mode {
    /// One conversation at a time, the others waiting in line.
    Conversations(Config),
    /// Everyone in one room.
    Room(crate::programs::room::Config),
}

/// A server, bound and ready to run.
pub struct Server {
    listener: TcpListener,
    mode: Mode,
    stdio: Stdio,
    clock: Clock,
}

impl Server {
    /// Listens on `address` (`HOST:PORT`; port 0 picks a free one), with
    /// the process's standard streams as the operator's console and the
    /// system's clock.
    pub fn bind(address: &str, mode: Mode) -> Result<Self, Error> {
        let listener = TcpListener::bind(address).map_err(|cause| Error::Listen {
            address: address.to_string(),
            cause,
        })?;
        Ok(Self {
            listener,
            mode,
            stdio: Stdio::process(),
            clock: Clock::system(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The operator's console reads and writes `stdio` instead.
    pub fn with_stdio(mut self, stdio: Stdio) -> Self {
        self.stdio = stdio;
        self
    }

    /// What the operator is shown looks as `look` says.
    pub fn with_look(mut self, look: crate::Look) -> Self {
        self.stdio = self.stdio.with_look(look);
        self
    }

    /// Timeouts and pacing follow `clock` instead.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves until the server is done (the room closed, the one
    /// conversation of `once` ended) or `shutdown` is requested. The loop
    /// and the output's thread have ended when it returns; the input's
    /// thread ends at the end of its input.
    pub fn run(self, shutdown: &Shutdown) -> Result<Exit, Error> {
        let around = Surroundings {
            stdio: self.stdio,
            clock: self.clock,
            shutdown: shutdown.clone(),
        };
        match self.mode {
            Mode::Conversations(config) => converse(self.listener, config, around),
            Mode::Room(config) => crate::programs::room::run(self.listener, config, around),
        }
    }
}

/// What a server program runs in: its console's streams, its clock, and
/// the request to stop from outside.
pub(crate) struct Surroundings {
    pub stdio: Stdio,
    pub clock: Clock,
    pub shutdown: Shutdown,
}

/// Serves clients from `listener`, one conversation at a time, until told
/// to stop (or after one conversation with `once`).
fn converse(listener: TcpListener, config: Config, around: Surroundings) -> Result<Exit, Error> {
    let listening = Listening::new(
        config.tls.as_ref(),
        &config.access,
        config.idle_timeout,
        config.dead_after,
        config.max_message_size,
        config.sessions,
    );
    let speak_within = config.speak_within;
    let Opened {
        events,
        inbox,
        console,
        mut engine,
        address,
    } = open(listener, listening, WAITING_PROMPT, around)?;
    engine.keep_sessions(config.sessions && config.resume_for.is_some());
    let output = Arc::clone(&console.output);
    {
        let events = events.clone();
        output.when_room(move || events.wake());
    }
    // Said before the operator's input is read: what is said of that
    // input (lines with nobody to send them to) comes after it.
    output.status(format!("listening on {address}"));
    console.start_input(&events, AfterQuit::Continue)?;
    let mut service = Conversations {
        console: &console,
        config,
        events: events.clone(),
        inbox,
        current: None,
        line: VecDeque::new(),
        tell_at: None,
        probe_at: None,
        operator_gone: false,
        exit: None,
        first_words: FirstWords::new(speak_within),
        told: Told::default(),
        turned_away: Told::new("clients turned away"),
    };
    Ok(run_to_end(
        &mut engine,
        &mut service,
        &console,
        &events,
        |s| s.exit,
    ))
}

/// Runs `service` on `engine` to its end, then the console's last words:
/// the exit is the service's (`exit_of`; a success if it says none), or a
/// failure if the loop itself failed. What both server programs end with.
pub(crate) fn run_to_end<S: Service>(
    engine: &mut Engine,
    service: &mut S,
    console: &Console,
    events: &Events,
    exit_of: impl Fn(&S) -> Option<Exit>,
) -> Exit {
    // Events sent before the loop could be woken are waiting.
    events.wake();
    let exit = match engine.run_to_end(service) {
        true => exit_of(service).unwrap_or(Exit::Success),
        false => Exit::Failure,
    };
    console.close();
    console.finish_for(exit)
}

/// A server program's console and loop, opened.
pub(crate) struct Opened {
    pub events: Events,
    pub inbox: Receiver<Event>,
    pub console: Console,
    pub engine: Engine,
    pub address: SocketAddr,
}

/// Opens the operator's console (with `prompt`) and the loop on `listener`,
/// the console's events waking the loop: what both server programs start
/// with.
pub(crate) fn open(
    listener: TcpListener,
    listening: Listening<'_>,
    prompt: &str,
    around: Surroundings,
) -> Result<Opened, Error> {
    let (sender, inbox) = mpsc::channel();
    let events = Events::new(sender);
    let console = Console::open(
        listening.max_message_size(),
        &events,
        prompt,
        around.stdio,
        &around.shutdown,
    )?;
    let address = listener.local_addr()?;
    let engine = listen(listener, listening, &console.output, &events, around.clock)?;
    Ok(Opened {
        events,
        inbox,
        console,
        engine,
        address,
    })
}

/// The conversation going on.
struct Current {
    id: Id,
    peer: SocketAddr,
    label: Arc<str>,
    /// The operator's lines for this client.
    outbox: Arc<Outbox>,
    batches: Vec<Vec<u8>>,
    /// Reading waits for the screen to have room.
    held_by_screen: bool,
    /// The ending is under way (the operator's `q`).
    ending: bool,
    /// The client speaks version 2: the operator's lines are acknowledged.
    session: bool,
    /// Lines of the operator's the client had not acknowledged at the end,
    /// and the first of them, if known.
    unacknowledged: u64,
    first_undelivered: Option<String>,
    /// How many lines the prompt says are not yet delivered.
    marked: u64,
    /// Its connection is lost, and the conversation kept for its return.
    away: bool,
    /// It closed without saying `END`, though it said it would: its
    /// program is gone, and the conversation did not end.
    vanished: bool,
}

/// A client waiting in line.
struct Waiting {
    id: Id,
    peer: SocketAddr,
    /// The place in line it was last told; 0 before its first notice.
    told_place: usize,
    /// Whole frames it sent while waiting (see [`READ_AHEAD`]).
    early: Vec<u8>,
    /// It ended its sending half while waiting (everything it sent is in
    /// `early`): its conversation starts with its client done sending.
    finished: bool,
    /// The operator was told it keeps its place.
    told_finished: bool,
    /// Its connection is lost, and its place kept for its return; it is
    /// passed over meanwhile.
    away: bool,
}

struct Conversations<'a> {
    console: &'a Console,
    config: Config,
    events: Events,
    inbox: Receiver<Event>,
    current: Option<Current>,
    line: VecDeque<Waiting>,
    /// When to tell newcomers in line that the server is busy.
    tell_at: Option<Instant>,
    /// When to send the waiting clients a keepalive (see [`PROBE_EVERY`]).
    probe_at: Option<Instant>,
    operator_gone: bool,
    exit: Option<Exit>,
    /// The clients in line that have sent nothing yet, and by when they
    /// must (`--speak-within`); the served one is never judged.
    first_words: FirstWords,
    /// Reports of clients let go for sending nothing, grouped.
    told: Told,
    /// Reports of clients turned away from a full line, grouped.
    turned_away: Told,
}

impl Conversations<'_> {
    fn output(&self) -> &Output {
        &self.console.output
    }

    /// Starts the conversation with `id`, which `waited` in line (and was
    /// told so), sending `early` meanwhile (shown first), and `finished`
    /// sending there.
    fn serve(
        &mut self,
        io: &mut Io,
        id: Id,
        peer: SocketAddr,
        waited: bool,
        early: Vec<u8>,
        finished: bool,
    ) {
        // Served: a quiet conversation is the operator's to end.
        self.first_words.forget(id);
        io.start_ending(id);
        io.allow_resume(id, self.config.resume_for);
        let outbox = {
            let events = self.events.clone();
            // A typed line goes out from the thread that read it when the
            // loop is not writing to this client: waking the loop to send
            // it cost a thread wake-up per line.
            let outbox = Arc::new(Outbox::waking(move || events.wake()));
            io.write_beside(id, &outbox);
            outbox
        };
        if waited {
            let mut notice = Vec::new();
            let text = crate::wire::line::turn();
            encode_frame(&mut notice, text.as_bytes(), usize::MAX).expect("notices are short");
            io.send(id, &notice);
        }
        self.console.recipient.set(Some(Arc::clone(&outbox)));
        let waiting = match self.line.len() {
            0 => String::new(),
            n => format!(" ({n} waiting)"),
        };
        let quiet = match self.operator_gone {
            true => "; standard input has ended, so only receiving",
            false => "",
        };
        self.output()
            .status(format!("{peer} connected{waiting}{quiet}"));
        let label: Arc<str> = Arc::from(peer.to_string());
        self.show(&label, &early, io.in_session(id));
        if io.takes_line_breaks(id) {
            outbox.take_line_breaks();
        }
        // The operator's lines longer than this client takes are refused
        // where they are typed (a paste over the client's maximum ended
        // the conversation as the client's protocol error).
        self.console.recipient.limit_to(io.peer_max(id));
        self.current = Some(Current {
            id,
            peer,
            label,
            outbox,
            batches: Vec::new(),
            held_by_screen: false,
            ending: false,
            session: io.in_session(id),
            unacknowledged: 0,
            first_undelivered: None,
            marked: 0,
            away: false,
            vanished: false,
        });
        // What it sent while waiting is shown now: taken, and acknowledged.
        io.hold_acknowledgements(id, false);
        self.set_prompt();
        if finished {
            // Its end of stream was read while it waited: the ending
            // learns it now, as if it had just come.
            io.happen(id, Happening::PeerClosed);
        }
        self.read_current(io);
    }

    /// Shows in the prompt how many of the operator's lines wait for the
    /// client's acknowledgement, once they have waited long enough.
    fn mark_undelivered(&mut self, io: &Io) {
        let Some(current) = &mut self.current else {
            return;
        };
        let waiting = io.overdue(current.id).unwrap_or(0);
        if waiting != current.marked {
            current.marked = waiting;
            self.set_prompt();
        }
    }

    fn set_prompt(&self) {
        let undelivered = match self.current.as_ref().map_or(0, |c| c.marked) {
            0 => String::new(),
            1 => ", 1 line not yet delivered".to_string(),
            n => format!(", {n} lines not yet delivered"),
        };
        let prompt = match (&self.current, self.line.len()) {
            (None, _) => WAITING_PROMPT.to_string(),
            (Some(current), _) if current.ending => {
                format!("[ending {}{undelivered}] > ", current.peer)
            }
            (Some(current), 0) => format!("[{}{undelivered}] > ", current.peer),
            (Some(current), n) => format!("[{}, {n} waiting{undelivered}] > ", current.peer),
        };
        self.console.set_prompt(&prompt);
    }

    /// Shows the messages in `frames` as from `label`.
    fn show(&self, label: &Arc<str>, frames: &[u8], breaks: bool) {
        let mut text = self.output().buffer();
        push_visible_frames(&mut text, frames, breaks);
        if !text.is_empty() {
            self.output().messages_now(label, text);
        }
    }

    /// Reads the conversation's messages as far as the screen takes them.
    fn read_current(&mut self, io: &mut Io) {
        let Some(current) = &self.current else {
            return;
        };
        let (id, label) = (current.id, Arc::clone(&current.label));
        let mut read = 0;
        loop {
            if read >= READ_PER_ROUND {
                io.read_later(id);
                return;
            }
            let output = &self.console.output;
            let room = output.has_room();
            if let Some(current) = &mut self.current {
                current.held_by_screen = !room;
            }
            // Not read meanwhile: the client's heartbeats wait unread too,
            // and its silence is not counted against it.
            io.defer_reading(id, !room);
            if !room {
                return;
            }
            let mut text = output.buffer();
            let breaks = io.in_session(id);
            // Straight from the loop's read buffer to what is shown.
            let more = io.read_with(id, SHOW_AT_ONCE, |frames| {
                read += frames.len();
                push_visible_frames(&mut text, frames, breaks);
            });
            if !text.is_empty() {
                output.messages_now(&label, text);
            }
            if !more {
                return;
            }
        }
    }

    /// Reads ahead what waiting client `id` sent, within [`READ_AHEAD`].
    fn read_waiting(&mut self, io: &mut Io, id: Id) {
        let Some(waiting) = self.line.iter_mut().find(|w| w.id == id) else {
            return;
        };
        while waiting.early.len() < READ_AHEAD {
            let room = READ_AHEAD - waiting.early.len();
            if !io.read(id, &mut waiting.early, room) {
                break;
            }
        }
    }

    /// Moves the operator's lines to the conversation, as far as the peer
    /// takes them: the outbox's bound holds a piped flood back meanwhile.
    fn pump(&mut self, io: &mut Io) {
        let Some(current) = &mut self.current else {
            return;
        };
        while io.unsent(current.id) < OUTBOX_LIMIT {
            // What pushes wrote at once goes before what they queued.
            io.take_written(current.id);
            current.outbox.take_now(&mut current.batches);
            if current.batches.is_empty() {
                break;
            }
            for batch in &mut current.batches {
                io.send_batch(current.id, batch);
            }
        }
        let held = current.outbox.queued() as u64;
        io.set_held(current.id, held, current.outbox.is_backlogged());
    }

    /// Our side of the conversation is ending: everything the operator
    /// typed so far goes (the outbox is bounded, so this is bounded too),
    /// and nothing typed from now on.
    fn last_words(&mut self, io: &mut Io) {
        let Some(current) = &mut self.current else {
            return;
        };
        current.outbox.close();
        io.take_written(current.id);
        while current.outbox.take_now(&mut current.batches) && !current.batches.is_empty() {
            for batch in &mut current.batches {
                io.send_batch(current.id, batch);
            }
        }
        io.set_held(current.id, 0, false);
    }

    /// Tells each waiting client told its place so far what `notice`
    /// says for its place.
    fn tell_line(&mut self, io: &mut Io, notice: impl Fn(usize) -> String) {
        for waiting in self.line.iter().filter(|w| w.told_place > 0) {
            let mut frame = Vec::new();
            encode_frame(
                &mut frame,
                notice(waiting.told_place).as_bytes(),
                usize::MAX,
            )
            .expect("notices are short");
            io.send(waiting.id, &frame);
        }
    }

    /// Tells each waiting client that the server is busy and its place,
    /// once, and again whenever its place changes.
    fn tell_places(&mut self, io: &mut Io) {
        for (at, waiting) in self.line.iter_mut().enumerate() {
            let here = at + 1;
            let notice = match waiting.told_place {
                0 => crate::wire::line::busy(here),
                told if told != here => crate::wire::line::moved(here),
                _ => continue,
            };
            let mut frame = Vec::new();
            encode_frame(&mut frame, notice.as_bytes(), usize::MAX).expect("notices are short");
            io.send(waiting.id, &frame);
            waiting.told_place = here;
        }
        // Said once the keepalive sent when it finished had its moment to
        // draw a reset: a client killed while waiting only leaves.
        for waiting in self
            .line
            .iter_mut()
            .filter(|w| w.finished && !w.told_finished)
        {
            waiting.told_finished = true;
            self.console.output.status(format!(
                "{} has finished sending and keeps its place in line",
                waiting.peer
            ));
        }
    }

    /// Waiting client `id` has gone (`why`: reset, or lost).
    fn leave_line(&mut self, io: &mut Io, id: Id, why: &str) {
        let Some(at) = self.line.iter().position(|w| w.id == id) else {
            return;
        };
        let waiting = self.line.remove(at).expect("in line");
        self.first_words.forget(id);
        io.drop_now(id);
        // A reset is how a client leaves; a lost one is worth the words,
        // and one that broke the protocol (garbage, an HTTP request) is
        // an error, as when it is served.
        if why.starts_with("protocol error") {
            self.output()
                .error(format!("{}: {why} (waiting in line)", waiting.peer));
        } else {
            let how = match why {
                crate::errors::VANISHED => {
                    " without a word (its program may have been killed)".to_string()
                }
                why if why.starts_with("connection lost") => format!(" ({why})"),
                _ => String::new(),
            };
            self.output()
                .status(format!("{} left the line{how}", waiting.peer));
        }
        self.tell_places(io);
        self.set_prompt();
    }

    /// Lets go the clients in line whose `--speak-within` ran out with not
    /// one whole frame from them (see [`crate::state::first_words`]): each
    /// is told why, and the line moves; the operator's reports of them are
    /// grouped, once a second with a count.
    fn let_go_silent(&mut self, io: &mut Io) {
        let now = io.now();
        if let Some(within) = self.first_words.within() {
            let silent = self
                .first_words
                .due(now, |id| io.first_frame(id).unwrap_or(Heard::Frame));
            let mut moved = false;
            for id in silent {
                moved |= self.let_go_waiting(io, id, within, "");
            }
            if moved {
                self.tell_places(io);
                self.set_prompt();
            }
        }
        for told in [&mut self.told, &mut self.turned_away] {
            if let Some(report) = told.overdue(now) {
                self.console.output.status(report);
            }
        }
    }

    /// Lets go waiting client `id`, which sent nothing `within` of taking
    /// its place (`and`: what more is to be said of it); false if it is
    /// not in line.
    fn let_go_waiting(&mut self, io: &mut Io, id: Id, within: Duration, and: &str) -> bool {
        let Some(at) = self.line.iter().position(|w| w.id == id) else {
            return false;
        };
        let waiting = self.line.remove(at).expect("in line");
        let notice = format!(
            "your place in line was given up: you {}{and} (a client keeps its place by sending something, a line or an empty frame)",
            sent_nothing(within, "taking it")
        );
        io.refuse(id, &refusal(&notice));
        let line = format!(
            "{} let go: it {}{and}",
            waiting.peer,
            sent_nothing(within, "taking its place in line")
        );
        if let Some(report) = self.told.let_go(line, io.now()) {
            self.output().status(report);
        }
        true
    }

    /// Lets go waiting client `id`, which has sent nothing yet, for a
    /// newcomer from a network that holds fewer places than its own does
    /// (`held`: how many its own holds); false if it is not in line.
    fn let_go_waiting_for_share(&mut self, io: &mut Io, id: Id, held: &str) -> bool {
        let Some(at) = self.line.iter().position(|w| w.id == id) else {
            return false;
        };
        let waiting = self.line.remove(at).expect("in line");
        let notice = format!(
            "your place in line was given up: {} (a client keeps its place by sending something, a line or an empty frame)",
            unfair_share("you", "your", held)
        );
        io.refuse(id, &refusal(&notice));
        let line = format!(
            "{} let go: {}",
            waiting.peer,
            unfair_share("it", "its", held)
        );
        if let Some(report) = self.told.let_go(line, io.now()) {
            self.output().status(report);
        }
        true
    }

    /// The next in line that is not away, if any, is served: one whose
    /// connection is lost keeps its place, first when it is back.
    fn next(&mut self, io: &mut Io) {
        let Some(at) = self.line.iter().position(|w| !w.away) else {
            return;
        };
        if let Some(waiting) = self.line.remove(at) {
            let waited = waiting.told_place > 0;
            let Waiting {
                id,
                peer,
                early,
                finished,
                ..
            } = waiting;
            self.serve(io, id, peer, waited, early, finished);
            self.tell_places(io);
        }
    }

    fn event(&mut self, io: &mut Io, event: Event) {
        match event {
            Event::Input(Input::Quit) => match &mut self.current {
                Some(current) => {
                    let again = current.ending;
                    current.ending = true;
                    // What was typed before `q` goes first, and counts.
                    let id = current.id;
                    let (away, peer) = (current.away, current.peer);
                    self.last_words(io);
                    let waiting = io.unacknowledged(id);
                    if away && waiting > 0 && !again {
                        let lines = match waiting {
                            1 => "1 line".to_string(),
                            n => format!("{n} lines"),
                        };
                        self.console.output.status(format!(
                            "waiting for {peer} to come back, to deliver {lines} (q again to end now)"
                        ));
                    }
                    io.happen(id, Happening::Quit);
                    self.set_prompt();
                }
                None => self.output().error("nobody is connected; nothing to end"),
            },
            Event::Input(Input::Closed) => {
                self.operator_gone = true;
                self.output().status(INPUT_ENDED);
            }
            Event::Interrupt | Event::Input(Input::Interrupted) => {
                self.exit = Some(Exit::Interrupted);
                if let Some(current) = &self.current {
                    let id = current.id;
                    self.last_words(io);
                    io.happen(id, Happening::Interrupted);
                }
            }
            Event::OutputClosed => {
                self.exit.get_or_insert(Exit::Success);
                if let Some(current) = &self.current {
                    io.happen(current.id, Happening::OutputClosed);
                }
            }
        }
    }

    /// The conversation with `current` ended as `ending`.
    fn ended(&mut self, io: &mut Io, current: Current, ending: Ending) {
        self.console.recipient.set(None);
        // A client killed or crashed has not left: its system closed for
        // it (it said `ADDR left`).
        let ending = match ending {
            Ending::PeerLeft if current.vanished => Ending::Failed {
                why: crate::errors::VANISHED.to_string(),
                undelivered: 0,
            },
            ending => ending,
        };
        // Said before the next in line is served; a client that connects
        // after reading the report is served at once all the same (the
        // loop takes it after this round).
        let stopping = matches!(ending, Ending::Interrupted | Ending::OutputClosed)
            || self.exit.is_some()
            || self.config.once;
        let lines = current.session.then(|| {
            let lines = current.unacknowledged + current.outbox.queued_lines();
            crate::errors::undelivered_lines(lines, current.first_undelivered.as_deref())
        });
        let failed = report(self.output(), &current.label, &ending, lines);
        if !stopping {
            self.next(io);
        }
        match ending {
            Ending::Interrupted => self.exit = Some(Exit::Interrupted),
            Ending::OutputClosed => {
                self.exit.get_or_insert(Exit::Success);
            }
            _ if self.config.once => {
                self.exit = Some(if failed { Exit::Failure } else { Exit::Success });
            }
            _ => {}
        }
        self.set_prompt();
    }
}

impl Service for Conversations<'_> {
    fn admit(&mut self, io: &mut Io, id: Id) {
        let Some(peer) = io.peer(id) else {
            return;
        };
        if self.current.is_none() && self.line.is_empty() && self.exit.is_none() {
            self.serve(io, id, peer, false, Vec::new(), false);
            return;
        }
        if self.line.len() >= self.config.max_waiting
            && let Some(within) = self.first_words.within()
            && let Some((silent, making)) = self.first_words.make_room(io.now(), peer.ip(), |id| {
                io.first_frame(id).unwrap_or(Heard::Frame)
            })
        {
            // A full line of connections that say nothing keeps nobody out
            // (see `crate::state::first_words`).
            match making {
                Making::Age => {
                    self.let_go_waiting(io, silent, within / 2, ", and a newcomer needed it")
                }
                Making::Share { network, held } => self.let_go_waiting_for_share(
                    io,
                    silent,
                    &format!("{network} held {held} of the places in line"),
                ),
            };
            self.tell_places(io);
        }
        let waiting = self.line.len();
        if waiting >= self.config.max_waiting {
            let notice = format!("server is full ({waiting} already waiting); try again later");
            io.refuse(id, &refusal(&notice));
            // Grouped: a stream of newcomers to a full line is one line a
            // second on the operator's screen.
            let line = format!("{peer} turned away: the line is full ({waiting} waiting)");
            if let Some(report) = self.turned_away.let_go(line, io.now()) {
                self.output().status(report);
            }
            return;
        }
        self.line.push_back(Waiting {
            id,
            peer,
            told_place: 0,
            early: Vec::new(),
            finished: false,
            told_finished: false,
            away: false,
        });
        // Its place is kept for it across a lost connection, as a
        // conversation is (the session is named in our `HELLO`).
        io.allow_resume(id, self.config.resume_for);
        self.output().status(format!(
            "{peer} is waiting (number {} in line)",
            waiting + 1
        ));
        self.tell_at.get_or_insert(io.now() + TELL_AFTER);
        self.probe_at.get_or_insert(io.now() + PROBE_EVERY);
        self.first_words.took_place(id, peer.ip(), io.now());
        self.set_prompt();
        // What it sends meanwhile is kept, not yet shown: not acknowledged
        // before its turn (its client counts it as not delivered).
        io.hold_acknowledgements(id, true);
        self.read_waiting(io, id);
    }

    fn readable(&mut self, io: &mut Io, id: Id) {
        match &self.current {
            Some(current) if current.id == id => self.read_current(io),
            _ => self.read_waiting(io, id),
        }
    }

    fn news(&mut self, io: &mut Io, id: Id, news: News) {
        if self.current.as_ref().is_some_and(|c| c.id == id) {
            match news {
                News::StillWaiting { undelivered } => {
                    let peer = self.current.as_ref().expect("current").peer;
                    self.output().status(match undelivered.the_last() {
                        None => {
                            format!("waiting for {peer} to close its side (Ctrl-C to stop now)")
                        }
                        Some(last) => format!(
                            "waiting for {peer} to take {last} and close (Ctrl-C to stop now)"
                        ),
                    });
                }
                News::SessionOpened => {
                    if let Some(current) = &mut self.current {
                        current.session = true;
                        if io.takes_line_breaks(current.id) {
                            current.outbox.take_line_breaks();
                        }
                        self.console.recipient.limit_to(io.peer_max(current.id));
                        // The operator's lines are written by the thread
                        // that reads them from now on, and handed to the
                        // loop to number and keep.
                        io.write_beside(current.id, &current.outbox);
                    }
                }
                News::Unacknowledged { lines, first } => {
                    if let Some(current) = &mut self.current {
                        current.unacknowledged = lines;
                        current.first_undelivered = first;
                    }
                }
                News::Vanished => {
                    if let Some(current) = &mut self.current {
                        current.vanished = true;
                    }
                }
                News::Away { why, lines, within } => {
                    let current = self.current.as_mut().expect("current");
                    current.away = true;
                    let peer = current.peer;
                    let within = within.as_secs();
                    let lines = match lines {
                        0 => String::new(),
                        1 => "; 1 line not yet delivered".to_string(),
                        n => format!("; {n} lines not yet delivered"),
                    };
                    self.output().error(format!(
                        "{peer}: {why}; keeping the conversation for {within} s for it to come back{lines}"
                    ));
                    // The line waits, and is told why.
                    let notice = crate::wire::line::ahead_away(within);
                    self.tell_line(io, |_| notice.clone());
                }
                // A client's, not a server's.
                News::NotResumed { .. } => {}
                News::Back {
                    after,
                    peer: from,
                    resent,
                } => {
                    let current = self.current.as_mut().expect("current");
                    current.away = false;
                    let peer = current.peer;
                    let from = match from == peer {
                        true => String::new(),
                        false => format!(" from {from}"),
                    };
                    let resent = match resent {
                        0 => String::new(),
                        1 => "; sending the 1 line it had not taken".to_string(),
                        n => format!("; sending the {n} lines it had not taken"),
                    };
                    self.output().status(format!(
                        "{peer} is back{from} after {}{resent}",
                        crate::errors::duration_words(after)
                    ));
                    self.tell_line(io, crate::wire::line::ahead_back);
                }
                News::Ended(ending) => {
                    let current = self.current.take().expect("current");
                    // Wakes the operator's input if it waits for room.
                    current.outbox.abort();
                    self.ended(io, current, ending);
                }
                // Our side finishes: what was typed so far goes first.
                News::PeerClosed | News::WentIdle(_) => self.last_words(io),
                News::Failed(_) => {
                    if let Some(current) = &self.current {
                        current.outbox.abort();
                    }
                }
            }
            return;
        }
        let Some(at) = self.line.iter().position(|w| w.id == id) else {
            return;
        };
        match news {
            // Gone: its program was killed (its end of stream came without
            // its `END`), and the reset at our keepalive would say it left
            // the line as one that typed `q` does (a user trial).
            News::PeerClosed if io.closed_unsaid(id) => {
                self.leave_line(io, id, crate::errors::VANISHED)
            }
            // Interrupted, or its `q`: it said `BYE` before its end, and
            // has left (a user trial: `has finished sending and keeps its
            // place in line`, then `left the line`, 3 of 3).
            News::PeerClosed if io.said_bye(id) => self.leave_line(io, id, "it said BYE"),
            // Not gone: a client whose input ended reads on, and keeps its
            // place. One that closed altogether resets at the keepalive.
            News::PeerClosed => {
                self.line[at].finished = true;
                io.send(id, &KEEPALIVE);
                let at = io.now() + TELL_AFTER;
                self.tell_at = Some(self.tell_at.map_or(at, |told| told.min(at)));
            }
            News::Failed(why) => self.leave_line(io, id, &why),
            News::Away { why, within, .. } => {
                let waiting = &mut self.line[at];
                waiting.away = true;
                let within = within.as_secs();
                self.console.output.error(format!(
                    "{} (number {} in line): {why}; keeping its place for {within} s for it to come back",
                    waiting.peer,
                    at + 1
                ));
            }
            News::Back { after, peer, .. } => {
                let waiting = &mut self.line[at];
                waiting.away = false;
                let from = match peer == waiting.peer {
                    true => String::new(),
                    false => format!(" from {peer}"),
                };
                self.console.output.status(format!(
                    "{} is back in line{from} after {} (number {})",
                    waiting.peer,
                    crate::errors::duration_words(after),
                    at + 1
                ));
                // Served now if it would have been meanwhile.
                if self.current.is_none() && self.exit.is_none() && !self.config.once {
                    self.next(io);
                }
            }
            News::Ended(ending) => {
                let why = match ending {
                    Ending::Failed { why, .. } => why,
                    _ => "it ended".to_string(),
                };
                self.leave_line(io, id, &why);
            }
            _ => {}
        }
    }

    fn woken(&mut self, io: &mut Io) {
        while let Ok(event) = self.inbox.try_recv() {
            self.event(io, event);
        }
        if self.current.as_ref().is_some_and(|c| c.held_by_screen) {
            self.read_current(io);
        }
        self.pump(io);
    }

    fn tick(&mut self, io: &mut Io) -> Tick {
        if self.current.is_none() && self.exit.is_none() && !self.config.once {
            self.next(io);
        }
        if self.tell_at.is_some_and(|at| at <= io.now()) {
            self.tell_at = None;
            self.tell_places(io);
        }
        if self.probe_at.is_some_and(|at| at <= io.now()) {
            self.probe_at = None;
            // One gone without a word (its machine, its network) answers
            // no keepalive: after `--dead-after`, it has left.
            let gone: Vec<(Id, String)> = self
                .line
                .iter()
                .filter(|waiting| !waiting.away)
                .filter_map(|waiting| Some((waiting.id, io.lost(waiting.id)?)))
                .collect();
            for (id, why) in gone {
                // Its place is kept if its session may be resumed.
                io.lose(id, why);
            }
            for waiting in &self.line {
                io.send(waiting.id, &KEEPALIVE);
            }
            if !self.line.is_empty() {
                self.probe_at = Some(io.now() + PROBE_EVERY);
            }
        }
        self.let_go_silent(io);
        self.pump(io);
        self.mark_undelivered(io);
        let overdue_at = self
            .current
            .as_ref()
            .filter(|current| current.marked == 0)
            .and_then(|current| io.overdue_at(current.id));
        let done = self.exit.is_some() && self.current.is_none();
        if done && !self.line.is_empty() {
            let n = self.line.len();
            self.output().status(match n {
                1 => "let go of the client waiting in line".to_string(),
                n => format!("let go of the {n} clients waiting in line"),
            });
            self.line.clear();
        }
        Tick {
            wake_at: [
                self.tell_at,
                self.probe_at,
                overdue_at,
                self.first_words.wake_at(),
                self.told.wake_at(),
                self.turned_away.wake_at(),
            ]
            .into_iter()
            .flatten()
            .min(),
            done,
        }
    }
}

/// Tells the operator how a conversation ended; true if it failed.
/// Says how the conversation with `peer` ended; `lines`: with a session,
/// which of the operator's lines were not delivered, in words (`Some(None)`:
/// all were). True if it failed.
fn report(output: &Output, peer: &str, ending: &Ending, lines: Option<Option<String>>) -> bool {
    let undelivered = match &lines {
        Some(Some(words)) => format!("; {words}"),
        _ => String::new(),
    };
    // With a session, lines; without, bytes.
    let ending = match (lines, ending) {
        (Some(_), Ending::CutOff { why, .. }) => &Ending::CutOff {
            why: *why,
            undelivered: 0,
        },
        (Some(_), Ending::Failed { why, .. }) => &Ending::Failed {
            why: why.clone(),
            undelivered: 0,
        },
        _ => ending,
    };
    if let Some(why) = describe_failure(ending) {
        output.error(format!("{peer}: {why}{undelivered}"));
        return true;
    }
    if !undelivered.is_empty() && matches!(ending, Ending::Interrupted) {
        output.error(format!(
            "interrupted; closed the conversation with {peer}{undelivered}"
        ));
        return false;
    }
    match ending {
        Ending::PeerLeft => output.status(format!("{peer} left")),
        Ending::Quit => output.status(format!("ended the conversation with {peer}")),
        Ending::Idle(after) => output.status(format!(
            "{peer}: no traffic for {} s; conversation ended",
            after.as_secs()
        )),
        Ending::Interrupted => {
            output.status(format!("interrupted; closed the conversation with {peer}"))
        }
        // (Left: a client's own; the server never leaves a conversation
        // that has not begun.)
        Ending::OutputClosed | Ending::Left | Ending::CutOff { .. } | Ending::Failed { .. } => {}
    }
    false
}
