//! The server's one event loop: every socket (the listener, clients at the
//! gate, members) is non-blocking and driven from one thread through `mio`
//! (epoll, kqueue, IOCP), with timers as a deadline heap read by the loop.
//!
//! The loop owns the connections ([`conn::Conn`]) and, for each admitted
//! one, its ending ([`crate::state::ending::Closing`]): it observes the bytes moved,
//! feeds the happenings (end of stream, failures, what the program asked),
//! and does what the ending decides. What a program does with a connection
//! is a [`Service`]'s: it is told of admissions, of readable connections
//! (it reads when it wants: a paced talker is simply not read), of news
//! (the peer left, the ending is done) and of wake-ups from other threads,
//! and it acts through [`Io`]: queue frames, read frames, end a connection.
//! Nothing a service does is re-entered: news are gathered while it runs
//! and told after.
//!
//! One exception to the loop's being a socket's only writer: a service may
//! let another thread write a connection's socket at once while the loop
//! holds nothing for it ([`Io::write_beside`]: the server's operator types
//! a line, and it goes out without a thread wake-up). The two take turns
//! through the outbox between them, and the loop counts the bytes.
//!
//! One round of the loop: wait for events or the next deadline; accept new
//! connections into the [`gate`]; hand readable connections to the gate or
//! the service; step the endings that are due; flush every connection that
//! has something queued; tell the news; let the service do what is due.

pub mod conn;
mod gate;
pub(crate) mod outgoing;
pub mod tls;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events as Readiness, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use crate::console::event::Events;
use crate::console::outbox::Outbox;
use crate::console::output::Output;
use crate::errors::{describe_receive_failure, describe_send_failure, lowercase_os_error};
use crate::state::access::Access;
use crate::state::clock::Clock;
use crate::state::ending::{Closing, Ending, Happening, Rules};
use crate::state::session::{Away, Session};
use crate::state::throttle::Throttle;
use crate::wire::session::{
    Control, Hello, NO_TOKEN, OFFER_LEN, Opening, SAYS_END, TAKES, TAKES_LINE_BREAKS,
    Token as SessionToken, VERSION,
};
use conn::{Ahead, Conn, Flushed, ReadEnd};
use gate::{Gate, Phase};
pub use gate::{GateConfig, HANDSHAKE_TIMEOUT, TlsConfig, secure};

/// A connection's handle, valid until its [`News::Ended`].
pub type Id = usize;

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

/// The loop's one read buffer: every read of every connection goes here.
const SCRATCH: usize = 256 * 1024;

/// After a failed `accept` (out of file descriptors, say), the wait before
/// trying again starts here and doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A round that comes this much later than the loop asked means the
/// process was not running meanwhile.
const OVERSLEPT: Duration = Duration::from_secs(3);

/// A server that keeps sessions for resuming waits this long at most for a
/// new connection's first bytes before its service hears of it: a client
/// resuming a session says so in its first bytes, and is not a newcomer (in
/// real time: it is a wait for the network, not a timeout of the program's).
/// Any byte ends the wait: only a peer that sends nothing at all waits it
/// out (a plain script reading first; `--speak-within` asks it to send an
/// empty frame). 300 ms was too short on a slow link: with 0.2 s each way,
/// `--tls --code`, every resume was taken for a newcomer (put in line, and
/// the client told the server no longer kept its conversation); at 20 %
/// loss and 300 ms, one in four. Lost first bytes come again after TCP's
/// retransmission timeout, a second or more.
const OPENING_WAIT: Duration = Duration::from_secs(5);

/// ... and reads this much of them at most (an offer and a `HELLO` are
/// less than 100 bytes).
const OPENING_MOST: usize = 512;

/// A client resuming waits this long for the server's answer, without
/// `--dead-after`.
const RESUME_ANSWER: Duration = Duration::from_secs(15);

/// How long a server keeps a lost session whose client's `HELLO` never
/// came, at most (see `Io::park`).
const UNNAMED_HOLD: Duration = Duration::from_secs(30);
/// How long at most a server keeps a session whose connection a reset
/// ended (see `Io::park`).
const RESET_HOLD: Duration = Duration::from_secs(30);

/// How many sessions that ended on purpose a server remembers for a late
/// resume (see [`Ended`]); the oldest is forgotten first.
const ENDED_KEPT: usize = 256;

/// What of a remembered session's unacknowledged messages is kept, at
/// most, to send again to a late resume.
const ENDED_FRAMES_MOST: usize = 64 * 1024;

/// While pushes write a session's batches beside the loop, it looks for
/// them this often rather than be woken for each (see
/// `Outbox::take_written`): they are numbered, and a line not acknowledged
/// is marked, at most this much later.
const BESIDE_POLL: Duration = Duration::from_millis(250);

/// How far a server reads ahead of a lost connection for its client's
/// `BYE` (see `Io::park`).
const BYE_LOOK_AHEAD: usize = 64 * 1024;

/// A failing `accept` is reported at most this often.
const ACCEPT_REPORT_PERIOD: Duration = Duration::from_secs(10);

/// What happened to an admitted connection, for its service.
#[derive(Debug)]
pub enum News {
    /// The peer closed its side; everything it sent before was read.
    PeerClosed,
    /// Receiving or sending failed, or the peer broke the protocol: how.
    Failed(String),
    /// No traffic either way for this long: the ending began now.
    WentIdle(Duration),
    /// The ending has waited on the peer for a while, with this much of
    /// ours not yet delivered.
    StillWaiting { undelivered: Undelivered },
    /// The peer speaks version 2 and its `HELLO` came: from now on what we
    /// send is acknowledged ([`Io::overdue`] says what waits for it).
    SessionOpened,
    /// Just before [`News::Ended`]: this many of our messages the peer (a
    /// version 2 peer) had not acknowledged, and the first of them made
    /// safe to show, if it was still held.
    Unacknowledged { lines: u64, first: Option<String> },
    /// Just before [`News::Ended`] with [`Ending::PeerLeft`]: the peer
    /// closed without saying `END` or `BYE`, though its `HELLO` said it
    /// would: its program is gone (killed, crashed), not done.
    Vanished,
    /// Both halves are done and the connection is gone.
    Ended(Ending),
    /// The connection was lost (`why`), and the session is kept for its
    /// peer to resume (see [`Io::allow_resume`]) `within` this long: what
    /// is sent meanwhile waits for it; `lines` of ours it had not
    /// acknowledged.
    Away {
        why: String,
        lines: u64,
        within: Duration,
    },
    /// A client's new connection for its session (see [`Io::resume`])
    /// failed before the server answered (`why`): still away.
    NotResumed { why: String },
    /// The peer is back, on a new connection from `peer`, after `after`:
    /// `resent` messages of ours go again, from the first it had not taken.
    Back {
        after: Duration,
        peer: SocketAddr,
        resent: u64,
    },
}

/// What of ours a peer has not taken: lines, as a version 2 peer
/// acknowledges them, or bytes, as TCP does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    Lines(u64),
    Bytes(u64),
}

impl Undelivered {
    /// `the last 3 lines`, `the last 120 bytes`; `None` for nothing.
    pub fn the_last(self) -> Option<String> {
        Some(match self {
            Self::Lines(0) | Self::Bytes(0) => return None,
            Self::Lines(1) => "the last line".to_string(),
            Self::Lines(n) => format!("the last {n} lines"),
            Self::Bytes(n) => format!("the last {n} bytes"),
        })
    }
}

/// A program run on the loop.
pub trait Service {
    /// Connection `id` passed the gate.
    fn admit(&mut self, io: &mut Io, id: Id);
    /// Connection `id` may have frames to read ([`Io::read`]).
    fn readable(&mut self, io: &mut Io, id: Id);
    fn news(&mut self, io: &mut Io, id: Id, news: News);
    /// Another thread woke the loop ([`Engine::waker`]).
    fn woken(&mut self, io: &mut Io);
    /// Does what is due at [`Io::now`]; called after every round.
    fn tick(&mut self, io: &mut Io) -> Tick;
}

/// What a service says after a round.
#[derive(Debug, Default)]
pub struct Tick {
    /// Call [`Service::tick`] again at this time, if nothing happens first.
    pub wake_at: Option<Instant>,
    /// The service is done: the loop returns.
    pub done: bool,
}

struct Link {
    conn: Conn,
    phase: Phase,
    closing: Option<Closing>,
    /// Our user's input waits on the peer.
    backlogged: bool,
    /// Bytes the service holds for it, not yet queued.
    held: u64,
    /// Pushes to this outbox write the socket themselves while the loop
    /// holds nothing for it (see [`Io::write_beside`]).
    beside: Option<Arc<Outbox>>,
    /// ... and hand the loop what they wrote, a session's messages, to
    /// number and keep (see [`Io::take_written`]).
    beside_keeps: bool,
    /// When to look again for batches written beside (see
    /// [`Outbox::take_written`]).
    beside_poll_at: Option<Instant>,
    /// The deadline in the heap that counts, with `generation`.
    wake_at: Option<Instant>,
    generation: u64,
    /// Version 2, once the peer offered it.
    session: Option<Session>,
    /// Our `HELLO` is owed (the peer offered) and not yet queued.
    hello_owed: bool,
    /// The peer's messages counted into `session` so far, and bytes.
    taken_seen: (u64, u64),
    /// Messages (and bytes) the service took on a connection since lost,
    /// while their acknowledgements were held (a client waiting in line):
    /// counted into `session` once they are not.
    held_over: (u64, u64),
    /// The peer said `BYE`: it ended the connection on purpose, and its
    /// session is not kept for a resume.
    said_bye: bool,
    /// We said `BYE` to the peer.
    said_bye_ours: bool,
    /// The peer said `END`: its side ended on purpose.
    said_end: bool,
    /// The peer ended its sending half while the service had not started
    /// the ending (a client waiting in line whose input ended): a failure
    /// after it is its leaving (it cannot say `BYE` any more), not a loss.
    finished_unjudged: bool,
    /// The peer's end of stream was read (an orderly one, not a failure).
    peer_closed: bool,
    /// The service had started the connection's ending before it was
    /// lost: it starts again once the session is back (a client waiting in
    /// line has none).
    ending_started: bool,
    /// Plaintext bytes read as of the last look: more since is life.
    received_seen: u64,
    /// The service was told of the session.
    opened_told: bool,
    /// What the peer's `HELLO` said it takes ([`Hello::takes`]).
    peer_takes: u32,
    /// The largest message the peer's `HELLO` said it takes (0: not said).
    peer_max: u32,
    /// What the peer sends is kept by the service, not yet taken: not
    /// acknowledged until it is (a client waiting in line).
    acks_held: bool,
    /// What the peer sends is acknowledged up to this much later, as in a
    /// room (`None`: as in a conversation; see `state::session`).
    ack_delay: Option<Duration>,
    /// The session may be resumed within this long of a loss.
    resume_for: Option<Duration>,
    /// The session's name, which a resuming client proves: the server's
    /// token (zeros if it keeps none for this connection).
    session_token: SessionToken,
    /// The client's token, from its `HELLO` (zeros if it would not
    /// resume): a second name of the session, for a client whose
    /// connection was lost after its `HELLO` went and before the server's
    /// came (a lossy start), which knows no other.
    client_token: SessionToken,
    /// The connection is lost and the session waits to be resumed; why.
    away: Option<(Away, String)>,
    /// A client resuming: the lost connection, whose messages go again on
    /// this one once the server says which it took; and until when the
    /// server's answer is awaited.
    husk: Option<Conn>,
    answer_by: Option<Instant>,
    /// Our side's end, asked while away: done once back.
    after_resume: Option<Happening>,
    /// A server's new connection whose first bytes are awaited until
    /// then, before its service hears of it (see [`OPENING_WAIT`]).
    opening_until: Option<Instant>,
    /// The peer broke the protocol: the session is not resumed.
    broken: bool,
    /// Our sending half is finishing (the ending decided it).
    finishing: bool,
    /// The peer would resume the session (a client's `HELLO` names it
    /// unless its `--resume-for` is 0): a server keeps it only then.
    peer_resumes: bool,
    /// The service holds off reading it (a room holding a talker back).
    deferred: bool,
}

/// What a service acts through, and the loop's state besides the poll.
pub struct Io {
    registry: Registry,
    links: Slab<Link>,
    /// (when, which, generation): stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, Id, u64)>>,
    generation: u64,
    scratch: Vec<u8>,
    /// Connections with something to write since the last flush.
    dirty: Vec<Id>,
    /// Connections not flushed because a push was writing them: flushed
    /// when the loop is woken (the push wakes it when done).
    after_push: Vec<Id>,
    /// Connections a service stopped reading with more at hand: read again
    /// next round (the socket will not say so again).
    again: Vec<Id>,
    happenings: VecDeque<(Id, Happening)>,
    news: VecDeque<(Id, News)>,
    rules: Rules,
    max_message_size: usize,
    now: Instant,
    gate: Gate,
    /// Connections offer version 2 (sessions) when they are admitted.
    sessions: bool,
    /// A client's loop (no listener): it resumes sessions its server named.
    client: bool,
    /// A server that keeps sessions for resuming: the sessions by token.
    tokens: HashMap<SessionToken, Id>,
    resumes: bool,
    /// Sessions that ended on purpose, newest last (see [`Ended`]).
    ended: VecDeque<Ended>,
    /// Batches written beside the loop, being taken in; emptied buffers
    /// on their way back (see [`Io::take_written`]).
    written: Vec<crate::console::outbox::Written>,
    spares: Vec<Vec<u8>>,
    /// New connections whose first bytes are awaited (see
    /// [`OPENING_WAIT`]), with their generation.
    openings: Vec<(Instant, Id, u64)>,
}

/// A server's session that ended on purpose (its client's end of stream,
/// or our own), remembered while it could have been resumed: a client
/// whose last acknowledgement and our end were lost on the way (a lossy
/// link) takes the silence for a loss and comes back to it. It is told
/// what we took, gets again what it had not acknowledged, and then our
/// end, rather than a refusal that would report as undelivered the lines
/// we took (a user trial over a link losing a fifth of its packets).
struct Ended {
    tokens: [SessionToken; 2],
    until: Instant,
    /// How many of the client's messages we took.
    taken: u64,
    /// Our messages from `first` on that it had not acknowledged, as
    /// frames; `None` if there were too many to keep.
    frames: Option<Vec<u8>>,
    first: u64,
}

/// The loop itself.
pub struct Engine {
    poll: Poll,
    events: Readiness,
    /// A server's; a client's loop has none.
    listener: Option<TcpListener>,
    waker: Arc<Waker>,
    io: Io,
    /// When to try `accept` again after it failed.
    accept_at: Option<Instant>,
    backoff: Duration,
    accept_reports: Throttle,
    output: Arc<Output>,
    clock: Clock,
}

/// What a server program listens with.
pub struct Listening<'a> {
    tls: Option<&'a TlsConfig>,
    access: &'a Access,
    idle_timeout: Option<Duration>,
    dead_after: Option<Duration>,
    max_message_size: usize,
    sessions: bool,
}

impl<'a> Listening<'a> {
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    pub fn new(
        tls: Option<&'a TlsConfig>,
        access: &'a Access,
        idle_timeout: Option<Duration>,
        dead_after: Option<Duration>,
        max_message_size: usize,
        sessions: bool,
    ) -> Self {
        Self {
            tls,
            access,
            idle_timeout,
            dead_after,
            max_message_size,
            sessions,
        }
    }
}

/// Opens a server's loop on `listener`: its TLS identity and code loaded
/// or made (and said), a warning if it talks in the clear beyond this
/// machine, and `events` (the operator's console) waking the loop, which
/// reads the time from `clock`.
pub fn listen(
    listener: std::net::TcpListener,
    listening: Listening<'_>,
    output: &Arc<Output>,
    events: &Events,
    clock: Clock,
) -> Result<Engine, crate::Error> {
    let address = listener.local_addr()?;
    let tls = match listening.tls {
        Some(tls) => Some(Arc::new(
            secure(tls, output).map_err(crate::Error::ServerTls)?,
        )),
        None => None,
    };
    if tls.is_none() && !address.ip().is_loopback() {
        output.status(
            "warning: conversations are not encrypted: anyone on the network path can read them (start with --tls to encrypt)",
        );
    }
    let gate = GateConfig {
        access: listening.access.clone(),
        tls,
    };
    let rules = Rules {
        input_end_closes: false,
        idle_timeout: listening.idle_timeout,
        dead_after: listening.dead_after,
    };
    let mut engine = Engine::new(
        Some(listener),
        gate,
        rules,
        listening.max_message_size,
        output,
        clock,
    )?;
    engine.speak_sessions(listening.sessions);
    events.wake_with(engine.waker());
    Ok(engine)
}

impl Engine {
    /// Runs `service` until it is done: false if the loop itself failed
    /// (said to the operator).
    pub fn run_to_end(&mut self, service: &mut impl Service) -> bool {
        match self.run(service) {
            Ok(()) => true,
            Err(e) => {
                self.output
                    .error(format!("the event loop failed: {}", lowercase_os_error(&e)));
                false
            }
        }
    }

    /// A loop accepting on `listener`, if any, through the gate `gate`;
    /// admitted connections end by `rules`; the time is `clock`'s.
    pub fn new(
        listener: Option<std::net::TcpListener>,
        gate: GateConfig,
        rules: Rules,
        max_message_size: usize,
        output: &Arc<Output>,
        clock: Clock,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let listener = match listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                let mut listener = TcpListener::from_std(listener);
                poll.registry()
                    .register(&mut listener, LISTENER, Interest::READABLE)?;
                Some(listener)
            }
            None => None,
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        {
            let waker = Arc::clone(&waker);
            clock.on_advance(move || {
                let _ = waker.wake();
            });
        }
        let io = Io {
            registry: poll.registry().try_clone()?,
            links: Slab::new(),
            timers: BinaryHeap::new(),
            generation: 0,
            scratch: vec![0; SCRATCH],
            dirty: Vec::new(),
            after_push: Vec::new(),
            again: Vec::new(),
            happenings: VecDeque::new(),
            news: VecDeque::new(),
            rules,
            max_message_size,
            now: clock.now(),
            gate: Gate::new(gate, Arc::clone(output)),
            sessions: true,
            client: listener.is_none(),
            tokens: HashMap::new(),
            resumes: false,
            ended: VecDeque::new(),
            written: Vec::new(),
            spares: Vec::new(),
            openings: Vec::new(),
        };
        Ok(Self {
            poll,
            events: Readiness::with_capacity(1024),
            listener,
            waker,
            io,
            accept_at: None,
            backoff: ACCEPT_BACKOFF,
            accept_reports: Throttle::new(ACCEPT_REPORT_PERIOD),
            output: Arc::clone(output),
            clock,
        })
    }

    /// Whether connections offer version 2 (on unless told otherwise): off,
    /// the program speaks version 1 only, as builds before it did.
    pub fn speak_sessions(&mut self, on: bool) {
        self.io.sessions = on;
    }

    /// A server whose conversations may be resumed: each new connection's
    /// first bytes are looked at before its service hears of it, for a
    /// client resuming a session.
    pub fn keep_sessions(&mut self, on: bool) {
        self.io.resumes = on;
    }

    /// See [`Io::allow_resume`].
    pub fn allow_resume(&mut self, id: Id, within: Option<Duration>) {
        self.io.allow_resume(id, within);
    }

    /// See [`Io::set_max`].
    pub fn set_max(&mut self, id: Id, max: usize) {
        self.io.set_max(id, max);
    }

    /// Adds a connection made elsewhere (see [`Io::adopt`]).
    pub fn adopt(
        &mut self,
        stream: std::net::TcpStream,
        tls: Option<rustls::Connection>,
    ) -> io::Result<Id> {
        self.io.adopt(stream, tls)
    }

    /// Lets pushes to `outbox` write connection `id` themselves (see
    /// [`Io::write_beside`]).
    pub fn write_beside(&mut self, id: Id, outbox: &Arc<Outbox>) {
        self.io.write_beside(id, outbox);
    }

    /// Wakes the loop from another thread: the service's
    /// [`woken`](Service::woken) runs next.
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Runs `service` until it is done.
    pub fn run(&mut self, service: &mut impl Service) -> io::Result<()> {
        // From now on a move of a manual clock waits for a round at the new
        // time, the first round included.
        self.clock.round_done(Some(self.io.now));
        let ran = self.rounds(service);
        self.clock.round_done(None);
        ran
    }

    fn rounds(&mut self, service: &mut impl Service) -> io::Result<()> {
        let mut service_at: Option<Instant> = None;
        // In real time whatever the clock: it makes up for the system.
        let recheck = crate::platform::readiness_recheck();
        let mut recheck_at = recheck.map(|every| Instant::now() + every);
        loop {
            let report_at = self.io.gate.report_at(self.clock.now());
            let next = [self.io.next_timer(), service_at, self.accept_at, report_at]
                .into_iter()
                .flatten()
                .min();
            let recheck_in = [recheck_at, self.io.openings.iter().map(|o| o.0).min()]
                .into_iter()
                .flatten()
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            let timeout = match self.io.again.is_empty() {
                true => [self.clock.sleep_until(next), recheck_in]
                    .into_iter()
                    .flatten()
                    .min(),
                false => Some(Duration::ZERO),
            };
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.io.now = self.clock.now();
            // Woken far later than asked: this process was stopped (Ctrl-Z,
            // SIGSTOP, a laptop asleep), and heard nothing meanwhile because
            // it was not listening, not because the peers were silent.
            if next.is_some_and(|asked| self.io.now > asked + OVERSLEPT) {
                self.io.woke_late();
            }
            let mut woken = false;
            let mut accept = self.accept_at.is_some_and(|at| at <= self.io.now);
            let mut ready = Vec::new();
            for event in &self.events {
                match event.token() {
                    WAKER => woken = true,
                    LISTENER => accept = true,
                    Token(id) => {
                        let ended = event.is_read_closed() || event.is_error();
                        if ended {
                            self.io.ended_seen(id);
                        }
                        if event.is_error() {
                            self.io.error_seen(id);
                        }
                        if event.is_readable() {
                            self.io.heard(id);
                        }
                        ready.push((id, event.is_readable() || ended, event.is_writable()));
                    }
                }
            }
            if accept {
                self.accept(service);
            }
            for (id, readable, writable) in ready {
                self.io.ready(service, id, readable, writable);
            }
            for id in std::mem::take(&mut self.io.again) {
                self.io.ready(service, id, true, false);
            }
            self.io.openings_due(service);
            if let (Some(at), Some(every)) = (recheck_at, recheck)
                && at <= Instant::now()
            {
                recheck_at = Some(Instant::now() + every);
                let ids: Vec<Id> = self.io.links.iter().map(|(id, _)| id).collect();
                for id in ids {
                    self.io.ready(service, id, true, true);
                }
            }
            if woken {
                let io = &mut self.io;
                io.dirty.append(&mut io.after_push);
                // Before the service takes lines queued after them.
                let keeping: Vec<Id> = io
                    .links
                    .iter()
                    .filter(|(_, link)| link.beside_keeps)
                    .map(|(id, _)| id)
                    .collect();
                for id in keeping {
                    io.take_written(id);
                }
                service.woken(io);
            }
            self.io.fire_timers(service);
            self.io.gate.report_overdue(self.io.now);
            self.io.settle(service);
            let tick = service.tick(&mut self.io);
            self.io.settle(service);
            if tick.done {
                self.io.end_all();
                return Ok(());
            }
            service_at = tick.wake_at;
            self.clock.round_done(Some(self.io.now));
        }
    }

    fn accept(&mut self, service: &mut impl Service) {
        self.accept_at = None;
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.backoff = ACCEPT_BACKOFF;
                    self.io.accepted(service, stream, peer);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A client that gave up before we accepted it (wine says
                // "not connected" for one reset while waiting).
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::NotConnected
                    ) => {}
                Err(e) => {
                    if let Some(times) = self.accept_reports.occurred(self.io.now) {
                        let again = match times {
                            1 => String::new(),
                            n => format!(" ({n} times since the last report)"),
                        };
                        self.output.error(format!(
                            "cannot accept a connection: {}{again}; retrying",
                            lowercase_os_error(&e)
                        ));
                    }
                    // The waiting connections stay queued: no new event
                    // comes for them, so the loop looks again later.
                    self.accept_at = Some(self.io.now + self.backoff);
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    return;
                }
            }
        }
    }
}

/// What a happening is news of for the service, if anything.
fn news_of(happening: &Happening) -> Option<News> {
    match happening {
        Happening::PeerClosed => Some(News::PeerClosed),
        Happening::ReceiveFailed(why) | Happening::SendFailed(why) => {
            Some(News::Failed(why.clone()))
        }
        _ => None,
    }
}

impl Io {
    /// The time of this round.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn peer(&self, id: Id) -> Option<SocketAddr> {
        self.links.get(id).map(|link| link.conn.peer())
    }

    /// Queues `frames` to connection `id`; they go out when the round
    /// ends, with whatever else was queued for it meanwhile.
    pub fn send(&mut self, id: Id, frames: &[u8]) {
        if let Some(link) = self.links.get_mut(id) {
            // While another thread writes the socket beside the loop, what
            // it could not write whole waits in its outbox, the rest of a
            // frame begun on the socket: frames queued here would go out
            // before that rest, inside the frame. They go behind it, through
            // the outbox. (A client whose room greeted it after its 1-s
            // wait, a busy room holding it back, sent its `/nick` so, and
            // the room read garbage and cut it off.)
            if let Some(outbox) = &link.beside {
                let mut batch = frames.to_vec();
                outbox.push(&mut batch, crate::console::outbox::Room::Take);
                return;
            }
            if link.conn.unsent() == 0 {
                self.dirty.push(id);
            }
            piggyback(link, self.now);
            // While a client resumes, after what goes again.
            let conn = link.husk.as_mut().unwrap_or(&mut link.conn);
            let numbered = conn.queue(frames);
            if let Some(session) = &mut link.session {
                session.sent(numbered, self.now);
            }
        }
    }

    /// [`send`](Self::send) for a batch of the user's lines: its buffer is
    /// taken as it is, and `batch` is left an empty one to fill again.
    pub fn send_batch(&mut self, id: Id, batch: &mut Vec<u8>) {
        match self.links.get_mut(id) {
            Some(link) => {
                if link.conn.unsent() == 0 {
                    self.dirty.push(id);
                }
                piggyback(link, self.now);
                let conn = link.husk.as_mut().unwrap_or(&mut link.conn);
                let numbered = conn.queue_batch(batch);
                if let Some(session) = &mut link.session {
                    session.sent(numbered, self.now);
                }
            }
            None => batch.clear(),
        }
    }

    /// Lets pushes to `outbox`, the service's lines for connection `id`
    /// (which the loop takes with [`Outbox::take_now`] and sends), write
    /// the socket themselves, at once, while the loop holds nothing for it:
    /// a typed line then goes out without waking the loop (under TLS,
    /// sealed in the session they share). Where a send can be made without
    /// waiting (Unix); the bytes count as the connection's, and the socket
    /// has one writer at a time.
    pub fn write_beside(&mut self, id: Id, outbox: &Arc<Outbox>) {
        let Some(link) = self.links.get(id) else {
            return;
        };
        // A session's messages are numbered, from our offer on (before the
        // peer's offer came, too: a line written then, left out of the
        // numbering, was lost for good when the path died, across a
        // resume), and kept: a push hands the loop what it wrote, once the
        // session is open on this connection. Until then the loop writes.
        let keeps = link.session.is_some() || link.conn.numbered_from_offer();
        if link.beside.is_some()
            || keeps
                && (link.session.is_none()
                    || !link.opened_told
                    || link.hello_owed
                    || link.away.is_some()
                    || link.husk.is_some())
        {
            return;
        }
        if keeps {
            outbox.keep_what_is_written();
        }
        let write_now = self
            .links
            .get_mut(id)
            .and_then(|link| link.conn.write_beside(keeps));
        let Some(write_now) = write_now else {
            return;
        };
        outbox.write_at_once(write_now);
        // What the loop queued so far (a notice) goes first: the loop holds
        // the socket until it is written.
        outbox.claim_socket();
        self.links[id].beside = Some(Arc::clone(outbox));
        self.links[id].beside_keeps = keeps;
        self.dirty.push(id);
    }

    /// Takes in the batches pushes wrote beside the loop on connection
    /// `id`'s session (see [`Outbox::keep_what_is_written`]): numbered
    /// and kept as if the loop had written them, what the socket did not
    /// take of them queued first. A service calls it before it takes what
    /// was queued in the outbox, which goes after them.
    pub fn take_written(&mut self, id: Id) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(outbox) = link.beside.as_ref().filter(|_| link.beside_keeps) else {
            return;
        };
        let polled = link.beside_poll_at.is_none_or(|at| at <= self.now);
        if !outbox.take_written(&mut self.written, &mut self.spares, polled) {
            if polled {
                link.beside_poll_at = None;
            }
            return;
        }
        let poll = self.now + BESIDE_POLL;
        link.beside_poll_at = Some(poll);
        let mut numbered = 0;
        for written in self.written.drain(..) {
            numbered += written.messages;
            link.conn.take_written(written, &mut self.spares);
        }
        if let Some(session) = &mut link.session {
            session.sent(numbered, self.now);
        }
        if link.conn.wants_write() && !self.dirty.contains(&id) {
            self.dirty.push(id);
        }
        if link.wake_at.is_none_or(|at| poll < at) {
            self.set_timer(id, Some(poll));
        }
        self.give_spares(id);
    }

    /// Hands the pushes writing beside connection `id` emptied buffers
    /// (acknowledged), so that a flood's batches allocate nothing.
    fn give_spares(&mut self, id: Id) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(outbox) = link.beside.as_ref().filter(|_| link.beside_keeps) else {
            return;
        };
        while self.spares.len() < 2
            && let Some(spare) = link.conn.spare()
        {
            self.spares.push(spare);
        }
        if !self.spares.is_empty() {
            outbox.give_spares(&mut self.spares);
        }
    }

    /// Adds `stream`, a connection made elsewhere (a client's, with its
    /// TLS session if `tls`, the handshake done), as admitted: its ending
    /// starts now, and what it may hold already is read next round.
    pub fn adopt(
        &mut self,
        stream: std::net::TcpStream,
        tls: Option<rustls::Connection>,
    ) -> io::Result<Id> {
        stream.set_nonblocking(true)?;
        let peer = stream.peer_addr()?;
        let id = self.insert(mio::net::TcpStream::from_std(stream), peer, Phase::Admitted)?;
        let link = &mut self.links[id];
        if let Some(tls) = tls {
            link.conn.start_tls(tls);
        }
        link.conn.set_max(self.max_message_size);
        if self.sessions {
            // A client offers first: a server offers only to a client that
            // did, so a version 1 client never sees the offer.
            link.conn.listen_for_sessions();
            link.conn.queue_offer();
            self.dirty.push(id);
        }
        self.start_ending(id);
        self.again.push(id);
        Ok(id)
    }

    /// Frames from connection `id` may be up to `max` bytes from now on
    /// (a peer that declared it sends larger ones).
    pub fn set_max(&mut self, id: Id, max: usize) {
        if let Some(link) = self.links.get_mut(id) {
            link.conn.set_max(max);
        }
    }

    /// Why connection `id` is lost, if its peer has answered nothing for
    /// `--dead-after` while bytes of ours waited for it: for a connection
    /// with no ending to judge it (a client waiting in line, sent a
    /// keepalive now and then).
    pub fn lost(&self, id: Id) -> Option<String> {
        let after = self.rules.dead_after?;
        let link = self.links.get(id)?;
        if let Some(session) = &link.session
            && !link.conn.read_ended()
            && session.silent_for(self.now) >= after
        {
            return Some(crate::state::ending::lost_after(after));
        }
        let silent = crate::platform::unanswered_for(socket2::SockRef::from(link.conn.stream()))?;
        (silent >= after).then(|| crate::state::ending::lost_after(after))
    }

    /// Connection `id`, which has no ending to judge it (a client waiting
    /// in line), is lost (`why`, as [`lost`](Self::lost) says): its
    /// session is kept for a resume if it may be ([`News::Away`]), else
    /// the service hears of the failure.
    pub fn lose(&mut self, id: Id, why: String) {
        if self.links.contains(id) {
            self.happenings
                .push_back((id, Happening::ReceiveFailed(why)));
        }
    }

    /// Bytes of frames connection `id` has handed wholly to the kernel.
    pub fn sent(&self, id: Id) -> u64 {
        self.links.get(id).map_or(0, |link| link.conn.sent())
    }

    /// Bytes queued for connection `id` that its peer has not yet taken,
    /// and, with a version 2 peer, those written and not yet acknowledged:
    /// a program that sends while this is under a bound keeps at most that
    /// much in flight (1 MiB per round trip: 10 MB/s at 100 ms).
    pub fn unsent(&self, id: Id) -> usize {
        self.links.get(id).map_or(0, |link| {
            link.conn.held() + link.husk.as_ref().map_or(0, Conn::held)
        })
    }

    /// Bytes queued for connection `id` that the system has not yet taken
    /// (not those written and waiting for the peer's acknowledgement: a
    /// room that reads a member only in turns reads its acknowledgements
    /// so too, and must not wait for them before it reads anyone).
    pub fn queued(&self, id: Id) -> usize {
        self.links.get(id).map_or(0, |link| {
            link.conn.unsent() + link.husk.as_ref().map_or(0, Conn::unsent)
        })
    }

    /// What connection `id` sent is kept for the peer's acknowledgement up
    /// to `bytes` (past that the oldest is let go, and a resume that needs
    /// it fails).
    pub fn keep_at_most(&mut self, id: Id, bytes: usize) {
        if let Some(link) = self.links.get_mut(id) {
            link.conn.keep_at_most(bytes);
        }
    }

    /// Moves whole frames from connection `id` into `into`, about `limit`
    /// bytes at most (one frame always). True if it may have more now.
    pub fn read(&mut self, id: Id, into: &mut Vec<u8>, limit: usize) -> bool {
        self.read_with(id, limit, |frames| into.extend_from_slice(frames))
    }

    /// [`read`](Self::read), handing each run of whole frames to `each`
    /// where it lies, without a copy.
    pub fn read_with(&mut self, id: Id, limit: usize, each: impl FnMut(&[u8])) -> bool {
        let Some(link) = self.links.get_mut(id) else {
            return false;
        };
        // A server that resumes answers a try with its offer first: any
        // other first bytes (a room's greeting, the waiting line's notice)
        // say it took the try for a new client (its first bytes came after
        // the server's wait for them, a user trial's held relay). Not to be
        // shown: the try failed, and the next one may be taken right.
        if link.husk.is_some() && !link.conn.peer_offered() {
            let _ = link.conn.read_ahead(&mut self.scratch, OFFER_LEN);
            if link.conn.ahead().iter().any(|&b| b != 0) {
                // It is told so, lest it keep that new session for us.
                link.conn.queue_control(&Control::Bye);
                let _ = link.conn.flush();
                self.resume_failed(
                    id,
                    "the server took the attempt for a new connection (its first bytes came late)"
                        .to_string(),
                );
                return false;
            }
        }
        if let Some(end) = link.conn.read_with(&mut self.scratch, limit, each) {
            if let ReadEnd::Failed(e) = &end
                && e.kind() == ErrorKind::InvalidData
            {
                link.broken = true;
                // A client that sent a message over our maximum before our
                // offer and `HELLO` (which says the maximum) went out: told
                // why, in the refusal's form, rather than left to take our
                // close for an end (a piped file's long line to a server
                // with a smaller --max-message-size).
                if !self.client {
                    let why = crate::errors::describe_receive_failure(e, None);
                    let why = why.strip_prefix("protocol error: ").unwrap_or(&why);
                    let mut frame = Vec::new();
                    let notice = crate::wire::farewell::refusal(&format!("your {why}"));
                    let _ =
                        crate::wire::frame::encode_frame(&mut frame, notice.as_bytes(), usize::MAX);
                    link.conn.say_instead(&frame);
                }
            }
            let happening = match end {
                ReadEnd::Closed => Happening::PeerClosed,
                ReadEnd::Failed(e) => {
                    Happening::ReceiveFailed(describe_receive_failure(&e, self.rules.dead_after))
                }
            };
            if link.away.is_some() {
                // A resuming connection that ended: the server's answer
                // read before its end counts (a refusal is an answer);
                // without one, the try failed.
                self.after_read(id);
                match self.links.get(id) {
                    Some(link) if link.husk.is_some() => {
                        let why = match &happening {
                            Happening::ReceiveFailed(why) => why.clone(),
                            _ => "the server closed the connection".to_string(),
                        };
                        self.resume_failed(id, why);
                    }
                    // Resumed, and then the end: the new ending's.
                    Some(link) if link.away.is_none() => {
                        self.happenings.push_back((id, happening));
                    }
                    _ => {}
                }
                return false;
            }
            link.peer_closed |= happening == Happening::PeerClosed;
            match (link.closing.is_some(), happening) {
                (true, happening) => self.happenings.push_back((id, happening)),
                // Judged in `step`, where the session may be kept.
                (false, Happening::ReceiveFailed(why)) if matches!(link.phase, Phase::Admitted) => {
                    self.happenings
                        .push_back((id, Happening::ReceiveFailed(why)))
                }
                (false, happening) => {
                    link.finished_unjudged |= happening == Happening::PeerClosed;
                    self.news
                        .push_back((id, news_of(&happening).expect("an end")));
                }
            }
        }
        // Records rustls queued while reading (a key update) go out too.
        if link.conn.wants_write() {
            self.dirty.push(id);
        }
        let more = link.conn.can_read();
        self.after_read(id);
        more
    }

    /// The service stops reading connection `id` for this round with more
    /// at hand, so that one fast peer cannot hold the loop: it is readable
    /// again next round.
    pub fn read_later(&mut self, id: Id) {
        if self.links.contains(id) && !self.again.contains(&id) {
            self.again.push(id);
        }
    }

    /// The service holds off reading connection `id` with something to
    /// read (`deferred`), or reads it again: while it does not read, what
    /// the peer sends waits unread, heartbeats too, so the peer's silence
    /// is not counted against it (a talker a busy room holds back is not
    /// lost for that).
    pub fn defer_reading(&mut self, id: Id, deferred: bool) {
        let now = self.now;
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if link.deferred == deferred {
            return;
        }
        link.deferred = deferred;
        if let Some(session) = &mut link.session {
            session.deafen(deferred, now);
        }
    }

    /// Asks the system to hold about `bytes` at most of what connection
    /// `id`'s peer sends before we read it, so that what we do not read
    /// soon waits in the peer's system, where it can see that it waits.
    pub fn limit_receive_buffer(&mut self, id: Id, bytes: usize) {
        if let Some(link) = self.links.get(id) {
            let _ = socket2::SockRef::from(link.conn.stream()).set_recv_buffer_size(bytes);
        }
    }

    /// What connection `id`'s peer has sent as far as it was read, for the
    /// first-message deadline ([`crate::state::first_words`]): a whole
    /// frame, nothing, or bytes left unread (the service held off reading
    /// it, or has yet to read what it sent before it was told of it).
    /// `None` once it is gone.
    pub fn first_frame(&self, id: Id) -> Option<crate::state::first_words::Heard> {
        use crate::state::first_words::Heard;
        let link = self.links.get(id)?;
        let unread = (link.deferred && link.conn.can_read())
            || link.opening_until.is_some()
            || self.again.contains(&id);
        Some(match (link.conn.framed(), unread) {
            (true, _) => Heard::Frame,
            (false, true) => Heard::Unread,
            (false, false) => Heard::Nothing,
        })
    }

    /// Whether connection `id` may have frames to read now.
    pub fn can_read(&self, id: Id) -> bool {
        self.links.get(id).is_some_and(|link| link.conn.can_read())
    }

    /// Starts connection `id`'s ending: from now on its end of stream,
    /// failures, idle time and stalls are judged by the rules, and told as
    /// news. Before, only its end of stream or failure is told.
    pub fn start_ending(&mut self, id: Id) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if link.closing.is_none() {
            link.closing = Some(Closing::new(self.rules, self.now));
            self.step(id, None);
        }
    }

    /// Closes connection `id` at once, without an ending (a client that
    /// left the waiting line). No news of it follow.
    pub fn drop_now(&mut self, id: Id) {
        if self.links.contains(id) {
            self.remove(id);
        }
    }

    /// What the service holds for connection `id` before it is queued
    /// here: `held` bytes, and whether our user's input waits for the peer
    /// to take what is queued (its stall clock then runs). The bytes count
    /// as not delivered if the connection ends.
    pub fn set_held(&mut self, id: Id, held: u64, backlogged: bool) {
        if let Some(link) = self.links.get_mut(id) {
            link.held = held;
            if link.backlogged != backlogged {
                link.backlogged = backlogged;
                if link.closing.is_some() {
                    self.happenings.push_back((id, Happening::Nothing));
                }
            }
        }
    }

    /// Tells connection `id`'s ending what happened (our user quit, an
    /// interrupt): its decisions are done when the round ends.
    pub fn happen(&mut self, id: Id, happening: Happening) {
        if self.links.contains(id) {
            self.happenings.push_back((id, happening));
        }
    }

    /// Tells the client on connection `id` why it is not served, in one
    /// frame (`notice`, as it goes on the wire), and lets it go (its side
    /// is read until it closes, briefly). No news of it follow.
    pub fn refuse(&mut self, id: Id, notice: &str) {
        if self.links.contains(id) {
            gate::refuse(self, id, notice);
        }
    }

    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, generation))) = self.timers.peek().copied() {
            match self.links.get(id) {
                Some(link) if link.generation == generation && link.wake_at == Some(at) => {
                    return Some(at);
                }
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    fn set_timer(&mut self, id: Id, at: Option<Instant>) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if link.wake_at == at {
            return;
        }
        link.wake_at = at;
        if let Some(at) = at {
            self.timers.push(Reverse((at, id, link.generation)));
        }
    }

    fn fire_timers(&mut self, service: &mut impl Service) {
        while let Some(at) = self.next_timer() {
            if at > self.now {
                break;
            }
            let Reverse((_, id, _)) = self.timers.pop().expect("peeked");
            self.links[id].wake_at = None;
            match self.links[id].phase {
                Phase::Admitted => self.step(id, None),
                _ => gate::timed_out(self, service, id),
            }
        }
    }

    fn accepted(
        &mut self,
        service: &mut impl Service,
        stream: mio::net::TcpStream,
        peer: SocketAddr,
    ) {
        gate::accepted(self, service, stream, peer);
    }

    /// Adds a connection to the loop.
    fn insert(
        &mut self,
        mut stream: mio::net::TcpStream,
        peer: SocketAddr,
        phase: Phase,
    ) -> io::Result<Id> {
        let entry = self.links.vacant_entry();
        let id = entry.key();
        register(&self.registry, &mut stream, id, self.rules.dead_after)?;
        self.generation += 1;
        entry.insert(Link {
            conn: Conn::new(stream, peer, self.max_message_size),
            phase,
            closing: None,
            backlogged: false,
            held: 0,
            beside: None,
            beside_keeps: false,
            beside_poll_at: None,
            wake_at: None,
            generation: self.generation,
            session: None,
            hello_owed: false,
            taken_seen: (0, 0),
            held_over: (0, 0),
            ending_started: false,
            said_bye: false,
            said_bye_ours: false,
            said_end: false,
            finished_unjudged: false,
            peer_closed: false,
            received_seen: 0,
            opened_told: false,
            peer_takes: 0,
            peer_max: 0,
            acks_held: false,
            ack_delay: None,
            resume_for: None,
            session_token: NO_TOKEN,
            client_token: NO_TOKEN,
            away: None,
            husk: None,
            answer_by: None,
            after_resume: None,
            opening_until: None,
            broken: false,
            finishing: false,
            peer_resumes: true,
            deferred: false,
        });
        Ok(id)
    }

    fn remove(&mut self, id: Id) -> Link {
        let mut link = self.links.remove(id);
        let _ = self.registry.deregister(link.conn.stream_mut());
        for token in [link.session_token, link.client_token] {
            if token != NO_TOKEN && self.tokens.get(&token) == Some(&id) {
                self.tokens.remove(&token);
            }
        }
        link
    }

    /// Connection `id` passed the gate: its ending starts now.
    fn admit(&mut self, service: &mut impl Service, id: Id) {
        let link = &mut self.links[id];
        link.phase = Phase::Admitted;
        link.conn.set_max(self.max_message_size);
        if self.sessions {
            link.conn.listen_for_sessions();
            if self.resumes {
                let until = Instant::now() + OPENING_WAIT;
                link.opening_until = Some(until);
                self.openings.push((until, id, link.generation));
                self.look_at_opening(service, id);
                return;
            }
        }
        service.admit(self, id);
    }

    /// A server's new connection `id`, before its service hears of it: a
    /// client resuming a session takes the session's place; anyone else
    /// (or one that said nothing within [`OPENING_WAIT`]) is admitted, and
    /// what it sent is read by the service.
    fn look_at_opening(&mut self, service: &mut impl Service, id: Id) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(until) = link.opening_until else {
            return;
        };
        // An end or a failure is the service's to see, after what came.
        let ahead = link.conn.read_ahead(&mut self.scratch, OPENING_MOST);
        let first = link.conn.ahead();
        match crate::wire::session::opening(first, ahead != Ahead::Full) {
            // Gone before it said anything: the service sees the end.
            _ if ahead == Ahead::Ended => {}
            Opening::Unknown if Instant::now() < until => return,
            Opening::Resume(hello) => {
                self.resume_here(id, hello);
                return;
            }
            Opening::Unknown | Opening::New => {}
        }
        let link = &mut self.links[id];
        link.opening_until = None;
        let generation = link.generation;
        self.openings.retain(|o| (o.1, o.2) != (id, generation));
        self.again.push(id);
        service.admit(self, id);
    }

    /// New connections whose wait for their first bytes is over.
    fn openings_due(&mut self, service: &mut impl Service) {
        if self.openings.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<Id> = self
            .openings
            .iter()
            .filter(|(until, id, generation)| {
                *until <= now
                    && self
                        .links
                        .get(*id)
                        .is_some_and(|link| link.generation == *generation)
            })
            .map(|o| o.1)
            .collect();
        self.openings.retain(|(until, id, generation)| {
            *until > now
                && self
                    .links
                    .get(*id)
                    .is_some_and(|link| link.generation == *generation)
        });
        for id in due {
            self.look_at_opening(service, id);
        }
    }

    /// Connection `id` (not yet told to the service) resumes the session
    /// `hello` names: it takes the session's place, and what the client
    /// had not taken goes again; a session this server does not keep (it
    /// gave up on it, or never had it) is refused.
    fn resume_here(&mut self, id: Id, hello: Hello) {
        let generation = self.links[id].generation;
        self.openings.retain(|o| (o.1, o.2) != (id, generation));
        self.links[id].opening_until = None;
        let old = self.tokens.get(&hello.resume_of).copied().filter(|&old| {
            old != id
                && self.links.get(old).is_some_and(|link| {
                    link.resume_for.is_some() && !link.broken && link.session.is_some()
                })
        });
        let Some(old) = old else {
            if self.answer_ended(id, &hello) {
                return;
            }
            return self.refuse_resume(id, 0);
        };
        if self.links[old].away.is_none() {
            // Its client found the old connection dead before this side
            // did (a reset it never saw, an address that changed).
            self.park(old, "its client came back on a new connection".to_string());
        }
        let first = hello.received + 1;
        let link = &mut self.links[old];
        let session = link.session.as_mut().expect("a session");
        let Some((frames, count)) = link.conn.messages_from(first) else {
            return self.refuse_resume(id, 0);
        };
        if session.acked(hello.received, self.now).is_err() {
            return self.refuse_resume(id, 0);
        }
        // The new socket under the session's handle.
        let mut fresh = self.links.remove(id).conn;
        if self
            .registry
            .reregister(
                fresh.stream_mut(),
                Token(old),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        let link = &mut self.links[old];
        let session = link.session.as_mut().expect("a session");
        session.heard(self.now);
        session.beat_every(Duration::from_millis(hello.heartbeat_ms.into()));
        // What a client waiting in line sent was taken (kept for its
        // turn), acknowledged or not: not to be sent again.
        let received = session.taken() + link.held_over.0;
        link.peer_takes = hello.takes;
        link.peer_max = hello.max_message;
        let (away, _) = link.away.take().expect("away");
        // The lost connection goes; what it held goes again below.
        link.conn = fresh;
        link.conn.queue_offer();
        // The token the client resumed by, whichever of the session's two.
        let ours = our_hello(
            (self.rules.dead_after, self.max_message_size),
            link.session_token,
            hello.resume_of,
            received,
        );
        link.conn.queue_resumed_hello(ours, first);
        link.conn.queue_again(&frames, count);
        link.taken_seen = (0, 0);
        link.received_seen = 0;
        link.hello_owed = false;
        if link.ending_started {
            link.closing = Some(Closing::new(self.rules, self.now));
        }
        // Our side's end, asked for while it was away, goes on now.
        if let Some(happening) = link.after_resume.take() {
            self.happenings.push_back((old, happening));
        }
        let peer = link.conn.peer();
        self.news.push_back((
            old,
            News::Back {
                after: away.lasted(self.now),
                peer,
                resent: count,
            },
        ));
        self.dirty.push(old);
        self.again.push(old);
        self.set_timer(old, None);
        self.step(old, None);
    }

    /// Tells connection `id`, which asked to resume a session this server
    /// does not keep, that it cannot: a `HELLO` that resumes nothing, then
    /// the end (a version 1 client would not have asked). `taken`: how
    /// many of its messages we took, if known (else 0), so that it counts
    /// the rest only as not delivered.
    fn refuse_resume(&mut self, id: Id, taken: u64) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        link.conn.queue_offer();
        link.conn.queue_control(&Control::Hello(our_hello(
            (self.rules.dead_after, self.max_message_size),
            NO_TOKEN,
            NO_TOKEN,
            taken,
        )));
        let peer = link.conn.peer();
        self.gate.say(format!(
            "{peer} asked to resume a conversation this server no longer keeps; refused"
        ));
        // No notice besides: the client, which asked to resume, reads the
        // `HELLO`.
        gate::let_go(self, id);
    }

    /// The system reported an error on connection `id` (a reset, say). A
    /// connection in a conversation meets it at its next read or write; a
    /// client that only waits its turn may have neither coming (its end of
    /// stream read, nothing to send it), so the service is told now.
    fn error_seen(&mut self, id: Id) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        // A session away is not ended by its connection's errors: a
        // resuming connection's failure is another try's (met when it is
        // read or written).
        if link.closing.is_some() || !matches!(link.phase, Phase::Admitted) || link.away.is_some() {
            return;
        }
        // Unread, the error is met by the read, after what came before it
        // (a `BYE`, say), if that matters.
        if !link.conn.read_ended() && resumable(link) {
            return self.read_to_the_failure(id);
        }
        if let Ok(Some(e)) = link.conn.stream().take_error() {
            let why = describe_receive_failure(&e, self.rules.dead_after);
            self.failed_unjudged(id, why);
        }
    }

    /// Connection `id`, whose session may be resumed, failed with bytes
    /// perhaps still to read: the service reads them this round, and the
    /// read meets the failure after them (the service's reading may stop
    /// short: then its silence, [`Io::lost`], says it later).
    fn read_to_the_failure(&mut self, id: Id) {
        if let Some(link) = self.links.get_mut(id) {
            link.conn.set_readable();
            if !self.again.contains(&id) {
                self.again.push(id);
            }
        }
    }

    /// The system reported the end of connection `id`'s receiving half
    /// (or an error): it must be read to be seen, however a read went.
    fn ended_seen(&mut self, id: Id) {
        if let Some(link) = self.links.get_mut(id) {
            link.conn.set_end_reported();
        }
    }

    fn ready(&mut self, service: &mut impl Service, id: Id, readable: bool, writable: bool) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if readable {
            link.conn.set_readable();
        }
        if writable && link.conn.wants_write() {
            self.dirty.push(id);
        }
        match link.phase {
            Phase::Admitted if link.opening_until.is_some() => {
                if readable {
                    self.look_at_opening(service, id);
                }
            }
            Phase::Admitted if readable => service.readable(self, id),
            Phase::Admitted => {}
            _ => gate::ready(self, service, id),
        }
    }

    /// Does what the endings decide and tells the news, then writes what
    /// is queued, until nothing is left to do. The news come before the
    /// writes: what a service says about an ending (why a member leaves)
    /// goes out before the end of stream that the ending decided.
    fn settle(&mut self, service: &mut impl Service) {
        loop {
            if let Some((id, happening)) = self.happenings.pop_front() {
                self.step(id, Some(happening));
                continue;
            }
            if let Some((id, news)) = self.news.pop_front() {
                service.news(self, id, news);
                continue;
            }
            if self.dirty.is_empty() {
                return;
            }
            for id in std::mem::take(&mut self.dirty) {
                self.flush(id);
            }
        }
    }

    fn flush(&mut self, id: Id) {
        // What the socket did not take of a batch written beside goes
        // before anything queued here.
        self.take_written(id);
        if self.links.get(id).is_some_and(|link| link.hello_owed) {
            self.send_hello(id);
        }
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if link.away.is_some() && link.husk.is_none() {
            // No socket: what is queued waits for the session's return.
            return;
        }
        if let Some(outbox) = &link.beside
            && link.conn.wants_write()
            && !outbox.claim_socket()
        {
            self.after_push.push(id);
            return;
        }
        let flushed = link.conn.flush();
        if let Some(outbox) = &link.beside
            && link.conn.idle_open()
        {
            outbox.socket_idle();
        }
        match flushed {
            Flushed::Idle | Flushed::Blocked => {}
            Flushed::Failed(e) => {
                let why = describe_send_failure(&e, self.rules.dead_after);
                if link.away.is_some() {
                    self.resume_failed(id, why);
                    return;
                }
                if link.closing.is_some() {
                    // A peer whose program is gone (its end of stream
                    // without `END`, read or next to be read) resets what
                    // we send after its close: that is its end, which the
                    // read tells, not a lost link to resume (a client whose
                    // `ACK` met its killed server's closed socket took it
                    // for a loss, tried again and was refused: CI). A peer
                    // that said `END` still reads: its reset is the link's.
                    let gone = match link.conn.read_ended() {
                        true => link.peer_closed && unsaid(link),
                        false => {
                            link.conn.set_readable();
                            let ahead = link.conn.read_ahead(&mut self.scratch, BYE_LOOK_AHEAD);
                            let bytes = link.conn.ahead();
                            ahead == Ahead::Ended
                                && !link.conn.read_ended()
                                && unsaid(link)
                                && !says(bytes, &Control::End)
                                && !says(bytes, &Control::Bye)
                        }
                    };
                    if gone && !link.conn.read_ended() && !self.again.contains(&id) {
                        // What it sent before is read first, as always.
                        self.again.push(id);
                    }
                    self.happenings.push_back((
                        id,
                        match gone {
                            true => Happening::SendFinished,
                            false => Happening::SendFailed(why),
                        },
                    ));
                } else if matches!(link.phase, Phase::Admitted) {
                    // A client waiting its turn, gone (or away: `step`).
                    // What it sent before is read first, where the read
                    // meets the failure too: a `BYE` among it says it left.
                    match link.conn.read_ended() || !resumable(link) {
                        true => self.happenings.push_back((id, Happening::SendFailed(why))),
                        false => {
                            link.conn.set_readable();
                            if !self.again.contains(&id) {
                                self.again.push(id);
                            }
                        }
                    }
                }
            }
        }
        if link.conn.finished_sending() && link.closing.is_some() {
            self.happenings.push_back((id, Happening::SendFinished));
        }
        if link.closing.is_none() && link.conn.read_ended() && !link.conn.wants_write() {
            // A client let go at the gate, done.
            if matches!(link.phase, Phase::Leaving) {
                gate::gone(self, id);
            }
        }
    }

    /// The loop ran again long after it asked to (see [`OVERSLEPT`]): every
    /// peer's silence counts from now, as it could not be heard meanwhile.
    fn woke_late(&mut self) {
        let now = self.now;
        for (_, link) in &mut self.links {
            if let Some(session) = &mut link.session {
                session.heard(now);
            }
        }
    }

    /// The system says bytes came on connection `id`, read now or not (a
    /// paced talker waits): the peer is alive. (Not the loop's own
    /// rechecks of readiness, which say nothing came.)
    fn heard(&mut self, id: Id) {
        let now = self.now;
        if let Some(session) = self
            .links
            .get_mut(id)
            .and_then(|link| link.session.as_mut())
        {
            session.heard(now);
        }
    }

    /// Version 2 after a read of connection `id`: the peer's offer answered
    /// with our `HELLO`, its control frames taken, its messages counted.
    fn after_read(&mut self, id: Id) {
        // What the peer acknowledges may have been written beside.
        self.take_written(id);
        let now = self.now;
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        // (A resumed session's new connection offers again: the session
        // goes on.)
        let offered = link.conn.take_offer();
        if offered && link.session.is_none() {
            let mut session = Session::new(now);
            // A client's lines queued since its offer, before the server's
            // came, are messages of the session too.
            session.sent(link.conn.numbered(), now);
            if let Some(delay) = link.ack_delay {
                session.delay_acks(delay);
            }
            session.deafen(link.deferred, now);
            link.session = Some(session);
            link.hello_owed = true;
        }
        let Some(session) = &mut link.session else {
            return;
        };
        let received = link.conn.plain_received();
        if received != link.received_seen {
            link.received_seen = received;
            session.heard(now);
        }
        count_taken(link, now);
        let Some(session) = &mut link.session else {
            return;
        };
        let mut broken = None;
        let mut answer = None;
        for control in link.conn.take_controls() {
            session.heard(now);
            match control {
                // The server's answer to our resume (before all else: a
                // session resumed by our own token had no `HELLO` before).
                Control::Hello(hello) if link.husk.is_some() => answer = Some(hello),
                Control::Hello(hello) if !link.opened_told => {
                    link.opened_told = true;
                    link.peer_takes = hello.takes;
                    link.peer_max = hello.max_message;
                    session.beat_every(Duration::from_millis(hello.heartbeat_ms.into()));
                    match self.client {
                        true => link.session_token = hello.token,
                        false => {
                            link.peer_resumes = hello.token != NO_TOKEN;
                            if self.resumes && link.peer_resumes {
                                link.client_token = hello.token;
                                // Never in another session's place.
                                self.tokens.entry(hello.token).or_insert(id);
                            }
                        }
                    }
                    self.news.push_back((id, News::SessionOpened));
                }
                // The server names the session later (we were served from
                // its waiting line).
                Control::Hello(hello) if self.client && link.away.is_none() => {
                    if hello.token != NO_TOKEN {
                        link.session_token = hello.token;
                    }
                }
                Control::Hello(_) | Control::Ping => {}
                Control::Bye => link.said_bye = true,
                Control::End => link.said_end = true,
                Control::Ack(count) => match session.acked(count, now) {
                    Ok(_) => link.conn.acknowledged(count),
                    Err(over) => {
                        broken = Some(format!(
                            "the peer broke the protocol: it acknowledged {} messages of {} sent",
                            over.acked, over.sent
                        ));
                    }
                },
            }
        }
        if let Some(hello) = answer {
            let named = resumed_by(link);
            link.peer_takes = hello.takes;
            link.peer_max = hello.max_message;
            if link.session_token == NO_TOKEN {
                link.session_token = hello.token;
            }
            if !std::mem::replace(&mut link.opened_told, true) {
                self.news.push_back((id, News::SessionOpened));
            }
            match hello.resume_of == named && named != NO_TOKEN {
                true => self.resumed(id, &hello),
                false => {
                    // A refusal may say how many of ours the server took
                    // before it ended the session: the rest is what was
                    // not delivered.
                    let link = &mut self.links[id];
                    if let Some(session) = &mut link.session {
                        let _ = session.acked(hello.received, now);
                    }
                    link.broken = true;
                    self.end(
                        id,
                        Ending::Failed {
                            why: "the server no longer keeps this conversation (it ended it, gave up waiting, or restarted)".to_string(),
                            undelivered: 0,
                        },
                    );
                    return;
                }
            }
            if !self.links.contains(id) {
                return;
            }
        }
        let link = &mut self.links[id];
        if let Some(why) = broken {
            link.broken = true;
            match link.closing.is_some() {
                true => self
                    .happenings
                    .push_back((id, Happening::ReceiveFailed(why))),
                false => self.news.push_back((id, News::Failed(why))),
            }
        }
        if link.hello_owed {
            self.send_hello(id);
        }
        self.give_spares(id);
        self.session_due(id, false);
        // The peer's `HELLO` may ask for heartbeats sooner than the timer.
        if let Some(at) = self.session_wake(id)
            && self.links[id].wake_at.is_none_or(|set| at < set)
        {
            self.set_timer(id, Some(at));
        }
    }

    /// Queues our `HELLO` on connection `id`, once the socket is the loop's
    /// alone: a thread writing beside it stops for good (its lines are
    /// queued from now on, to be numbered), or, while it is writing, the
    /// loop tries again when woken.
    fn send_hello(&mut self, id: Id) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        if let Some(outbox) = &link.beside {
            if !outbox.claim_socket() {
                if !self.after_push.contains(&id) {
                    self.after_push.push(id);
                }
                return;
            }
            // The rest of a frame the thread beside began on the socket
            // goes before our `HELLO`, or the `HELLO` would land inside
            // that frame (a flooding client whose room held it back at
            // once was cut off for a protocol error so); it is version 1's,
            // not numbered. The lines queued after it stay in the outbox,
            // to go after the `HELLO`, numbered and kept: queued before it,
            // they were neither, and lost for good if the link died (a
            // client typing at once lost its line across a resume).
            let mut rest = outbox.take_rest();
            if !rest.is_empty() {
                link.conn.queue_batch(&mut rest);
            }
            link.beside = None;
        }
        link.hello_owed = false;
        // A server answers its client's offer with its own.
        link.conn.queue_offer();
        // A server names a session it will keep for its client to resume;
        // a client says whether it would resume one.
        let token = match link.resume_for.is_some() && (self.resumes || self.client) {
            true => new_token(),
            false => NO_TOKEN,
        };
        if token != NO_TOKEN {
            match self.client {
                true => link.client_token = token,
                false => {
                    link.session_token = token;
                    self.tokens.insert(token, id);
                }
            }
        }
        let hello = our_hello(
            (self.rules.dead_after, self.max_message_size),
            token,
            NO_TOKEN,
            0,
        );
        if link.conn.queue_control(&Control::Hello(hello)) {
            self.dirty.push(id);
        }
        // What was taken while the `HELLO` waited is acknowledged now.
        self.session_due(id, false);
    }

    /// Queues the acknowledgement and the heartbeat due on connection `id`
    /// (`hurry`: what was taken is acknowledged at once).
    fn session_due(&mut self, id: Id, hurry: bool) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(session) = &mut link.session else {
            return;
        };
        if link.hello_owed || !link.conn.sending_open() || link.away.is_some() {
            return;
        }
        // The peer's end of stream: what it sent last is known taken.
        let due = session.due(self.now, hurry || link.conn.read_ended());
        let mut queued = false;
        if let Some(count) = due.ack {
            queued |= link.conn.queue_control(&Control::Ack(count));
        }
        if due.ping {
            queued |= link.conn.queue_control(&Control::Ping);
        }
        if queued {
            self.dirty.push(id);
        }
    }

    /// When connection `id`'s session has something due, while it can send.
    fn session_wake(&self, id: Id) -> Option<Instant> {
        let link = self.links.get(id)?;
        let session = link.session.as_ref()?;
        let beat = (link.conn.sending_open() && !link.hello_owed).then(|| session.wake_at());
        [beat, link.beside_poll_at.filter(|_| link.beside_keeps)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The connection is gone as `ending` says: the service is told how
    /// many of our messages its peer had not taken, and the first of them.
    fn end(&mut self, id: Id, ending: Ending) {
        self.take_written(id);
        let Some(link) = self.links.get(id) else {
            return;
        };
        let conn = link.husk.as_ref().unwrap_or(&link.conn);
        let unacknowledged = link.session.as_ref().map(|session| {
            let first = conn
                .message(session.acked_count() + 1)
                .map(crate::wire::display::visible);
            (session.unacked(), first)
        });
        let vanished = ending == Ending::PeerLeft && unsaid(link);
        self.remember_ended(id, &ending);
        self.remove(id);
        if let Some((lines, first)) = unacknowledged
            && lines > 0
        {
            self.news
                .push_back((id, News::Unacknowledged { lines, first }));
        }
        if vanished {
            self.news.push_back((id, News::Vanished));
        }
        self.news.push_back((id, News::Ended(ending)));
    }

    /// Remembers connection `id`'s session, which ends on purpose
    /// (`ending`), for a late resume (see [`Ended`]).
    fn remember_ended(&mut self, id: Id, ending: &Ending) {
        let link = &self.links[id];
        // (A peer cut off for taking nothing comes back when it reads
        // again: told what we took, it counts only the rest as lost.)
        let on_purpose = matches!(
            ending,
            Ending::PeerLeft | Ending::Quit | Ending::Idle(_) | Ending::CutOff { .. }
        );
        let Some(session) = link.session.as_ref() else {
            return;
        };
        let Some(within) = link.resume_for else {
            return;
        };
        if self.client || !on_purpose || !resumable(link) || !link.opened_told {
            return;
        }
        let conn = link.husk.as_ref().unwrap_or(&link.conn);
        let first = session.acked_count() + 1;
        let frames = conn
            .messages_from(first)
            .map(|(frames, _)| frames)
            .filter(|frames| frames.len() <= ENDED_FRAMES_MOST);
        if self.ended.len() >= ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(Ended {
            tokens: [link.session_token, link.client_token],
            until: self.now + within,
            taken: session.taken() + link.held_over.0,
            frames,
            first,
        });
    }

    /// Connection `id`, not yet told to the service, asks to resume a
    /// session that ended on purpose (see [`Ended`]): it is told what we
    /// took, gets again what it had not taken, and our end. `false` if no
    /// such session is remembered, or not what it asks for.
    fn answer_ended(&mut self, id: Id, hello: &Hello) -> bool {
        let now = self.now;
        self.ended.retain(|ended| ended.until > now);
        let Some(ended) = self
            .ended
            .iter()
            .find(|ended| hello.resume_of != NO_TOKEN && ended.tokens.contains(&hello.resume_of))
        else {
            return false;
        };
        // What it had not taken, from what it acknowledged before.
        let Some(skip) = hello.received.checked_sub(ended.first - 1) else {
            return false;
        };
        // Too much of ours to send again: refused, but told what we took
        // (a client cut off for reading nothing while a flood came to it
        // counted as lost lines the room had relayed: a user trial).
        let Some(frames) = &ended.frames else {
            let taken = ended.taken;
            self.refuse_resume(id, taken);
            return true;
        };
        let again: Vec<u8> = crate::wire::frame::split_frames(frames)
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .flatten()
            .copied()
            .collect();
        let count = crate::wire::frame::split_frames(&again).count() as u64;
        let ours = our_hello(
            (self.rules.dead_after, self.max_message_size),
            ended.tokens[0],
            hello.resume_of,
            ended.taken,
        );
        let Some(link) = self.links.get_mut(id) else {
            return true;
        };
        link.conn.queue_offer();
        link.conn.queue_resumed_hello(ours, hello.received + 1);
        link.conn.queue_again(&again, count);
        let peer = link.conn.peer();
        self.gate.say(format!(
            "{peer} came back to a conversation that had ended; told it what was taken{}",
            match count {
                0 => String::new(),
                1 => ", with 1 line it had not received".to_string(),
                n => format!(", with {n} lines it had not received"),
            }
        ));
        gate::let_go(self, id);
        true
    }

    /// Connection `id`, whose ending the service has not started (a client
    /// waiting in line), failed (`why`): its session is kept for the peer
    /// to resume if it may be, else the service hears of the failure.
    fn failed_unjudged(&mut self, id: Id, why: String) {
        match self.links.get(id) {
            // Not one whose `HELLO` never came: an offer and silence would
            // hold a place in line for `--resume-for`.
            Some(link)
                if resumable(link)
                    && link.opened_told
                    && link.away.is_none()
                    && !link.finished_unjudged =>
            {
                self.park(id, why)
            }
            Some(_) => self.news.push_back((id, News::Failed(why))),
            None => {}
        }
    }

    /// Connection `id` is lost (`why`), and its session is kept for the
    /// peer to resume: the socket goes, what is queued stays.
    fn park(&mut self, id: Id, why: String) {
        let now = self.now;
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(mut within) = link.resume_for else {
            return;
        };
        // A client that gave up says `BYE` before its reset; a server that
        // met the reset when it sent first (it was stopped meanwhile) has
        // not read it yet: it looks, and keeps nothing for a client that
        // will not come back (it kept the conversation 300 s for nobody,
        // the next client waiting in line). What it read stays unread.
        // (It may have read it already, in this round, before it sent:
        // not yet seen, among the controls read. The full suite, 2 runs
        // in 6 of its resume tests: kept 300 s.)
        // (Or read ahead already, by a send that met the failure.) So
        // does a client: a server interrupted twice says `BYE` before its
        // reset too. Either ends as the peer's leaving, as it would have
        // with its end of stream after the `BYE` (a user trial: Ctrl-C
        // twice on either side, and the other said `connection reset by
        // peer while sending`, exit 1, or kept the conversation 300 s).
        if !link.conn.read_ended() {
            let _ = link.conn.read_ahead(&mut self.scratch, BYE_LOOK_AHEAD);
        }
        if link.conn.bye_unseen() || says(link.conn.ahead(), &Control::Bye) {
            link.said_bye = true;
            let _ = self.registry.deregister(link.conn.stream_mut());
            return self.end(id, Ending::PeerLeft);
        }
        // A server whose client's `HELLO` never came keeps the session a
        // short while only: the client may know our token (its `HELLO` was
        // lost), and then it is back within a few tries; or it never saw
        // our offer (the path died within the first round trip), and then
        // it cannot come back at all (a user trial: a server kept such a
        // conversation 300 s for nobody, its waiting line blocked).
        if !self.client && !link.opened_told {
            within = within.min(UNNAMED_HOLD);
        }
        // Lost to a reset, likewise: a client that met it is back within
        // its first tries (one that hears nothing notices within its
        // `--dead-after`), and a program killed with bytes unread resets
        // too (a user trial: a client killed in a flood, or interrupted
        // twice, kept its conversation 300 s, the waiting line blocked; a
        // room member's name held as long).
        if !self.client && link.conn.was_reset() {
            let dead_after = self.rules.dead_after.unwrap_or_default();
            within = within.min(RESET_HOLD.max(dead_after * 2));
        }
        let _ = self.registry.deregister(link.conn.stream_mut());
        if link.acks_held {
            let (frames, bytes) = link.conn.taken();
            link.held_over.0 += frames - link.taken_seen.0;
            link.held_over.1 += bytes - link.taken_seen.1;
            link.taken_seen = (frames, bytes);
        }
        // Pushes write beside the loop no more: what they wrote is taken
        // in (claimed first, so that nothing is written after).
        if let Some(outbox) = link.beside.clone() {
            outbox.claim_socket();
            self.take_written(id);
            let link = &mut self.links[id];
            link.beside = None;
            link.beside_keeps = false;
        }
        let link = &mut self.links[id];
        link.conn.disconnect();
        link.ending_started = link.closing.take().is_some();
        // Our side was ending: it ends again once back, after what goes
        // again.
        if std::mem::take(&mut link.finishing) {
            link.after_resume.get_or_insert(Happening::Quit);
        }
        let away = Away::new(now, within);
        link.away = Some((away, why.clone()));
        let lines = link.session.as_ref().map_or(0, Session::unacked);
        self.news.push_back((id, News::Away { why, lines, within }));
        self.set_timer(id, Some(away.until));
    }

    /// A step of connection `id` while its session is away: our user's end
    /// waits for the peer's return if messages of ours wait for it; the
    /// session is given up when its time is over.
    fn step_away(&mut self, id: Id, happening: Option<Happening>) {
        let link = &mut self.links[id];
        let (away, why) = link.away.clone().expect("away");
        let waiting = link.session.as_ref().map_or(0, Session::unacked) > 0;
        let ending = match happening {
            // Once: asked again, the user gives up waiting.
            Some(Happening::Quit | Happening::InputEnded)
                if waiting && link.after_resume.is_none() =>
            {
                link.after_resume = happening;
                None
            }
            // Asked again: the user gives up, and is told what that cost.
            Some(Happening::Quit | Happening::InputEnded) if waiting => Some(Ending::Failed {
                why: match self.client {
                    true => "gave up waiting for the server to come back".to_string(),
                    false => "gave up waiting for it to come back".to_string(),
                },
                undelivered: 0,
            }),
            Some(Happening::Quit | Happening::InputEnded) => Some(Ending::Quit),
            Some(Happening::Interrupted) => Some(Ending::Interrupted),
            Some(Happening::OutputClosed) => Some(Ending::OutputClosed),
            Some(Happening::Left) => Some(Ending::Left),
            _ if away.expired(self.now) => {
                let within = away.kept_for().as_secs();
                Some(Ending::Failed {
                    why: format!("{why}; not resumed within {within} s"),
                    undelivered: 0,
                })
            }
            _ => None,
        };
        if ending.is_none()
            && let Some(by) = link.answer_by
            && self.now >= by
        {
            return self.resume_failed(id, "the server did not answer".to_string());
        }
        let wake = [Some(away.until), link.answer_by]
            .into_iter()
            .flatten()
            .min();
        match ending {
            Some(ending) => self.end(id, ending),
            None => self.set_timer(id, wake),
        }
    }

    /// A client's attempt to resume on connection `id` failed (`why`):
    /// the session is away again, for another attempt.
    fn resume_failed(&mut self, id: Id, why: String) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let Some(husk) = link.husk.take() else {
            return;
        };
        link.answer_by = None;
        let _ = self.registry.deregister(link.conn.stream_mut());
        // The attempt ends with a reset: the server may have taken it as
        // the session's (its answer lost or late), and an end of stream
        // would tell it the conversation ended cleanly (a user trial on a
        // lossy link: the server said the client left, exit 0, with 11
        // lines undelivered), where a reset keeps it for the next try.
        link.conn.reset_when_closed();
        link.conn = husk;
        // Counted as far as the lost connection went.
        link.taken_seen = link.conn.taken();
        link.received_seen = link.conn.plain_received();
        self.news.push_back((id, News::NotResumed { why }));
    }

    /// Gives the lost session `id` up (`why`): it ends as failed, with
    /// what was not delivered. False if it was not away.
    pub fn give_up(&mut self, id: Id, why: String) -> bool {
        let away = self.links.get(id).is_some_and(|link| link.away.is_some());
        if away {
            self.end(
                id,
                Ending::Failed {
                    why,
                    undelivered: 0,
                },
            );
        }
        away
    }

    /// Connection `id`'s session may be resumed within `within` of a loss
    /// (`None`: it ends with the connection). A server names the session
    /// in its `HELLO` (again, if it was sent before: a client served from
    /// the waiting line); a client resumes only a session its server named.
    pub fn allow_resume(&mut self, id: Id, within: Option<Duration>) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        link.resume_for = within.filter(|within| !within.is_zero());
        let named = link.session_token != NO_TOKEN;
        if self.resumes
            && link.resume_for.is_some()
            && !named
            && link.opened_told
            && !link.hello_owed
            && let Some(session) = &link.session
        {
            let token = new_token();
            link.session_token = token;
            self.tokens.insert(token, id);
            let hello = our_hello(
                (self.rules.dead_after, self.max_message_size),
                token,
                NO_TOKEN,
                session.taken(),
            );
            if link.conn.queue_control(&Control::Hello(hello)) {
                self.dirty.push(id);
            }
        }
    }

    /// A client's new connection for its lost session `id` (`stream`, with
    /// its TLS session if `tls`, the handshake and the code done): it asks
    /// the server to resume, and what was not taken goes again once the
    /// server says what it took.
    pub fn resume(
        &mut self,
        id: Id,
        stream: std::net::TcpStream,
        tls: Option<rustls::Connection>,
    ) -> io::Result<()> {
        let Some(link) = self.links.get(id) else {
            return Ok(());
        };
        if link.away.is_none() || link.husk.is_some() {
            return Ok(());
        }
        stream.set_nonblocking(true)?;
        let peer = stream.peer_addr()?;
        let mut stream = mio::net::TcpStream::from_std(stream);
        register(&self.registry, &mut stream, id, self.rules.dead_after)?;
        let link = &mut self.links[id];
        let mut conn = Conn::new(stream, peer, link.conn.max());
        if let Some(tls) = tls {
            conn.start_tls(tls);
        }
        conn.listen_for_sessions();
        conn.queue_offer();
        conn.queue_control(&Control::Hello(our_hello(
            (self.rules.dead_after, self.max_message_size),
            NO_TOKEN,
            resumed_by(link),
            link.session.as_ref().map_or(0, Session::taken),
        )));
        link.husk = Some(std::mem::replace(&mut link.conn, conn));
        link.taken_seen = (0, 0);
        link.received_seen = 0;
        // As long as a silent peer is given before it is taken as lost.
        let answer_by = self.now + self.rules.dead_after.unwrap_or(RESUME_ANSWER);
        link.answer_by = Some(answer_by);
        let until = link.away.as_ref().map(|(away, _)| away.until);
        self.dirty.push(id);
        self.again.push(id);
        self.set_timer(id, [until, Some(answer_by)].into_iter().flatten().min());
        Ok(())
    }

    /// The server answered a client's resume with `hello` on connection
    /// `id`: the session goes on, what the server had not taken first.
    fn resumed(&mut self, id: Id, hello: &Hello) {
        let now = self.now;
        let link = &mut self.links[id];
        let (Some(husk), Some(session)) = (link.husk.take(), link.session.as_mut()) else {
            return;
        };
        let first = hello.received + 1;
        let again = husk.messages_from(first);
        if again.is_none() || session.acked(hello.received, now).is_err() {
            link.broken = true;
            link.husk = Some(husk);
            return self.end(
                id,
                Ending::Failed {
                    why: "the session could not be resumed: the server took messages this client no longer holds".to_string(),
                    undelivered: 0,
                },
            );
        }
        let (frames, count) = again.expect("checked");
        session.heard(now);
        session.beat_every(Duration::from_millis(hello.heartbeat_ms.into()));
        link.conn.number_from(first);
        link.conn.queue_again(&frames, count);
        let (away, _) = link.away.take().expect("away");
        link.answer_by = None;
        link.closing = Some(Closing::new(self.rules, now));
        let peer = link.conn.peer();
        self.news.push_back((
            id,
            News::Back {
                after: away.lasted(now),
                peer,
                resent: count,
            },
        ));
        if let Some(happening) = link.after_resume.take() {
            self.happenings.push_back((id, happening));
        }
        self.dirty.push(id);
        self.set_timer(id, None);
        self.step(id, None);
    }

    /// Whether what connection `id`'s peer sends is acknowledged as it is
    /// read (the default) or `held` until the service takes it.
    pub fn hold_acknowledgements(&mut self, id: Id, held: bool) {
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        link.acks_held = held;
        if !held {
            self.after_read(id);
        }
    }

    /// What connection `id`'s peer sends is acknowledged up to `delay`
    /// later (a room's member: see `state::session::ROOM_ACK_DELAY`).
    pub fn delay_acknowledgements(&mut self, id: Id, delay: Duration) {
        if let Some(link) = self.links.get_mut(id) {
            link.ack_delay = Some(delay);
            if let Some(session) = &mut link.session {
                session.delay_acks(delay);
            }
        }
    }

    /// What is sent on connection `id` is not kept until its peer
    /// acknowledges it (a room's member: what it missed is the room's).
    pub fn keep_nothing(&mut self, id: Id) {
        if let Some(link) = self.links.get_mut(id) {
            link.conn.keep_nothing();
        }
    }

    /// Whether connection `id`'s peer speaks version 2 and opened a session.
    pub fn in_session(&self, id: Id) -> bool {
        self.links.get(id).is_some_and(|link| link.opened_told)
    }

    /// Whether connection `id`'s peer offered version 2 and its `HELLO`
    /// has not come yet (it comes once our offer reaches it).
    pub fn awaits_hello(&self, id: Id) -> bool {
        self.links
            .get(id)
            .is_some_and(|link| link.conn.peer_offered() && !link.opened_told)
    }

    /// The largest message connection `id`'s peer said it takes, if it
    /// said (a version 2 peer that knows the field).
    pub fn peer_max(&self, id: Id) -> Option<usize> {
        self.links
            .get(id)
            .filter(|link| link.opened_told && link.peer_max > 0)
            .map(|link| link.peer_max as usize)
    }

    /// Whether connection `id`'s peer said it takes messages with line
    /// breaks: else a message of several lines goes to it a line each.
    pub fn takes_line_breaks(&self, id: Id) -> bool {
        self.links
            .get(id)
            .is_some_and(|link| link.opened_told && link.peer_takes & TAKES_LINE_BREAKS != 0)
    }

    /// The loop ends (the service is done): each connection still open
    /// ends on purpose, as far as its socket takes it now, so that a
    /// version 2 peer reads `END` before the end of stream the system
    /// sends for us (a client waiting in line of a `--once` server that
    /// ended took it for the server killed).
    fn end_all(&mut self) {
        for (_, link) in self.links.iter_mut() {
            // Not over a thread writing beside: what it began goes first.
            if link.away.is_none() && link.beside.is_none() {
                link.conn.finish();
                let _ = link.conn.flush();
            }
        }
    }

    /// Whether connection `id`'s peer, whose end of stream came, closed
    /// without a word: its `HELLO` said it says `END`, and neither `END`
    /// nor `BYE` came (its program is gone: killed, crashed).
    pub fn closed_unsaid(&self, id: Id) -> bool {
        self.links.get(id).is_some_and(unsaid)
    }

    /// Whether the peer of connection `id` said `BYE`: it left at once.
    pub fn said_bye(&self, id: Id) -> bool {
        self.links.get(id).is_some_and(|link| link.said_bye)
    }

    /// How many of the messages sent on connection `id` its peer (a
    /// version 2 peer) has not acknowledged, if they have waited long
    /// enough to be worth showing; `None` if none has, or no session.
    pub fn overdue(&self, id: Id) -> Option<u64> {
        let session = self.links.get(id)?.session.as_ref()?;
        session.overdue(self.now).then(|| session.unacked())
    }

    /// How many messages sent on connection `id` its version 2 peer has
    /// not acknowledged.
    pub fn unacknowledged(&self, id: Id) -> u64 {
        self.links
            .get(id)
            .and_then(|link| link.session.as_ref())
            .map_or(0, Session::unacked)
    }

    /// When [`overdue`](Self::overdue) may say something new for `id`.
    pub fn overdue_at(&self, id: Id) -> Option<Instant> {
        self.links.get(id)?.session.as_ref()?.overdue_at()
    }

    /// Steps connection `id`'s ending with what it shows now and what
    /// happened, and does what it decides.
    fn step(&mut self, id: Id, happening: Option<Happening>) {
        self.take_written(id);
        // A peer that said `BYE` has left: a reset after it is how it went
        // (interrupted twice, it does not wait for our end), not a failure
        // (a user trial: Ctrl-C twice, and the other side said `connection
        // reset by peer while sending`, exit 1).
        let happening = match happening {
            Some(Happening::SendFailed(_)) if self.links.get(id).is_some_and(|l| l.said_bye) => {
                Some(Happening::SendFinished)
            }
            Some(Happening::ReceiveFailed(_)) if self.links.get(id).is_some_and(|l| l.said_bye) => {
                Some(Happening::PeerClosed)
            }
            happening => happening,
        };
        if self.links.get(id).is_some_and(|link| link.away.is_some()) {
            return self.step_away(id, happening);
        }
        self.session_due(id, false);
        let session_wake = self.session_wake(id);
        let Some(link) = self.links.get_mut(id) else {
            return;
        };
        let kept = resumable(link);
        let Some(closing) = &mut link.closing else {
            // A client waiting in line (its ending not started) that failed.
            if let Some(Happening::ReceiveFailed(why) | Happening::SendFailed(why)) = happening
                && matches!(link.phase, Phase::Admitted)
            {
                return self.failed_unjudged(id, why);
            }
            self.set_timer(id, session_wake);
            return;
        };
        // A failure of a session kept for a resume is not the end: the
        // service hears of it as the session's absence, or as its end.
        let news = happening
            .as_ref()
            .and_then(news_of)
            .filter(|news| !(matches!(news, News::Failed(_)) && kept));
        let happening = happening.filter(|h| *h != Happening::Nothing);
        let mut seen = link.conn.observe();
        seen.backlogged = link.backlogged;
        seen.undelivered += link.held;
        // A version 2 peer sends something every few seconds while its
        // side is open: its silence is the measure of its life, from its
        // offer on (a link that dies before its `HELLO` crosses is dead
        // all the same).
        seen.silent = link
            .session
            .as_ref()
            .filter(|_| !link.conn.read_ended())
            .map(|session| session.silent_for(self.now));
        // Ctrl-C (SIGTERM, a hangup) gives up: the peer is told at once,
        // before our end of stream (which goes at once if nothing waits),
        // so that it keeps nothing for a resume (a client interrupted while
        // its server was stopped left it waiting 300 s for nobody).
        if matches!(happening, Some(Happening::Interrupted))
            && link.opened_told
            && !link.hello_owed
            && link.away.is_none()
            && !link.said_bye_ours
        {
            link.said_bye_ours = link.conn.queue_bye();
        }
        let failure = match &happening {
            Some(Happening::SendFailed(why) | Happening::ReceiveFailed(why)) => Some(why.clone()),
            _ => None,
        };
        let decision = closing.step(self.now, seen, happening);
        let ours = closing.ended_by_us();
        // A failure of a session kept for a resume parks it: the socket
        // goes with a reset alone. The abort a failure decides would end
        // our side first (a shutdown sends an end of stream), and a peer
        // reading it takes a clean end (a user trial on a lossy link: the
        // client said the server ended the conversation, exit 0, lines
        // undelivered, while the server kept it for the client to resume).
        // So is a failure of one half while the other is open, which the
        // ending takes as an abort first and an end once both halves are
        // done: the abort would also drop what was read and not yet taken
        // (a server that met its client's reset when it sent first lost
        // the `BYE` before it, and kept the conversation 300 s for
        // nobody: CI, and the resume suite 2 runs in 4 here; 0 in 7 after).
        let parking = kept
            && (matches!(decision.ended, Some(Ending::Failed { .. }))
                || (decision.abort && failure.is_some()));
        if let Some(news) = news {
            self.news.push_back((id, news));
        }
        if let Some(idle) = decision.went_idle {
            self.news.push_back((id, News::WentIdle(idle)));
        }
        if decision.still_waiting {
            // A version 2 peer says which lines it took; TCP, bytes.
            let undelivered = match (&link.session, link.opened_told) {
                (Some(session), true) => Undelivered::Lines(session.unacked()),
                _ => Undelivered::Bytes(seen.undelivered),
            };
            self.news
                .push_back((id, News::StillWaiting { undelivered }));
        }
        if decision.finish_sending && !parking {
            link.finishing = true;
            // What the peer sent is acknowledged before our end of stream
            // (all it sent until now: nothing is taken after it).
            count_taken(link, self.now);
            if let Some(session) = &mut link.session
                && !link.hello_owed
                && let Some(count) = session.due(self.now, true).ack
            {
                link.conn.queue_control(&Control::Ack(count));
            }
            link.conn.finish();
            self.dirty.push(id);
        }
        // A server's is the end: nothing its client sends from now on is
        // taken, as no acknowledgement of it could follow our last. (Not
        // a client's: what its server sends after it may be the notice
        // that it waits in line, which says what its `q` means.)
        if ours && !self.client && (decision.finish_sending || decision.abort) {
            link.conn.take_no_more();
        }
        if decision.abort && !parking {
            // Ended on purpose or given up: a version 2 peer is told, so
            // that it does not keep the session for a resume (a client
            // that left the waiting line, or was interrupted, resets).
            if link.opened_told && !link.hello_owed && link.away.is_none() && !link.said_bye_ours {
                link.said_bye_ours = link.conn.queue_bye();
            }
            // What is queued goes as far as the socket takes it before the
            // reset: a `BYE` queued at Ctrl-C among it.
            if link.said_bye_ours {
                let _ = link.conn.flush();
            }
            link.conn.abort();
            // Both threads of a connection used to report their end once
            // stopped; here both halves are done now.
            self.happenings.push_back((id, Happening::SendFinished));
            self.happenings
                .push_back((id, Happening::ReceiveFailed("aborted".to_string())));
        }
        if let Some(ending) = decision.ended {
            match ending {
                Ending::Failed { why, .. } if resumable(link) => self.park(id, why),
                ending => self.end(id, ending),
            }
            return;
        }
        if parking && let Some(why) = failure {
            return self.park(id, why);
        }
        let wake = [decision.wake_at, session_wake].into_iter().flatten().min();
        self.set_timer(id, wake);
    }
}

/// Whether `bytes`, a version 2 peer's frames from a frame's start, hold
/// a `BYE`.
fn says(bytes: &[u8], what: &Control) -> bool {
    let mut at = 0;
    while let Some(header) = crate::wire::session::read_header(&bytes[at..]) {
        let (len, control) = match header {
            crate::wire::session::Header::Data(len) => (len, false),
            crate::wire::session::Header::Control(len) => (len, true),
        };
        let start = at + crate::wire::frame::HEADER_LEN;
        let Some(payload) = bytes.get(start..start + len) else {
            return false;
        };
        if control
            && matches!(
                crate::wire::session::decode(payload),
                Ok(Some(control)) if control == *what
            )
        {
            return true;
        }
        at = start + len;
    }
    false
}

/// Counts in `link`'s session the peer's messages handed out since the
/// last count, unless they are held (a client waiting in line).
fn count_taken(link: &mut Link, now: Instant) {
    let Some(session) = &mut link.session else {
        return;
    };
    if link.acks_held {
        return;
    }
    let (frames, bytes) = link.conn.taken();
    let (over_frames, over_bytes) = std::mem::take(&mut link.held_over);
    session.took(
        frames - link.taken_seen.0 + over_frames,
        bytes - link.taken_seen.1 + over_bytes,
        now,
    );
    link.taken_seen = (frames, bytes);
}

/// Whether `link`'s peer closed (or would close now) without a word,
/// though its `HELLO` said it says `END` (see [`Io::closed_unsaid`]).
fn unsaid(link: &Link) -> bool {
    link.opened_told && link.peer_takes & SAYS_END != 0 && !link.said_end && !link.said_bye
}

/// Whether `link`'s session is kept for its peer to resume when the
/// connection is lost: a session with a name, and a peer that kept to the
/// protocol.
fn resumable(link: &Link) -> bool {
    link.resume_for.is_some()
        && resumed_by(link) != NO_TOKEN
        && link.peer_resumes
        && !link.broken
        && !link.said_bye
}

/// The token a client resumes `link`'s session by: the server's, or, if
/// the server's `HELLO` never came, its own (the server knows it from our
/// `HELLO`, if that came; if not, it refuses, and the loss is the end). A
/// server that said it keeps nothing is not asked. For a server, its own.
fn resumed_by(link: &Link) -> SessionToken {
    match link.session_token {
        NO_TOKEN if !link.opened_told => link.client_token,
        token => token,
    }
}

/// Before data is queued on `link`: the acknowledgement owed goes first.
fn piggyback(link: &mut Link, now: Instant) {
    if let Some(session) = &mut link.session
        && !link.hello_owed
        && let Some(count) = session.ack_with_data(now)
    {
        link.conn.queue_control(&Control::Ack(count));
    }
}

/// Puts `stream` on the loop as connection `id`, watched for a peer that
/// vanishes after `dead_after`.
fn register(
    registry: &Registry,
    stream: &mut mio::net::TcpStream,
    id: Id,
    dead_after: Option<Duration>,
) -> io::Result<()> {
    // Both, once: edge-triggered, so an idle socket costs nothing, and
    // nobody re-registers when what is wanted changes.
    registry.register(stream, Token(id), Interest::READABLE | Interest::WRITABLE)?;
    if let Some(after) = dead_after {
        // Without it a vanished peer goes unnoticed while nobody talks.
        let _ = crate::platform::watch_liveness(socket2::SockRef::from(&*stream), after);
    }
    Ok(())
}

/// A `HELLO` of ours, with our `--dead-after` and largest message:
/// `token` names the session (zeros: not kept),
/// `resume_of` the one resumed, `received` how many of the peer's
/// messages were taken in it.
fn our_hello(
    (dead_after, max): (Option<Duration>, usize),
    token: SessionToken,
    resume_of: SessionToken,
    received: u64,
) -> Hello {
    Hello {
        version: VERSION,
        token,
        resume_of,
        received,
        heartbeat_ms: heartbeat_ms(dead_after),
        takes: TAKES,
        max_message: u32::try_from(max).unwrap_or(u32::MAX),
    }
}

/// The heartbeat a `HELLO` of ours asks for, in milliseconds.
fn heartbeat_ms(dead_after: Option<Duration>) -> u32 {
    crate::state::session::heartbeat_for(dead_after)
        .as_millis()
        .try_into()
        .unwrap_or(u32::MAX)
}

/// A new session's token: 16 bytes from the system's random source.
fn new_token() -> crate::wire::session::Token {
    use ring::rand::SecureRandom;
    let mut token = [0; 16];
    // The system's source does not fail where this runs; a token of zeros
    // would only make a session impossible to resume.
    let _ = ring::rand::SystemRandom::new().fill(&mut token);
    token
}
