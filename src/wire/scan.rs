//! Vectorized scans over whole buffers, for the per-message paths: whether
//! text is printable ASCII (what is received), and where the line ends are
//! (what is sent).
//!
//! These run for every message, so they look at sixteen bytes per
//! instruction with SSE2 on x86-64 (part of every such processor, so no
//! detection at run time), and have a plain Rust version elsewhere, which
//! the tests check the SSE2 one against.
//!
//! The SSE2 versions stay because the plain ones are measurably slower on
//! x86-64 (rustc 1.95, release, AMD EPYC; both versions of this file timed
//! side by side): [`printable_ascii`] takes 1.2 to 2 times as long from 16
//! bytes up, and 1.4 to 2.2 times for 1 KiB and 64 KiB, as the compiler
//! does vectorize the plain check but in three instructions a block where
//! SSE2 takes two, and brings each 64-byte window down to a flag; the line
//! ends take 8 to 15 times as long for lines of 16 to 100 bytes and 4.5
//! times for 1 KiB, as the plain mask becomes shifts of 64-bit lanes rather
//! than one `pmovmskb` per block.

/// Bytes looked at together.
const BLOCK: usize = 16;

/// Whether every byte is printable ASCII (0x20 to 0x7e), the common case of
/// a received message. Looked at sixteen bytes at a time with no branch per
/// block: up to 64 bytes as four blocks, overlapping as needed (no loop),
/// longer ones 64 bytes at a time and the last 64 (overlapping what was
/// checked).
#[inline]
pub fn printable_ascii(bytes: &[u8]) -> bool {
    let block = |at: usize| -> &[u8; BLOCK] {
        bytes[at..]
            .first_chunk()
            .expect("at least a block from there")
    };
    let flags = match bytes.len() {
        0..BLOCK => {
            let mut padded = [b' '; BLOCK];
            padded[..bytes.len()].copy_from_slice(bytes);
            outside(&padded)
        }
        len @ BLOCK..=WINDOW => {
            let last = len - BLOCK;
            let (a, b, c, d) = (
                block(0),
                block(BLOCK.min(last)),
                block(32.min(last)),
                block(last),
            );
            or(or(outside(a), outside(b)), or(outside(c), outside(d)))
        }
        _ => {
            let (windows, _) = bytes.as_chunks::<WINDOW>();
            let last = bytes.last_chunk::<WINDOW>().expect("over a window");
            windows.iter().fold(window_outside(last), |flags, window| {
                or(flags, window_outside(window))
            })
        }
    };
    none(flags)
}

/// [`outside`] for a whole window.
#[inline]
fn window_outside(window: &[u8; WINDOW]) -> Flags {
    let (blocks, _) = window.as_chunks::<BLOCK>();
    or(
        or(outside(&blocks[0]), outside(&blocks[1])),
        or(outside(&blocks[2]), outside(&blocks[3])),
    )
}

/// Which bytes of a block are not printable ASCII (nonzero where not).
#[cfg(target_arch = "x86_64")]
type Flags = std::arch::x86_64::__m128i;

/// Printable ASCII is where `b - 0x20` (wrapping) is at most 0x5e: one
/// subtraction and one saturating subtraction per sixteen bytes leave
/// nonzero bytes exactly where a byte is outside.
#[cfg(target_arch = "x86_64")]
#[inline]
fn outside(block: &[u8; BLOCK]) -> Flags {
    use std::arch::x86_64::{_mm_loadu_si128, _mm_set1_epi8, _mm_sub_epi8, _mm_subs_epu8};
    // SAFETY: SSE2 is part of every x86-64 processor, and the load reads
    // exactly the sixteen bytes of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        _mm_subs_epu8(_mm_sub_epi8(v, _mm_set1_epi8(0x20)), _mm_set1_epi8(0x5e))
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn or(a: Flags, b: Flags) -> Flags {
    // SAFETY: SSE2 is part of every x86-64 processor.
    unsafe { std::arch::x86_64::_mm_or_si128(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn none(flags: Flags) -> bool {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_setzero_si128};
    // SAFETY: SSE2 is part of every x86-64 processor.
    unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(flags, _mm_setzero_si128())) == 0xffff }
}

#[cfg(not(target_arch = "x86_64"))]
type Flags = u8;

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn outside(block: &[u8; BLOCK]) -> Flags {
    portable_outside(block)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn or(a: Flags, b: Flags) -> Flags {
    a | b
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn none(flags: Flags) -> bool {
    flags == 0
}

/// [`outside`] in plain Rust: nonzero if any byte of the block is not
/// printable ASCII (vectorized by the compiler, but slower than the SSE2
/// version: see the top of this file).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn portable_outside(block: &[u8; BLOCK]) -> u8 {
    let mut outside = 0u8;
    for &b in block {
        outside |= u8::from(b.wrapping_sub(0x20) > 0x5e);
    }
    outside
}

/// Bytes of a window in which line ends are found with one mask.
const WINDOW: usize = 64;

/// The positions of every `\n` in a buffer, in order.
///
/// Looks at 64 bytes at a time and hands out each line end found there from
/// a bit mask, so short lines cost a few instructions each rather than a
/// search call each; a window without a line end hands the search for the
/// next one to `memchr`, so long lines cost no more than one call each.
pub struct LineEnds<'a> {
    bytes: &'a [u8],
    /// Where the current window starts.
    window: usize,
    /// Line ends in the current window not yet handed out, bit `i` for
    /// `window + i`.
    mask: u64,
}

impl<'a> LineEnds<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut ends = Self {
            bytes,
            window: 0,
            mask: 0,
        };
        ends.mask = ends.window_mask();
        ends
    }

    /// The line ends of the window starting at `self.window`.
    #[inline]
    fn window_mask(&self) -> u64 {
        let rest = &self.bytes[self.window.min(self.bytes.len())..];
        match rest.first_chunk::<WINDOW>() {
            Some(window) => newline_mask(window),
            None => {
                let mut padded = [0; WINDOW];
                padded[..rest.len()].copy_from_slice(rest);
                newline_mask(&padded)
            }
        }
    }
}

impl Iterator for LineEnds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.mask != 0 {
                let end = self.window + self.mask.trailing_zeros() as usize;
                self.mask &= self.mask - 1;
                return Some(end);
            }
            self.window += WINDOW;
            if self.window >= self.bytes.len() {
                return None;
            }
            self.mask = self.window_mask();
            if self.mask == 0 {
                // A long line: let memchr find its end.
                let after = self.window + WINDOW;
                let found = self
                    .bytes
                    .get(after..)
                    .and_then(|r| memchr::memchr(b'\n', r));
                self.window = found.map_or(self.bytes.len(), |at| after + at);
                self.mask = self.window_mask();
            }
        }
    }
}

/// Bit `i` set where `window[i]` is `\n`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn newline_mask(window: &[u8; WINDOW]) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let (blocks, _) = window.as_chunks::<BLOCK>();
    // SAFETY: SSE2 is part of every x86-64 processor, and each load reads
    // exactly the sixteen bytes of one block.
    unsafe {
        let newline = _mm_set1_epi8(b'\n' as i8);
        blocks.iter().enumerate().fold(0, |mask, (i, block)| {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let found = _mm_movemask_epi8(_mm_cmpeq_epi8(v, newline)) as u16;
            mask | u64::from(found) << (i * BLOCK)
        })
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn newline_mask(window: &[u8; WINDOW]) -> u64 {
    portable_newline_mask(window)
}

/// [`newline_mask`] in plain Rust.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn portable_newline_mask(window: &[u8; WINDOW]) -> u64 {
    window
        .iter()
        .enumerate()
        .fold(0, |mask, (i, &b)| mask | u64::from(b == b'\n') << i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_byte_value_at_every_position_is_classified_right() {
        for len in 1..140 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut payload = vec![b'a'; len];
                    payload[at] = byte;
                    let plain = (0x20..0x7f).contains(&byte);
                    assert_eq!(
                        printable_ascii(&payload),
                        plain,
                        "{byte:#x} at {at} of {len}"
                    );
                    if len >= BLOCK {
                        let block = payload[len - BLOCK..].first_chunk().unwrap();
                        let in_block = at >= len - BLOCK;
                        assert_eq!(
                            portable_outside(block) == 0,
                            plain || !in_block,
                            "portable: {byte:#x} at {at} of {len}"
                        );
                    }
                }
            }
        }
        assert!(printable_ascii(b""));
    }

    #[test]
    fn every_byte_value_at_every_position_of_a_window_is_a_line_end_or_not() {
        for at in 0..WINDOW {
            for byte in 0..=255u8 {
                let mut window = [b'a'; WINDOW];
                window[at] = byte;
                let expected = u64::from(byte == b'\n') << at;
                assert_eq!(newline_mask(&window), expected, "{byte:#x} at {at}");
                assert_eq!(portable_newline_mask(&window), expected);
            }
        }
    }

    /// Bytes that are mostly `\n` and `x`, with lines short and long.
    fn lines() -> impl Strategy<Value = Vec<u8>> {
        let line = (0usize..300, any::<u8>()).prop_map(|(len, b)| {
            let mut line = vec![b; len];
            line.push(b'\n');
            line
        });
        (
            proptest::collection::vec(line, 0..20),
            proptest::collection::vec(any::<u8>(), 0..100),
        )
            .prop_map(|(lines, tail)| [lines.concat(), tail].concat())
    }

    proptest! {
        #[test]
        fn line_ends_are_every_newline_in_order(bytes in lines()) {
            let expected: Vec<usize> = memchr::memchr_iter(b'\n', &bytes).collect();
            prop_assert_eq!(LineEnds::new(&bytes).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn printable_is_exactly_every_byte_in_range(bytes in proptest::collection::vec(0x1eu8..0x81, 0..100)) {
            let expected = bytes.iter().all(|b| (0x20..0x7f).contains(b));
            prop_assert_eq!(printable_ascii(&bytes), expected);
        }
    }
}
