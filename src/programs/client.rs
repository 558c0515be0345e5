//! `chat-client`: connect, then one conversation with the server's operator.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub use crate::console::event::Shutdown;
use crate::console::event::{Event, Events, Input};
use crate::console::input::AfterQuit;
use crate::console::outbox::{OUTBOX_LIMIT, Outbox};
use crate::console::output::Output;
use crate::console::{Console, Stdio};
use crate::engine::tls::{ClientError, ClientSettings, KnownHosts};
use crate::engine::{Engine, GateConfig, Id, Io, News, Service, Tick};
use crate::errors::describe_failure;
use crate::programs::outcome::Unreachable;
use crate::programs::room::view::{Found, RoomView};
use crate::state::access::Access;
use crate::state::clock::Clock;
use crate::state::ending::{Ending, Happening, Rules};
use crate::state::session::reconnect_delay;
use crate::wire::display::push_visible_frames;
use crate::wire::frame::{HEADER_LEN, encode_frame, keep_frames_within, read_header};
use crate::{Error, Exit};

/// How long our lines wait for the server's first frame before they go
/// anyway (to a version 1 server, which speaks first only when its user
/// types). A room greets at once.
const GREETING_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    pub idle_timeout: Option<Duration>,
    /// A peer that answers nothing this long is taken as lost (`None`: TCP's own
    /// limits, about 15 minutes while bytes are in flight, never while idle).
    pub dead_after: Option<Duration>,
    /// Speak version 2 with peers that offer it (acknowledgements and
    /// heartbeats); false: version 1 only.
    pub sessions: bool,
    /// A lost connection is reconnected, and the conversation resumed, for
    /// up to this long (with a server that keeps it; `None`: never).
    pub resume_for: Option<Duration>,
    /// The name to ask for if the server turns out to be a room.
    pub name: Option<String>,
    /// The user chose the name (`--name`): none of its lines may go
    /// under another.
    pub name_chosen: bool,
}

/// How the client checks the server over TLS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Accept only this fingerprint.
    pub fingerprint: Option<String>,
    /// Accept certificates issued by the authorities in this PEM file.
    pub authority: Option<PathBuf>,
    /// Where first-use fingerprints are kept; a default in the user's data
    /// directory if `None`.
    pub known_hosts: Option<PathBuf>,
    /// Prove a shared code (from `CHAT_CODE`, or asked for on the terminal).
    pub code: bool,
    /// How long the TLS handshake and the code exchange may take, after
    /// the TCP connection ([`HANDSHAKE_LIMIT`] by default).
    pub handshake_timeout: Duration,
}

impl Default for TlsConfig {
    /// Trust on first use, with the known hosts in the data directory.
    fn default() -> Self {
        Self {
            fingerprint: None,
            authority: None,
            known_hosts: None,
            code: false,
            handshake_timeout: HANDSHAKE_LIMIT,
        }
    }
}

/// A connection made, ready for [`run`]: by default on the process's
/// standard streams and the system's clock.
pub struct Connected {
    /// How to reach the server again, to resume.
    dialer: Dialer,
    stream: TcpStream,
    /// The TLS session, its handshake (and the code's exchange) done.
    tls: Option<rustls::Connection>,
    /// What the user should hear before the conversation starts.
    notes: Vec<String>,
    stdio: Stdio,
    clock: Clock,
}

impl Connected {
    fn new(
        dialer: Dialer,
        stream: TcpStream,
        tls: Option<rustls::Connection>,
        notes: Vec<String>,
    ) -> Self {
        Self {
            dialer,
            stream,
            tls,
            notes,
            stdio: Stdio::process(),
            clock: Clock::system(),
        }
    }

    /// The user's side reads and writes `stdio` instead.
    pub fn with_stdio(mut self, stdio: Stdio) -> Self {
        self.stdio = stdio;
        self
    }

    /// What the user is shown looks as `look` says.
    pub fn with_look(mut self, look: crate::Look) -> Self {
        self.stdio = self.stdio.with_look(look);
        self
    }

    /// Timeouts follow `clock` instead.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// Connects to `address` (`host:port`, IPv6 as `[::1]:port`), over TLS if
/// `tls` says how; TCP and TLS together take at most `timeout`.
pub fn connect(
    address: &str,
    timeout: Duration,
    tls: Option<&TlsConfig>,
) -> Result<Connected, Error> {
    let Some(tls) = tls else {
        let dialer = Dialer {
            address: address.to_string(),
            timeout,
            tls: None,
        };
        let (stream, _, _) = dialer.dial()?;
        return Ok(Connected::new(dialer, stream, None, Vec::new()));
    };
    // Asked before connecting: the time a person takes to type it must not
    // count against the server's handshake timeout.
    let code = match tls.code {
        true => Some(read_code()?),
        false => None,
    };
    let known_hosts = match &tls.known_hosts {
        Some(path) => path.clone(),
        None => crate::engine::tls::data_dir()
            .map_err(ClientError::Trust)?
            .join("known_hosts"),
    };
    let settings = ClientSettings {
        address: address.to_string(),
        fingerprint: tls.fingerprint.clone(),
        authority: tls.authority.clone(),
        known_hosts: KnownHosts { path: known_hosts },
        code,
    };
    let dialer = Dialer {
        address: address.to_string(),
        timeout,
        tls: Some((Arc::new(settings), tls.handshake_timeout)),
    };
    let (stream, tls, notes) = dialer.dial()?;
    Ok(Connected::new(dialer, stream, tls, notes))
}

/// How the client reaches its server: at the start, and again to resume a
/// lost conversation (TLS's checks and the code's proof each time: a
/// resumed conversation is no easier to take over than a new one).
#[derive(Clone)]
pub(crate) struct Dialer {
    address: String,
    /// `--connect-timeout`: for the TCP connection.
    timeout: Duration,
    /// TLS's settings (the code among them), and the handshake's limit.
    tls: Option<(Arc<ClientSettings>, Duration)>,
}

impl Dialer {
    /// This dialer for the tries to resume a lost session: a try's TLS
    /// handshake and code exchange not done within [`retry_limit`] are
    /// given up for a fresh try, whose TCP starts its retransmissions anew
    /// (a try begun while a path flapped held the resume up to the full
    /// limit, 30 s, after the network was back, a user trial found).
    fn for_retries(&self, dead_after: Option<Duration>) -> Self {
        let mut dialer = self.clone();
        if let Some((_, limit)) = &mut dialer.tls {
            *limit = retry_limit(*limit, dead_after);
        }
        dialer
    }

    /// A connection to the server, with its TLS session and what the user
    /// should hear of it.
    fn dial(&self) -> Result<(TcpStream, Option<rustls::Connection>, Vec<String>), Error> {
        let Some((settings, handshake_timeout)) = &self.tls else {
            return Ok((connect_tcp(&self.address, self.timeout)?, None, Vec::new()));
        };
        // `--connect-timeout` is for the TCP connection; the TLS handshake
        // and the code exchange have the server's own limit for them, a few
        // round trips on a slow, lossy link taking seconds each.
        let secure = || {
            let stream = connect_tcp(&self.address, self.timeout)?;
            crate::engine::tls::connect(stream, settings, *handshake_timeout).map_err(Error::from)
        };
        // A TLS server that took us for a plain client (our hello came
        // after its wait, over a slow link) gets one more try, with the
        // time anew.
        let secured = match secure() {
            Err(Error::Tls(ClientError::LateHello(_))) => secure()?,
            other => other?,
        };
        Ok((
            secured.stream,
            Some(rustls::Connection::Client(secured.session)),
            secured.notes,
        ))
    }
}

/// The least a try to resume gives its TLS handshake and code exchange: a
/// few round trips of a slow, lossy link.
const RETRY_HANDSHAKE_LEAST: Duration = Duration::from_secs(10);

/// How long a try to resume gives its TLS handshake and code exchange,
/// with `limit` for a first connection's: `--dead-after`, the time after
/// which a silent peer is taken as lost, but not less than
/// [`RETRY_HANDSHAKE_LEAST`], nor more than `limit`.
fn retry_limit(limit: Duration, dead_after: Option<Duration>) -> Duration {
    match dead_after {
        Some(dead_after) => limit.min(dead_after.max(RETRY_HANDSHAKE_LEAST)),
        None => limit,
    }
}

/// What an attempt to reach the server again gave: a connection, or why
/// not, and whether trying again is no use (the server is not the one
/// trusted, or refused the code).
type Dialed = Result<(TcpStream, Option<rustls::Connection>), (String, bool)>;

/// Whether `e`, a failure to reach the server, is one that trying again
/// cannot mend: not the network's, but the server's identity or the code,
/// or a server program no longer running (its machine refuses the
/// connection: nothing listens there, and a server started again does not
/// know the session). A client whose server was killed in mid-flood (its
/// system reset the connection, unread data in it) tried again for 300 s
/// (a user trial, 2 of 4).
fn final_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::Tls(
            ClientError::Untrusted(_)
                | ClientError::Trust(_)
                | ClientError::Code(crate::engine::tls::CodeFailure::WrongCode)
        ) | Error::Connect {
            why: Unreachable::Refused,
            ..
        }
    )
}

/// The thread that tries to reach the server again, with backoff, until it
/// has a connection or is told to stop.
struct Reconnecting {
    results: Receiver<Dialed>,
    stop: Arc<AtomicBool>,
}

impl Reconnecting {
    /// Tries from the `first`-th step of the backoff on.
    fn start(dialer: Dialer, events: Events, first: u32) -> Self {
        let (sender, results) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for attempt in first.. {
                let until = Instant::now() + reconnect_delay(attempt);
                while Instant::now() < until {
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let dialed = dialer
                    .dial()
                    .map(|(stream, tls, _)| (stream, tls))
                    .map_err(|e| (e.to_string(), final_failure(&e)));
                let done = !matches!(dialed, Err((_, false)));
                if sender.send(dialed).is_err() {
                    return;
                }
                events.wake();
                if done {
                    return;
                }
            }
        });
        Self { results, stop }
    }
}

impl Drop for Reconnecting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How long the TLS handshake and the code exchange may take, after the
/// TCP connection, unless told otherwise: the server's limit (it counts
/// from our first byte).
pub const HANDSHAKE_LIMIT: Duration = crate::engine::HANDSHAKE_TIMEOUT;

/// The shared code: `CHAT_CODE`, or typed on the terminal without echo (never
/// a command-line argument, which other users can read).
fn read_code() -> Result<String, Error> {
    use crate::console::secret::{Unanswered, ask};
    let code = match std::env::var("CHAT_CODE") {
        Ok(code) => code,
        Err(_) => ask("code (from the server's operator): ").map_err(|e| match e {
            Unanswered::Interrupted => Error::Interrupted,
            Unanswered::Declined => Error::NoCode,
            Unanswered::NoTerminal(why) => Error::CannotAskCode(why),
        })?,
    };
    if crate::engine::tls::normalize_code(&code).is_empty() {
        return Err(Error::NoCode);
    }
    Ok(code)
}

/// The TCP connection, to the first address that answers.
fn connect_tcp(address: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let fail = |why| Error::Connect {
        address: address.to_string(),
        why,
    };
    let candidates: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidInput => fail(Unreachable::Malformed),
            _ => fail(Unreachable::Unresolved(e)),
        })?
        .collect();
    let mut last = None;
    for candidate in &candidates {
        match TcpStream::connect_timeout(candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(match last {
        None => Unreachable::NoAddress,
        Some(e) if e.kind() == ErrorKind::ConnectionRefused => Unreachable::Refused,
        Some(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
            Unreachable::TimedOut(timeout)
        }
        Some(e) => Unreachable::Failed(e),
    }))
}

/// The most the server's first frame may hold whatever our own maximum:
/// a room's greeting (which says the room's maximum), the waiting line's
/// notice, a refusal.
const FIRST_FRAME_MOST: usize = 1024;

/// Talks with the server until either side ends it.
pub fn run(connected: Connected, config: Config, shutdown: &Shutdown) -> Result<Exit, Error> {
    let Connected {
        dialer,
        stream,
        tls,
        notes,
        stdio,
        clock,
    } = connected;
    let peer = stream.peer_addr()?;
    let secure = if tls.is_some() { " over TLS" } else { "" };
    // With a chosen name, or a person at the keys (who never types within
    // the wait), our lines wait for the server's first frame: a room's
    // greeting is answered with our name before any of them. A script
    // without a name sends at once: a plain server may never speak first.
    let at_keys = stdio.input_is_terminal();
    let hold = config.name_chosen || at_keys;
    let (sender, inbox) = mpsc::channel();
    let events = Events::new(sender);
    let console = Console::open(config.max_message_size, &events, "> ", stdio, shutdown)?;
    let output = Arc::clone(&console.output);
    // Said first, so that it comes before anything the server sends.
    for note in notes {
        output.status(note);
    }
    // How to type is for a person at the keys; a script is told nothing
    // it cannot use.
    let hint = match at_keys {
        true => "; type a line and press Enter to send it, q to quit",
        false => "",
    };
    output.status(format!("connected to {peer}{secure}{hint}"));
    // Reads the first frame to learn whether the server is a room.
    let (finds, found) = mpsc::channel();
    output.set_interpreter(Box::new(RoomView::new(finds, output.me_cell())));
    {
        let events = events.clone();
        output.when_room(move || events.wake());
    }
    let rules = Rules {
        input_end_closes: true,
        idle_timeout: config.idle_timeout,
        dead_after: config.dead_after,
    };
    let gate = GateConfig {
        access: Access::new(Vec::new(), Vec::new()),
        tls: None,
    };
    let start = clock.now();
    let mut engine = Engine::new(None, gate, rules, config.max_message_size, &output, clock)?;
    engine.speak_sessions(config.sessions);
    events.wake_with(engine.waker());
    let id = engine.adopt(stream, tls)?;
    // The server's first frame says the room's maximum: taken whatever
    // ours (a room's greeting is 97 bytes; a --max-message-size of 96
    // refused it as a protocol error, and the client never joined).
    engine.set_max(id, config.max_message_size.max(FIRST_FRAME_MOST));
    engine.allow_resume(id, config.resume_for);
    let outbox = {
        let events = events.clone();
        Arc::new(Outbox::waking(move || events.wake()))
    };
    if !hold {
        // Nothing is held back, so there is no release to wait for: the
        // input thread writes its lines itself from the start (a script's
        // flood 512 KiB a read, not 128 KiB handed to the loop, and a
        // typed line without a wake-up of the loop). Not once we offered
        // version 2: our lines are the session's messages from the offer
        // on, numbered and kept by the loop.
        engine.write_beside(id, &outbox);
    }
    console.recipient.set(Some(Arc::clone(&outbox)));
    console.start_input(&events, AfterQuit::Stop)?;
    let mut talk = Talk {
        console: &console,
        events: events.clone(),
        dialer,
        reconnecting: None,
        dial_failures: Default::default(),
        attempts: 0,
        config,
        inbox,
        found,
        id,
        label: Arc::from("server"),
        outbox,
        batches: Vec::new(),
        held_by_screen: false,
        greeted: false,
        hold: hold.then_some(start + GREETING_WAIT),
        deferred: None,
        limit: None,
        input_ended: false,
        in_room: false,
        told_slow: false,
        waiting: false,
        quit: false,
        turned_away: false,
        closing_from: None,
        cut_short: false,
        told_goodbye: false,
        vanished: false,
        ending: None,
        session: false,
        unacknowledged: 0,
        unsent_lines: 0,
        refused_lines: 0,
        first_undelivered: None,
        marked: 0,
    };
    // Events sent before the loop could be woken are waiting.
    events.wake();
    let ended = engine.run_to_end(&mut talk);
    let in_room = talk.in_room;
    // No input is read from now on; what was, and lines entered at the
    // editor meanwhile, are counted before the report.
    talk.outbox.stop_input(INPUT_IN_HAND_WAIT);
    console.close();
    talk.count_refused();
    console.recipient.set(None);
    let exit = match talk.ending.take() {
        Some(ending) if ended => talk.report(&output, in_room, ending),
        _ => Exit::Failure,
    };
    // A line refused for its length (and said so when typed) was not
    // delivered: not a success (a piped one left exit 0).
    let exit = match (exit, talk.outbox.too_long()) {
        (Exit::Success, 0) => Exit::Success,
        (Exit::Success, 1) => {
            output.error("1 line was over the maximum and not sent");
            Exit::Failure
        }
        (Exit::Success, n) => {
            output.error(format!("{n} lines were over the maximum and not sent"));
            Exit::Failure
        }
        (exit, _) => exit,
    };
    Ok(console.finish_for(exit))
}

/// How often a reader held back by the screen looks again without being
/// told (see `tick`).
const SCREEN_RECHECK: Duration = Duration::from_millis(250);

/// How long the end waits for lines the input thread read and has not yet
/// pushed (splitting a read of piped input takes a millisecond or so), to
/// count them as not delivered.
const INPUT_IN_HAND_WAIT: Duration = Duration::from_millis(100);

/// A received read is shown this much at a time at most.
const SHOW_AT_ONCE: usize = 256 * 1024;

/// The conversation is read this much in one round of the loop at most;
/// the rest next round, so that a flood never holds `q` or the timers.
const READ_PER_ROUND: usize = 4 << 20;

/// The client's conversation on its event loop.
struct Talk<'a> {
    console: &'a Console,
    events: Events,
    dialer: Dialer,
    /// Reaching the server again, after the connection was lost.
    reconnecting: Option<Reconnecting>,
    /// Why tries to reconnect failed, as said, in this outage.
    dial_failures: std::collections::HashSet<String>,
    /// Tries to reconnect so far, since the connection was lost.
    attempts: u32,
    config: Config,
    inbox: Receiver<Event>,
    /// What the reading of the server's frames found.
    found: Receiver<Found>,
    id: Id,
    label: Arc<str>,
    /// The user's lines.
    outbox: Arc<Outbox>,
    batches: Vec<Vec<u8>>,
    /// Reading waits for the screen to have room.
    held_by_screen: bool,
    /// The server's first frame has come.
    greeted: bool,
    /// Our lines wait for the server's first frame, until this time.
    hold: Option<Instant>,
    /// The user's `q` or end of input while our lines were held: our side
    /// ends once they have gone.
    deferred: Option<Happening>,
    /// The most a room takes, if less than our maximum: longer lines held
    /// for its greeting are not sent.
    limit: Option<usize>,
    input_ended: bool,
    /// The server is a room.
    in_room: bool,
    /// Told that the room takes our lines more slowly than they come.
    told_slow: bool,
    /// The server put us in its waiting line, and our turn has not come:
    /// nothing we sent is delivered yet.
    waiting: bool,
    /// Our user typed `q` (perhaps before the server said we wait).
    quit: bool,
    turned_away: bool,
    /// The bytes sent when the room said it closes.
    closing_from: Option<u64>,
    cut_short: bool,
    told_goodbye: bool,
    /// The server closed without saying `END`, though it said it would:
    /// its program is gone, and the conversation did not end.
    vanished: bool,
    ending: Option<Ending>,
    /// The server speaks version 2: our lines are acknowledged.
    session: bool,
    /// Lines of ours not known to be delivered when the connection ended:
    /// sent and not acknowledged, and never sent.
    unacknowledged: u64,
    unsent_lines: u64,
    /// Lines read from the input after our side closed (the server's end
    /// came first), never sent.
    refused_lines: u64,
    /// The first of them, if known.
    first_undelivered: Option<String>,
    /// How many lines the prompt says are not yet delivered.
    marked: u64,
}

impl Talk<'_> {
    fn output(&self) -> &Output {
        &self.console.output
    }

    /// Reads the server's frames as far as the screen takes them.
    fn read(&mut self, io: &mut Io) {
        let id = self.id;
        let mut read = 0;
        loop {
            if read >= READ_PER_ROUND {
                io.read_later(id);
                return;
            }
            let output = &self.console.output;
            self.held_by_screen = !output.has_room();
            // Not read meanwhile: the server's heartbeats wait unread too,
            // and its silence is not counted (a stdout nobody reads made a
            // healthy connection "lost" after --dead-after).
            io.defer_reading(id, self.held_by_screen);
            if self.held_by_screen {
                return;
            }
            if !self.greeted {
                // The first frame alone: it may say how large the next are.
                let mut first = Vec::new();
                let more = io.read(id, &mut first, 1);
                if first.is_empty() {
                    return;
                }
                read += first.len();
                self.greet(io, id, &first);
                self.show(io, &first);
                if !more {
                    return;
                }
                continue;
            }
            let mut text = output.buffer();
            let breaks = self.session;
            // Straight from the loop's read buffer to what is shown.
            let more = io.read_with(id, SHOW_AT_ONCE, |frames| {
                read += frames.len();
                push_visible_frames(&mut text, frames, breaks);
            });
            if !text.is_empty() {
                output.messages_now(&self.label, text);
                self.events(io);
            }
            if !more {
                return;
            }
        }
    }

    /// Shows the messages in `frames`.
    fn show(&mut self, io: &mut Io, frames: &[u8]) {
        let mut text = self.output().buffer();
        push_visible_frames(&mut text, frames, self.session);
        if !text.is_empty() {
            self.output().messages_now(&self.label, text);
            self.events(io);
        }
    }

    /// Answers the server's first frame (at the start of `first`): a room's greeting
    /// gets our name before any of our lines (which were held for it, so a
    /// script's lines go under its name, and its own `/nick` after ours),
    /// and lines over the room's maximum are refused from now on; then our
    /// lines go.
    fn greet(&mut self, io: &mut Io, id: Id, first: &[u8]) {
        self.greeted = true;
        // Whole frames: the first, and maybe more that came with it.
        let len = read_header(first).unwrap_or_default();
        let payload = first.get(HEADER_LEN..HEADER_LEN + len).unwrap_or_default();
        let max = self.config.max_message_size;
        if let Some(takes) = crate::programs::room::takes(payload).filter(|&takes| takes < max) {
            self.console.recipient.set_limit(takes);
            self.limit = Some(takes);
        }
        if crate::programs::room::is_greeting(payload)
            && let Some(name) = &self.config.name
        {
            let mut frame = Vec::new();
            if encode_frame(&mut frame, format!("/nick {name}").as_bytes(), max).is_ok() {
                io.send(id, &frame);
            }
        }
        match crate::programs::room::declared_max(payload) {
            Some(declared) => io.set_max(id, declared.max(max)),
            None => io.set_max(id, max),
        }
        self.release(io);
    }

    /// Our lines go from now on.
    fn release(&mut self, io: &mut Io) {
        if self.hold.take().is_none() {
            return;
        }
        self.pump(io);
        // A typed line goes out from the thread that read it when the loop
        // is not writing: waking the loop for it costs a thread wake-up per
        // line.
        io.write_beside(self.id, &self.outbox);
        if let Some(happening) = self.deferred.take() {
            self.last_words(io);
            io.happen(self.id, happening);
        }
    }

    /// Moves our lines to the connection, as far as the server takes them:
    /// the outbox's bound holds a piped flood back meanwhile.
    fn pump(&mut self, io: &mut Io) {
        let id = self.id;
        if self.hold.is_some() {
            return;
        }
        while io.unsent(id) < OUTBOX_LIMIT {
            // What pushes wrote at once goes before what they queued.
            io.take_written(id);
            self.outbox.take_now(&mut self.batches);
            if self.batches.is_empty() {
                break;
            }
            self.send_batches(io, id);
        }
        let held = self.outbox.queued() as u64;
        let backlogged = self.outbox.is_backlogged();
        if backlogged && self.in_room && !std::mem::replace(&mut self.told_slow, true) {
            self.console.output.status(
                "the room takes your lines more slowly than you type; they are kept and sent in order",
            );
        }
        // A room that takes our lines slowly is busy relaying everyone's
        // (it reads its talkers in turns, and none while a member is far
        // behind), not a peer that stopped reading: the 10-s rule would
        // cut a patient talker off. A room that is gone is found out as
        // any lost peer is (--dead-after).
        io.set_held(id, held, backlogged && !self.in_room);
    }

    /// Sends what was taken from the outbox, but lines over the room's
    /// maximum (typed before its greeting said it).
    fn send_batches(&mut self, io: &mut Io, id: Id) {
        let mut dropped = 0;
        for batch in &mut self.batches {
            if let Some(max) = self.limit {
                dropped += keep_frames_within(batch, max);
            }
            io.send_batch(id, batch);
        }
        if dropped > 0 {
            self.outbox.count_too_long(dropped as u64);
            let takes = self.limit.unwrap_or_default();
            self.console.output.error(format!(
                "{dropped} {} over the room's maximum of {takes} bytes; not sent",
                if dropped == 1 {
                    "line was"
                } else {
                    "lines were"
                }
            ));
        }
    }

    /// Our side is ending: everything typed so far goes (the outbox is
    /// bounded, so this is bounded too), and nothing typed from now on.
    fn last_words(&mut self, io: &mut Io) {
        self.hold = None;
        let id = self.id;
        self.outbox.close();
        // Closed first: nothing is written at once after this, and what was
        // goes before what was queued (left in the outbox, it was never
        // sent: a reset in a flood lost the rest of the input, exit 0).
        io.take_written(id);
        while self.outbox.take_now(&mut self.batches) && !self.batches.is_empty() {
            self.send_batches(io, id);
        }
        io.set_held(id, 0, false);
    }

    fn event(&mut self, io: &mut Io, event: Event) {
        let id = self.id;
        match event {
            // Held lines go first (with our name, to a room).
            Event::Input(Input::Quit) if self.hold.is_some() => {
                self.quit = true;
                self.deferred = Some(Happening::Quit);
            }
            Event::Input(Input::Closed) if self.hold.is_some() => {
                self.input_ended = true;
                self.deferred = Some(Happening::InputEnded);
            }
            // Leaving the line: nothing typed is owed to anyone, and the
            // server, seeing us go, moves the line up.
            Event::Input(Input::Quit) if self.waiting => {
                self.quit = true;
                self.outbox.close();
                io.happen(id, Happening::Left);
            }
            Event::Input(Input::Quit) => {
                // A second `q` (at a terminal) gives up waiting.
                let again = std::mem::replace(&mut self.quit, true);
                self.last_words(io);
                let waiting = io.unacknowledged(id);
                if self.reconnecting.is_some() && waiting > 0 && !again {
                    let lines = match waiting {
                        1 => "1 line".to_string(),
                        n => format!("{n} lines"),
                    };
                    self.output().status(format!(
                        "waiting for the server to come back, to deliver {lines} (q again or Ctrl-C to give up)"
                    ));
                }
                io.happen(id, Happening::Quit);
            }
            Event::Input(Input::Closed) => {
                self.input_ended = true;
                self.last_words(io);
                io.happen(id, Happening::InputEnded);
            }
            // What is held for the server's first frame goes now: the
            // interrupt's grace is shorter than the hold.
            Event::Interrupt | Event::Input(Input::Interrupted) => {
                self.last_words(io);
                io.happen(id, Happening::Interrupted);
            }
            Event::OutputClosed => io.happen(id, Happening::OutputClosed),
        }
    }

    /// What the reading of the server's frames found.
    fn found(&mut self, io: &mut Io, found: Found) {
        match found {
            Found::TurnedAway => self.turned_away = true,
            Found::Waiting => {
                self.waiting = true;
                // `q` typed before the server said we wait (it says so
                // after a moment): leaving, not waiting to say goodbye.
                if self.quit {
                    io.happen(self.id, Happening::Left);
                }
            }
            Found::Served => self.waiting = false,
            // What was not yet sent, and all sent from now on, is not relayed.
            Found::Goodbye { closing, cut_short } => {
                self.told_goodbye = true;
                if closing {
                    self.closing_from = self.closing_from.or(Some(io.sent(self.id)));
                }
                self.cut_short |= cut_short;
            }
            Found::Room => {
                self.in_room = true;
                io.delay_acknowledgements(self.id, crate::state::session::ROOM_ACK_DELAY);
                self.console
                    .recipient
                    .answer_locally(Box::new(crate::state::room::commands::answered_locally));
            }
        }
    }

    /// Handles what waits: the user's events, and what the server's frames
    /// said as they were shown (at once, while the bytes sent so far say
    /// where the room's closing began).
    fn events(&mut self, io: &mut Io) {
        while let Ok(found) = self.found.try_recv() {
            self.found(io, found);
        }
        while let Ok(event) = self.inbox.try_recv() {
            self.event(io, event);
        }
    }

    /// Says how the wait in the server's line ended before our turn came,
    /// with every line we sent not delivered, and what the exit status is.
    fn report_waiting(&self, output: &Output, ending: Ending) -> Exit {
        let lines = match self.outbox.lines() {
            0 => String::new(),
            1 => "; 1 line not delivered".to_string(),
            n => format!("; {n} lines not delivered"),
        };
        let delivered_all = lines.is_empty();
        match ending {
            Ending::Left => {
                output.status(format!("left the line{lines}"));
                match delivered_all {
                    true => Exit::Success,
                    false => Exit::Failure,
                }
            }
            Ending::Interrupted => {
                match delivered_all {
                    true => output.status("interrupted while waiting in line"),
                    false => output.error(format!("interrupted while waiting in line{lines}")),
                }
                Exit::Interrupted
            }
            Ending::OutputClosed => Exit::Success,
            // Lines, not bytes: none of ours was delivered.
            Ending::CutOff { why, .. } => {
                let cut = Ending::CutOff {
                    why,
                    undelivered: 0,
                };
                let why = describe_failure(&cut).expect("a failure has a description");
                output.error(format!("the server {why}, while you waited in line{lines}"));
                Exit::Failure
            }
            Ending::Failed { why, .. } => {
                output.error(format!("{why}, while you waited in line{lines}"));
                Exit::Failure
            }
            Ending::PeerLeft if self.vanished => {
                output.error(format!(
                    "the server closed the connection before your turn without a word (its program may have been killed){lines}"
                ));
                Exit::Failure
            }
            Ending::PeerLeft | Ending::Quit | Ending::Idle(_) => {
                output.error(format!(
                    "the server ended the connection before your turn{lines}"
                ));
                Exit::Failure
            }
        }
    }

    /// Says how the conversation ended, and what the exit status is.
    fn report(&self, output: &Output, in_room: bool, ending: Ending) -> Exit {
        // Sent after the room began to close, or still unsent then.
        let unrelayed = self
            .closing_from
            .map_or(0, |sent| self.outbox.accepted().saturating_sub(sent));
        if self.waiting {
            return self.report_waiting(output, ending);
        }
        match &ending {
            // Told why already (the refusal or the room's notice); also
            // when our input's `q` ended our side before the refusal was
            // read (a piped client refused by a full server exited 0, its
            // line not delivered, 7 times in 8).
            Ending::PeerLeft | Ending::Quit if self.turned_away => {
                output.status(match in_room {
                    true => "disconnected from the room",
                    false => "not served: the server refused this client",
                });
                Exit::Failure
            }
            Ending::PeerLeft
                if self.cut_short || unrelayed > 0 || self.refused_lines > 0 && in_room =>
            {
                output.error(match unrelayed {
                    0 => "the room closed while you were still sending; the rest was not relayed"
                        .to_string(),
                    n => format!(
                        "the room closed while you were still sending; the rest, at least {n} bytes, was not relayed"
                    ),
                });
                Exit::Failure
            }
            // A server killed or crashed: its system's end of stream is
            // not the end of the conversation (it said `the server ended
            // the conversation`, exit 0). A room says why it ends instead.
            Ending::PeerLeft if !in_room && self.vanished => {
                let why = Ending::Failed {
                    why: format!("the server {}", crate::errors::VANISHED),
                    undelivered: 0,
                };
                output.error(self.describe_failure(&why));
                Exit::Failure
            }
            // A server that closed before taking all our lines (one that
            // broke off for a line over its maximum, sent before its
            // `HELLO` said the maximum): not a clean end.
            Ending::PeerLeft if !in_room && self.undelivered_lines().is_some() => {
                let lines = self.undelivered_lines().unwrap_or_default();
                output.error(format!(
                    "the server ended the conversation before taking all your lines: {lines}"
                ));
                Exit::Failure
            }
            Ending::PeerLeft if self.input_ended => {
                output.status("input ended, and the server has closed its side too");
                Exit::Success
            }
            // A room says why before it ends a connection; a server that
            // vanished (killed, crashed) does not.
            Ending::PeerLeft if in_room && !self.told_goodbye => {
                output
                    .error("the server ended the connection without a word (it may have stopped)");
                Exit::Failure
            }
            Ending::PeerLeft if in_room => {
                output.status("disconnected from the room");
                Exit::Success
            }
            Ending::PeerLeft => {
                output.status("the server ended the conversation");
                Exit::Success
            }
            // Our `q` waited for the server to take our lines, and it
            // ended first (its own `q` crossed ours: exit 0 and not a word,
            // 12 runs in 12 of a user trial over a link of 200 ms).
            Ending::Quit if !in_room && self.undelivered_lines().is_some() => {
                let lines = self.undelivered_lines().unwrap_or_default();
                output.error(format!(
                    "the conversation ended before the server took all your lines: {lines}"
                ));
                Exit::Failure
            }
            Ending::Quit | Ending::OutputClosed | Ending::Left => Exit::Success,
            Ending::Idle(after) => {
                output.status(format!(
                    "no traffic for {} s; conversation ended",
                    after.as_secs()
                ));
                Exit::Success
            }
            Ending::Interrupted => {
                if let Some(lines) = self.undelivered_lines() {
                    output.error(format!("interrupted; {lines}"));
                }
                Exit::Interrupted
            }
            Ending::CutOff { .. } | Ending::Failed { .. } => {
                let why = self.describe_failure(&ending);
                match ending {
                    Ending::CutOff { .. } => output.error(format!("the server {why}")),
                    _ => output.error(why),
                }
                Exit::Failure
            }
        }
    }

    /// Counts the lines read from the input after our side closed, never
    /// sent: lines read as the server's end came (exit 0 and nothing said,
    /// 25 runs in 30 of a trial that piped a line just after the server's
    /// Ctrl-C or `q`). As late as can be, once the conversation is over.
    fn count_refused(&mut self) {
        let (refused, first) = self.outbox.refused();
        self.refused_lines = refused;
        if self.unacknowledged + self.unsent_lines == 0 {
            self.first_undelivered = first.as_deref().map(crate::wire::display::visible);
        }
    }

    /// With a session, how many of our lines were not delivered, as words
    /// (`None` if all were, or without a session, where it is not known).
    fn undelivered_lines(&self) -> Option<String> {
        let sent = match self.session {
            true => self.unacknowledged + self.unsent_lines,
            false => 0,
        };
        let first = self.first_undelivered.as_deref();
        crate::errors::undelivered_lines(sent + self.refused_lines, first)
    }

    /// Why the conversation failed: with a session, in lines not delivered
    /// (the server said which it took); without, in bytes.
    fn describe_failure(&self, ending: &Ending) -> String {
        let ending = match (self.session, ending) {
            (true, Ending::CutOff { why, .. }) => Ending::CutOff {
                why: *why,
                undelivered: 0,
            },
            (true, Ending::Failed { why, .. }) => Ending::Failed {
                why: why.clone(),
                undelivered: 0,
            },
            (_, ending) => ending.clone(),
        };
        let why = describe_failure(&ending).expect("a failure has a description");
        match self.undelivered_lines() {
            Some(lines) => format!("{why}; {lines}"),
            None => why,
        }
    }

    /// What the attempts to reach the server again gave: a connection
    /// resumes the session; a failure is said once for each new reason.
    fn redial(&mut self, io: &mut Io) {
        while let Some(dialed) = self
            .reconnecting
            .as_ref()
            .and_then(|reconnecting| reconnecting.results.try_recv().ok())
        {
            match dialed {
                Ok((stream, tls)) => {
                    self.reconnecting = None;
                    if let Err(e) = io.resume(self.id, stream, tls) {
                        self.said_failure(crate::errors::lowercase_os_error(&e));
                        self.redial_later();
                    }
                    return;
                }
                // Not the server this client trusts, or the code refused:
                // over, with what was not delivered.
                Err((why, true)) => {
                    self.reconnecting = None;
                    io.give_up(self.id, format!("cannot resume: {why}"));
                    return;
                }
                Err((why, false)) => {
                    self.attempts += 1;
                    self.said_failure(why);
                }
            }
        }
    }

    /// Tries to reach the server again, after the backoff's next step.
    fn redial_later(&mut self) {
        self.reconnecting = Some(Reconnecting::start(
            self.dialer.for_retries(self.config.dead_after),
            self.events.clone(),
            self.attempts,
        ));
    }

    /// Says why a try to reconnect failed, once for each reason in an
    /// outage (tries every 5 s would otherwise say the same every 5 s).
    fn said_failure(&mut self, why: String) {
        if self.dial_failures.insert(why.clone()) {
            self.output().status(format!("still reconnecting: {why}"));
        }
    }

    /// Shows in the prompt how many of our lines wait for the server's
    /// acknowledgement, once they have waited long enough to be worth it.
    fn mark_undelivered(&mut self, io: &Io) {
        let waiting = io.overdue(self.id).unwrap_or(0);
        if waiting == self.marked {
            return;
        }
        self.marked = waiting;
        self.console.set_prompt(&match waiting {
            0 => "> ".to_string(),
            1 => "[1 line not yet delivered] > ".to_string(),
            n => format!("[{n} lines not yet delivered] > "),
        });
    }
}

impl Service for Talk<'_> {
    fn admit(&mut self, _io: &mut Io, _id: Id) {}

    fn readable(&mut self, io: &mut Io, _id: Id) {
        self.read(io);
    }

    fn news(&mut self, io: &mut Io, _id: Id, news: News) {
        match news {
            News::StillWaiting { undelivered } => {
                self.output().status(match undelivered.the_last() {
                    None => {
                        "waiting for the server to close its side (Ctrl-C to stop now)".to_string()
                    }
                    Some(last) => format!(
                        "waiting for the server to take {last} and close (Ctrl-C to stop now)"
                    ),
                })
            }
            News::Ended(ending) => {
                self.events(io);
                self.unsent_lines = self.unsent_lines.max(self.outbox.queued_lines());
                // Wakes the user's input if it waits for room.
                self.outbox.abort();
                self.ending = Some(ending);
            }
            // Our side finishes: what was typed so far goes first.
            News::PeerClosed | News::WentIdle(_) => self.last_words(io),
            News::Failed(_) => {
                self.unsent_lines = self.outbox.queued_lines();
                self.outbox.abort();
            }
            // The server's first word, for a server that says nothing
            // first (a room's greeting came before it): our lines go.
            News::SessionOpened => {
                self.session = true;
                // A longer line is refused here, not sent and taken by the
                // server as a protocol error that ends the conversation.
                if let Some(max) = io.peer_max(self.id) {
                    let limit = self.console.recipient.limit().min(max);
                    self.console.recipient.set_limit(limit);
                }
                if io.takes_line_breaks(self.id) {
                    self.outbox.take_line_breaks();
                }
                self.release(io);
                // The input thread writes our lines itself from now on, and
                // hands them to the loop to number and keep.
                if self.hold.is_none() {
                    io.write_beside(self.id, &self.outbox);
                }
            }
            News::Unacknowledged { lines, first } => {
                self.unacknowledged = lines;
                self.first_undelivered = first;
            }
            News::Vanished => self.vanished = true,
            News::Away { why, lines, within } => {
                let within = within.as_secs();
                let lines = match lines {
                    0 => String::new(),
                    1 => " (1 line not yet delivered)".to_string(),
                    n => format!(" ({n} lines not yet delivered)"),
                };
                self.output()
                    .error(format!("{why}; reconnecting for up to {within} s{lines}"));
                self.dial_failures.clear();
                self.attempts = 0;
                self.redial_later();
            }
            // A connection made, lost before the server answered: the
            // tries go on where they were.
            News::NotResumed { why } => {
                self.said_failure(why);
                self.redial_later();
            }
            News::Back { after, resent, .. } => {
                self.reconnecting = None;
                let resent = match resent {
                    0 => String::new(),
                    1 => "; sending the 1 line it had not taken".to_string(),
                    n => format!("; sending the {n} lines it had not taken"),
                };
                self.output().status(format!(
                    "reconnected after {}{resent}",
                    crate::errors::duration_words(after)
                ));
            }
        }
    }

    fn woken(&mut self, io: &mut Io) {
        self.events(io);
        self.redial(io);
        if self.held_by_screen {
            self.read(io);
        }
        self.pump(io);
    }

    fn tick(&mut self, io: &mut Io) -> Tick {
        if self.hold.is_some_and(|until| until <= io.now()) {
            self.release(io);
        }
        // Held back by status lines a slow stderr has not taken: looked at
        // again now and then, as a stderr that stops taking them for good
        // has them dropped instead, and says so to no one.
        if self.held_by_screen {
            self.read(io);
        }
        self.pump(io);
        self.mark_undelivered(io);
        let overdue_at = io.overdue_at(self.id).filter(|_| self.marked == 0);
        let look_again = self.held_by_screen.then(|| io.now() + SCREEN_RECHECK);
        Tick {
            wake_at: [self.hold, overdue_at, look_again]
                .into_iter()
                .flatten()
                .min(),
            done: self.ending.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_try_to_resume_gives_its_handshake_dead_after_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(retry_limit(s(30), Some(s(15))), s(15));
        assert_eq!(retry_limit(s(30), Some(s(3))), s(10));
        assert_eq!(retry_limit(s(30), Some(s(60))), s(30));
        assert_eq!(retry_limit(s(30), None), s(30));
        assert_eq!(retry_limit(s(5), Some(s(15))), s(5));
    }
}
