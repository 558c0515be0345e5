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

use std::collections::HashSet;
use std::io::{self, ErrorKind, Read};
use std::net::IpAddr;

use std::time::{Duration, Instant};

use ring::hmac;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::frame::{HEADER_LEN, encode_frame};
use crate::transport::{GiveUp, Transport};

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
pub const MAX_EXCHANGE_FRAME: usize = 1024;

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
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client's proof was wrong: the codes differ, or someone is in the middle.
    WrongCode,
    /// The server refused, and said why.
    Refused(String),
    /// The server's proof was wrong.
    ServerUnproven,
    TooManyAttempts,
    /// Malformed, missing or late messages.
    Broken(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::WrongCode => write!(f, "wrong code (or someone in the middle); refused"),
            Failure::Refused(why) => write!(f, "the server refused the code: {why}"),
            Failure::ServerUnproven => write!(
                f,
                "the server does not know the code: the code is wrong, or someone is in the middle; nothing was sent"
            ),
            Failure::TooManyAttempts => write!(f, "too many code attempts at once; refused"),
            Failure::Broken(why) => write!(f, "code exchange failed: {why}"),
        }
    }
}

const WRONG_CODE_NOTICE: &str = "wrong code (or someone in the middle)";
const BUSY_NOTICE: &str = "too many code attempts right now; try again in a few seconds";

/// The client's side: Ok once the server has proved it knows `code`.
pub fn as_client(transport: &Transport, code: &str, deadline: Instant) -> Result<(), Failure> {
    let Opened {
        spake,
        exporter,
        mut link,
        theirs,
    } = open(transport, code, deadline, Spake2::start_a)?;
    let key = spake
        .finish(&theirs)
        .map_err(|_| Failure::Broken("the server sent a malformed code message".into()))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    link.send(proof(&key, b"client", &exporter).as_ref())?;
    let answer = link.receive()?;
    if answer.len() != PROOF_LEN {
        let why = String::from_utf8_lossy(&answer);
        let mut shown = Vec::new();
        crate::display::push_visible(&mut shown, why.as_bytes());
        return Err(Failure::Refused(
            String::from_utf8_lossy(&shown).into_owned(),
        ));
    }
    hmac::verify(&key, &transcript(b"server", &exporter), &answer)
        .map_err(|_| Failure::ServerUnproven)
}

/// The server's side of the exchange, as a state machine with no I/O and
/// no clock of its own: fed the client's frames and the time, it says what
/// to send and when to look again.
pub struct ServerExchange {
    from: IpAddr,
    exporter: [u8; 32],
    stage: Stage,
}

enum Stage {
    /// Waiting for the client's SPAKE2 message.
    Theirs(Spake2<Ed25519Group>),
    /// Waiting for the client's proof.
    Proof {
        spake: Spake2<Ed25519Group>,
        theirs: Vec<u8>,
    },
    /// The proof is in; the check waits for its slot at the gate.
    Slot {
        spake: Spake2<Ed25519Group>,
        theirs: Vec<u8>,
        proof: Vec<u8>,
        at: Instant,
    },
    Done,
}

/// What to do after a step of a [`ServerExchange`].
#[derive(Debug)]
pub struct Step {
    /// Payloads to send to the client, in order, each as one frame.
    pub send: Vec<Vec<u8>>,
    pub state: Progress,
}

/// Where a [`ServerExchange`] is.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the client's next frame, or (`at`) for its slot at the
    /// gate: step again with [`ServerExchange::tick`] then.
    Waiting { at: Option<Instant> },
    /// The client proved the code; the conversation's frames follow.
    Admitted,
    /// Refused (the notice, if any, is in `send`; then close).
    Refused(Failure),
}

impl Step {
    fn waiting(send: Vec<Vec<u8>>, at: Option<Instant>) -> Self {
        Self {
            send,
            state: Progress::Waiting { at },
        }
    }

    fn refused(send: Vec<Vec<u8>>, failure: Failure) -> Self {
        Self {
            send,
            state: Progress::Refused(failure),
        }
    }
}

impl ServerExchange {
    /// Starts the exchange with a client at `from` over a TLS session whose
    /// exported keying material ([`EXPORTER_LABEL`]) is `exporter`: the
    /// step sends our SPAKE2 message.
    pub fn start(code: &str, exporter: [u8; 32], from: IpAddr) -> (Self, Step) {
        let (spake, ours) = Spake2::<Ed25519Group>::start_b(
            &Password::new(normalize(code).as_bytes()),
            &Identity::new(b"chat-client"),
            &Identity::new(b"chat-server"),
        );
        let exchange = Self {
            from,
            exporter,
            stage: Stage::Theirs(spake),
        };
        (exchange, Step::waiting(vec![ours], None))
    }

    /// The payload of one frame from the client, received at `now`.
    pub fn received(&mut self, payload: &[u8], now: Instant, gate: &mut Gate) -> Step {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Theirs(spake) => {
                self.stage = Stage::Proof {
                    spake,
                    theirs: payload.to_vec(),
                };
                Step::waiting(Vec::new(), None)
            }
            Stage::Proof { spake, theirs } => {
                let Some(at) = gate.reserve(now, self.from) else {
                    return Step::refused(
                        vec![BUSY_NOTICE.as_bytes().to_vec()],
                        Failure::TooManyAttempts,
                    );
                };
                self.stage = Stage::Slot {
                    spake,
                    theirs,
                    proof: payload.to_vec(),
                    at,
                };
                self.tick(now, gate)
            }
            Stage::Slot { .. } => {
                gate.done(self.from);
                Step::refused(Vec::new(), Failure::Broken("unexpected message".into()))
            }
            Stage::Done => Step::refused(Vec::new(), Failure::Broken("unexpected message".into())),
        }
    }

    /// Time passed: the check is made once its slot at the gate has come.
    pub fn tick(&mut self, now: Instant, gate: &mut Gate) -> Step {
        if let Stage::Slot { at, .. } = &self.stage
            && now < *at
        {
            return Step::waiting(Vec::new(), Some(*at));
        }
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Slot {
                spake,
                theirs,
                proof: their_proof,
                ..
            } => {
                let checked = check(spake, &theirs, &their_proof, &self.exporter);
                gate.done(self.from);
                match checked {
                    Ok(Some(key)) => Step {
                        send: vec![proof(&key, b"server", &self.exporter).as_ref().to_vec()],
                        state: Progress::Admitted,
                    },
                    Ok(None) => Step::refused(
                        vec![WRONG_CODE_NOTICE.as_bytes().to_vec()],
                        Failure::WrongCode,
                    ),
                    Err(failure) => Step::refused(Vec::new(), failure),
                }
            }
            other => {
                self.stage = other;
                Step::waiting(Vec::new(), None)
            }
        }
    }

    /// The connection ended or timed out before the exchange did: its
    /// reservation at the gate, if any, is freed.
    pub fn abandon(self, gate: &mut Gate) {
        if let Stage::Slot { .. } = self.stage {
            gate.done(self.from);
        }
    }
}

/// How one side starts SPAKE2: as A (the client) or B (the server).
type Start = fn(&Password, &Identity, &Identity) -> (Spake2<Ed25519Group>, Vec<u8>);

/// The first step, the same on both sides: start SPAKE2 as `start` says,
/// export the session's keying material, and swap SPAKE2 messages.
fn open<'a>(
    transport: &'a Transport,
    code: &str,
    deadline: Instant,
    start: Start,
) -> Result<Opened<'a>, Failure> {
    let (spake, ours) = start(
        &Password::new(normalize(code).as_bytes()),
        &Identity::new(b"chat-client"),
        &Identity::new(b"chat-server"),
    );
    let exporter = transport.export(EXPORTER_LABEL).map_err(Failure::Broken)?;
    let mut link = Link::new(transport, deadline)?;
    link.send(&ours)?;
    let theirs = link.receive()?;
    Ok(Opened {
        spake,
        exporter,
        link,
        theirs,
    })
}

/// Where both sides are after [`open`].
struct Opened<'a> {
    spake: Spake2<Ed25519Group>,
    exporter: [u8; 32],
    link: Link<'a>,
    /// The other side's SPAKE2 message.
    theirs: Vec<u8>,
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

/// Frames over the connection before the conversation starts, each read
/// exactly (nothing past the last frame is taken from the session), all
/// within one deadline.
struct Link<'a> {
    transport: &'a Transport,
    reader: crate::transport::Reader,
    deadline: Instant,
}

impl<'a> Link<'a> {
    fn new(transport: &'a Transport, deadline: Instant) -> Result<Self, Failure> {
        let reader = transport
            .reader()
            .map_err(|e| Failure::Broken(crate::errors::lowercase_os_error(&e)))?;
        Ok(Self {
            transport,
            reader,
            deadline,
        })
    }

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
        let sent = self
            .transport
            .stream()
            .set_write_timeout(Some(left))
            .and_then(|()| self.transport.writer()?.write_batches(&[frame], &GiveUp));
        match sent {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::Broken("no answer in time".into())),
            Err(e) => Err(Failure::Broken(crate::errors::lowercase_os_error(&e))),
        }
    }

    fn receive(&mut self) -> Result<Vec<u8>, Failure> {
        let mut header = [0u8; HEADER_LEN];
        self.read_exact(&mut header)?;
        let len = u32::from_be_bytes(header) as usize;
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
            self.transport
                .stream()
                .set_read_timeout(Some(left))
                .map_err(|e| Failure::Broken(crate::errors::lowercase_os_error(&e)))?;
            match self.reader.read(buf) {
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

    /// The client's side of an exchange, played in memory.
    struct Client {
        spake: Option<Spake2<Ed25519Group>>,
        key: Option<hmac::Key>,
        exporter: [u8; 32],
    }

    impl Client {
        fn new(code: &str, exporter: [u8; 32]) -> (Self, Vec<u8>) {
            let (spake, ours) = Spake2::<Ed25519Group>::start_a(
                &Password::new(normalize(code).as_bytes()),
                &Identity::new(b"chat-client"),
                &Identity::new(b"chat-server"),
            );
            let client = Self {
                spake: Some(spake),
                key: None,
                exporter,
            };
            (client, ours)
        }

        /// Its proof, given the server's SPAKE2 message.
        fn prove(&mut self, theirs: &[u8]) -> Vec<u8> {
            let key = self.spake.take().unwrap().finish(theirs).unwrap();
            let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
            let proof = proof(&key, b"client", &self.exporter).as_ref().to_vec();
            self.key = Some(key);
            proof
        }

        fn trusts(&self, answer: &[u8]) -> bool {
            let key = self.key.as_ref().unwrap();
            hmac::verify(key, &transcript(b"server", &self.exporter), answer).is_ok()
        }
    }

    const EXPORTER: [u8; 32] = [7; 32];

    fn client_at(n: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, n])
    }

    /// Runs an exchange up to the client's proof, at `now`.
    fn up_to_proof(
        server_code: &str,
        client_code: &str,
        from: IpAddr,
        now: Instant,
        gate: &mut Gate,
    ) -> (ServerExchange, Client, Step) {
        let (mut server, first) = ServerExchange::start(server_code, EXPORTER, from);
        assert_eq!(first.state, Progress::Waiting { at: None });
        let (mut client, ours) = Client::new(client_code, EXPORTER);
        let step = server.received(&ours, now, gate);
        assert_eq!(step.state, Progress::Waiting { at: None });
        assert!(step.send.is_empty());
        let proof = client.prove(&first.send[0]);
        let step = server.received(&proof, now, gate);
        (server, client, step)
    }

    #[test]
    fn the_right_code_is_admitted_at_once_when_the_gate_is_free() {
        let (now, mut gate) = (Instant::now(), Gate::default());
        let (_, client, step) = up_to_proof(
            "7-orbit-velvet-candle",
            "7 Orbit velvet CANDLE",
            client_at(1),
            now,
            &mut gate,
        );
        assert_eq!(step.state, Progress::Admitted);
        assert!(client.trusts(&step.send[0]), "the server proves it too");
        // Its reservation was given back.
        assert_eq!(
            gate.reserve(now, client_at(1)),
            Some(now + ATTEMPT_INTERVAL)
        );
    }

    #[test]
    fn a_check_waits_for_its_slot_without_sending_anything() {
        let (t0, mut gate) = (Instant::now(), Gate::default());
        for n in 10..14 {
            gate.reserve(t0, client_at(n)).unwrap();
        }
        // Four checks ahead: its slot is 4 s on.
        let (mut server, client, step) =
            up_to_proof("1-a-b-c", "1-a-b-c", client_at(1), t0, &mut gate);
        let slot = t0 + ATTEMPT_INTERVAL * 4;
        assert_eq!(step.state, Progress::Waiting { at: Some(slot) });
        assert!(step.send.is_empty());
        let early = server.tick(t0 + Duration::from_millis(100), &mut gate);
        assert_eq!(early.state, Progress::Waiting { at: Some(slot) });
        assert!(early.send.is_empty());
        let due = server.tick(slot, &mut gate);
        assert_eq!(due.state, Progress::Admitted);
        assert!(client.trusts(&due.send[0]));
    }

    #[test]
    fn a_wrong_code_is_refused_with_a_notice() {
        let (now, mut gate) = (Instant::now(), Gate::default());
        let (_, client, step) = up_to_proof("1-a-b-c", "1-a-b-d", client_at(1), now, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::WrongCode));
        assert_eq!(step.send, [WRONG_CODE_NOTICE.as_bytes()]);
        assert!(!client.trusts(&step.send[0]));
    }

    #[test]
    fn a_busy_gate_refuses_a_second_check_from_an_address_and_a_long_queue() {
        let (now, mut gate) = (Instant::now(), Gate::default());
        gate.reserve(now, client_at(1)).unwrap();
        let (_, _, step) = up_to_proof("1-a-b-c", "1-a-b-c", client_at(1), now, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::TooManyAttempts));
        assert_eq!(step.send, [BUSY_NOTICE.as_bytes()]);
        for n in 2..7 {
            gate.reserve(now, client_at(n)).unwrap();
        }
        let (_, _, step) = up_to_proof("1-a-b-c", "1-a-b-c", client_at(9), now, &mut gate);
        assert_eq!(step.state, Progress::Refused(Failure::TooManyAttempts));
        // Ten minutes on, the gate is free again.
        let later = now + Duration::from_secs(600);
        for n in 1..7 {
            gate.done(client_at(n));
        }
        let (_, _, step) = up_to_proof("1-a-b-c", "1-a-b-c", client_at(9), later, &mut gate);
        assert_eq!(step.state, Progress::Admitted);
    }

    #[test]
    fn a_malformed_message_or_an_unexpected_frame_is_refused() {
        let (now, mut gate) = (Instant::now(), Gate::default());
        let (mut server, _) = ServerExchange::start("1-a-b-c", EXPORTER, client_at(1));
        server.received(b"not a spake2 message", now, &mut gate);
        let step = server.received(&[0; 32], now, &mut gate);
        assert!(
            matches!(step.state, Progress::Refused(Failure::Broken(_))),
            "{step:?}"
        );
        // A third frame while the check waits for its slot.
        gate.reserve(now, client_at(5)).unwrap();
        let (mut server, _, step) = up_to_proof("1-a-b-c", "1-a-b-c", client_at(2), now, &mut gate);
        assert!(matches!(step.state, Progress::Waiting { at: Some(_) }));
        let step = server.received(b"more", now, &mut gate);
        assert_eq!(
            step.state,
            Progress::Refused(Failure::Broken("unexpected message".into()))
        );
        // Its reservation was freed: the address may try again.
        assert!(gate.reserve(now, client_at(2)).is_some());
    }

    #[test]
    fn abandoning_a_waiting_check_frees_its_reservation() {
        let (now, mut gate) = (Instant::now(), Gate::default());
        gate.reserve(now, client_at(5)).unwrap();
        let (server, _, _) = up_to_proof("1-a-b-c", "1-a-b-c", client_at(1), now, &mut gate);
        assert_eq!(
            gate.reserve(now, client_at(1)),
            None,
            "one waiting per address"
        );
        server.abandon(&mut gate);
        assert!(gate.reserve(now, client_at(1)).is_some());
    }
}
