//! The room's forms on the wire (room protocol 2 in `docs/PROTOCOL.md`):
//! every frame a room server sends is readable text, and its form says what
//! it is:
//!
//! - `NAME: TEXT`, a message; `* NAME TEXT`, an action (`/me`);
//! - `NAME → you: TEXT`, a private message (`/msg`) to the reader, and
//!   `you → NAME: TEXT`, the room's word to its sender that it went;
//! - `-- TEXT`, a notice from the server (joins, leaves, renames, answers);
//! - `-- earlier: NAME: TEXT` (or `-- earlier: * NAME TEXT`), a message from
//!   before the receiver joined.
//!
//! A name has no space and no colon, so the first `: ` ends it, and no
//! message can start with `-- ` or `* `. TEXT is the sender's text in its
//! displayable form (`crate::wire::display`), so a frame is always one line.
//! The first frame to each newcomer is a notice ending in [`MARKER`]: how a
//! client learns that it is in a room.

use std::time::{Duration, SystemTime};

use crate::wire::display::{Breaks, push_visible_breaking};
use crate::wire::frame::HEADER_LEN;
use crate::wire::names;

/// Ends the first frame a room server sends, and says which version of the
/// room protocol it speaks.
pub const MARKER: &str = "[room protocol 2]";

const NOTICE: &str = "-- ";
const EARLIER: &str = "-- earlier: ";
const ACTION: &str = "* ";

/// How the private forms name their reader, which no member may therefore
/// be called (see [`names_the_reader`]).
pub const READER: &str = "you";
/// Between the two sides of a private message: ` → ` (U+2192), which no
/// name has (a name has no space and no symbol).
const TO: &str = " \u{2192} ";

/// Says, in the greeting, the largest frame the room sends.
const UP_TO: &str = "; messages up to ";

/// The first frame to a newcomer; `max` is the largest message the room
/// relays. The greeting says the largest frame it sends (an earlier one is
/// longer by its mark), which a client with a smaller maximum must take.
pub fn greeting(max: usize) -> String {
    let largest = largest_frame(max);
    format!("{NOTICE}welcome to the room (/help lists the commands{UP_TO}{largest} bytes) {MARKER}")
}

/// The largest frame a room whose largest message is `max` sends, as its
/// greeting says.
pub fn largest_frame(max: usize) -> usize {
    max + EARLIER.len()
}

/// The largest message a room takes from a member, by its greeting.
pub fn takes(greeting: &[u8]) -> Option<usize> {
    declared_max(greeting)?.checked_sub(EARLIER.len())
}

/// The largest frame a room's greeting says it sends.
pub fn declared_max(greeting: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(greeting).ok()?;
    if !is_room_greeting(text) {
        return None;
    }
    let (_, rest) = text.split_once(UP_TO)?;
    rest.split_once(" bytes)")?.0.parse().ok()
}

/// How the notices begin that tell a member it is not, or no longer, let in.
const FULL: &str = "the room is full";
const DROPPED: &str = "you were disconnected:";

/// The only frame to one more than the room holds.
pub fn full(max_clients: usize) -> String {
    format!(
        "{NOTICE}{FULL} ({}); try again later {MARKER}",
        members(max_clients)
    )
}

/// "1 member", "3 members".
pub fn members(n: usize) -> String {
    match n {
        1 => "1 member".to_string(),
        n => format!("{n} members"),
    }
}

/// To a member cut off for taking nothing the room sent for `stalled`.
pub fn stalled(stalled: std::time::Duration) -> String {
    format!(
        "{DROPPED} you took nothing the room sent for {} s",
        stalled.as_secs()
    )
}

/// Whether a notice tells its reader it was turned away or disconnected:
/// for the client, an end that failed.
pub fn turns_away(notice: &str) -> bool {
    notice.starts_with(FULL) || notice.starts_with(DROPPED)
}

/// How a room's closing is told to its members.
pub fn closed_by(operator: &str) -> String {
    format!("{operator}{CLOSED_BY}")
}

const CLOSED_BY: &str = " closed the room";
const CUT_SHORT: &str = "; what you were still sending was not relayed";

/// The closing notice to a member that was still sending.
pub fn cut_short(why: &str) -> String {
    format!("{why}{CUT_SHORT}")
}

/// Whether a notice says the room closed while its reader was sending.
pub fn was_cut_short(notice: &str) -> bool {
    notice.strip_suffix(CUT_SHORT).is_some_and(closes)
}
const CLOSING: &str = "the room is closing";

/// Whether a notice says the room is closing: from then on, nothing a
/// member sends is relayed. (A name has no space, and a member cannot send
/// a notice, so no member can say this.)
pub fn closes(notice: &str) -> bool {
    notice.starts_with(CLOSING)
        || notice
            .strip_suffix(CLOSED_BY)
            .is_some_and(|name| !name.is_empty() && !name.contains(' '))
}

/// The last frame to a member whose idle timeout ran out.
pub fn idle(after: Duration) -> String {
    format!(
        "nothing sent or received for {} s (the room's idle timeout){ENDS_YOURS}",
        after.as_secs()
    )
}

const ENDS_YOURS: &str = ": the server ends your connection";

/// Whether a notice says why the room ends its reader's connection: it
/// closes, turns the reader away, or found it idle. A room never ends a
/// connection without one, so an end without it is the server's failure.
pub fn says_goodbye(notice: &str) -> bool {
    closes(notice) || was_cut_short(notice) || turns_away(notice) || notice.ends_with(ENDS_YOURS)
}

const JOINED_AS: &str = "you joined as ";
const NOW: &str = "you are now ";

/// The name a notice gives its reader, if it names it: on joining (`you
/// joined as NAME; here: …`, after a note on the name asked for, if any),
/// or on renaming (`you are now NAME`).
pub fn names_reader(notice: &str) -> Option<&str> {
    let name = match notice.split_once(JOINED_AS) {
        Some((_, rest)) => rest.split_once(';')?.0,
        None => notice.strip_prefix(NOW)?,
    };
    names::check(name).is_ok().then_some(name)
}

/// The only frame to a client that arrives while the room closes.
pub fn closing() -> String {
    format!("{NOTICE}{CLOSING} {MARKER}")
}

/// `-- TEXT`.
pub fn notice(text: &str) -> Vec<u8> {
    format!("{NOTICE}{text}").into_bytes()
}

/// `NAME: TEXT`, with TEXT made displayable.
pub fn message(name: &str, text: &[u8], breaks: Breaks) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2 + text.len());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_visible_breaking(&mut out, text, breaks);
    out
}

/// `* NAME TEXT`, with TEXT made displayable.
pub fn action(name: &str, text: &[u8], breaks: Breaks) -> Vec<u8> {
    let mut out = Vec::with_capacity(ACTION.len() + name.len() + 1 + text.len());
    out.extend_from_slice(ACTION.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_visible_breaking(&mut out, text, breaks);
    out
}

/// `NAME → you: TEXT`: a private message from `from` to the member it is
/// sent to, with TEXT made displayable.
pub fn private(from: &str, text: &[u8], breaks: Breaks) -> Vec<u8> {
    let mut out = format!("{from}{TO}{READER}: ").into_bytes();
    push_visible_breaking(&mut out, text, breaks);
    out
}

/// `you → NAME: TEXT`: to the sender of a private message, that it went
/// to `to`, with TEXT made displayable.
pub fn private_sent(to: &str, text: &[u8], breaks: Breaks) -> Vec<u8> {
    let mut out = format!("{READER}{TO}{to}: ").into_bytes();
    push_visible_breaking(&mut out, text, breaks);
    out
}

/// Whether `name` would pass for [`READER`]: a member called so would
/// make `you → you: hi` mean either way, so the room holds the name.
pub fn names_the_reader(name: &str) -> bool {
    names::Key::of(name).same(&names::Key::of(READER))
}

/// Appends `payload` (a message, action or private form, as built above)
/// as frames for a reader, after `mark` (an [`earlier`] mark, or
/// nothing): as one frame if it has no line break in it or the reader
/// `takes_breaks`; else a frame for each of its text's lines that is not
/// empty, each with the form's label, so that a reader that shows a frame
/// as one line (a version 1 peer) reads each line as said by its sender.
/// Returns how many frames that was.
pub fn encode_for(out: &mut Vec<u8>, mark: &[u8], payload: &[u8], takes_breaks: bool) -> usize {
    let put = |out: &mut Vec<u8>, parts: [&[u8]; 3]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(HEADER_LEN + len);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        for part in parts {
            out.extend_from_slice(part);
        }
    };
    if takes_breaks || memchr::memchr(b'\n', payload).is_none() {
        put(out, [mark, payload, b""]);
        return 1;
    }
    let (label, text) = payload.split_at(label_len(payload));
    let mut frames = 0;
    for line in text.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        put(out, [mark, label, line]);
        frames += 1;
    }
    frames
}

/// How many frames [`encode_for`] makes of `payload` for a reader that
/// does not take line breaks.
pub fn frames_for_lines(payload: &[u8]) -> usize {
    if memchr::memchr(b'\n', payload).is_none() {
        return 1;
    }
    let text = &payload[label_len(payload)..];
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .count()
}

/// Where the text of a message, action or private form (as built above)
/// starts: after `* NAME `, or the first `: ` (a name has neither a space
/// nor a colon, and `you → NAME: ` and `NAME → you: ` end at their first).
fn label_len(payload: &[u8]) -> usize {
    if let Some(rest) = payload.strip_prefix(ACTION.as_bytes()) {
        return rest
            .iter()
            .position(|&b| b == b' ')
            .map_or(payload.len(), |at| ACTION.len() + at + 1);
    }
    payload
        .windows(2)
        .position(|pair| pair == b": ")
        .map_or(0, |at| at + 2)
}

/// The mark before a message from before the receiver joined.
pub const EARLIER_MARK: &[u8] = EARLIER.as_bytes();

const SAID_AT: &str = "the earlier messages below were said at ";

/// The notice before the earlier messages a newcomer is sent: when each
/// was said, in order, as UTC times to the second (`2026-12-07T12:31:05Z`).
/// A client that knows it shows each earlier message with its time; one
/// that does not shows it as a notice, which reads as what it says.
pub fn said_at(times: &[SystemTime]) -> String {
    let times: Vec<String> = times.iter().map(|&t| utc(t)).collect();
    format!("{NOTICE}{SAID_AT}{}", times.join(", "))
}

/// The times a [`said_at`] notice (without its `-- `) gives, if it is one.
pub fn read_said_at(notice: &str) -> Option<Vec<SystemTime>> {
    let times = notice.strip_prefix(SAID_AT)?;
    times.split(", ").map(read_utc).collect()
}

fn utc(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn read_utc(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let number = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    let form = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !form {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(number(5, 2)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(0, 4)?).ok()?,
        month,
        u8::try_from(number(8, 2)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(11, 2)?).ok()?,
        u8::try_from(number(14, 2)?).ok()?,
        u8::try_from(number(17, 2)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .into(),
    )
}

/// The payloads of well-formed frames (as we encode them) in `bytes`.
pub fn frames(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    crate::wire::frame::payloads(bytes)
}

/// Whether `line`, the first a server sent, says the server is a room: a
/// notice ending in `[room protocol N]` with N ≥ 2.
pub fn is_room_greeting(line: &str) -> bool {
    let Some(rest) = line.strip_prefix(NOTICE) else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(']') else {
        return false;
    };
    let Some((_, version)) = rest.rsplit_once("[room protocol ") else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && version.parse::<u64>().map_or(true, |v| v >= 2)
}

/// What one line from a room server is.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard<'a> {
    Message {
        name: &'a str,
        text: &'a str,
    },
    Action {
        name: &'a str,
        text: &'a str,
    },
    /// A private message from member `name` to us.
    Private {
        name: &'a str,
        text: &'a str,
    },
    /// Our private message, as the room says it went to member `name`.
    PrivateSent {
        name: &'a str,
        text: &'a str,
    },
    /// A message or action from before we joined.
    Earlier(Box<Heard<'a>>),
    /// A notice, without its `-- ` (and without the version marker); also
    /// any line of a form this version does not know.
    Notice(&'a str),
}

/// Reads one line from a room server.
pub fn parse(line: &str) -> Heard<'_> {
    if let Some(rest) = line.strip_prefix(EARLIER) {
        let said = parse_said(rest);
        return match said {
            Some(said) => Heard::Earlier(Box::new(said)),
            None => Heard::Notice(&line[NOTICE.len()..]),
        };
    }
    if let Some(rest) = line.strip_prefix(NOTICE) {
        let rest = rest.strip_suffix(MARKER).map_or(rest, str::trim_end);
        return Heard::Notice(rest);
    }
    parse_private(line)
        .or_else(|| parse_said(line))
        .unwrap_or(Heard::Notice(line))
}

/// `you → NAME: TEXT` or `NAME → you: TEXT`. Neither can be a message
/// (the text before its first `: ` has spaces, which no name has), and a
/// message's text cannot make one (it comes after `NAME: `).
fn parse_private(line: &str) -> Option<Heard<'_>> {
    let (name, rest) = line.split_once(TO)?;
    if name == READER {
        let (name, text) = rest.split_once(": ")?;
        return names::check(name)
            .is_ok()
            .then_some(Heard::PrivateSent { name, text });
    }
    let text = rest.strip_prefix(READER)?.strip_prefix(": ")?;
    names::check(name)
        .is_ok()
        .then_some(Heard::Private { name, text })
}

fn parse_said(line: &str) -> Option<Heard<'_>> {
    if let Some(rest) = line.strip_prefix(ACTION) {
        let (name, text) = rest.split_once(' ')?;
        return names::check(name)
            .is_ok()
            .then_some(Heard::Action { name, text });
    }
    let (name, text) = line.split_once(": ")?;
    names::check(name)
        .is_ok()
        .then_some(Heard::Message { name, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_times_of_earlier_messages_are_read_back_to_the_second() {
        use std::time::{Duration, UNIX_EPOCH};
        let times = [
            UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            UNIX_EPOCH + Duration::from_secs(1_796_000_061),
        ];
        let notice = said_at(&times);
        assert_eq!(
            notice,
            "-- the earlier messages below were said at 2026-11-30T00:53:20Z, 2026-11-30T00:54:21Z"
        );
        let Heard::Notice(text) = parse(&notice) else {
            panic!("a notice");
        };
        assert_eq!(read_said_at(text), Some(times.to_vec()));
        assert_eq!(
            read_said_at("the earlier messages below were said at soon"),
            None
        );
        assert_eq!(read_said_at("bob joined"), None);
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn what_the_server_builds_reads_back_the_same() {
        let said = message("alice", "hi all 你好 🎉".as_bytes(), Breaks::Escape);
        assert_eq!(text(said.clone()), "alice: hi all 你好 🎉");
        assert_eq!(
            parse(&text(said.clone())),
            Heard::Message {
                name: "alice",
                text: "hi all 你好 🎉"
            }
        );
        let acted = action("bob", b"waves", Breaks::Escape);
        assert_eq!(text(acted.clone()), "* bob waves");
        assert_eq!(
            parse(&text(acted)),
            Heard::Action {
                name: "bob",
                text: "waves"
            }
        );
        assert_eq!(
            parse(&text([EARLIER_MARK, &said].concat())),
            Heard::Earlier(Box::new(Heard::Message {
                name: "alice",
                text: "hi all 你好 🎉"
            }))
        );
        assert_eq!(
            parse(&text(notice("bob joined"))),
            Heard::Notice("bob joined")
        );
    }

    #[test]
    fn private_messages_read_back_each_way_and_no_message_passes_for_one() {
        let got = text(private(
            "alice",
            "see you at one 🎉".as_bytes(),
            Breaks::Escape,
        ));
        assert_eq!(got, "alice \u{2192} you: see you at one 🎉");
        assert_eq!(
            parse(&got),
            Heard::Private {
                name: "alice",
                text: "see you at one 🎉"
            }
        );
        let sent = text(private_sent("bob", b"a: b \x1b", Breaks::Escape));
        assert_eq!(sent, "you \u{2192} bob: a: b \\x1b");
        assert_eq!(
            parse(&sent),
            Heard::PrivateSent {
                name: "bob",
                text: "a: b \\x1b"
            }
        );
        // A message whose text has the form is still that member's message.
        for sneaky in ["you \u{2192} bob: x", "bob \u{2192} you: x"] {
            let said = text(message("mallory", sneaky.as_bytes(), Breaks::Escape));
            assert!(
                matches!(
                    parse(&said),
                    Heard::Message {
                        name: "mallory",
                        ..
                    }
                ),
                "{said}"
            );
        }
        // Not a name on the other side: a notice, as any unknown form.
        for not in [
            "two words \u{2192} you: x",
            "you \u{2192} two words: x",
            "bob \u{2192} me: x",
        ] {
            assert!(matches!(parse(not), Heard::Notice(_)), "{not}");
        }
        assert!(names_the_reader("you"));
        assert!(names_the_reader("YOU"));
        assert!(names_the_reader("y\u{43e}u"), "a Cyrillic o");
        assert!(!names_the_reader("youth"));
    }

    #[test]
    fn no_text_can_pass_for_another_sender_or_a_notice() {
        for sneaky in [
            "bob: fake",
            "-- bob joined",
            "* bob waves",
            "x\n-- server closed the room",
            "\r\x1b[2Kbob: fake",
        ] {
            let said = text(message("mallory", sneaky.as_bytes(), Breaks::Escape));
            assert!(!said.contains('\n'), "{said:?}");
            match parse(&said) {
                Heard::Message { name, .. } => assert_eq!(name, "mallory"),
                other => panic!("{sneaky:?} read as {other:?}"),
            }
        }
        let acted = text(action("mallory", b"bob: fake", Breaks::Escape));
        assert!(matches!(
            parse(&acted),
            Heard::Action {
                name: "mallory",
                ..
            }
        ));
    }

    #[test]
    fn being_turned_away_is_told_apart_from_other_notices() {
        let notice = |line: String| match parse(&line) {
            Heard::Notice(text) => text.to_string(),
            _ => panic!("{line} is a notice"),
        };
        assert!(turns_away(&notice(full(1))));
        assert!(notice(full(1)).contains("(1 member)"));
        assert!(turns_away(&stalled(std::time::Duration::from_secs(5))));
        assert!(!turns_away(&notice(greeting(1 << 20))));
        assert!(!turns_away(&notice(closing())));
        assert!(!turns_away("alice was disconnected: it fell behind"));
    }

    #[test]
    fn a_closing_room_is_told_apart_from_what_members_say() {
        assert!(closes(&closed_by("server")));
        assert!(closes("the room is closing: the server was interrupted"));
        assert!(closes(closing().strip_prefix("-- ").unwrap()));
        assert!(was_cut_short(&cut_short(&closed_by("server"))));
        assert!(!was_cut_short(&closed_by("server")));
        assert!(!was_cut_short(&cut_short("alice: hi")));
        assert!(says_goodbye(&idle(Duration::from_secs(5))));
        assert!(says_goodbye(&stalled(std::time::Duration::from_secs(5))));
        assert!(says_goodbye(&closed_by("server")));
        assert!(!says_goodbye("bob left"));
        for not in [
            "alice: server closed the room",
            "bob left",
            " closed the room",
            "a b closed the room",
        ] {
            assert!(!closes(not), "{not:?}");
        }
    }

    #[test]
    fn the_greeting_is_recognised_by_its_marker_and_version() {
        assert!(is_room_greeting(&greeting(1 << 20)));
        assert!(is_room_greeting(&full(3)));
        assert!(is_room_greeting(&closing()));
        assert!(is_room_greeting("-- anything [room protocol 7]"));
        for not in [
            "welcome [room protocol 2]",
            "-- welcome [room protocol 1]",
            "-- welcome [room protocol ]",
            "-- welcome [room protocol 2] ",
            "-- your turn: you are now talking with the server",
            "hello",
        ] {
            assert!(!is_room_greeting(not), "{not:?}");
        }
        assert_eq!(
            parse(&greeting(1 << 20)),
            Heard::Notice(
                "welcome to the room (/help lists the commands; messages up to 1048588 bytes)"
            )
        );
    }

    #[test]
    fn the_greeting_declares_the_largest_frame_and_nothing_else_does() {
        assert_eq!(
            declared_max(greeting(1000).as_bytes()),
            Some(1000 + EARLIER.len())
        );
        assert_eq!(takes(greeting(1000).as_bytes()), Some(1000));
        for not in [
            "-- welcome (messages up to 99 bytes)".to_string(),
            "alice: ; messages up to 99 bytes) [room protocol 2]".to_string(),
            full(3),
            "-- x; messages up to lots bytes) [room protocol 2]".to_string(),
        ] {
            assert_eq!(declared_max(not.as_bytes()), None, "{not:?}");
        }
    }

    #[test]
    fn unknown_forms_read_as_notices() {
        assert_eq!(parse("no form at all"), Heard::Notice("no form at all"));
        assert_eq!(parse("two words: x"), Heard::Notice("two words: x"));
        assert_eq!(parse("-- earlier: gone"), Heard::Notice("earlier: gone"));
    }

    #[test]
    fn frames_are_split_back_into_payloads() {
        let mut bytes = Vec::new();
        for payload in [&b"one"[..], b"", "二".as_bytes()] {
            crate::wire::frame::encode_frame(&mut bytes, payload, usize::MAX).unwrap();
        }
        let got: Vec<&[u8]> = frames(&bytes).collect();
        assert_eq!(got, [&b"one"[..], b"", "二".as_bytes()]);
    }

    /// A message of several lines goes whole to a reader that takes line
    /// breaks, and a line each, under its label, to one that does not:
    /// for every form, earlier ones too; empty lines are left out.
    #[test]
    fn a_message_of_several_lines_goes_a_line_each_to_a_reader_without_breaks() {
        let decoded = |frames: &[u8]| -> Vec<String> {
            frames_of(frames)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        };
        fn frames_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
            super::frames(bytes)
        }
        let text = b"one\n\ntwo: \x1b\nthree";
        for (payload, label) in [
            (message("alice", text, Breaks::Keep), "alice: "),
            (action("alice", text, Breaks::Keep), "* alice "),
            (private("alice", text, Breaks::Keep), "alice \u{2192} you: "),
            (
                private_sent("bob", text, Breaks::Keep),
                "you \u{2192} bob: ",
            ),
        ] {
            let mut whole = Vec::new();
            assert_eq!(encode_for(&mut whole, b"", &payload, true), 1);
            assert_eq!(
                decoded(&whole),
                [format!("{label}one\n\ntwo: \\x1b\nthree")]
            );
            let mut lines = Vec::new();
            assert_eq!(encode_for(&mut lines, EARLIER_MARK, &payload, false), 3);
            assert_eq!(frames_for_lines(&payload), 3);
            assert_eq!(
                decoded(&lines),
                [
                    format!("-- earlier: {label}one"),
                    format!("-- earlier: {label}two: \\x1b"),
                    format!("-- earlier: {label}three"),
                ]
            );
        }
        // Escaped, a line end is text: one frame whoever reads it.
        let escaped = message("alice", text, Breaks::Escape);
        let mut out = Vec::new();
        assert_eq!(encode_for(&mut out, b"", &escaped, false), 1);
        assert_eq!(decoded(&out), ["alice: one\\n\\ntwo: \\x1b\\nthree"]);
    }
}
