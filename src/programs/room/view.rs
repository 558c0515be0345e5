//! The client's reading of what a server sends: plain text from a plain
//! server, or the room's forms (`crate::wire::room`) once the first frame
//! said the server is a room; or, from either, a refusal
//! (`crate::wire::farewell`). Installed on the client's output before it
//! connects, so it sees the first frame; what it finds goes to the client
//! program as [`Found`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::SystemTime;

use crate::console::output::{Interpret, Me, Said, Shown};
use crate::wire::farewell::read_refusal;
use crate::wire::line::{LineNotice, read_line_notice};
use crate::wire::room::{self as wire, Heard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// Nothing received yet.
    Unknown,
    Plain,
    Room,
}

/// What the reading found that the client program must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The server is a room (said once).
    Room,
    /// The server refused the client, or the room turned it away or
    /// disconnected it.
    TurnedAway,
    /// The room said why it ends the client's connection; `closing`, the
    /// room is closing (nothing the client sends from now on is relayed);
    /// `cut_short`, the room says the client was still sending.
    Goodbye { closing: bool, cut_short: bool },
    /// A plain server put the client in its waiting line: nothing the
    /// client sends is delivered until [`Found::Served`].
    Waiting,
    /// The client's turn came.
    Served,
}

pub struct RoomView {
    server: Server,
    /// A plain server said the client waits in line, and not yet that its
    /// turn came: its notices are status lines, not the operator's words.
    waiting: bool,
    found: Sender<Found>,
    /// Where the user's name in the room is kept, as the room says it.
    me: Me,
    /// When the earlier messages still to come were said, as the room
    /// said before them.
    said_at: VecDeque<SystemTime>,
}

impl RoomView {
    /// Reads what the server sends; tells `found` what it finds as it
    /// reads (on the thread that shows it: the client's loop).
    pub fn new(found: Sender<Found>, me: Me) -> Self {
        Self {
            server: Server::Unknown,
            waiting: false,
            found,
            me,
            said_at: VecDeque::new(),
        }
    }
}

impl Interpret for RoomView {
    fn interpret(&mut self, from: &Arc<str>, text: Vec<u8>) -> Vec<Shown> {
        if self.server == Server::Unknown {
            let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
            if let Some(why) = read_refusal(first) {
                // Any server, room or not: the one frame before the end.
                self.server = Server::Plain;
                let _ = self.found.send(Found::TurnedAway);
                return vec![Shown::Status(why.to_string())];
            }
            let first = std::str::from_utf8(first);
            let room = first.is_ok_and(wire::is_room_greeting);
            self.server = if room { Server::Room } else { Server::Plain };
            if room {
                let _ = self.found.send(Found::Room);
            }
            // Only the first frame can put us in line.
            if first
                .is_ok_and(|first| matches!(read_line_notice(first), Some(LineNotice::Waiting(_))))
            {
                self.waiting = true;
                let _ = self.found.send(Found::Waiting);
            }
        }
        if self.server == Server::Plain {
            if self.waiting {
                return self.read_line_notices(from, text);
            }
            let from = Arc::clone(from);
            return vec![Shown::Messages { from, text }];
        }
        let items = read_room_lines(&text, &mut self.said_at);
        for item in &items {
            if let Shown::Status(notice) = item {
                if let Some(name) = wire::names_reader(notice) {
                    *crate::lock(&self.me) = Some(Arc::from(name));
                }
                if wire::turns_away(notice) {
                    let _ = self.found.send(Found::TurnedAway);
                }
                if wire::says_goodbye(notice) {
                    let _ = self.found.send(Found::Goodbye {
                        closing: wire::closes(notice) || wire::was_cut_short(notice),
                        cut_short: wire::was_cut_short(notice),
                    });
                }
            }
        }
        items
    }
}

impl RoomView {
    /// A plain server's frames while we wait in its line: its notices as
    /// status lines, until the one that says our turn came; what follows
    /// that is the conversation's.
    fn read_line_notices(&mut self, from: &Arc<str>, text: Vec<u8>) -> Vec<Shown> {
        let mut items = Vec::new();
        let mut rest = &text[..];
        while self.waiting && !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |at| at + 1);
            let (line, after) = rest.split_at(end);
            rest = after;
            let line = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line));
            if read_line_notice(&line) == Some(LineNotice::Turn) {
                self.waiting = false;
                let _ = self.found.send(Found::Served);
            }
            items.push(Shown::Status(line.into_owned()));
        }
        if !rest.is_empty() {
            items.push(Shown::Messages {
                from: Arc::clone(from),
                text: rest.to_vec(),
            });
        }
        items
    }
}

/// The room's lines as things to show; consecutive lines from one sender,
/// said the same way, become one item (earlier ones with a time each stay
/// apart). `said_at`: the times of earlier messages to come, which a
/// notice gives before them.
fn read_room_lines(text: &[u8], said_at: &mut VecDeque<SystemTime>) -> Vec<Shown> {
    let text = String::from_utf8_lossy(text);
    let mut items: Vec<Shown> = Vec::new();
    for line in text.lines() {
        let (heard, earlier) = match wire::parse(line) {
            Heard::Earlier(heard) => (*heard, true),
            heard => (heard, false),
        };
        let (said, name, text) = match heard {
            Heard::Message { name, text } => (Said::Message, name, text),
            Heard::Action { name, text } => (Said::Action, name, text),
            Heard::Private { name, text } => (Said::Private, name, text),
            Heard::PrivateSent { name, text } => (Said::PrivateSent, name, text),
            Heard::Notice(notice) => {
                match wire::read_said_at(notice) {
                    Some(times) => *said_at = times.into(),
                    None => items.push(Shown::Status(notice.to_string())),
                }
                continue;
            }
            // Only a message or an action is ever marked as earlier.
            Heard::Earlier(_) => continue,
        };
        let at = if earlier { said_at.pop_front() } else { None };
        if let Some(Shown::Named {
            said: last_said,
            earlier: last_earlier,
            from,
            lines,
            said_at: None,
        }) = items.last_mut()
            && at.is_none()
            && *last_said == said
            && *last_earlier == earlier
            && &**from == name
        {
            lines.extend_from_slice(text.as_bytes());
            lines.push(b'\n');
            continue;
        }
        let mut lines = Vec::with_capacity(text.len() + 1);
        lines.extend_from_slice(text.as_bytes());
        lines.push(b'\n');
        items.push(Shown::Named {
            said,
            earlier,
            from: Arc::from(name),
            lines,
            said_at: at,
        });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn shown(view: &mut RoomView, text: &str) -> Vec<String> {
        let from: Arc<str> = Arc::from("server");
        view.interpret(&from, text.as_bytes().to_vec())
            .into_iter()
            .map(|item| match item {
                Shown::Messages { from, text } => {
                    format!("plain {from} {:?}", String::from_utf8(text).unwrap())
                }
                Shown::Status(s) => format!("status {s}"),
                Shown::Error(s) => format!("error {s}"),
                Shown::Named {
                    said,
                    earlier,
                    from,
                    lines,
                    said_at,
                } => format!(
                    "{said:?} earlier={earlier} {from} {:?}{}",
                    String::from_utf8(lines).unwrap(),
                    match said_at {
                        Some(at) => format!(" at {}", wire::said_at(&[at])),
                        None => String::new(),
                    }
                ),
            })
            .collect()
    }

    #[test]
    fn a_room_is_read_by_its_forms_and_said_once() {
        let (tx, rx) = mpsc::channel();
        let mut view = RoomView::new(tx, Me::default());
        let first = format!(
            "{}\n-- earlier: bob: before\nalice: hi\nalice: bob: fake\n* alice waves\n-- carol joined\n",
            wire::greeting(1 << 20)
        );
        assert_eq!(
            shown(&mut view, &first),
            [
                "status welcome to the room (/help lists the commands; messages up to 1048588 bytes)",
                "Message earlier=true bob \"before\\n\"",
                "Message earlier=false alice \"hi\\nbob: fake\\n\"",
                "Action earlier=false alice \"waves\\n\"",
                "status carol joined",
            ]
        );
        assert_eq!(
            shown(&mut view, "bob: 你好 🎉\n"),
            ["Message earlier=false bob \"你好 🎉\\n\""]
        );
        assert_eq!(rx.try_recv(), Ok(Found::Room));
        assert!(rx.try_recv().is_err(), "said once");
    }

    /// The times of earlier messages come in a notice before them, which
    /// is not shown: each earlier message is shown with its own.
    #[test]
    fn earlier_messages_carry_the_times_the_room_says() {
        use std::time::{Duration, UNIX_EPOCH};
        let (tx, _rx) = mpsc::channel();
        let mut view = RoomView::new(tx, Me::default());
        let (one, two) = (
            UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            UNIX_EPOCH + Duration::from_secs(1_796_000_100),
        );
        let first = format!(
            "{}\n{}\n-- earlier: bob: one\n-- earlier: bob: two\nbob: now\n",
            wire::greeting(1 << 20),
            wire::said_at(&[one, two])
        );
        let at = |t| wire::said_at(&[t]);
        assert_eq!(
            shown(&mut view, &first)[1..],
            [
                format!("Message earlier=true bob \"one\\n\" at {}", at(one)),
                format!("Message earlier=true bob \"two\\n\" at {}", at(two)),
                "Message earlier=false bob \"now\\n\"".to_string(),
            ]
        );
    }

    #[test]
    fn a_waiting_lines_notices_are_status_lines_until_the_turn_comes() {
        use crate::wire::line;
        let (tx, rx) = mpsc::channel();
        let mut view = RoomView::new(tx, Me::default());
        assert_eq!(
            shown(&mut view, &format!("{}\n", line::busy(2))),
            [format!("status {}", line::busy(2))]
        );
        assert_eq!(rx.try_recv(), Ok(Found::Waiting));
        let turn_and_more = format!("{}\n{}\nhello\n", line::moved(1), line::turn());
        assert_eq!(
            shown(&mut view, &turn_and_more),
            [
                format!("status {}", line::moved(1)),
                format!("status {}", line::turn()),
                "plain server \"hello\\n\"".to_string(),
            ]
        );
        assert_eq!(rx.try_recv(), Ok(Found::Served));
        // From now on the operator's words, even if they look like a notice.
        assert_eq!(
            shown(&mut view, &format!("{}\n", line::moved(1))),
            [format!(
                "plain server {:?}",
                format!("{}\n", line::moved(1))
            )]
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_plain_server_is_shown_as_before_whatever_it_sends_later() {
        let (tx, rx) = mpsc::channel();
        let mut view = RoomView::new(tx, Me::default());
        assert_eq!(shown(&mut view, "hello\n"), ["plain server \"hello\\n\""]);
        let later = format!("{}\nbob: x\n", wire::greeting(1 << 20));
        assert_eq!(
            shown(&mut view, &later),
            [format!("plain server {:?}", later)]
        );
        assert!(rx.try_recv().is_err());
    }
}
