//! Vectorized scans over whole buffers, for the per-message paths: whether
//! text is printable ASCII (what is received), and where the line ends are
//! (what is sent).
//!
//! These run for every message, so they look at sixteen bytes per
//! instruction with SSE2 on x86-64 (part of every such processor, so no
//! detection at run time), and have a plain Rust version elsewhere, which
//! the tests check the SSE2 one against.

/// Bytes looked at together.
const BLOCK: usize = 16;

/// Whether every byte is printable ASCII (0x20 to 0x7e), the common case of
/// a received message. Checked sixteen bytes at a time, the tail as the last
/// sixteen (overlapping what was checked), with no branch per block.
#[inline]
pub fn printable_ascii(bytes: &[u8]) -> bool {
    let mut padded = [b' '; BLOCK];
    let (blocks, tail) = match bytes.last_chunk::<BLOCK>() {
        Some(tail) => (bytes.as_chunks::<BLOCK>().0, tail),
        None => {
            padded[..bytes.len()].copy_from_slice(bytes);
            (&[][..], &padded)
        }
    };
    blocks_printable(blocks, tail)
}

/// Whether every block and `tail` is printable ASCII: as signed bytes,
/// printable ASCII is 0x20 and up (bytes from 0x80 are negative) except
/// 0x7f, two compares per sixteen bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
fn blocks_printable(blocks: &[[u8; BLOCK]], tail: &[u8; BLOCK]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86-64 processor, and each load reads
    // exactly the sixteen bytes of one block.
    unsafe {
        let (space, del) = (_mm_set1_epi8(0x20), _mm_set1_epi8(0x7f));
        let outside = |block: &[u8; BLOCK]| -> __m128i {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            _mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del))
        };
        let mut flags = outside(tail);
        for block in blocks {
            flags = _mm_or_si128(flags, outside(block));
        }
        _mm_movemask_epi8(flags) == 0
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn blocks_printable(blocks: &[[u8; BLOCK]], tail: &[u8; BLOCK]) -> bool {
    portable_blocks_printable(blocks, tail)
}

/// [`blocks_printable`] in plain Rust, which the compiler vectorizes well
/// enough.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn portable_blocks_printable(blocks: &[[u8; BLOCK]], tail: &[u8; BLOCK]) -> bool {
    let block_ok = |block: &[u8; BLOCK]| {
        let mut outside = 0u8;
        for &b in block {
            outside |= u8::from(b.wrapping_sub(0x20) > 0x5e);
        }
        outside == 0
    };
    blocks.iter().all(block_ok) && block_ok(tail)
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
        for len in 1..40 {
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
                    let (blocks, _) = payload.as_chunks::<BLOCK>();
                    let mut tail = [b' '; BLOCK];
                    let from = len.saturating_sub(BLOCK);
                    tail[..len - from].copy_from_slice(&payload[from..]);
                    assert_eq!(
                        portable_blocks_printable(blocks, &tail),
                        plain,
                        "portable: {byte:#x} at {at} of {len}"
                    );
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
