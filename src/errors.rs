//! How failures are worded for the user: one lowercase line, no OS error
//! numbers.

use std::io::{self, ErrorKind, Write};
use std::time::Duration;

use crate::state::ending::{Ending, Stall};
use crate::wire::frame::TooLong;

/// A TLS error carried inside an `io::Error`, so that it can be worded.
#[derive(Debug, thiserror::Error)]
#[error("TLS error: {0}")]
pub struct TlsFailure(pub rustls::Error);

/// One line describing why receiving failed.
pub fn describe_receive_error(e: &io::Error) -> String {
    if let Some(too_long) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TooLong>())
    {
        // 0x16 0x03: a TLS handshake record, read as a length.
        if too_long.len >> 16 == 0x1603 {
            return "it speaks TLS and this side does not: use --tls on both sides, or on neither"
                .to_string();
        }
        return format!("protocol error: {too_long}");
    }
    if let Some(failure) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsFailure>())
    {
        return failure.to_string();
    }
    match e.kind() {
        ErrorKind::UnexpectedEof => "connection closed mid-message".to_string(),
        ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        _ => format!("receive failed: {}", lowercase_os_error(e)),
    }
}

/// [`describe_receive_error`], where a peer that stopped answering for
/// `dead_after` (the system gave up on it: `ETIMEDOUT`), or that the
/// network no longer reaches, is said to be lost.
pub fn describe_receive_failure(e: &io::Error, dead_after: Option<Duration>) -> String {
    lost(e, dead_after).unwrap_or_else(|| describe_receive_error(e))
}

/// How a version 2 peer's end of stream without its `END` is said, after
/// the peer's name: its program is gone, and the conversation did not end.
pub const VANISHED: &str =
    "closed the connection without ending the conversation (its program may have been killed)";

/// [`describe_send_error`], with a lost peer said as
/// [`describe_receive_failure`] says it.
pub fn describe_send_failure(e: &io::Error, dead_after: Option<Duration>) -> String {
    lost(e, dead_after).unwrap_or_else(|| describe_send_error(e))
}

fn lost(e: &io::Error, dead_after: Option<Duration>) -> Option<String> {
    match (e.kind(), dead_after) {
        (ErrorKind::TimedOut, Some(after)) => Some(crate::state::ending::lost_after(after)),
        // The system's verdict on the last retransmission or probe, when
        // our own network went away.
        (
            ErrorKind::TimedOut
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown,
            _,
        ) => Some(format!("connection lost: {}", lowercase_os_error(e))),
        _ => None,
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

/// An OS error as one lowercase line without "(os error N)", worded the
/// same on every platform: the common network and file errors get the Unix
/// wording (Windows words them differently), the rest the system's own.
pub fn lowercase_os_error(e: &io::Error) -> String {
    let common = match e.kind() {
        ErrorKind::AddrInUse => "address already in use",
        ErrorKind::AddrNotAvailable => "cannot assign requested address",
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "connection reset by peer",
        ErrorKind::ConnectionAborted => "software caused connection abort",
        ErrorKind::NotConnected => "transport endpoint is not connected",
        ErrorKind::BrokenPipe => "broken pipe",
        ErrorKind::TimedOut => "connection timed out",
        ErrorKind::HostUnreachable => "no route to host",
        ErrorKind::NetworkUnreachable => "network is unreachable",
        ErrorKind::NetworkDown => "network is down",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::NotFound => "no such file or directory",
        _ => "",
    };
    if !common.is_empty() && e.raw_os_error().is_some() {
        return common.to_string();
    }
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let text = text.trim_end().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How many of the user's lines were not delivered, and the first of them
/// (shortened), as the end of a failure's line; `None` if none.
pub fn undelivered_lines(lines: u64, first: Option<&str>) -> Option<String> {
    const SHOWN: usize = 60;
    let first = first.map(|line| match line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("\"{}…\"", &line[..cut]),
        None => format!("\"{line}\""),
    });
    Some(match (lines, first) {
        (0, _) => return None,
        (1, Some(first)) => format!("1 line not delivered: {first}"),
        (1, None) => "1 line not delivered".to_string(),
        (n, Some(first)) => format!("{n} lines not delivered, the first: {first}"),
        (n, None) => format!("{n} lines not delivered"),
    })
}

/// A wait as people say it: `850 ms`, `42 s`, `3 min 5 s`.
pub fn duration_words(wait: Duration) -> String {
    let secs = wait.as_secs();
    match secs {
        0 => format!("{} ms", wait.as_millis()),
        1..60 => format!("{secs} s"),
        _ if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        _ => format!("{} min {} s", secs / 60, secs % 60),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_said_in_the_largest_sensible_unit() {
        assert_eq!(duration_words(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration_words(Duration::from_millis(42_400)), "42 s");
        assert_eq!(duration_words(Duration::from_secs(120)), "2 min");
        assert_eq!(duration_words(Duration::from_secs(185)), "3 min 5 s");
    }

    #[test]
    fn undelivered_lines_are_counted_and_the_first_shown_shortened() {
        assert_eq!(undelivered_lines(0, Some("x")), None);
        assert_eq!(
            undelivered_lines(1, Some("hello")).unwrap(),
            "1 line not delivered: \"hello\""
        );
        assert_eq!(undelivered_lines(3, None).unwrap(), "3 lines not delivered");
        let long = "é".repeat(100);
        let said = undelivered_lines(2, Some(&long)).unwrap();
        assert!(
            said.starts_with("2 lines not delivered, the first: \"é"),
            "{said}"
        );
        assert!(said.ends_with("…\""), "{said}");
        assert_eq!(said.chars().filter(|&c| c == 'é').count(), 60);
    }

    #[test]
    fn a_peer_the_system_gave_up_on_is_lost_not_a_receive_error() {
        let fifteen = Some(Duration::from_secs(15));
        let timed_out = io::Error::from_raw_os_error(libc_etimedout());
        assert_eq!(
            describe_receive_failure(&timed_out, fifteen),
            "connection lost: nothing came back for 15 s"
        );
        assert_eq!(
            describe_send_failure(&timed_out, fifteen),
            "connection lost: nothing came back for 15 s"
        );
        assert_eq!(
            describe_receive_failure(&timed_out, None),
            "connection lost: connection timed out"
        );
        let unreachable = io::Error::from(ErrorKind::NetworkUnreachable);
        assert!(describe_receive_failure(&unreachable, fifteen).starts_with("connection lost: "));
        let reset = io::Error::from(ErrorKind::ConnectionReset);
        assert_eq!(
            describe_receive_failure(&reset, fifteen),
            "connection reset by peer"
        );
    }

    /// ETIMEDOUT as the system numbers it.
    fn libc_etimedout() -> i32 {
        if cfg!(windows) {
            10060
        } else if cfg!(target_os = "linux") {
            110
        } else {
            60
        }
    }

    #[test]
    fn os_errors_read_the_same_everywhere() {
        let refused = io::Error::from(ErrorKind::ConnectionRefused);
        // Without an OS code it is our own error: its own words, lowercase.
        assert_eq!(lowercase_os_error(&refused), "connection refused");
        #[cfg(unix)]
        {
            let in_use = io::Error::from_raw_os_error(libc::EADDRINUSE);
            assert_eq!(lowercase_os_error(&in_use), "address already in use");
            let files = io::Error::from_raw_os_error(libc::EMFILE);
            assert_eq!(lowercase_os_error(&files), "too many open files");
        }
        #[cfg(windows)]
        {
            // WSAEADDRINUSE, which Windows words "Only one usage of each socket address…".
            let in_use = io::Error::from_raw_os_error(10048);
            assert_eq!(lowercase_os_error(&in_use), "address already in use");
        }
    }
}
