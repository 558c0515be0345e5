//! How failures are worded for the user: one lowercase line, no OS error
//! numbers.

use std::io::{self, ErrorKind, Write};

use crate::ending::{Ending, Stall};
use crate::frame::TooLong;

/// One line describing why receiving failed.
pub fn describe_receive_error(e: &io::Error) -> String {
    if let Some(too_long) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TooLong>())
    {
        return format!("protocol error: {too_long}");
    }
    match e.kind() {
        ErrorKind::UnexpectedEof => "connection closed mid-message".to_string(),
        ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        _ => format!("receive failed: {}", lowercase_os_error(e)),
    }
}

pub fn describe_send_error(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            "connection reset by peer while sending".to_string()
        }
        _ => format!("send failed: {}", lowercase_os_error(e)),
    }
}

/// `io::Error`'s text without the "(os error N)" tail, starting lowercase.
pub fn lowercase_os_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One line for an ending that failed, `None` for the endings that did not.
pub fn describe_failure(ending: &Ending) -> Option<String> {
    let (why, undelivered) = match ending {
        Ending::CutOff {
            why: Stall::NoProgress(after),
            undelivered,
        } => (
            format!(
                "stopped responding; closed the connection after {} s without progress",
                after.as_secs()
            ),
            *undelivered,
        ),
        Ending::CutOff {
            why: Stall::NeverClosed(after),
            undelivered,
        } => (
            format!(
                "did not close its side within {} s of ours; closed the connection",
                after.as_secs()
            ),
            *undelivered,
        ),
        Ending::Failed { why, undelivered } => (why.clone(), *undelivered),
        _ => return None,
    };
    Some(match undelivered {
        0 => why,
        1 => format!("{why}; 1 byte not delivered"),
        n => format!("{why}; {n} bytes not delivered"),
    })
}

/// One line on stderr. A closed or broken stderr is not our failure: the
/// line is dropped, never a panic.
pub fn to_stderr(line: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
    let _ = err.flush();
}
