//! What every accepted connection goes through on the loop before its
//! service sees it: access control (`--allow`/`--deny`), then, on a TLS
//! server, a look at the client's first byte, the handshake and the shared
//! code, each a phase of the connection with a deadline. Clients that are
//! not served are told why in one frame and let go ([`refuse`]).
//!
//! Nothing here waits: a phase moves on when its socket is ready or its
//! deadline comes, so a client that trickles bytes holds one slot, never a
//! thread, and at most `MAX_HANDSHAKES` slots are taken at once
//! (`MAX_HANDSHAKES_PER_ADDRESS` by one address; see `crate::gate`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::{Id, Io, Service};
use crate::console::output::Output;
use crate::engine::tls::code::{EXPORTER_LABEL, Progress, ServerExchange, Step};
use crate::engine::tls::{
    CodeFailure, HANDSHAKE_RECORD, NEEDS_CODE, PLAIN_CLIENT_GRACE, SPEAK_TLS, ServerTls,
};
use crate::state::access::Access;
use crate::state::prefix::Prefix;
use crate::state::throttle::Throttle;
use crate::wire::farewell::refusal;
use crate::wire::frame::encode_frame;

/// A code shorter than this (normalized) is warned about.
const WEAK_CODE: usize = 10;

/// Refused connections are reported at most this often.
const REFUSAL_REPORT_PERIOD: Duration = Duration::from_secs(1);

/// A client has this long for the TLS handshake and the code exchange,
/// from its first byte: four round trips or so, each of which a lossy
/// link may make TCP send again after a second or more (at 300 ms ± 100 ms
/// with 20 % loss, 10 s let 6 clients of 25 through).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many clients are in the TLS handshake at once, and this many
/// from one address; one more is closed at once (each costs a thread until
/// its handshake ends, at most [`HANDSHAKE_TIMEOUT`]).
const MAX_HANDSHAKES: usize = 64;
const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;

/// How long a client that is let go has to close before it is dropped.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Clients being let go at once; past this they are dropped at once, their
/// notice written only as far as the socket took it.
const MAX_FAREWELLS: usize = 64;

/// After a refusal, overdue reports are looked for this often, for this long.
const REPORT_LOOK: Duration = Duration::from_millis(200);
const REPORT_WATCH: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The identity file; a default in the user's data directory if `None`.
    pub identity: Option<PathBuf>,
    /// Clients must know a shared code (from `CHAT_CODE`, or made up).
    pub code: bool,
}

/// Loads or makes the server's identity and its code, and says so.
pub fn secure(config: &TlsConfig, output: &Output) -> Result<ServerTls, String> {
    let path = match &config.identity {
        Some(path) => path.clone(),
        None => crate::engine::tls::data_dir()?.join("identity.pem"),
    };
    let (identity, created) = crate::engine::tls::load_identity(&path)?;
    let made = if created { "made now, " } else { "" };
    output.status(format!(
        "TLS identity {} ({made}kept in {})",
        identity.fingerprint,
        path.display()
    ));
    let code = match config.code {
        false => None,
        true => Some(match std::env::var("CHAT_CODE") {
            Ok(code) if !crate::engine::tls::normalize_code(&code).is_empty() => {
                output.status("code taken from CHAT_CODE; clients connect with --tls --code");
                if crate::engine::tls::normalize_code(&code).len() < WEAK_CODE {
                    output.status(
                        "warning: this code is short: one guess a second may find it soon (a number and three words, as the server makes, are safe)",
                    );
                }
                code
            }
            Ok(_) => return Err("CHAT_CODE is set but holds no code".to_string()),
            Err(_) => {
                let code = crate::engine::tls::generate_code()?;
                output.status(format!(
                    "code: {code} (tell it to the client's user: chat-client --tls --code asks for it)"
                ));
                code
            }
        }),
    };
    ServerTls::new(identity, code)
}

/// Who may come in, and what they must prove.
#[derive(Clone)]
pub struct GateConfig {
    pub access: Access,
    pub tls: Option<Arc<ServerTls>>,
}

/// Where a connection is on its way in.
pub(super) enum Phase {
    /// A TLS server waits for the client's first byte, for a while: a TLS
    /// client speaks at once, a plain one waits for its user. `since`: when
    /// it was accepted, from which the handshake's time counts.
    Sniffing {
        since: Instant,
    },
    Handshaking {
        until: Instant,
    },
    /// The shared code is being proved.
    Proving {
        exchange: Box<ServerExchange>,
        until: Instant,
    },
    /// Through the gate: the service's.
    Admitted,
    /// Told why it is not served; its side is read until it closes, for
    /// a while.
    Leaving,
}

pub(super) struct Gate {
    config: GateConfig,
    output: Arc<Output>,
    refusals: Refusals,
    failures: Failures,
    handshakes: Handshakes,
    farewells: usize,
    /// When a connection was last refused or failed: its report may be
    /// due later.
    last_refused: Option<Instant>,
}

impl Gate {
    pub(super) fn new(config: GateConfig, output: Arc<Output>) -> Self {
        Self {
            config,
            output,
            refusals: Refusals::default(),
            failures: Failures::default(),
            handshakes: Handshakes::default(),
            farewells: 0,
            last_refused: None,
        }
    }

    /// Tells the operator something about a connection at the door.
    pub(super) fn say(&self, line: String) {
        self.output.status(line);
    }

    fn refused(&mut self, why: Refusal, peer: SocketAddr, now: Instant) {
        self.last_refused = Some(now);
        self.refusals.occurred(&self.output, &why, peer, now);
    }

    /// A client failed at the gate, as `line` says: told at once if it is
    /// the first of its kind for a while, else grouped once a second with
    /// a count (thousands of failed handshakes a minute buried the
    /// operator's log, and the wrong codes in it).
    fn failed(&mut self, kind: Failure, line: String, now: Instant) {
        self.last_refused = Some(now);
        self.failures.occurred(&self.output, kind, line, now);
    }

    /// When to look again for refusals whose report is due (the end of a
    /// burst is told too).
    pub(super) fn report_at(&self, now: Instant) -> Option<Instant> {
        let recent = self
            .last_refused
            .is_some_and(|at| now.saturating_duration_since(at) < REPORT_WATCH);
        recent.then(|| now + REPORT_LOOK)
    }

    /// Reports the refusals counted since the last report, once due.
    pub(super) fn report_overdue(&mut self, now: Instant) {
        self.refusals.report_overdue(&self.output, now);
        self.failures.report_overdue(&self.output, now);
    }
}

pub(super) fn accepted(
    io: &mut Io,
    service: &mut impl Service,
    stream: TcpStream,
    peer: SocketAddr,
) {
    if !io.gate.config.access.permits(peer.ip()) {
        io.gate.refused(Refusal::Access, peer, io.now);
        // One that expects TLS would read a plain frame as a server
        // without TLS, and is just closed.
        if io.gate.config.tls.is_none()
            && let Ok(id) = io.insert(stream, peer, Phase::Admitted)
        {
            refuse(
                io,
                id,
                &refusal("this server does not accept connections from your address"),
            );
        }
        return;
    }
    if io.gate.config.tls.is_none() {
        match io.insert(stream, peer, Phase::Admitted) {
            Ok(id) => io.admit(service, id),
            Err(e) => cannot_start(io, peer, &e),
        }
        return;
    }
    if !io.gate.handshakes.enter(peer.ip()) {
        // All slots taken by others (not this address's own share): the
        // oldest handshake of the networks holding the most goes, so that
        // clients that connect and say nothing cannot keep everyone out for
        // the handshake's whole time, nor cut a real client's slower
        // handshake by coming faster than it is done.
        let room_made = io.gate.handshakes.full_of_others(peer.ip()) && drop_oldest_handshake(io);
        if !room_made || !io.gate.handshakes.enter(peer.ip()) {
            io.gate.refused(Refusal::Crowded, peer, io.now);
            return;
        }
    }
    let until = io.now + PLAIN_CLIENT_GRACE;
    match io.insert(stream, peer, Phase::Sniffing { since: io.now }) {
        Ok(id) => io.set_timer(id, Some(until)),
        Err(e) => {
            io.gate.handshakes.leave(peer.ip());
            cannot_start(io, peer, &e);
        }
    }
}

fn cannot_start(io: &Io, peer: SocketAddr, e: &std::io::Error) {
    io.gate.output.error(format!(
        "{peer}: cannot start: {}",
        crate::errors::lowercase_os_error(e)
    ));
}

/// Connection `id`, still at the gate, is ready.
pub(super) fn ready(io: &mut Io, service: &mut impl Service, id: Id) {
    match io.links[id].phase {
        Phase::Sniffing { since } => sniff(io, service, id, since),
        Phase::Handshaking { .. } => handshake(io, service, id),
        Phase::Proving { .. } => prove(io, service, id),
        Phase::Leaving => drain(io, id),
        Phase::Admitted => {}
    }
}

/// Connection `id`'s deadline at the gate came.
pub(super) fn timed_out(io: &mut Io, service: &mut impl Service, id: Id) {
    let peer = io.links[id].conn.peer();
    match &mut io.links[id].phase {
        // Silent for the grace period: a plain client waiting for its
        // user, most likely; or a TLS client whose hello is slow to come
        // (ours, told so, tries once more).
        Phase::Sniffing { .. } => plain_client(io, id, Refusal::Silent),
        Phase::Handshaking { .. } => {
            let line = format!("{peer}: TLS handshake failed: no answer in time");
            io.gate.failed(Failure::Handshake, line, io.now);
            drop_at_gate(io, id);
        }
        Phase::Proving { until, .. } if io.now >= *until => {
            let why = CodeFailure::Broken("no answer in time".into());
            io.gate
                .failed(Failure::Code, format!("{peer}: {why}"), io.now);
            drop_at_gate(io, id);
        }
        Phase::Proving { exchange, .. } => {
            // Its slot at the code gate may have come.
            let tls = io.gate.config.tls.as_ref().expect("a TLS gate");
            let step = exchange.tick(io.now, &mut crate::lock(tls.code_gate()));
            apply(io, service, id, step);
        }
        Phase::Leaving => gone(io, id),
        Phase::Admitted => {}
    }
}

fn sniff(io: &mut Io, service: &mut impl Service, id: Id, since: Instant) {
    let link = &mut io.links[id];
    let mut first = [0u8; 1];
    match link.conn.stream().peek(&mut first) {
        // A port scan, or a client that gave up.
        Ok(0) => drop_at_gate(io, id),
        Ok(_) if first[0] == HANDSHAKE_RECORD => {
            let tls = io.gate.config.tls.as_ref().expect("a TLS gate");
            match tls.session() {
                Ok(session) => {
                    link.conn.start_tls(rustls::Connection::Server(session));
                    // Counted from the connection, whenever its first
                    // byte came.
                    let until = since + HANDSHAKE_TIMEOUT;
                    link.phase = Phase::Handshaking { until };
                    io.set_timer(id, Some(until));
                    handshake(io, service, id);
                }
                Err(why) => {
                    let peer = link.conn.peer();
                    let line = format!("{peer}: TLS handshake failed: {why}");
                    io.gate.failed(Failure::Handshake, line, io.now);
                    drop_at_gate(io, id);
                }
            }
        }
        Ok(_) => plain_client(io, id, Refusal::Plain),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(_) => drop_at_gate(io, id),
    }
}

/// A client that does not speak TLS, or said nothing (`why`): told in
/// plain text to connect with `--tls`, and let go.
fn plain_client(io: &mut Io, id: Id, why: Refusal) {
    let peer = io.links[id].conn.peer();
    io.gate.refused(why, peer, io.now);
    leave_handshakes(io, id);
    refuse(io, id, &refusal(SPEAK_TLS));
}

fn handshake(io: &mut Io, service: &mut impl Service, id: Id) {
    let link = &mut io.links[id];
    let peer = link.conn.peer();
    match link.conn.handshake() {
        Ok(false) => {}
        Ok(true) => {
            let tls = Arc::clone(io.gate.config.tls.as_ref().expect("a TLS gate"));
            let (with_code, exporter) = {
                let session = link.conn.tls().expect("a TLS connection");
                let exporter = session.export_keying_material([0u8; 32], EXPORTER_LABEL, None);
                (ServerTls::chose_code(&session), exporter)
            };
            let Some(code) = tls.code() else {
                leave_handshakes(io, id);
                io.admit(service, id);
                return;
            };
            if !with_code {
                // A client that offered no protocol at all (a generic TLS peer).
                leave_handshakes(io, id);
                refuse(io, id, &refusal(NEEDS_CODE));
                return;
            }
            let exporter = match exporter {
                Ok(exporter) => exporter,
                Err(e) => {
                    let line = format!("{peer}: TLS handshake failed: {e}");
                    io.gate.failed(Failure::Handshake, line, io.now);
                    drop_at_gate(io, id);
                    return;
                }
            };
            let (exchange, step) = ServerExchange::start(code, exporter, peer.ip());
            let until = match link.phase {
                Phase::Handshaking { until } => until,
                _ => io.now + HANDSHAKE_TIMEOUT,
            };
            link.conn.set_max(ServerExchange::MAX_FRAME);
            link.phase = Phase::Proving {
                exchange: Box::new(exchange),
                until,
            };
            apply(io, service, id, step);
            // The client's first frames may have come with its last
            // handshake record: rustls holds them, and the socket will not
            // say it is readable again for them.
            if matches!(
                io.links.get(id).map(|l| &l.phase),
                Some(Phase::Proving { .. })
            ) {
                prove(io, service, id);
            }
        }
        Err(why) => {
            use super::conn::Handshake;
            let why = match why {
                Handshake::Tls(e) => io
                    .gate
                    .config
                    .tls
                    .as_ref()
                    .expect("a TLS gate")
                    .describe_failure(&e),
                // A port scan, or a client that gave up.
                Handshake::Closed => return drop_at_gate(io, id),
                Handshake::Io(e) => crate::errors::lowercase_os_error(&e),
            };
            let line = format!("{peer}: TLS handshake failed: {why}");
            io.gate.failed(Failure::Handshake, line, io.now);
            // The alert rustls queued goes out as far as the socket takes it.
            let _ = io.links[id].conn.flush();
            drop_at_gate(io, id);
        }
    }
}

fn prove(io: &mut Io, service: &mut impl Service, id: Id) {
    // A frame at a time, as the exchange takes them; a read may bring
    // more (a client's SPAKE2 message and its proof in one TLS record were
    // read together, and the proof was lost: the client waited for the
    // handshake's deadline), and what follows the proof is the
    // conversation's, put back for the service.
    let mut frames = Vec::new();
    loop {
        frames.clear();
        let link = &mut io.links[id];
        let end = link.conn.read_frames(&mut io.scratch, &mut frames, 1);
        let mut at = 0;
        for payload in crate::wire::frame::payloads(&frames) {
            at += crate::wire::frame::HEADER_LEN + payload.len();
            let tls = io.gate.config.tls.as_ref().expect("a TLS gate");
            let Phase::Proving { exchange, .. } = &mut io.links[id].phase else {
                return;
            };
            let step = exchange.received(payload, io.now, &mut crate::lock(tls.code_gate()));
            match step.state {
                Progress::Waiting { .. } => apply(io, service, id, step),
                Progress::Admitted => {
                    io.links[id].conn.put_back(&frames[at..]);
                    return apply(io, service, id, step);
                }
                Progress::Refused(_) => return apply(io, service, id, step),
            }
        }
        if let Some(end) = end {
            let peer = io.links[id].conn.peer();
            let why = match end {
                super::conn::ReadEnd::Closed => "the other side closed the connection".to_string(),
                super::conn::ReadEnd::Failed(e) => crate::errors::describe_receive_error(&e),
            };
            let line = format!("{peer}: {}", CodeFailure::Broken(why));
            io.gate.failed(Failure::Code, line, io.now);
            drop_at_gate(io, id);
            return;
        }
        if frames.is_empty() && !io.links[id].conn.can_read() {
            return;
        }
    }
}

/// Does what a step of the code exchange says.
fn apply(io: &mut Io, service: &mut impl Service, id: Id, step: Step) {
    let mut frames = Vec::new();
    for payload in &step.send {
        let _ = encode_frame(&mut frames, payload, usize::MAX);
    }
    io.send(id, &frames);
    let peer = io.links[id].conn.peer();
    match step.state {
        Progress::Waiting { at } => {
            let Phase::Proving { until, .. } = io.links[id].phase else {
                return;
            };
            let at = at.map_or(until, |at| at.min(until));
            io.set_timer(id, Some(at));
        }
        Progress::Admitted => {
            leave_handshakes(io, id);
            io.admit(service, id);
        }
        Progress::Refused(failure) => {
            match failure {
                CodeFailure::TooManyAttempts => io.gate.refused(Refusal::CodeBusy, peer, io.now),
                other => io
                    .gate
                    .failed(Failure::Code, format!("{peer}: {other}"), io.now),
            }
            leave_handshakes(io, id);
            let link = &mut io.links[id];
            link.conn.finish();
            begin_leaving(io, id);
        }
    }
}

/// Tells the client on connection `id` `notice` in one frame and ends our
/// side; its side is read until it closes.
pub(super) fn refuse(io: &mut Io, id: Id, notice: &str) {
    let mut frame = Vec::new();
    let _ = encode_frame(&mut frame, notice.as_bytes(), usize::MAX);
    let link = &mut io.links[id];
    link.closing = None;
    link.conn.queue(&frame);
    link.conn.finish();
    begin_leaving(io, id);
}

/// Lets connection `id` go with what is queued for it, reading it until it
/// closes.
pub(super) fn let_go(io: &mut Io, id: Id) {
    let link = &mut io.links[id];
    link.closing = None;
    link.conn.finish();
    begin_leaving(io, id);
}

/// Connection `id`, told why it is not served, is read until it closes.
fn begin_leaving(io: &mut Io, id: Id) {
    let until = io.now + FAREWELL_TIMEOUT;
    io.links[id].phase = Phase::Leaving;
    io.dirty.push(id);
    if io.gate.farewells >= MAX_FAREWELLS {
        // Written as far as the socket takes it now, then dropped.
        let _ = io.links[id].conn.flush();
        io.remove(id);
        return;
    }
    io.gate.farewells += 1;
    io.set_timer(id, Some(until));
    // Whatever it sent before is read now: it may have closed already.
    drain(io, id);
}

/// Reads (and throws away) what a leaving client sends, so that closing
/// does not reset what it has not yet read; it is gone once it closes.
fn drain(io: &mut Io, id: Id) {
    let mut sink = Vec::new();
    loop {
        sink.clear();
        let link = &mut io.links[id];
        if let Some(_end) = link
            .conn
            .read_frames(&mut io.scratch, &mut sink, usize::MAX)
        {
            break;
        }
        if !link.conn.can_read() {
            return;
        }
        // Frames over the maximum are not an error here.
        if link.conn.read_ended() {
            break;
        }
    }
    if !io.links[id].conn.wants_write() {
        gone(io, id);
    }
}

/// A client let go at the gate is done.
pub(super) fn gone(io: &mut Io, id: Id) {
    if matches!(io.links[id].phase, Phase::Leaving) {
        io.gate.farewells = io.gate.farewells.saturating_sub(1);
    }
    io.remove(id);
}

/// Drops a client still in the handshake.
fn drop_at_gate(io: &mut Io, id: Id) {
    leave_handshakes(io, id);
    if let Phase::Proving { .. } = io.links[id].phase {
        let Phase::Proving { exchange, .. } =
            std::mem::replace(&mut io.links[id].phase, Phase::Admitted)
        else {
            unreachable!()
        };
        let tls = io.gate.config.tls.as_ref().expect("a TLS gate");
        exchange.abandon(&mut crate::lock(tls.code_gate()));
    }
    io.remove(id);
}

/// Ends a handshake for a newcomer (see [`accepted`]): the one that began
/// first of the networks (IPv4 /24, IPv6 /64) holding the most slots;
/// false if there is none. By network, and not simply the oldest: connections
/// that arrive faster than a handshake takes would otherwise cut every
/// real client whose handshake is slower (a long or lossy link: a few
/// hundred milliseconds, a second), while one network holding more slots
/// than the newcomer's keeps losing its own.
fn drop_oldest_handshake(io: &mut Io) -> bool {
    // A client whose code check waits for its turn has done all it can:
    // cutting it would waste the one check it queued for.
    let began = |phase: &Phase| match phase {
        Phase::Sniffing { since } => Some(*since),
        Phase::Proving { exchange, .. } if exchange.waits_at_gate() => None,
        Phase::Handshaking { until } | Phase::Proving { until, .. } => {
            Some(*until - HANDSHAKE_TIMEOUT)
        }
        _ => None,
    };
    let handshakes = &io.gate.handshakes;
    let most = handshakes.most();
    let oldest = io
        .links
        .iter()
        .filter(|(_, link)| handshakes.held(link.conn.peer().ip()) == most)
        .filter_map(|(id, link)| Some((began(&link.phase)?, id)))
        .min();
    let Some((_, id)) = oldest else {
        return false;
    };
    let peer = io.links[id].conn.peer();
    let network = Prefix::of(peer.ip());
    let line = format!(
        "{peer}: TLS handshake cut short: the oldest of {network}, which held the most ({most}) of the {MAX_HANDSHAKES} when a newcomer came"
    );
    io.gate.failed(Failure::Handshake, line, io.now);
    drop_at_gate(io, id);
    true
}

/// Frees connection `id`'s handshake slot, if it holds one.
fn leave_handshakes(io: &mut Io, id: Id) {
    let link = &io.links[id];
    if matches!(
        link.phase,
        Phase::Sniffing { .. } | Phase::Handshaking { .. } | Phase::Proving { .. }
    ) {
        io.gate.handshakes.leave(link.conn.peer().ip());
    }
}

/// The clients in the TLS handshake, in all, by address and by network.
#[derive(Default)]
struct Handshakes {
    total: usize,
    from: HashMap<IpAddr, usize>,
    networks: HashMap<Prefix, usize>,
}

impl Handshakes {
    fn enter(&mut self, address: IpAddr) -> bool {
        let mine = self.from.entry(address).or_default();
        if self.total >= MAX_HANDSHAKES || *mine >= MAX_HANDSHAKES_PER_ADDRESS {
            return false;
        }
        *mine += 1;
        self.total += 1;
        *self.networks.entry(Prefix::of(address)).or_default() += 1;
        true
    }

    /// The most slots one network holds (of 64, a scan is cheap).
    fn most(&self) -> usize {
        self.networks.values().copied().max().unwrap_or(0)
    }

    /// How many slots the network of `address` holds.
    fn held(&self, address: IpAddr) -> usize {
        let network = Prefix::of(address);
        self.networks.get(&network).copied().unwrap_or(0)
    }

    /// Whether the slots are all taken, and `address` is under its own
    /// share: others hold them.
    fn full_of_others(&self, address: IpAddr) -> bool {
        let mine = self.from.get(&address).copied().unwrap_or(0);
        self.total >= MAX_HANDSHAKES && mine < MAX_HANDSHAKES_PER_ADDRESS
    }

    fn leave(&mut self, address: IpAddr) {
        self.total -= 1;
        if let Some(mine) = self.from.get_mut(&address) {
            *mine -= 1;
            if *mine == 0 {
                self.from.remove(&address);
            }
        }
        let network = Prefix::of(address);
        if let Some(held) = self.networks.get_mut(&network) {
            *held -= 1;
            if *held == 0 {
                self.networks.remove(&network);
            }
        }
    }
}

/// Why a connection was closed at once.
enum Refusal {
    Access,
    Crowded,
    /// A code check that would wait too long, or a second one from an address.
    CodeBusy,
    /// A client that does not speak TLS (told so).
    Plain,
    /// A client that sent nothing within [`PLAIN_CLIENT_GRACE`] (told to
    /// speak TLS): not known to be plain, and not said to be.
    Silent,
}

/// Refused connections, told at most once a period with a count.
#[derive(Default)]
struct Refusals {
    access: Mutex<Option<(Throttle, SocketAddr)>>,
    crowded: Mutex<Option<(Throttle, SocketAddr)>>,
    code_busy: Mutex<Option<(Throttle, SocketAddr)>>,
    plain: Mutex<Option<(Throttle, SocketAddr)>>,
    silent: Mutex<Option<(Throttle, SocketAddr)>>,
}

impl Refusals {
    fn occurred(&self, output: &Output, why: &Refusal, peer: SocketAddr, now: Instant) {
        let slot = self.slot(why);
        let mut slot = crate::lock(slot);
        let (throttle, last) =
            slot.get_or_insert_with(|| (Throttle::new(REFUSAL_REPORT_PERIOD), peer));
        *last = peer;
        if let Some(count) = throttle.occurred(now) {
            output.status(describe_refusal(why, count, peer));
        }
    }

    /// Tells the refusals counted since the last report, once it is due.
    fn report_overdue(&self, output: &Output, now: Instant) {
        for why in [
            Refusal::Access,
            Refusal::Crowded,
            Refusal::CodeBusy,
            Refusal::Plain,
            Refusal::Silent,
        ] {
            let mut slot = crate::lock(self.slot(&why));
            if let Some((throttle, last)) = slot.as_mut()
                && let Some(count) = throttle.overdue(now)
            {
                output.status(describe_refusal(&why, count, *last));
            }
        }
    }

    fn slot(&self, why: &Refusal) -> &Mutex<Option<(Throttle, SocketAddr)>> {
        match why {
            Refusal::Access => &self.access,
            Refusal::Crowded => &self.crowded,
            Refusal::CodeBusy => &self.code_busy,
            Refusal::Plain => &self.plain,
            Refusal::Silent => &self.silent,
        }
    }
}

/// Clients that failed at the gate, by kind.
#[derive(Clone, Copy)]
enum Failure {
    /// The TLS handshake failed.
    Handshake,
    /// The code exchange failed: a wrong code, or a broken exchange.
    Code,
}

/// Failures at the gate, told at most once a period with a count and the
/// last one's words.
#[derive(Default)]
struct Failures {
    handshake: Option<(Throttle, String)>,
    code: Option<(Throttle, String)>,
}

impl Failures {
    fn slot(&mut self, kind: Failure) -> &mut Option<(Throttle, String)> {
        match kind {
            Failure::Handshake => &mut self.handshake,
            Failure::Code => &mut self.code,
        }
    }

    fn occurred(&mut self, output: &Output, kind: Failure, line: String, now: Instant) {
        let (throttle, last) = self
            .slot(kind)
            .get_or_insert_with(|| (Throttle::new(REFUSAL_REPORT_PERIOD), String::new()));
        *last = line;
        if let Some(count) = throttle.occurred(now) {
            output.error(describe_failures(kind, count, last));
        }
    }

    fn report_overdue(&mut self, output: &Output, now: Instant) {
        for kind in [Failure::Handshake, Failure::Code] {
            if let Some((throttle, last)) = self.slot(kind).as_mut()
                && let Some(count) = throttle.overdue(now)
            {
                output.error(describe_failures(kind, count, last));
            }
        }
    }
}

fn describe_failures(kind: Failure, count: u64, last: &str) -> String {
    let what = match kind {
        Failure::Handshake => "TLS handshakes failed",
        Failure::Code => "code exchanges failed",
    };
    match count {
        1 => last.to_string(),
        n => format!("{n} {what} since the last report; the last: {last}"),
    }
}

fn describe_refusal(why: &Refusal, count: u64, last: SocketAddr) -> String {
    let what = match why {
        Refusal::Access => "not allowed by --allow/--deny",
        Refusal::Crowded => "too many clients in the TLS handshake",
        Refusal::CodeBusy => "too many code attempts at once",
        Refusal::Plain => "it does not speak TLS, and was told to connect with --tls",
        Refusal::Silent => &format!(
            "it sent nothing for {} s (a plain client waiting for its user, or a TLS client's hello slow to come), and was told to connect with --tls",
            PLAIN_CLIENT_GRACE.as_secs()
        ),
    };
    match count {
        1 => format!("refused a connection from {}: {what}", last.ip()),
        n => format!(
            "refused {n} connections ({what}), the last from {}",
            last.ip()
        ),
    }
}
