//! A shared code, for people who can tell each other a few words but cannot
//! compare fingerprints: SPAKE2 run inside the TLS connection, bound to it by
//! the TLS exporter, with key confirmation both ways.
//!
//! SPAKE2 lets two sides that share a weak secret agree on a strong key, and
//! gives an attacker one guess per run, never an offline test of guesses. Each
//! side then proves it has the key by a MAC over the TLS session's exported
//! keying material: a man in the middle terminates two TLS sessions with two
//! different exporters, so even the SPAKE2 messages relayed unchanged fail
//! the proof on both legs. The exchange (see docs/PROTOCOL.md):
//!
//! 1. both sides send their SPAKE2 message as one frame (33 bytes);
//! 2. the client sends its proof, `HMAC-SHA256(K, "client" || exporter)`;
//! 3. the server checks it, at most one check a second for the whole server
//!    (the network that presented the fewest proofs lately first: see
//!    [`Gate`]),
//!    and answers with its own proof (`"server"`), or with a text frame that
//!    says why it refuses, and closes.
//!
//! The server's side is [`ServerExchange`], a state machine with no I/O and
//! no clock, driven by the server's event loop (`crate::engine`'s gate).

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use ring::hmac;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::state::points::Points;
use crate::state::prefix::Prefix;
use crate::wire::frame::{HEADER_LEN, encode_frame};

/// The label for the TLS exporter (RFC 8446 section 7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-chat-code-v1";

/// How many words follow the number in a code we make: 3 words of a
/// 2,048-word list and a number up to 999 are 43 bits.
const WORDS: usize = 3;

/// Code checks are spaced by this much, server-wide.
pub const ATTEMPT_INTERVAL: Duration = Duration::from_secs(1);

/// A check that has waited this long for its turn is refused.
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// The proofs are HMAC-SHA256 tags.
const PROOF_LEN: usize = 32;

/// Largest frame read during the exchange.
const MAX_EXCHANGE_FRAME: usize = 1024;

/// A fresh code: a number and three words, such as `7-orbit-velvet-candle`.
pub fn generate() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut random = [0u8; 2 * (WORDS + 1)];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| "the system's random number generator failed".to_string())?;
    let pick = |i: usize| usize::from(u16::from_be_bytes([random[2 * i], random[2 * i + 1]]));
    let words = bip39::Language::English.word_list();
    let mut code = format!("{}", 1 + pick(0) % 999);
    for i in 1..=WORDS {
        code.push('-');
        code.push_str(words[pick(i) % words.len()]);
    }
    Ok(code)
}

/// The form both sides use: lowercase words joined by `-`, whatever spaces,
/// dashes or capitals were typed.
pub fn normalize(code: &str) -> String {
    code.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

/// Spaces out code checks for the whole server, and chooses whose comes
/// next: a state machine fed the time.
///
/// One check a second for the whole server, so that a guesser, however
/// many addresses it has, makes at most one guess a second (a number and
/// three words are 43 bits). Which waiting check goes next is the one from
/// the network ([`Prefix`]: an IPv4 /24, an IPv6 /64) with the lowest
/// score, the longest waiting among equals. A network scores a point for
/// each proof it presents, checked or refused (each cost the server a TLS
/// handshake), and one more for each wrong code; points fade, halved every
/// [`HALF_LIFE`]. A guesser presents proofs again and again, a real client
/// once, so it goes before them all, from the first seconds of an attack.
/// (First come, first served let 40 guessers keep the queue full: a real
/// client arriving found five seconds of guesses ahead of it and was
/// refused, every time.) At most [`MAX_WAITING`] wait, one per network; a
/// newcomer to a full queue takes the place of the one whose network
/// scores highest, if higher than its own network did, and that one is
/// refused as busy.
#[derive(Debug)]
pub struct Gate {
    /// When the next check may be made.
    next_free: Option<Instant>,
    waiting: HashMap<Ticket, Waiter>,
    points: Points,
    tickets: u64,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            next_free: None,
            waiting: HashMap::new(),
            points: Points::new(HALF_LIFE),
            tickets: 0,
        }
    }
}

/// A place in the [`Gate`]'s queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Waiter {
    network: Prefix,
    since: Instant,
}

/// A waiting check's turn ([`Gate::turn`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Check now.
    Go,
    /// Ask again then.
    Wait(Instant),
    /// Waited too long, or its place was given to a network that scored
    /// lower: refused as busy.
    Refused,
}

/// A network's points are halved this often: a guesser that stopped a few
/// minutes ago is as new as anyone.
const HALF_LIFE: Duration = Duration::from_secs(60);

/// At most this many checks wait at once.
const MAX_WAITING: usize = 5;

impl Gate {
    /// A check from `from` waits at `now` for its turn ([`Gate::turn`]); or
    /// `None` if it is refused as busy (its network has one waiting, or the
    /// queue is full of networks that score no higher than its own). Call
    /// [`Gate::done`] if the check is given up before its turn.
    pub fn reserve(&mut self, now: Instant, from: IpAddr) -> Option<Ticket> {
        // Those that waited too long are refused at their next turn.
        self.waiting
            .retain(|_, w| now.saturating_duration_since(w.since) <= LONGEST_WAIT);
        let network = Prefix::of(from);
        let mine = self.score(network, now);
        self.add(network, now, 1.0);
        if self.waiting.values().any(|w| w.network == network) {
            return None;
        }
        if self.waiting.len() >= MAX_WAITING {
            let (&worst, worst_score) = self
                .waiting
                .iter()
                .map(|(ticket, w)| (ticket, self.score(w.network, now)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)))?;
            if worst_score <= mine {
                return None;
            }
            self.waiting.remove(&worst);
        }
        self.tickets += 1;
        let ticket = Ticket(self.tickets);
        self.waiting.insert(
            ticket,
            Waiter {
                network,
                since: now,
            },
        );
        Some(ticket)
    }

    /// Whether the check holding `ticket` goes now: the next check may be
    /// made, and it is the one of the network that scores lowest (the
    /// longest waiting among equals); refused once it has waited longer
    /// than [`LONGEST_WAIT`] or lost its place.
    pub fn turn(&mut self, now: Instant, ticket: Ticket) -> Turn {
        let Some(waiter) = self.waiting.get(&ticket) else {
            return Turn::Refused;
        };
        if now.saturating_duration_since(waiter.since) > LONGEST_WAIT {
            self.waiting.remove(&ticket);
            return Turn::Refused;
        }
        if let Some(free) = self.next_free
            && now < free
        {
            return Turn::Wait(free);
        }
        let first = self
            .waiting
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.since) <= LONGEST_WAIT)
            .map(|(&ticket, w)| (self.score(w.network, now), w.since, ticket))
            .min_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))))
            .map(|(_, _, ticket)| ticket);
        if first != Some(ticket) {
            // Its turn is after the one chosen, which checks now.
            return Turn::Wait(now + ATTEMPT_INTERVAL);
        }
        self.waiting.remove(&ticket);
        self.next_free = Some(now + ATTEMPT_INTERVAL);
        Turn::Go
    }

    /// A check from `from` found a wrong code (or a broken exchange) at
    /// `now`: a point more against its network.
    pub fn wrong(&mut self, now: Instant, from: IpAddr) {
        self.add(Prefix::of(from), now, 1.0);
    }

    /// The check holding `ticket` is given up before its turn.
    pub fn done(&mut self, ticket: Ticket) {
        self.waiting.remove(&ticket);
    }

    fn score(&self, network: Prefix, now: Instant) -> f64 {
        self.points.of(network, now)
    }

    fn add(&mut self, network: Prefix, now: Instant, points: f64) {
        self.points.add(network, now, points);
    }
}

/// Why an exchange failed, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The client's proof was wrong: the codes differ, or someone is in the middle.
    #[error("wrong code (or someone in the middle); refused")]
    WrongCode,
    /// The server refused, and said why.
    #[error("the server refused the code: {0}")]
    Refused(String),
    /// The server's proof was wrong.
    #[error(
        "the server does not know the code: the code is wrong, or someone is in the middle; nothing was sent"
    )]
    ServerUnproven,
    #[error("too many code attempts at once; refused")]
    TooManyAttempts,
    /// Malformed, missing or late messages.
    #[error("code exchange failed: {0}")]
    Broken(String),
}

const WRONG_CODE_NOTICE: &str = "wrong code (or someone in the middle)";
const BUSY_NOTICE: &str = "too many code attempts right now; try again in a few seconds";

/// The client's side: Ok once the server has proved it knows `code`.
pub fn as_client(
    stream: &mut TcpStream,
    session: &mut rustls::ClientConnection,
    code: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let (spake, ours) = start_spake(code, Spake2::start_a);
    let exporter = session
        .export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| Failure::Broken(e.to_string()))?;
    let mut link = Link {
        stream,
        session,
        deadline,
    };
    link.send(&ours)?;
    let theirs = link.receive()?;
    let key = client_key(spake, &theirs)?;
    link.send(proof(&key, b"client", &exporter).as_ref())?;
    let answer = link.receive()?;
    judge_answer(&key, &exporter, &answer)
}

/// How one side starts SPAKE2: as A (the client) or B (the server).
type Start = fn(&Password, &Identity, &Identity) -> (Spake2<Ed25519Group>, Vec<u8>);

/// Starts SPAKE2 with the normalized `code` as `start` says: the state, and
/// the message to send.
fn start_spake(code: &str, start: Start) -> (Spake2<Ed25519Group>, Vec<u8>) {
    start(
        &Password::new(normalize(code).as_bytes()),
        &Identity::new(b"chat-client"),
        &Identity::new(b"chat-server"),
    )
}

/// The client's key, from the server's SPAKE2 message.
fn client_key(spake: Spake2<Ed25519Group>, theirs: &[u8]) -> Result<hmac::Key, Failure> {
    let key = spake
        .finish(theirs)
        .map_err(|_| Failure::Broken("the server sent a malformed code message".into()))?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &key))
}

/// The client's reading of the server's answer to its proof: Ok if it is
/// the server's proof; a refusal, shown safely, if it is not proof-sized.
fn judge_answer(key: &hmac::Key, exporter: &[u8], answer: &[u8]) -> Result<(), Failure> {
    if answer.len() != PROOF_LEN {
        let why = String::from_utf8_lossy(answer);
        return Err(Failure::Refused(crate::wire::display::visible(
            why.as_bytes(),
        )));
    }
    hmac::verify(key, &transcript(b"server", exporter), answer).map_err(|_| Failure::ServerUnproven)
}

/// The server's side of the code exchange, fed the client's frames (their
/// payloads) and the time. It does no I/O and reads no clock, so an event
/// loop drives it without blocking. The client's SPAKE2 message comes first, then its
/// proof; the proof is checked at the slot it gets at the [`Gate`].
pub struct ServerExchange {
    from: IpAddr,
    exporter: [u8; 32],
    stage: Stage,
}

/// Where a [`ServerExchange`] is.
enum Stage {
    /// Waiting for the client's SPAKE2 message.
    Message(Spake2<Ed25519Group>),
    /// Waiting for the client's proof.
    Proof {
        spake: Spake2<Ed25519Group>,
        theirs: Vec<u8>,
    },
    /// Waiting at the gate, with `ticket`, for the check of `proof`.
    Slot {
        spake: Spake2<Ed25519Group>,
        theirs: Vec<u8>,
        proof: Vec<u8>,
        ticket: Ticket,
    },
    /// Over, as it ended (nothing held at the gate).
    Over(Progress),
}

/// What to do after a step.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Payloads to send to the client, in order, each as one frame.
    pub send: Vec<Vec<u8>>,
    /// Where the exchange is.
    pub state: Progress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the client's next frame, or for `at` (its slot at the
    /// gate), whichever the caller sees first; step again with
    /// [`ServerExchange::tick`] at `at`.
    Waiting { at: Option<Instant> },
    /// The client proved the code; the conversation's frames follow.
    Admitted,
    /// Refused (the notice, if any, is in `send`; then close).
    Refused(Failure),
}

impl Step {
    fn waiting(at: Option<Instant>) -> Self {
        Self {
            send: Vec::new(),
            state: Progress::Waiting { at },
        }
    }
}

impl ServerExchange {
    /// The largest frame the exchange takes: the caller refuses bigger ones
    /// before reading them (a bigger payload given is refused as broken).
    pub const MAX_FRAME: usize = MAX_EXCHANGE_FRAME;

    /// Starts the exchange for a client at `from` over a TLS session whose
    /// exporter ([`EXPORTER_LABEL`]) is `exporter`; the step's `send` holds
    /// our SPAKE2 message.
    pub fn start(code: &str, exporter: [u8; 32], from: IpAddr) -> (Self, Step) {
        let (spake, ours) = start_spake(code, Spake2::start_b);
        let exchange = Self {
            from,
            exporter,
            stage: Stage::Message(spake),
        };
        let step = Step {
            send: vec![ours],
            state: Progress::Waiting { at: None },
        };
        (exchange, step)
    }

    /// The payload of one frame from the client, received at `now`. Its
    /// proof reserves a slot at `gate`, and is checked at once if the slot
    /// has come. A frame when none is expected (while waiting for the slot,
    /// or after the end) is a protocol error.
    pub fn received(&mut self, payload: &[u8], now: Instant, gate: &mut Gate) -> Step {
        if payload.len() > Self::MAX_FRAME {
            let why = format!("unexpected message of {} bytes", payload.len());
            return self.fail(Failure::Broken(why), gate);
        }
        match self.take() {
            Stage::Message(spake) => {
                let theirs = payload.to_vec();
                self.stage = Stage::Proof { spake, theirs };
                Step::waiting(None)
            }
            Stage::Proof { spake, theirs } => {
                let Some(ticket) = gate.reserve(now, self.from) else {
                    return self.end(vec![BUSY_NOTICE.into()], Failure::TooManyAttempts);
                };
                let proof = payload.to_vec();
                self.stage = Stage::Slot {
                    spake,
                    theirs,
                    proof,
                    ticket,
                };
                self.tick(now, gate)
            }
            stage => {
                self.stage = stage;
                self.fail(Failure::Broken("unexpected message".into()), gate)
            }
        }
    }

    /// Time passed: the check's turn at the gate may have come. If it
    /// has, the proof is checked.
    pub fn tick(&mut self, now: Instant, gate: &mut Gate) -> Step {
        match &self.stage {
            Stage::Message(_) | Stage::Proof { .. } => return Step::waiting(None),
            Stage::Over(progress) => {
                return Step {
                    send: Vec::new(),
                    state: progress.clone(),
                };
            }
            Stage::Slot { ticket, .. } => match gate.turn(now, *ticket) {
                Turn::Go => {}
                Turn::Wait(at) => return Step::waiting(Some(at)),
                Turn::Refused => {
                    return self.end(vec![BUSY_NOTICE.into()], Failure::TooManyAttempts);
                }
            },
        }
        let Stage::Slot {
            spake,
            theirs,
            proof: their_proof,
            ..
        } = self.take()
        else {
            unreachable!("matched above");
        };
        match check(spake, &theirs, &their_proof, &self.exporter) {
            Ok(Some(key)) => {
                let ours = proof(&key, b"server", &self.exporter);
                self.stage = Stage::Over(Progress::Admitted);
                Step {
                    send: vec![ours.as_ref().to_vec()],
                    state: Progress::Admitted,
                }
            }
            Ok(None) => {
                gate.wrong(now, self.from);
                self.end(vec![WRONG_CODE_NOTICE.into()], Failure::WrongCode)
            }
            Err(failure) => {
                gate.wrong(now, self.from);
                self.end(Vec::new(), failure)
            }
        }
    }

    /// Whether the exchange waits for its turn at the gate: the client has
    /// done all it can, and waits on the server.
    pub fn waits_at_gate(&self) -> bool {
        matches!(self.stage, Stage::Slot { .. })
    }

    /// The connection ended or timed out before the exchange did: frees its
    /// gate reservation, if any.
    pub fn abandon(mut self, gate: &mut Gate) {
        self.release(gate);
    }

    /// The stage, to move on from; what is left in its place is never
    /// taken for a success.
    fn take(&mut self) -> Stage {
        let placeholder = Progress::Refused(Failure::Broken("interrupted".into()));
        std::mem::replace(&mut self.stage, Stage::Over(placeholder))
    }

    /// Ends the exchange with `failure`, releasing any reservation.
    fn fail(&mut self, failure: Failure, gate: &mut Gate) -> Step {
        self.release(gate);
        self.end(Vec::new(), failure)
    }

    /// Gives up its place at the gate, if it holds one.
    fn release(&mut self, gate: &mut Gate) {
        if let Stage::Slot { ticket, .. } = self.stage {
            gate.done(ticket);
            self.stage = Stage::Over(Progress::Refused(Failure::Broken("abandoned".into())));
        }
    }

    /// Ends the exchange refused: `send`, then close.
    fn end(&mut self, send: Vec<Vec<u8>>, failure: Failure) -> Step {
        let state = Progress::Refused(failure);
        self.stage = Stage::Over(state.clone());
        Step { send, state }
    }
}

/// The server's check of the client's proof: the key if it is right.
fn check(
    spake: Spake2<Ed25519Group>,
    theirs: &[u8],
    their_proof: &[u8],
    exporter: &[u8],
) -> Result<Option<hmac::Key>, Failure> {
    let key = spake
        .finish(theirs)
        .map_err(|_| Failure::Broken("the client sent a malformed code message".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let right = hmac::verify(&key, &transcript(b"client", exporter), their_proof).is_ok();
    Ok(right.then_some(key))
}

fn transcript(role: &[u8], exporter: &[u8]) -> Vec<u8> {
    [role, exporter].concat()
}

fn proof(key: &hmac::Key, role: &[u8], exporter: &[u8]) -> hmac::Tag {
    hmac::sign(key, &transcript(role, exporter))
}

/// The client's side of the exchange, on a blocking socket: frames sent
/// and read through the TLS session, exactly (what comes after the last
/// frame stays in the session, for the conversation), all within one
/// deadline.
struct Link<'a> {
    stream: &'a mut TcpStream,
    session: &'a mut rustls::ClientConnection,
    deadline: Instant,
}

impl Link<'_> {
    fn remaining(&self) -> Result<Duration, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Broken("no answer in time".into()));
        }
        Ok(left)
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), Failure> {
        let mut frame = Vec::new();
        encode_frame(&mut frame, payload, usize::MAX).expect("exchange frames are short");
        let left = self.remaining()?;
        self.stream
            .set_write_timeout(Some(left))
            .map_err(|e| Failure::Broken(crate::errors::lowercase_os_error(&e)))?;
        let mut tls = rustls::Stream::new(&mut *self.session, &mut *self.stream);
        match tls.write_all(&frame).and_then(|()| tls.flush()) {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Failure::Broken("no answer in time".into()))
            }
            Err(e) => Err(Failure::Broken(crate::errors::lowercase_os_error(&e))),
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, Failure> {
        let mut header = [0u8; HEADER_LEN];
        self.read_exact(&mut header)?;
        let len = crate::wire::frame::read_header(&header).expect("a whole header");
        if len > MAX_EXCHANGE_FRAME {
            return Err(Failure::Broken(format!(
                "unexpected message of {len} bytes"
            )));
        }
        let mut payload = vec![0; len];
        self.read_exact(&mut payload)?;
        Ok(payload)
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), Failure> {
        while !buf.is_empty() {
            let left = self.remaining()?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Failure::Broken(crate::errors::lowercase_os_error(&e)))?;
            let mut tls = rustls::Stream::new(&mut *self.session, &mut *self.stream);
            match tls.read(buf) {
                Ok(0) => {
                    return Err(Failure::Broken(
                        "the other side closed the connection".into(),
                    ));
                }
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(Failure::Broken(describe_io(&e))),
            }
        }
        Ok(())
    }
}

fn describe_io(e: &io::Error) -> String {
    crate::errors::describe_receive_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_a_number_and_three_listed_words() {
        let words = bip39::Language::English.word_list();
        let code = generate().unwrap();
        let parts: Vec<&str> = code.split('-').collect();
        assert_eq!(parts.len(), 4, "{code}");
        let number: u32 = parts[0].parse().unwrap();
        assert!((1..=999).contains(&number));
        for word in &parts[1..] {
            assert!(words.contains(word), "{word}");
        }
        assert_ne!(generate().unwrap(), generate().unwrap());
    }

    #[test]
    fn typed_codes_are_normalized() {
        assert_eq!(
            normalize(" 7 Orbit  velvet-CANDLE\n"),
            "7-orbit-velvet-candle"
        );
        assert_eq!(normalize("7-orbit-velvet-candle"), "7-orbit-velvet-candle");
        assert_eq!(normalize("--"), "");
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A check from `from` that gets its turn at once, and finds a wrong
    /// code.
    fn checked(gate: &mut Gate, now: Instant, from: IpAddr) {
        let ticket = gate.reserve(now, from).expect("a place");
        assert_eq!(gate.turn(now, ticket), Turn::Go);
        gate.wrong(now, from);
    }

    #[test]
    fn checks_are_a_second_apart_and_a_network_has_one_waiting_at_most() {
        for later in [ms(100), Duration::from_secs(600)] {
            let start = Instant::now();
            let mut gate = Gate::default();
            checked(&mut gate, start, address(1));
            let ticket = gate.reserve(start + ms(100), address(2)).unwrap();
            let slot = start + ATTEMPT_INTERVAL;
            assert_eq!(gate.turn(start + ms(100), ticket), Turn::Wait(slot));
            // Another address of the same /24 waits behind it: refused.
            assert_eq!(
                gate.reserve(start + ms(100), IpAddr::from([10, 0, 2, 9])),
                None
            );
            assert_eq!(gate.turn(slot - ms(1), ticket), Turn::Wait(slot));
            assert_eq!(gate.turn(slot, ticket), Turn::Go);
            // Its place is free, and the next check a second on.
            let next = gate.reserve(slot, address(2)).unwrap();
            assert_eq!(gate.turn(slot, next), Turn::Wait(slot + ATTEMPT_INTERVAL));
            gate.done(next);
            // Much later, a check goes at once.
            checked(&mut gate, slot + ATTEMPT_INTERVAL + later, address(3));
        }
    }

    #[test]
    fn the_network_with_the_fewest_recent_checks_goes_first() {
        let start = Instant::now();
        let guesser = address(1);
        let user = address(2);
        for user_asks_first in [false, true] {
            let mut gate = Gate::default();
            for n in 0..3 {
                checked(&mut gate, start + ATTEMPT_INTERVAL * n, guesser);
            }
            // The guesser waits first, the user a tenth of a second later.
            let now = start + ATTEMPT_INTERVAL * 2 + ms(100);
            let slot = start + ATTEMPT_INTERVAL * 3;
            let guess = gate.reserve(now, guesser).unwrap();
            assert_eq!(gate.turn(now, guess), Turn::Wait(slot));
            let real = gate.reserve(now + ms(100), user).unwrap();
            assert_eq!(gate.turn(now + ms(100), real), Turn::Wait(slot));
            // At the slot, whoever asks first, the user goes.
            if !user_asks_first {
                assert_eq!(gate.turn(slot, guess), Turn::Wait(slot + ATTEMPT_INTERVAL));
            }
            assert_eq!(gate.turn(slot, real), Turn::Go);
            assert_eq!(gate.turn(slot, guess), Turn::Wait(slot + ATTEMPT_INTERVAL));
            assert_eq!(gate.turn(slot + ATTEMPT_INTERVAL, guess), Turn::Go);
        }
    }

    #[test]
    fn a_full_queue_gives_the_place_of_the_highest_scoring_network_to_one_scoring_lower() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let second = |n: u32| start + ATTEMPT_INTERVAL * n;
        // Networks 1 to 4 were wrong once (2 points each), network 5 twice
        // (4), network 6 three times (6), all within 9 s (points fade by
        // a tenth in that time).
        let busy = address(6);
        for n in 0..3 {
            checked(&mut gate, second(n), busy);
        }
        for n in 1..=5 {
            checked(&mut gate, second(2 + u32::from(n)), address(n));
        }
        checked(&mut gate, second(8), address(5));
        let now = second(8) + ms(100);
        let tickets: Vec<Ticket> = (1..=5)
            .map(|n| gate.reserve(now, address(n)).unwrap())
            .collect();
        // Full, and network 6 scores no lower than network 5: refused.
        assert_eq!(gate.reserve(now, busy), None);
        // A new network takes network 5's place, which is refused.
        let user = gate.reserve(now, address(7)).unwrap();
        assert_eq!(gate.turn(now, tickets[4]), Turn::Refused);
        let slot = second(9);
        assert_eq!(
            gate.turn(slot, tickets[0]),
            Turn::Wait(slot + ATTEMPT_INTERVAL)
        );
        assert_eq!(gate.turn(slot, user), Turn::Go);
        assert_eq!(gate.turn(slot + ATTEMPT_INTERVAL, tickets[0]), Turn::Go);
    }

    #[test]
    fn points_fade_by_half_every_minute() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let guesser = address(1);
        for n in 0..8 {
            checked(&mut gate, start + ATTEMPT_INTERVAL * n, guesser);
        }
        let last = start + ATTEMPT_INTERVAL * 7;
        let network = Prefix::of(guesser);
        let now = gate.score(network, last);
        assert!((15.0..16.0).contains(&now), "{now}");
        let tenth = gate.score(network, last + ms(100));
        assert!(tenth < now && tenth > now * 0.99, "{tenth}");
        let minute = gate.score(network, last + HALF_LIFE);
        assert!((minute - now / 2.0).abs() < 1e-9, "{minute}");
        // Ten minutes on, next to nothing: the network is as new as any.
        assert!(gate.score(network, last + Duration::from_secs(600)) < 0.02);
    }

    #[test]
    fn a_check_that_waited_more_than_five_seconds_is_refused_and_gives_up_its_place() {
        let start = Instant::now();
        let mut gate = Gate::default();
        checked(&mut gate, start, address(1));
        // Five checks waiting; network 1 goes before nobody: it has checked.
        let waiting: Vec<Ticket> = (2..=6)
            .map(|n| gate.reserve(start, address(n)).unwrap())
            .collect();
        let late = start + LONGEST_WAIT + ms(100);
        // The queue is free again for a newcomer, and the late are refused.
        let user = gate.reserve(late, address(7)).unwrap();
        for ticket in waiting {
            assert_eq!(gate.turn(late, ticket), Turn::Refused);
        }
        assert_eq!(gate.turn(late, user), Turn::Go);
    }

    /// The attack that kept every real client out: 40 guessers from 40
    /// networks, each asking again as soon as it was answered, for ten
    /// minutes a tenth of a second at a time. A real client from another
    /// network, trying every 30 s from half a second into the attack on,
    /// gets its check within the second every time but the first (the
    /// first five guessers' checks, as new as its own, may go before it);
    /// checks stay a second apart.
    #[test]
    fn forty_guessing_networks_keep_a_real_client_waiting_a_second_at_most() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let mut guessers: Vec<Option<(Ticket, Instant)>> = vec![None; 40];
        let mut real: Option<(Ticket, Instant, Instant)> = None;
        let mut checks: Vec<Instant> = Vec::new();
        let mut waits = Vec::new();
        let user = IpAddr::from([192, 0, 2, 1]);
        for tenth in 0..6000u64 {
            let now = start + ms(100 * tenth);
            for (n, guesser) in guessers.iter_mut().enumerate() {
                let from = IpAddr::from([10, 1, n as u8, 1]);
                let (ticket, at) = match *guesser {
                    Some(held) => held,
                    None => match gate.reserve(now, from) {
                        Some(ticket) => (ticket, now),
                        None => continue,
                    },
                };
                if now < at {
                    continue;
                }
                *guesser = match gate.turn(now, ticket) {
                    Turn::Go => {
                        checks.push(now);
                        gate.wrong(now, from);
                        None
                    }
                    Turn::Wait(at) => Some((ticket, at)),
                    Turn::Refused => None,
                };
            }
            if tenth % 300 == 5 {
                assert!(real.is_none());
                let ticket = gate.reserve(now, user).expect("never refused");
                real = Some((ticket, now, now));
            }
            if let Some((ticket, since, at)) = real
                && now >= at
            {
                real = match gate.turn(now, ticket) {
                    Turn::Go => {
                        checks.push(now);
                        waits.push(now - since);
                        None
                    }
                    Turn::Wait(at) => Some((ticket, since, at)),
                    Turn::Refused => panic!("refused at {tenth}"),
                };
            }
        }
        assert_eq!(waits.len(), 20);
        // The first, half a second in, may find the first five guessers'
        // checks ahead of it, as new as its own; then none.
        assert!(waits[0] <= LONGEST_WAIT, "{waits:?}");
        assert!(
            waits[1..].iter().all(|&wait| wait <= ATTEMPT_INTERVAL),
            "{waits:?}"
        );
        assert!(checks.windows(2).all(|w| w[1] - w[0] >= ATTEMPT_INTERVAL));
        assert!(checks.len() > 550, "{}", checks.len());
    }

    const CODE: &str = "7-orbit-velvet-candle";
    const EXPORTER: [u8; 32] = [7; 32];

    /// An address of network (IPv4 /24) `n`.
    fn address(n: u8) -> IpAddr {
        IpAddr::from([10, 0, n, 1])
    }

    /// The client, played in memory with its own code: its SPAKE2 message
    /// and proof, and the key to judge the server's answer with.
    struct Client {
        message: Vec<u8>,
        proof: Vec<u8>,
        key: hmac::Key,
        exporter: [u8; 32],
    }

    impl Client {
        /// As `as_client` does, having read the server's first frame.
        fn new(code: &str, exporter: [u8; 32], server_message: &[u8]) -> Self {
            let (spake, message) = start_spake(code, Spake2::start_a);
            let key = client_key(spake, server_message).unwrap();
            let proof = proof(&key, b"client", &exporter).as_ref().to_vec();
            Self {
                message,
                proof,
                key,
                exporter,
            }
        }

        fn judge(&self, step: &Step) -> Result<(), Failure> {
            assert_eq!(step.send.len(), 1, "{step:?}");
            judge_answer(&self.key, &self.exporter, &step.send[0])
        }
    }

    /// Starts an exchange from `from` and plays a client knowing `code`
    /// (over a session exporting `exporter`) up to its proof, sent at `now`.
    fn until_proof(
        code: &str,
        exporter: [u8; 32],
        from: IpAddr,
        now: Instant,
        gate: &mut Gate,
    ) -> (ServerExchange, Client, Step) {
        let (mut server, first) = ServerExchange::start(CODE, EXPORTER, from);
        assert_eq!(first.state, Progress::Waiting { at: None });
        assert_eq!(first.send.len(), 1);
        assert_eq!(first.send[0].len(), 33);
        let client = Client::new(code, exporter, &first.send[0]);
        assert_eq!(server.tick(now, gate), Step::waiting(None));
        assert_eq!(
            server.received(&client.message, now, gate),
            Step::waiting(None)
        );
        assert_eq!(server.tick(now, gate), Step::waiting(None));
        let step = server.received(&client.proof, now, gate);
        (server, client, step)
    }

    /// True if `from` has no check waiting at `gate` (its reservation, if
    /// any, was released). Takes a slot if so.
    fn free_for(gate: &mut Gate, now: Instant, from: IpAddr) -> bool {
        gate.reserve(now, from).is_some()
    }

    #[test]
    fn the_right_code_is_admitted_at_once_when_the_gate_is_free() {
        let now = Instant::now();
        let from = address(1);
        for typed in [CODE, " 7 Orbit  velvet-CANDLE\n"] {
            let mut gate = Gate::default();
            let (mut server, client, step) = until_proof(typed, EXPORTER, from, now, &mut gate);
            assert_eq!(step.state, Progress::Admitted, "{typed:?}");
            assert_eq!(client.judge(&step), Ok(()));
            // Nothing more to do, and the check is released.
            let later = server.tick(now, &mut gate);
            assert_eq!(later.state, Progress::Admitted);
            assert!(later.send.is_empty());
            assert!(free_for(&mut gate, now, from));
        }
    }

    #[test]
    fn the_right_code_is_admitted_only_at_its_turn() {
        let start = Instant::now();
        let us = address(100);
        for wait in [ms(100), ms(900)] {
            let mut gate = Gate::default();
            // Another checked at `start`: the next check is a second on.
            checked(&mut gate, start, address(1));
            let slot = start + ATTEMPT_INTERVAL;
            let now = slot - wait;
            let (mut server, client, step) = until_proof(CODE, EXPORTER, us, now, &mut gate);
            assert_eq!(step, Step::waiting(Some(slot)), "{wait:?}");
            assert!(server.waits_at_gate());
            // Just before the slot: still waiting, nothing said.
            let before = slot - ms(1);
            assert_eq!(server.tick(before, &mut gate), Step::waiting(Some(slot)));
            // Its check is the one waiting for this network.
            assert_eq!(gate.reserve(before, us), None);
            let step = server.tick(slot, &mut gate);
            assert_eq!(step.state, Progress::Admitted, "{wait:?}");
            assert_eq!(client.judge(&step), Ok(()));
            assert!(!server.waits_at_gate());
            assert!(free_for(&mut gate, slot, us));
        }
    }

    #[test]
    fn a_late_tick_checks_at_once() {
        let start = Instant::now();
        let mut gate = Gate::default();
        checked(&mut gate, start, address(1));
        let (mut server, client, step) = until_proof(CODE, EXPORTER, address(2), start, &mut gate);
        let slot = start + ATTEMPT_INTERVAL;
        assert_eq!(step, Step::waiting(Some(slot)));
        let step = server.tick(slot + Duration::from_secs(3), &mut gate);
        assert_eq!(step.state, Progress::Admitted);
        assert_eq!(client.judge(&step), Ok(()));
    }

    #[test]
    fn a_wrong_code_is_refused_with_the_notice() {
        let now = Instant::now();
        let mut gate = Gate::default();
        let from = address(1);
        let (mut server, client, step) =
            until_proof("8-orbit-velvet-candle", EXPORTER, from, now, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::WrongCode));
        assert_eq!(step.send, vec![WRONG_CODE_NOTICE.as_bytes().to_vec()]);
        assert_eq!(
            client.judge(&step),
            Err(Failure::Refused(WRONG_CODE_NOTICE.into()))
        );
        assert_ne!(WRONG_CODE_NOTICE.len(), PROOF_LEN);
        assert!(free_for(&mut gate, now, from));
        // It stays refused, and says nothing more.
        let later = server.tick(now, &mut gate);
        assert_eq!(later.state, Progress::Refused(Failure::WrongCode));
        assert!(later.send.is_empty());
    }

    #[test]
    fn the_right_code_over_another_session_is_refused() {
        // A man in the middle relays the SPAKE2 messages between two TLS
        // sessions: the exporters differ, so the proof fails.
        let now = Instant::now();
        let mut gate = Gate::default();
        let (_, _, step) = until_proof(CODE, [8; 32], address(1), now, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::WrongCode));
        assert_eq!(step.send, vec![WRONG_CODE_NOTICE.as_bytes().to_vec()]);
    }

    #[test]
    fn a_second_check_waiting_from_an_address_is_refused_as_busy() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let us = address(1);
        checked(&mut gate, start, address(2));
        let (mut first, first_client, step) = until_proof(CODE, EXPORTER, us, start, &mut gate);
        let slot = start + ATTEMPT_INTERVAL;
        assert_eq!(step, Step::waiting(Some(slot)));
        let (_, second_client, step) = until_proof(CODE, EXPORTER, us, start, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::TooManyAttempts));
        assert_eq!(step.send, vec![BUSY_NOTICE.as_bytes().to_vec()]);
        assert_eq!(
            second_client.judge(&step),
            Err(Failure::Refused(BUSY_NOTICE.into()))
        );
        // The refused one held nothing, and released nothing: the first
        // still holds the address's one check, and gets it.
        assert_eq!(gate.reserve(start, us), None);
        let step = first.tick(slot, &mut gate);
        assert_eq!(step.state, Progress::Admitted);
        assert_eq!(first_client.judge(&step), Ok(()));
    }

    #[test]
    fn a_full_queue_of_networks_scoring_no_higher_refuses_a_newcomer_as_busy() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let us = address(100);
        // We were wrong once (2 points); five networks wait with 1 each.
        checked(&mut gate, start, us);
        let waiting: Vec<Ticket> = (1..=5)
            .map(|n| gate.reserve(start, address(n)).unwrap())
            .collect();
        let (_, _, step) = until_proof(CODE, EXPORTER, us, start, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::TooManyAttempts));
        assert_eq!(step.send, vec![BUSY_NOTICE.as_bytes().to_vec()]);
        // It took no place: once one of them is checked, it may wait.
        let later = start + ATTEMPT_INTERVAL;
        assert_eq!(gate.turn(later, waiting[0]), Turn::Go);
        assert!(gate.reserve(later, us).is_some());
    }

    #[test]
    fn a_malformed_spake2_message_is_refused_as_broken() {
        let now = Instant::now();
        let from = address(1);
        let mut well_sized = vec![b'B'];
        well_sized.extend([0u8; 32]);
        for message in [b"not a SPAKE2 message".to_vec(), well_sized] {
            let mut gate = Gate::default();
            let (mut server, _) = ServerExchange::start(CODE, EXPORTER, from);
            assert_eq!(
                server.received(&message, now, &mut gate),
                Step::waiting(None)
            );
            let step = server.received(&[0; PROOF_LEN], now, &mut gate);
            assert_eq!(
                step,
                Step {
                    send: Vec::new(),
                    state: Progress::Refused(Failure::Broken(
                        "the client sent a malformed code message".into()
                    )),
                }
            );
            assert!(free_for(&mut gate, now, from));
        }
    }

    #[test]
    fn a_frame_when_none_is_expected_is_refused_as_broken() {
        let start = Instant::now();
        let from = address(1);
        let unexpected = Progress::Refused(Failure::Broken("unexpected message".into()));
        // A third frame while the proof waits for its slot.
        let mut gate = Gate::default();
        checked(&mut gate, start, address(2));
        let (mut server, _, step) = until_proof(CODE, EXPORTER, from, start, &mut gate);
        assert!(matches!(step.state, Progress::Waiting { at: Some(_) }));
        let step = server.received(b"hello", start, &mut gate);
        assert_eq!(step.state, unexpected);
        assert!(step.send.is_empty());
        assert!(free_for(&mut gate, start, from));
        // The check never comes.
        let step = server.tick(start + Duration::from_secs(10), &mut gate);
        assert_eq!(step.state, unexpected);
        assert!(step.send.is_empty());
        // A frame after the end.
        let mut gate = Gate::default();
        let (mut server, _, step) = until_proof(CODE, EXPORTER, from, start, &mut gate);
        assert_eq!(step.state, Progress::Admitted);
        assert_eq!(
            server.received(b"hello", start, &mut gate).state,
            unexpected
        );
        // A frame bigger than the exchange takes, even where one is expected.
        let mut gate = Gate::default();
        let (mut server, _) = ServerExchange::start(CODE, EXPORTER, from);
        let big = vec![0; ServerExchange::MAX_FRAME + 1];
        assert_eq!(
            server.received(&big, start, &mut gate).state,
            Progress::Refused(Failure::Broken("unexpected message of 1025 bytes".into()))
        );
    }

    #[test]
    fn abandoning_frees_the_reservation() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let from = address(1);
        checked(&mut gate, start, address(2));
        let (server, _, step) = until_proof(CODE, EXPORTER, from, start, &mut gate);
        assert!(matches!(step.state, Progress::Waiting { at: Some(_) }));
        // An exchange from the same address abandoned before its proof holds
        // nothing, and releases nothing.
        let (early, _) = ServerExchange::start(CODE, EXPORTER, from);
        early.abandon(&mut gate);
        assert_eq!(gate.reserve(start, from), None);
        server.abandon(&mut gate);
        assert!(free_for(&mut gate, start, from));
    }

    #[test]
    fn ten_minutes_after_a_full_queue_the_gate_is_free() {
        let start = Instant::now();
        let mut gate = Gate::default();
        for n in 0..5 {
            gate.reserve(start, address(n)).unwrap();
        }
        let much_later = start + Duration::from_secs(600);
        let (_, client, step) = until_proof(CODE, EXPORTER, address(100), much_later, &mut gate);
        assert_eq!(step.state, Progress::Admitted);
        assert_eq!(client.judge(&step), Ok(()));
    }
}
