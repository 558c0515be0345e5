//! What the server tells a client waiting in line, in ordinary text frames
//! a version 1 peer shows as they are (see `docs/PROTOCOL.md`, "Server
//! notices"), and how our client reads them back: a client told it waits
//! has not been served yet, so whatever it sent is not delivered until it
//! is told its turn.

const BUSY: &str = "server is busy; you are number ";
const BUSY_TAIL: &str = " in line. What you type now is delivered when your turn comes.";
const MOVED: &str = "you are now number ";
const MOVED_TAIL: &str = " in line";
const TURN: &str = "your turn: you are now talking with the server";

/// The first notice to a client in line: it waits at `place`.
pub fn busy(place: usize) -> String {
    format!("{BUSY}{place}{BUSY_TAIL}")
}

/// The line moved: the client is at `place` now.
pub fn moved(place: usize) -> String {
    format!("{MOVED}{place}{MOVED_TAIL}")
}

/// The conversation ahead lost its connection, and is kept for `within`
/// seconds for its client to come back: the line waits meanwhile.
pub fn ahead_away(within: u64) -> String {
    format!(
        "the client ahead of you lost its connection; the server keeps its conversation up to {within} s for it to come back, and the line waits"
    )
}

/// The conversation ahead goes on after its client came back.
pub fn ahead_back(place: usize) -> String {
    format!("the client ahead of you is back; you are still number {place} in line")
}

/// The client's turn has come: from now on, its conversation.
pub fn turn() -> &'static str {
    TURN
}

/// A notice about the waiting line, read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineNotice {
    /// Waiting, at this place.
    Waiting(usize),
    Turn,
}

/// What `line` (one frame's text) says about the waiting line, if it is
/// one of the server's notices.
pub fn read_line_notice(line: &str) -> Option<LineNotice> {
    if line == TURN {
        return Some(LineNotice::Turn);
    }
    let place = line
        .strip_prefix(BUSY)
        .and_then(|rest| rest.strip_suffix(BUSY_TAIL))
        .or_else(|| line.strip_prefix(MOVED)?.strip_suffix(MOVED_TAIL))?;
    place.parse().ok().map(LineNotice::Waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_back_and_messages_do_not_pass_for_them() {
        assert_eq!(read_line_notice(&busy(3)), Some(LineNotice::Waiting(3)));
        assert_eq!(read_line_notice(&moved(1)), Some(LineNotice::Waiting(1)));
        assert_eq!(read_line_notice(turn()), Some(LineNotice::Turn));
        for other in [
            "hello",
            "you are now number one in line",
            "server is busy; you are number 2 in line",
            "your turn: you are now talking with the server!",
            "",
        ] {
            assert_eq!(read_line_notice(other), None, "{other:?}");
        }
    }
}
