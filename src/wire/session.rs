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
}

/// The heartbeat a `HELLO` without one asks for.
pub const DEFAULT_HEARTBEAT_MS: u32 = 5_000;

const HELLO: u8 = b'H';
const ACK: u8 = b'A';
const PING: u8 = b'P';

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
        }
        Control::Ack(count) => {
            payload.push(ACK);
            payload.extend_from_slice(&count.to_be_bytes());
        }
        Control::Ping => payload.push(PING),
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
            })
        }
        ACK => Control::Ack(BigEndian::read_u64(rest.get(..8).ok_or_else(short)?)),
        PING => Control::Ping,
        _ => return Ok(None),
    }))
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
        round_trip(Control::Ack(0));
        round_trip(Control::Ack(u64::MAX));
        round_trip(Control::Hello(Hello {
            version: VERSION,
            token: [7; 16],
            resume_of: [9; 16],
            received: 1 << 40,
            heartbeat_ms: 1_000,
        }));
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
}
