//! Version 2's forms: the offer that a version 1 peer cannot see, and the
//! control frames that only a peer which offered too is ever sent (see
//! `docs/PROTOCOL.md`, "Version 2: sessions").
//!
//! - The offer is [`OFFER_FRAMES`] empty frames in a row ([`OFFER_LEN`]
//!   zero bytes), which a version 1 peer skips as keepalives: a client's
//!   first bytes (inside TLS when TLS is on), and a server's answer to it,
//!   never sent to a client that did not offer.
//! - A control frame is a frame whose length header has its top bit set:
//!   the other 31 bits are its length, at most [`CONTROL_MAX`]; the first
//!   payload byte says which control it is. A data frame's length never has
//!   the top bit (no side takes messages of 2 GiB).
//!
//! Decoding checks the length against [`CONTROL_MAX`] before anything is
//! kept, as [`super::frame`] does for data frames.

use byteorder::{BigEndian, ByteOrder};

use super::frame::HEADER_LEN;

/// The offer: this many empty frames in a row (no version 1 program sends
/// more than one keepalive at a time).
pub const OFFER_FRAMES: usize = 8;
pub const OFFER_LEN: usize = OFFER_FRAMES * HEADER_LEN;

/// The bit of a length header that marks a control frame.
const CONTROL_BIT: u32 = 0x8000_0000;

/// The longest control payload: a `HELLO` (46 bytes) with room to grow.
pub const CONTROL_MAX: usize = 256;

/// The version this build speaks.
pub const VERSION: u8 = 2;

/// A session's secret name, sent once inside the connection (TLS when
/// TLS is on) and shown to nobody: with it a client will resume.
pub type Token = [u8; 16];

/// What a header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Data(usize),
    Control(usize),
}

/// Reads the header at the start of `bytes` of a peer that may send
/// control frames.
pub fn read_header(bytes: &[u8]) -> Option<Header> {
    let value = BigEndian::read_u32(bytes.get(..HEADER_LEN)?);
    Some(match value & CONTROL_BIT {
        0 => Header::Data(value as usize),
        _ => Header::Control((value & !CONTROL_BIT) as usize),
    })
}

/// A control frame's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Opens the session (sent once each way, after the peer's offer).
    Hello(Hello),
    /// The sender has taken the first `count` data frames we sent it since
    /// our `HELLO` (handed to its screen or its room, not merely read).
    Ack(u64),
    /// A heartbeat: the sender is alive and has had nothing else to send.
    Ping,
    /// The sender ends the connection on purpose, at once (its user left
    /// the waiting line, or interrupted): the session is not to be kept
    /// for a resume, whatever the connection's end looks like (a reset).
    Bye,
    /// The sender's side ends on purpose, in order: its end of stream
    /// follows. From a peer whose `HELLO` says [`SAYS_END`], an end of
    /// stream without it (or a `BYE`) is its program gone (killed, crashed),
    /// not the end of the conversation.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u8,
    /// This session's token, the sender's choice (the server's counts).
    pub token: Token,
    /// The token of a session the sender resumes, or zeros.
    pub resume_of: Token,
    /// How many of the receiver's data frames the sender has taken in the
    /// session it resumes (0 for a new one).
    pub received: u64,
    /// The receiver is to send something at least this often (a `PING`
    /// if nothing else), in milliseconds: the sender's `--dead-after` is
    /// a few of them.
    pub heartbeat_ms: u32,
    /// What the sender takes beyond version 2's first forms: a set of
    /// [`TAKES_LINE_BREAKS`] and later bits (0 from a sender that came
    /// before them and sent no such field).
    pub takes: u32,
    /// The largest message the sender takes, in bytes (0: not said, a
    /// sender from before the field): a longer one is refused where it is
    /// typed, rather than ending the conversation as a protocol error.
    pub max_message: u32,
}

/// In [`Hello::takes`]: the sender takes messages with line breaks (`\n`)
/// in them, each one message shown as one block; a sender without it is
/// sent a message of several lines as one message per line.
pub const TAKES_LINE_BREAKS: u32 = 1;

/// In [`Hello::takes`]: the sender says [`Control::End`] before its end
/// of stream whenever its side ends on purpose (since 2026-12-07): an end
/// of stream without it is its program gone.
pub const SAYS_END: u32 = 2;

/// What this build takes and does.
pub const TAKES: u32 = TAKES_LINE_BREAKS | SAYS_END;

/// The heartbeat a `HELLO` without one asks for.
pub const DEFAULT_HEARTBEAT_MS: u32 = 5_000;

const HELLO: u8 = b'H';
const ACK: u8 = b'A';
const PING: u8 = b'P';
const BYE: u8 = b'B';
const END: u8 = b'E';

/// A control frame the peer should not have sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadControl {
    #[error("an empty control frame")]
    Empty,
    #[error("a short control frame ({0})")]
    Short(char),
}

/// Appends `control` as a frame to `out`.
pub fn encode(out: &mut Vec<u8>, control: &Control) {
    let mut payload = Vec::with_capacity(64);
    match control {
        Control::Hello(hello) => {
            payload.push(HELLO);
            payload.push(hello.version);
            payload.extend_from_slice(&hello.token);
            payload.extend_from_slice(&hello.resume_of);
            payload.extend_from_slice(&hello.received.to_be_bytes());
            payload.extend_from_slice(&hello.heartbeat_ms.to_be_bytes());
            payload.extend_from_slice(&hello.takes.to_be_bytes());
            payload.extend_from_slice(&hello.max_message.to_be_bytes());
        }
        Control::Ack(count) => {
            payload.push(ACK);
            payload.extend_from_slice(&count.to_be_bytes());
        }
        Control::Ping => payload.push(PING),
        Control::Bye => payload.push(BYE),
        Control::End => payload.push(END),
    }
    let header = CONTROL_BIT | payload.len() as u32;
    out.extend_from_slice(&header.to_be_bytes());
    out.extend_from_slice(&payload);
}

/// Decodes a control payload (the header's length already checked against
/// [`CONTROL_MAX`]). `Ok(None)`: a control of a later version, which this
/// one skips, so that versions can add controls without a new offer.
pub fn decode(payload: &[u8]) -> Result<Option<Control>, BadControl> {
    let (&kind, rest) = payload.split_first().ok_or(BadControl::Empty)?;
    let short = || BadControl::Short(kind as char);
    Ok(Some(match kind {
        HELLO => {
            let (&version, rest) = rest.split_first().ok_or_else(short)?;
            if rest.len() < 16 + 16 + 8 {
                return Err(short());
            }
            let mut token = [0; 16];
            token.copy_from_slice(&rest[..16]);
            let mut resume_of = [0; 16];
            resume_of.copy_from_slice(&rest[16..32]);
            Control::Hello(Hello {
                version,
                token,
                resume_of,
                received: BigEndian::read_u64(&rest[32..40]),
                heartbeat_ms: rest
                    .get(40..44)
                    .map_or(DEFAULT_HEARTBEAT_MS, BigEndian::read_u32),
                // Added later: a `HELLO` without it takes nothing more.
                takes: rest.get(44..48).map_or(0, BigEndian::read_u32),
                max_message: rest.get(48..52).map_or(0, BigEndian::read_u32),
            })
        }
        ACK => Control::Ack(BigEndian::read_u64(rest.get(..8).ok_or_else(short)?)),
        PING => Control::Ping,
        BYE => Control::Bye,
        END => Control::End,
        _ => return Ok(None),
    }))
}

/// A token of zeros: no session to resume (in `resume_of`), or one the
/// sender will not keep for a resume (in `token`: a room's member, a
/// server started with `--resume-for 0`).
pub const NO_TOKEN: Token = [0; 16];

/// What a new connection's first bytes say about it, for a server that
/// keeps sessions: a client resuming one sends its offer and its `HELLO`
/// at once, in one write (a new client's `HELLO` waits for ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// Not enough yet to tell.
    Unknown,
    /// Anything else: a new client (version 1 or 2).
    New,
    /// A client resuming a session, as its `HELLO` says.
    Resume(Hello),
}

/// Reads a connection's first bytes, `bytes`; `complete`: no more are
/// coming for now (the socket is empty), so an offer alone is a new
/// client's.
pub fn opening(bytes: &[u8], complete: bool) -> Opening {
    let offer = bytes.len().min(OFFER_LEN);
    if bytes[..offer].iter().any(|&b| b != 0) {
        return Opening::New;
    }
    if bytes.len() < OFFER_LEN {
        return match bytes.is_empty() || !complete {
            true => Opening::Unknown,
            // An empty frame or two, and nothing after them for now.
            false => Opening::New,
        };
    }
    let rest = &bytes[OFFER_LEN..];
    let Some(header) = read_header(rest) else {
        return match complete {
            true => Opening::New,
            false => Opening::Unknown,
        };
    };
    let Header::Control(len) = header else {
        return Opening::New;
    };
    if len > CONTROL_MAX {
        return Opening::New;
    }
    let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
        return match complete {
            true => Opening::New,
            false => Opening::Unknown,
        };
    };
    match decode(payload) {
        Ok(Some(Control::Hello(hello))) if hello.resume_of != NO_TOKEN => Opening::Resume(hello),
        _ => Opening::New,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(control: Control) {
        let mut out = Vec::new();
        encode(&mut out, &control);
        let Some(Header::Control(len)) = read_header(&out) else {
            panic!("not a control header: {out:?}");
        };
        assert_eq!(len, out.len() - HEADER_LEN);
        assert!(len <= CONTROL_MAX);
        assert_eq!(decode(&out[HEADER_LEN..]), Ok(Some(control)));
    }

    #[test]
    fn controls_decode_to_what_was_encoded() {
        round_trip(Control::Ping);
        round_trip(Control::Bye);
        round_trip(Control::End);
        round_trip(Control::Ack(0));
        round_trip(Control::Ack(u64::MAX));
        round_trip(Control::Hello(Hello {
            version: VERSION,
            token: [7; 16],
            resume_of: [9; 16],
            received: 1 << 40,
            heartbeat_ms: 1_000,
            takes: TAKES,
            max_message: 1 << 20,
        }));
    }

    /// A `HELLO` from before `takes` (46 bytes) takes nothing more, and
    /// one from a later version with more fields is read as far as known.
    #[test]
    fn a_hello_without_what_it_takes_takes_nothing_more() {
        let mut out = Vec::new();
        let hello = Hello {
            takes: TAKES_LINE_BREAKS,
            max_message: 4096,
            ..self::hello(NO_TOKEN)
        };
        encode(&mut out, &Control::Hello(hello.clone()));
        let payload = &out[HEADER_LEN..];
        assert_eq!(payload.len(), 54);
        let older = decode(&payload[..46]);
        assert_eq!(
            older,
            Ok(Some(Control::Hello(Hello {
                takes: 0,
                max_message: 0,
                ..hello.clone()
            })))
        );
        let mut later = payload.to_vec();
        later.extend_from_slice(b"a later field");
        assert_eq!(decode(&later), Ok(Some(Control::Hello(hello))));
    }

    #[test]
    fn a_data_header_is_data_and_a_control_header_says_its_length() {
        assert_eq!(read_header(&[0, 0, 0, 5]), Some(Header::Data(5)));
        assert_eq!(
            read_header(&[0x7f, 0xff, 0xff, 0xff]),
            Some(Header::Data(0x7fff_ffff))
        );
        assert_eq!(read_header(&[0x80, 0, 0, 9]), Some(Header::Control(9)));
        assert_eq!(read_header(&[0x80, 0, 0]), None);
    }

    #[test]
    fn bad_controls_are_errors_and_later_ones_are_skipped() {
        assert_eq!(decode(b""), Err(BadControl::Empty));
        assert_eq!(decode(b"A\0\0"), Err(BadControl::Short('A')));
        assert_eq!(decode(b"H\x02short"), Err(BadControl::Short('H')));
        assert_eq!(decode(b"Zwhatever a later version says"), Ok(None));
        // Longer than this version writes: the rest is a later version's.
        let mut ack = b"A".to_vec();
        ack.extend_from_slice(&5u64.to_be_bytes());
        ack.extend_from_slice(b"more");
        assert_eq!(decode(&ack), Ok(Some(Control::Ack(5))));
    }

    fn hello(resume_of: Token) -> Hello {
        Hello {
            version: VERSION,
            token: [1; 16],
            resume_of,
            received: 7,
            heartbeat_ms: 1_000,
            takes: 0,
            max_message: 0,
        }
    }

    #[test]
    fn a_resuming_client_is_known_by_its_first_bytes_and_anyone_else_is_new() {
        let mut resuming = vec![0; OFFER_LEN];
        encode(&mut resuming, &Control::Hello(hello([5; 16])));
        assert_eq!(opening(&resuming, false), Opening::Resume(hello([5; 16])));
        // Cut anywhere, it is not known yet while more may come; once the
        // socket is empty, a cut one is not a resume.
        for cut in 0..resuming.len() {
            assert_eq!(opening(&resuming[..cut], false), Opening::Unknown, "{cut}");
        }
        assert_eq!(opening(&resuming[..OFFER_LEN + 10], true), Opening::New);
        // A new version 2 client: its offer alone.
        assert_eq!(opening(&resuming[..OFFER_LEN], true), Opening::New);
        // A `HELLO` that resumes nothing.
        let mut fresh = vec![0; OFFER_LEN];
        encode(&mut fresh, &Control::Hello(hello(NO_TOKEN)));
        assert_eq!(opening(&fresh, true), Opening::New);
        // A version 1 client's message, a keepalive and a message, data
        // after the offer.
        assert_eq!(opening(b"\0\0\0\x02hi", false), Opening::New);
        assert_eq!(
            opening(&[0, 0, 0, 0, 0, 0, 0, 2, b'h'], false),
            Opening::New
        );
        let mut data = vec![0; OFFER_LEN];
        data.extend_from_slice(&[0, 0, 0, 1, b'x']);
        assert_eq!(opening(&data, false), Opening::New);
        // Nothing yet.
        assert_eq!(opening(b"", false), Opening::Unknown);
        assert_eq!(opening(b"", true), Opening::Unknown);
    }
}
