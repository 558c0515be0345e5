//! How failures are worded for the user: one lowercase line, no OS error
//! numbers.

use std::io::{self, ErrorKind};

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
