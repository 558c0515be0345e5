//! How a peer's text is shown: exactly as sent, except what could drive the
//! terminal or forge extra lines.
//!
//! Invalid UTF-8 becomes U+FFFD. C0 controls (tab excepted), DEL, C1 controls
//! the Unicode line and paragraph separators, and the bidirectional embedding,
//! override and isolate controls are written as visible escapes (`\n`, `\r`,
//! `\x1b`, `\u{9b}`, `\u{202e}`), so one message is always one line of plain
//! text that reads as it was sent: a peer cannot reorder what is shown (the
//! "Trojan Source" trick). Everything else, Chinese, emoji and accents
//! included, passes unchanged.

use std::fmt::Write as _;

/// A line break inside one message, in its displayable form: what our
/// programs show and write (piped too) where a message of several lines
/// breaks. U+2028 LINE SEPARATOR, since a peer's own U+2028 is written as
/// the escape `\u{2028}`: so one is never taken for the other, a message
/// is still one line of piped output, and its breaks can be turned back
/// into line ends.
pub const LINE_BREAK: char = '\u{2028}';

/// What becomes of a line end (`\n`) in a message made displayable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaks {
    /// Escaped as `\n`, as every control: the peer did not say it sends
    /// messages of several lines (a version 1 peer), or the reader would
    /// not know them.
    Escape,
    /// Kept as `\n`: for a room's reader that takes them.
    Keep,
    /// Written as [`LINE_BREAK`]: for our own screen and piped output.
    Mark,
}

use crate::wire::frame::Payload;
use crate::wire::scan::printable_ascii;

/// How a named sender said a line: the forms a chat line is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// `NAME: TEXT`
    Message,
    /// `* NAME TEXT` (`/me`)
    Action,
    /// `NAME → you: TEXT`: NAME said it to the reader alone (`/msg`).
    Private,
    /// `you → NAME: TEXT`: the reader said it to NAME alone; the name is
    /// the one it went to, not the sender's.
    PrivateSent,
}

/// Payloads shorter than this are copied as one block of this size when
/// the buffer holds that many bytes from their start.
const BLOCK_COPY: usize = 64;

/// Appends `payload` to `out` in its displayable form, without a line end.
///
/// Inlined into the receiving loop: printable ASCII, nearly every message,
/// is one vectorized check and one copy; everything else goes to
/// [`push_escaped`].
#[inline]
pub fn push_visible(out: &mut Vec<u8>, payload: &[u8]) {
    if printable_ascii(payload) {
        out.extend_from_slice(payload);
    } else {
        push_escaped(out, payload);
    }
}

/// `payload` in its displayable form, as text to quote in a notice.
pub fn visible(payload: &[u8]) -> String {
    let mut shown = Vec::with_capacity(payload.len());
    push_visible(&mut shown, payload);
    String::from_utf8_lossy(&shown).into_owned()
}

/// [`push_visible`] and a line end, for a received payload: the receiving
/// loop's step for every message.
///
/// A short printable one (nearly every chat line) is copied as one block of
/// fixed size taken from the buffer it lies in, which compiles to a few
/// vector moves rather than a call to `memcpy`; the bytes copied past its
/// end are then cut off, and its line end written over the first of them.
///
/// With `breaks`, the peer may send messages of several lines: their line
/// ends are written as [`LINE_BREAK`]s, looked for only in what is not
/// printable ASCII (a line end is not), so that the common case costs
/// nothing more.
#[inline]
pub fn push_visible_line(out: &mut Vec<u8>, payload: Payload<'_>, breaks: bool) {
    let bytes = payload.bytes();
    let len = bytes.len();
    let printable = printable_ascii(bytes);
    if len < BLOCK_COPY
        && printable
        && let Some(block) = payload.with_slack().first_chunk::<BLOCK_COPY>()
    {
        let at = out.len();
        out.extend_from_slice(block);
        out[at + len] = b'\n';
        out.truncate(at + len + 1);
    } else if printable {
        out.extend_from_slice(bytes);
        out.push(b'\n');
    } else {
        push_not_printable(out, bytes, breaks);
        out.push(b'\n');
    }
}

/// [`push_visible_line`]'s rare case, out of line.
#[inline(never)]
fn push_not_printable(out: &mut Vec<u8>, bytes: &[u8], breaks: bool) {
    match breaks && memchr::memchr(b'\n', bytes).is_some() {
        true => push_visible_breaking(out, bytes, Breaks::Mark),
        false => push_escaped(out, bytes),
    }
}

/// [`push_visible`] for what is not all printable ASCII.
#[inline(never)]
fn push_escaped(out: &mut Vec<u8>, payload: &[u8]) {
    let (suspicious, ascii) = scan(payload);
    if !suspicious && (ascii || std::str::from_utf8(payload).is_ok()) {
        out.extend_from_slice(payload);
        return;
    }
    let mut text = String::with_capacity(payload.len());
    for chunk in payload.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut text, c);
        }
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out.extend_from_slice(text.as_bytes());
}

/// [`push_visible`], with the line ends in `payload` made `breaks`.
pub fn push_visible_breaking(out: &mut Vec<u8>, payload: &[u8], breaks: Breaks) {
    if breaks == Breaks::Escape || memchr::memchr(b'\n', payload).is_none() {
        return push_visible(out, payload);
    }
    let mut mark = [0; 4];
    let mark: &[u8] = match breaks {
        Breaks::Mark => LINE_BREAK.encode_utf8(&mut mark).as_bytes(),
        _ => b"\n",
    };
    for (n, line) in payload.split(|&b| b == b'\n').enumerate() {
        if n > 0 {
            out.extend_from_slice(mark);
        }
        push_visible(out, line);
    }
}

/// Appends the messages in `frames` (whole frames), made safe to show, a
/// line each; keepalives (empty frames) show nothing. With `breaks`, the
/// peer may send messages of several lines: their line ends are shown as
/// [`LINE_BREAK`]s.
pub fn push_visible_frames(text: &mut Vec<u8>, frames: &[u8], breaks: bool) {
    for payload in crate::wire::frame::payloads_with_slack(frames).filter(|p| !p.bytes().is_empty())
    {
        push_visible_line(text, payload, breaks);
    }
}

/// One pass over the bytes: whether any might need escaping, and whether all
/// are ASCII (then they are valid UTF-8 too). Every character that needs
/// escaping contains a control byte, or starts with 0xC2 (C1 controls) or 0xE2
/// (U+2028, U+2029, U+202A to U+202E, U+2066 to U+2069). Written as a loop without early exits so that the compiler
/// vectorizes it: this runs on every message received.
fn scan(payload: &[u8]) -> (bool, bool) {
    let mut suspicious = 0u8;
    let mut high = 0u8;
    for &b in payload {
        let control = (b < 0x20) & (b != b'\t');
        suspicious |= u8::from(control | (b == 0x7f) | (b == 0xc2) | (b == 0xe2));
        high |= b;
    }
    (suspicious != 0, high < 0x80)
}

/// Whether `c` is shown as an escape (tab aside, which shows as spaces):
/// what a line being typed shows as `?` too.
pub fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x08'
            | '\n'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\t' => out.push(c),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        '\u{80}'..='\u{9f}'
        | '\u{2028}'..='\u{2029}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::{push_char, visible};
    use crate::wire::frame::Payload;
    use proptest::prelude::*;

    /// The displayable form, one character at a time: the reference the
    /// fast paths must match.
    fn visible_char_by_char(payload: &[u8]) -> String {
        let mut text = String::new();
        for chunk in payload.utf8_chunks() {
            for c in chunk.valid().chars() {
                push_char(&mut text, c);
            }
            if !chunk.invalid().is_empty() {
                text.push(char::REPLACEMENT_CHARACTER);
            }
        }
        text
    }

    /// Mostly printable ASCII, with what needs care mixed in: controls,
    /// DEL, C1 controls, line separators, bidi controls, other non-ASCII
    /// text and invalid bytes.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            8 => (0x20u8..0x7f).prop_map(|b| vec![b]),
            1 => (0u8..0x20).prop_map(|b| vec![b]),
            1 => Just(vec![0x7f]),
            1 => (0x80u32..0xa0).prop_map(|c| char::from_u32(c).unwrap().to_string().into_bytes()),
            1 => (0x2020u32..0x2070).prop_map(|c| char::from_u32(c).unwrap().to_string().into_bytes()),
            1 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ];
        prop::collection::vec(piece, 0..150).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn fast_paths_match_the_character_by_character_form(payload in payload()) {
            prop_assert_eq!(visible(&payload), visible_char_by_char(&payload));
        }

        /// The block copy of a line gives what `push_visible` and a line
        /// end give, whatever follows the payload in its buffer (nothing,
        /// or up to a block and more) and whatever `out` held before.
        #[test]
        fn a_line_copied_as_a_block_matches_the_plain_path(
            payload in payload(),
            slack in prop::collection::vec(any::<u8>(), 0..100),
            before in prop::collection::vec(any::<u8>(), 0..70),
        ) {
            let mut buffer = payload.clone();
            buffer.extend_from_slice(&slack);
            let mut out = before.clone();
            super::push_visible_line(&mut out, Payload::new(&buffer, payload.len()), false);
            let mut expected = before;
            super::push_visible(&mut expected, &payload);
            expected.push(b'\n');
            prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for text in [
            "hello",
            "你好，世界",
            "café ñ",
            "🎉 party",
            "a\tb",
            "“quoted” €5",
            r"C:\path",
        ] {
            assert_eq!(visible(text.as_bytes()), text);
        }
    }

    #[test]
    fn what_needs_escaping_is_what_is_escaped() {
        for c in (0..0x3000u32).filter_map(char::from_u32) {
            let mut shown = String::new();
            push_char(&mut shown, c);
            assert_eq!(super::needs_escape(c), shown != c.to_string(), "{c:?}");
        }
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(visible(b"\x1b[2Jgone"), "\\x1b[2Jgone");
        assert_eq!(visible(b"one\ntwo\r\n"), "one\\ntwo\\r\\n");
        assert_eq!(visible(b"bell\x07del\x7f"), "bell\\x07del\\x7f");
        assert_eq!(visible("c1\u{9b}31m".as_bytes()), "c1\\u{9b}31m");
        assert_eq!(
            visible("ls\u{2028}ps\u{2029}".as_bytes()),
            "ls\\u{2028}ps\\u{2029}"
        );
    }

    #[test]
    fn bidirectional_controls_are_escaped_so_a_line_reads_as_sent() {
        for (c, shown) in [
            ('\u{202a}', "\\u{202a}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
        ] {
            assert_eq!(visible(format!("a{c}b").as_bytes()), format!("a{shown}b"));
        }
        // Neighbours that are ordinary punctuation pass unchanged.
        assert_eq!(
            visible("\u{2026}\u{2030}\u{2070}".as_bytes()),
            "\u{2026}\u{2030}\u{2070}"
        );
    }

    /// A message of several lines from a peer that may send them: its
    /// line ends are marks (or kept, for a room's reader), everything else
    /// as ever, a peer's own U+2028 included; from one that may not, the
    /// line ends are escapes.
    #[test]
    fn line_breaks_are_marked_kept_or_escaped() {
        use super::{Breaks, push_visible_breaking, push_visible_frames};
        let breaking = |payload: &[u8], breaks| {
            let mut out = Vec::new();
            push_visible_breaking(&mut out, payload, breaks);
            String::from_utf8(out).unwrap()
        };
        let payload = "one\ntwo\x1b\u{2028}\n\nthree".as_bytes();
        assert_eq!(
            breaking(payload, Breaks::Mark),
            "one\u{2028}two\\x1b\\u{2028}\u{2028}\u{2028}three"
        );
        assert_eq!(
            breaking(payload, Breaks::Keep),
            "one\ntwo\\x1b\\u{2028}\n\nthree"
        );
        assert_eq!(breaking(payload, Breaks::Escape), visible(payload));
        let mut frames = Vec::new();
        for p in [&b"a\nb"[..], b"", b"c"] {
            crate::wire::frame::encode_frame(&mut frames, p, 100).unwrap();
        }
        let mut text = Vec::new();
        push_visible_frames(&mut text, &frames, true);
        assert_eq!(String::from_utf8(text).unwrap(), "a\u{2028}b\nc\n");
        let mut text = Vec::new();
        push_visible_frames(&mut text, &frames, false);
        assert_eq!(String::from_utf8(text).unwrap(), "a\\nb\nc\n");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(visible(b"ok \xff\xfe end"), "ok \u{fffd}\u{fffd} end");
        assert_eq!(visible(b"cut \xe4\xbd"), "cut \u{fffd}");
    }
}
