//! How failures are worded for the user: one lowercase line, no OS error
//! numbers.

use std::io::{self, ErrorKind, Write};

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
