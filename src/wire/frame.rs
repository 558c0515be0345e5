//! The wire format: every message is a 4-byte big-endian length, then that many
//! bytes of UTF-8 payload (see `PROTOCOL.md`).
//!
//! [`encode_frame`] appends frames to a caller's buffer so that a batch of
//! messages reaches the socket in one write; [`FrameReader`] decodes frames from
//! any byte stream, however the bytes are chunked, and checks the declared length
//! against its maximum before it reserves a single byte for the payload.
//! [`read_header`] is the one place a header is read, and [`split_frames`]
//! walks a buffer of frames we encoded (a batch, a queue's contents).

use std::io::{self, ErrorKind, Read};
use std::ops::Range;

use byteorder::{BigEndian, ByteOrder};

/// Size of the length header in front of every payload.
pub(crate) const HEADER_LEN: usize = 4;

/// The protocol's default maximum payload: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// How much the reader asks the kernel for at once; it only grows past this
/// for a single frame larger than it (and never past the maximum).
pub const READ_CHUNK: usize = 256 * 1024;

/// Below this much free space at the end, the unread tail is moved to the front
/// rather than asking the kernel for a few bytes at a time.
const MIN_READ: usize = 16 * 1024;

/// A message longer than the maximum a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes is over the maximum of {max} bytes")]
pub struct TooLong {
    pub len: usize,
    pub max: usize,
}

/// [`payloads`], each with what follows it in `bytes` (see
/// [`Payload::with_slack`]).
pub(crate) fn payloads_with_slack(mut bytes: &[u8]) -> impl Iterator<Item = Payload<'_>> {
    std::iter::from_fn(move || {
        let len = read_header(bytes)?;
        let rest = bytes.get(HEADER_LEN..)?;
        if rest.len() < len {
            return None;
        }
        bytes = &rest[len..];
        Some(Payload { rest, len })
    })
}

/// Appends one frame carrying `payload` to `dst`.
///
/// A payload over `max` is refused with `InvalidInput` and `dst` is left as it was.
#[inline]
pub fn encode_frame(dst: &mut Vec<u8>, payload: &[u8], max: usize) -> io::Result<()> {
    let len = match u32::try_from(payload.len()) {
        Ok(len) if payload.len() <= max => len,
        _ => return Err(too_long_to_send(payload.len(), max)),
    };
    dst.reserve(HEADER_LEN + payload.len());
    dst.extend_from_slice(&len.to_be_bytes());
    dst.extend_from_slice(payload);
    Ok(())
}

#[cold]
fn too_long_to_send(len: usize, max: usize) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, TooLong { len, max })
}

/// The payload length declared by the header `bytes` starts with; `None`
/// if they are shorter than a header.
#[inline]
pub(crate) fn read_header(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..HEADER_LEN)?;
    Some(BigEndian::read_u32(header) as usize)
}

/// The payload of each frame of `bytes` (see [`split_frames`]), keepalives
/// included as empty payloads.
pub(crate) fn payloads(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_frames(bytes).map(|frame| &frame[HEADER_LEN..])
}

/// Each frame of `bytes`, header included, in order: for buffers of frames
/// as we encode them, whole and back to back. A last frame cut short is
/// handed out as far as it goes; fewer than [`HEADER_LEN`] bytes left at the
/// end are not a frame.
pub(crate) fn split_frames(mut bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = read_header(bytes)?;
        let whole = HEADER_LEN + len.min(bytes.len() - HEADER_LEN);
        let (frame, rest) = bytes.split_at(whole);
        bytes = rest;
        Some(frame)
    })
}

/// One received payload, where it lies in a [`FrameReader`]'s buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Payload<'a> {
    /// The payload, then whatever follows it in the buffer.
    rest: &'a [u8],
    len: usize,
}

impl<'a> Payload<'a> {
    /// The first `len` bytes of `rest`, for tests.
    #[cfg(test)]
    pub(crate) fn new(rest: &'a [u8], len: usize) -> Self {
        assert!(len <= rest.len());
        Self { rest, len }
    }

    pub fn bytes(&self) -> &'a [u8] {
        &self.rest[..self.len]
    }

    /// The payload's bytes followed by whatever comes after them in the
    /// buffer (later frames, or bytes of an earlier read): a copy may take a
    /// fixed-size block from here and keep only the payload's length of it.
    pub(crate) fn with_slack(&self) -> &'a [u8] {
        self.rest
    }
}

/// Decodes frames from a byte stream, reusing one buffer for all of them.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Decoded data not yet handed out lives in `buf[start..end]`.
    start: usize,
    end: usize,
    max: usize,
    /// A whole frame (a keepalive included) has been drained.
    framed: bool,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            max,
            framed: false,
        }
    }

    /// Returns the next non-empty payload, `Ok(None)` when the stream ends
    /// cleanly at a frame boundary.
    ///
    /// Zero-length frames are keepalives and are skipped. End of stream inside a
    /// header or payload is `UnexpectedEof`; a declared length over the maximum is
    /// `InvalidData` (carrying [`TooLong`]) and nothing of the payload is read.
    pub fn read_frame(&mut self) -> io::Result<Option<&[u8]>> {
        let range = loop {
            match self.next_buffered().map_err(too_long_error)? {
                Some(range) => break range,
                None => {
                    if self.fill()? == 0 {
                        return match self.end_of_stream() {
                            Ok(()) => Ok(None),
                            Err(e) => Err(e),
                        };
                    }
                }
            }
        };
        Ok(Some(&self.buf[range]))
    }

    /// Reads once from the stream, however much it has at hand (up to the free
    /// space); returns how many bytes that was, 0 at the end of the stream.
    pub fn fill(&mut self) -> io::Result<usize> {
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands every complete non-empty frame already buffered to `each`, in
    /// order, and makes room for the next [`fill`](Self::fill). A header over
    /// the maximum stops it, after every frame before it was handed out.
    #[inline]
    pub fn drain_buffered(&mut self, mut each: impl FnMut(&[u8])) -> Result<(), TooLong> {
        self.drain_payloads(|payload| each(payload.bytes()))
    }

    /// [`drain_buffered`](Self::drain_buffered), each payload handed out
    /// with what follows it in the buffer, for copies of a fixed size.
    ///
    /// One loop over the whole buffer: this runs for every message received,
    /// so it keeps the position in a local and makes room once at the end.
    #[inline]
    pub(crate) fn drain_payloads(
        &mut self,
        mut each: impl FnMut(Payload<'_>),
    ) -> Result<(), TooLong> {
        let buffered = &self.buf[..self.end];
        let mut start = self.start;
        let outcome = loop {
            let Some(len) = buffered.get(start..).and_then(read_header) else {
                break Ok(HEADER_LEN);
            };
            if len > self.max {
                break Err(TooLong { len, max: self.max });
            }
            let total = HEADER_LEN + len;
            if buffered.len() < start + total {
                break Ok(total);
            }
            if len != 0 {
                // The whole buffer from the payload on: what lies past `end`
                // was read earlier or zeroed, never uninitialized.
                let rest = &self.buf[start + HEADER_LEN..];
                each(Payload { rest, len });
            }
            start += total;
        };
        self.framed |= start != self.start;
        self.start = start;
        self.make_room(outcome?);
        Ok(())
    }

    /// What the end of the stream means here: a clean end at a frame
    /// boundary, or `UnexpectedEof` inside a frame.
    pub fn end_of_stream(&self) -> io::Result<()> {
        if self.start == self.end {
            Ok(())
        } else {
            Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "connection closed mid-message",
            ))
        }
    }

    /// Bytes received and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Capacity of the internal buffer: what this reader holds on to.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Finds a complete non-empty frame in the buffer, consuming keepalives and
    /// making room for whatever is still missing.
    fn next_buffered(&mut self) -> Result<Option<Range<usize>>, TooLong> {
        loop {
            let Some(len) = read_header(&self.buf[self.start..self.end]) else {
                self.make_room(HEADER_LEN);
                return Ok(None);
            };
            if len > self.max {
                return Err(TooLong { len, max: self.max });
            }
            if len == 0 {
                self.start += HEADER_LEN;
                continue;
            }
            let total = HEADER_LEN + len;
            if self.end - self.start < total {
                self.make_room(total);
                return Ok(None);
            }
            let payload = self.start + HEADER_LEN..self.start + total;
            self.start += total;
            return Ok(Some(payload));
        }
    }

    /// Makes room to read more of a frame of `needed` bytes (header
    /// included), already checked against the maximum. The buffer grows only
    /// when it is full of what was received, and then at most doubles: memory
    /// follows the bytes that arrive, never the length a header declares.
    fn make_room(&mut self, needed: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.start < needed || self.buf.len() - self.end < MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() && self.buf.len() < needed {
            let grown = (self.buf.len() * 2).clamp(READ_CHUNK, needed.max(READ_CHUNK));
            self.buf.resize(grown, 0);
        }
    }
}

/// A [`TooLong`] header as the I/O error [`FrameReader::read_frame`] returns.
pub(crate) fn too_long_error(too_long: TooLong) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, too_long)
}

/// Keeps the frames of `batch` whose payloads are at most `max` bytes;
/// returns how many it dropped.
pub(crate) fn keep_frames_within(batch: &mut Vec<u8>, max: usize) -> usize {
    let mut dropped = 0;
    let mut kept = Vec::with_capacity(batch.len());
    for frame in split_frames(batch) {
        match frame.len() - HEADER_LEN > max {
            true => dropped += 1,
            false => kept.extend_from_slice(frame),
        }
    }
    if dropped > 0 {
        *batch = kept;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, payload, DEFAULT_MAX_MESSAGE_SIZE).unwrap();
        out
    }

    #[test]
    fn a_header_is_four_bytes_big_endian() {
        assert_eq!(read_header(&[0, 0, 1, 2, 9]), Some(258));
        assert_eq!(read_header(&[0xff; 4]), Some(u32::MAX as usize));
        assert_eq!(read_header(&[0, 0, 1]), None);
        assert_eq!(read_header(&[]), None);
    }

    #[test]
    fn frames_are_split_whole_in_order() {
        let bytes = [frame(b"one"), frame(b""), frame(b"three")].concat();
        let frames: Vec<&[u8]> = split_frames(&bytes).collect();
        assert_eq!(
            frames,
            [&frame(b"one")[..], &frame(b"")[..], &frame(b"three")[..]]
        );
        assert_eq!(split_frames(&[]).count(), 0);
    }

    #[test]
    fn a_last_frame_cut_short_goes_as_far_as_it_goes_and_a_partial_header_is_none() {
        let mut bytes = [frame(b"one"), frame(b"three")].concat();
        bytes.truncate(bytes.len() - 2);
        let frames: Vec<&[u8]> = split_frames(&bytes).collect();
        assert_eq!(frames, [&frame(b"one")[..], &frame(b"three")[..7]]);
        let frames: Vec<&[u8]> = split_frames(&[0xff; 7]).collect();
        assert_eq!(frames, [&[0xff; 7][..]]);
        assert_eq!(split_frames(&[0, 0, 0]).count(), 0);
    }
}
