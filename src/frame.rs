//! The wire format: every message is a 4-byte big-endian length, then that many
//! bytes of UTF-8 payload (see `PROTOCOL.md`).
//!
//! [`encode_frame`] appends frames to a caller's buffer so that a batch of
//! messages reaches the socket in one write; [`FrameReader`] decodes frames from
//! any byte stream, however the bytes are chunked, and checks the declared length
//! against its maximum before it reserves a single byte for the payload.

use std::fmt;
use std::io::{self, ErrorKind, Read};
use std::ops::Range;

use byteorder::{BigEndian, ByteOrder};

/// Size of the length header in front of every payload.
pub const HEADER_LEN: usize = 4;

/// The protocol's default maximum payload: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// How much the reader asks the kernel for at once; it only grows past this
/// for a single frame larger than it (and never past the maximum).
pub const READ_CHUNK: usize = 256 * 1024;

/// Below this much free space at the end, the unread tail is moved to the front
/// rather than asking the kernel for a few bytes at a time.
const MIN_READ: usize = 16 * 1024;

/// A message longer than the maximum a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    pub len: usize,
    pub max: usize,
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message of {} bytes is over the maximum of {} bytes",
            self.len, self.max
        )
    }
}

impl std::error::Error for TooLong {}

/// Appends one frame carrying `payload` to `dst`.
///
/// A payload over `max` is refused with `InvalidInput` and `dst` is left as it was.
pub fn encode_frame(dst: &mut Vec<u8>, payload: &[u8], max: usize) -> io::Result<()> {
    let too_long = TooLong {
        len: payload.len(),
        max,
    };
    if payload.len() > max {
        return Err(io::Error::new(ErrorKind::InvalidInput, too_long));
    }
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, too_long))?;
    let mut header = [0; HEADER_LEN];
    BigEndian::write_u32(&mut header, len);
    dst.reserve(HEADER_LEN + payload.len());
    dst.extend_from_slice(&header);
    dst.extend_from_slice(payload);
    Ok(())
}

/// Decodes frames from a byte stream, reusing one buffer for all of them.
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Decoded data not yet handed out lives in `buf[start..end]`.
    start: usize,
    end: usize,
    max: usize,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            max,
        }
    }

    /// Returns the next non-empty payload, `Ok(None)` when the stream ends
    /// cleanly at a frame boundary.
    ///
    /// Zero-length frames are keepalives and are skipped. End of stream inside a
    /// header or payload is `UnexpectedEof`; a declared length over the maximum is
    /// `InvalidData` (carrying [`TooLong`]) and nothing of the payload is read.
    pub fn read_frame(&mut self) -> io::Result<Option<&[u8]>> {
        Ok(self.read_frame_and_more()?.map(|(payload, _)| payload))
    }

    /// Like [`read_frame`](Self::read_frame), and also says whether another
    /// whole frame is already buffered, so that callers can flush their output
    /// only when no more input is at hand.
    pub fn read_frame_and_more(&mut self) -> io::Result<Option<(&[u8], bool)>> {
        let range = loop {
            match self.next_buffered()? {
                Some(range) => break range,
                None => {
                    if self.fill()? == 0 {
                        if self.start == self.end {
                            return Ok(None);
                        }
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "connection closed mid-message",
                        ));
                    }
                }
            }
        };
        let more = self.has_buffered_frame();
        Ok(Some((&self.buf[range], more)))
    }

    /// True when a whole frame is already buffered, so the next
    /// [`read_frame`](Self::read_frame) will not touch the stream.
    pub fn has_buffered_frame(&self) -> bool {
        let avail = &self.buf[self.start..self.end];
        avail.len() >= HEADER_LEN && avail.len() - HEADER_LEN >= BigEndian::read_u32(avail) as usize
    }

    /// Bytes received and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Capacity of the internal buffer: what this reader holds on to.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Finds a complete non-empty frame in the buffer, consuming keepalives and
    /// making room for whatever is still missing.
    fn next_buffered(&mut self) -> io::Result<Option<Range<usize>>> {
        loop {
            let avail = self.end - self.start;
            if avail < HEADER_LEN {
                self.make_room(HEADER_LEN);
                return Ok(None);
            }
            let len = BigEndian::read_u32(&self.buf[self.start..]) as usize;
            if len > self.max {
                let too_long = TooLong { len, max: self.max };
                return Err(io::Error::new(ErrorKind::InvalidData, too_long));
            }
            if len == 0 {
                self.start += HEADER_LEN;
                continue;
            }
            let total = HEADER_LEN + len;
            if avail < total {
                self.make_room(total);
                return Ok(None);
            }
            let payload = self.start + HEADER_LEN..self.start + total;
            self.start += total;
            return Ok(Some(payload));
        }
    }

    /// Makes `buf[start..]` able to hold `needed` bytes; `needed` has already
    /// been checked against the maximum.
    fn make_room(&mut self, needed: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.start < needed || self.buf.len() - self.end < MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < needed {
            self.buf.resize(needed, 0);
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
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
}
