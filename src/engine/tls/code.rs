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
//! 3. the server checks it, at most one check a second for the whole server,
//!    and answers with its own proof (`"server"`), or with a text frame that
//!    says why it refuses, and closes.
//!
//! The server's side is [`ServerExchange`], a state machine with no I/O and
//! no clock, driven by the server's event loop (`crate::engine`'s gate).

use std::collections::HashSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use ring::hmac;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::wire::frame::{HEADER_LEN, encode_frame};

/// The label for the TLS exporter (RFC 8446 section 7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-chat-code-v1";

/// How many words follow the number in a code we make: 3 words of a
/// 2,048-word list and a number up to 999 are 43 bits.
const WORDS: usize = 3;

/// Code checks are spaced by this much, server-wide.
pub const ATTEMPT_INTERVAL: Duration = Duration::from_secs(1);

/// A client whose check would have to wait longer than this is refused.
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

/// Spaces out code checks for the whole server: a state machine fed the time.
/// Each address has at most one check waiting, so one guesser cannot fill
/// the queue ahead of everyone else.
#[derive(Debug, Default)]
pub struct Gate {
    next_free: Option<Instant>,
    waiting: HashSet<IpAddr>,
}

impl Gate {
    /// Reserves the next check for `from`: when it may be made, or `None` if
    /// `from` already has one waiting or it would be too long from `now`
    /// (the client is refused instead). Call [`Gate::done`] after the check.
    pub fn reserve(&mut self, now: Instant, from: IpAddr) -> Option<Instant> {
        let at = self.next_free.map_or(now, |free| free.max(now));
        if at.duration_since(now) > LONGEST_WAIT || !self.waiting.insert(from) {
            return None;
        }
        self.next_free = Some(at + ATTEMPT_INTERVAL);
        Some(at)
    }

    pub fn done(&mut self, from: IpAddr) {
        self.waiting.remove(&from);
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
        let mut shown = Vec::new();
        crate::wire::display::push_visible(&mut shown, why.as_bytes());
        return Err(Failure::Refused(
            String::from_utf8_lossy(&shown).into_owned(),
        ));
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
    /// Holding the gate's slot at `at` for the check of `proof`.
    Slot {
        spake: Spake2<Ed25519Group>,
        theirs: Vec<u8>,
        proof: Vec<u8>,
        at: Instant,
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
                let Some(at) = gate.reserve(now, self.from) else {
                    return self.end(vec![BUSY_NOTICE.into()], Failure::TooManyAttempts);
                };
                let proof = payload.to_vec();
                self.stage = Stage::Slot {
                    spake,
                    theirs,
                    proof,
                    at,
                };
                self.tick(now, gate)
            }
            stage => {
                self.stage = stage;
                self.fail(Failure::Broken("unexpected message".into()), gate)
            }
        }
    }

    /// Time passed: the slot reserved at the gate may have come. If it has,
    /// the proof is checked, and the reservation released.
    pub fn tick(&mut self, now: Instant, gate: &mut Gate) -> Step {
        match &self.stage {
            Stage::Message(_) | Stage::Proof { .. } => return Step::waiting(None),
            Stage::Slot { at, .. } if now < *at => return Step::waiting(Some(*at)),
            Stage::Over(progress) => {
                return Step {
                    send: Vec::new(),
                    state: progress.clone(),
                };
            }
            Stage::Slot { .. } => {}
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
        let checked = check(spake, &theirs, &their_proof, &self.exporter);
        gate.done(self.from);
        match checked {
            Ok(Some(key)) => {
                let ours = proof(&key, b"server", &self.exporter);
                self.stage = Stage::Over(Progress::Admitted);
                Step {
                    send: vec![ours.as_ref().to_vec()],
                    state: Progress::Admitted,
                }
            }
            Ok(None) => self.end(vec![WRONG_CODE_NOTICE.into()], Failure::WrongCode),
            Err(failure) => self.end(Vec::new(), failure),
        }
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

    /// Frees the gate's slot if this exchange holds one.
    fn release(&mut self, gate: &mut Gate) {
        if let Stage::Slot { .. } = self.stage {
            gate.done(self.from);
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

    #[test]
    fn checks_are_a_second_apart_and_a_long_queue_is_refused() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let address = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert_eq!(gate.reserve(start, address(0)), Some(start));
        // 0.1 s later: each waits for its slot, a second after the last.
        let later = start + Duration::from_millis(100);
        for n in 1..=5 {
            assert_eq!(
                gate.reserve(later, address(n)),
                Some(start + ATTEMPT_INTERVAL * u32::from(n))
            );
        }
        // The sixth would wait 5.9 s: refused, and it takes no slot.
        assert_eq!(gate.reserve(later, address(6)), None);
        let after_four = start + Duration::from_secs(4);
        assert_eq!(
            gate.reserve(after_four, address(6)),
            Some(start + ATTEMPT_INTERVAL * 6)
        );
        // Ten minutes on, the gate is free again.
        let much_later = start + Duration::from_secs(600);
        assert_eq!(gate.reserve(much_later, address(7)), Some(much_later));
    }

    #[test]
    fn an_address_has_one_check_waiting_at_most() {
        let start = Instant::now();
        let mut gate = Gate::default();
        let guesser = IpAddr::from([192, 0, 2, 1]);
        let user = IpAddr::from([192, 0, 2, 2]);
        assert_eq!(gate.reserve(start, guesser), Some(start));
        assert_eq!(gate.reserve(start, guesser), None);
        // The user waits one slot, not behind a queue of guesses.
        assert_eq!(gate.reserve(start, user), Some(start + ATTEMPT_INTERVAL));
        gate.done(guesser);
        assert_eq!(
            gate.reserve(start, guesser),
            Some(start + ATTEMPT_INTERVAL * 2)
        );
    }

    const CODE: &str = "7-orbit-velvet-candle";
    const EXPORTER: [u8; 32] = [7; 32];

    fn address(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
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
    fn the_right_code_is_admitted_only_at_its_slot() {
        let start = Instant::now();
        let us = address(100);
        for wait in [Duration::from_millis(100), Duration::from_secs(4)] {
            let mut gate = Gate::default();
            // Others ahead, checked a second apart from `start`.
            let ahead = wait.as_secs_f64().ceil() as u8;
            for n in 0..ahead {
                assert!(gate.reserve(start, address(n)).is_some());
            }
            let now = start + ATTEMPT_INTERVAL * u32::from(ahead) - wait;
            let slot = now + wait;
            let (mut server, client, step) = until_proof(CODE, EXPORTER, us, now, &mut gate);
            assert_eq!(step, Step::waiting(Some(slot)), "{wait:?}");
            // Just before the slot: still waiting, nothing said.
            let before = slot - Duration::from_millis(1);
            assert_eq!(server.tick(before, &mut gate), Step::waiting(Some(slot)));
            // Its check is the one waiting for this address.
            assert_eq!(gate.reserve(before, us), None);
            let step = server.tick(slot, &mut gate);
            assert_eq!(step.state, Progress::Admitted, "{wait:?}");
            assert_eq!(client.judge(&step), Ok(()));
            assert!(free_for(&mut gate, slot, us));
        }
    }

    #[test]
    fn a_late_tick_checks_at_once() {
        let start = Instant::now();
        let mut gate = Gate::default();
        gate.reserve(start, address(1)).unwrap();
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
        gate.reserve(start, address(2)).unwrap();
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
    fn a_queue_longer_than_five_seconds_is_refused_as_busy() {
        let start = Instant::now();
        let mut gate = Gate::default();
        for n in 0..6 {
            gate.reserve(start, address(n)).unwrap();
        }
        let us = address(100);
        let (_, _, step) = until_proof(CODE, EXPORTER, us, start, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::TooManyAttempts));
        assert_eq!(step.send, vec![BUSY_NOTICE.as_bytes().to_vec()]);
        // It took no slot: a second later the wait is 5 s, and allowed.
        let later = start + ATTEMPT_INTERVAL;
        assert_eq!(gate.reserve(later, us), Some(start + ATTEMPT_INTERVAL * 6));
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
        gate.reserve(start, address(2)).unwrap();
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
        gate.reserve(start, address(2)).unwrap();
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
        for n in 0..6 {
            gate.reserve(start, address(n)).unwrap();
        }
        let much_later = start + Duration::from_secs(600);
        let (_, client, step) = until_proof(CODE, EXPORTER, address(100), much_later, &mut gate);
        assert_eq!(step.state, Progress::Admitted);
        assert_eq!(client.judge(&step), Ok(()));
    }
}
