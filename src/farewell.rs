//! Clients the server will not serve: told why in one frame, then let go
//! without a thread of their own.
//!
//! Our side is shut down at once; theirs is read (and what it sent thrown
//! away) until it closes or [`FAREWELL_TIMEOUT`] passes. Closing a socket
//! with unread bytes in it sends a reset, which can destroy the notice
//! before the client reads it: that is what the reading is for.
//!
//! The notice's form, `-- refused: WHY` (see `docs/PROTOCOL.md`), is how
//! our client tells a refusal from a conversation that ended: it shows WHY
//! and exits with a failure. A plain protocol peer reads it as text.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::transport::Transport;

/// How long a turned-away client has to close before it is dropped.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Turned-away clients still being read; past this they are dropped at once.
const MAX_FAREWELLS: usize = 64;

/// The notice must reach the client's buffers within this.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(1);

const REFUSED: &str = "-- refused: ";

/// The one frame to a client that is refused, for `why`.
pub fn refusal(why: &str) -> String {
    format!("{REFUSED}{why}")
}

/// Why the server refused us, if `first` (the first frame it sent) says so.
pub fn read_refusal(first: &[u8]) -> Option<&str> {
    std::str::from_utf8(first.strip_prefix(REFUSED.as_bytes())?).ok()
}

/// Turned-away clients, our side shut down, theirs read until it closes.
#[derive(Default)]
pub struct Farewells {
    leaving: Mutex<Vec<(TcpStream, Instant)>>,
}

impl Farewells {
    /// Tells the client `notice` in one frame and ends our side; false if
    /// it could not be told.
    pub fn send_off(&self, transport: &Transport, notice: &str) -> bool {
        if !transport.send_notice(notice, NOTICE_TIMEOUT) || transport.close_write().is_err() {
            return false;
        }
        let mut leaving = crate::lock(&self.leaving);
        if leaving.len() < MAX_FAREWELLS
            && let Ok(stream) = transport.stream().try_clone()
            && stream.set_nonblocking(true).is_ok()
        {
            leaving.push((stream, Instant::now()));
        }
        true
    }

    /// Reads what the leaving clients sent; drops those that closed or
    /// whose time is up at `now`.
    pub fn tidy(&self, now: Instant) {
        crate::lock(&self.leaving).retain_mut(|(stream, since)| {
            let mut scratch = [0; 4096];
            loop {
                match stream.read(&mut scratch) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        return now < *since + FAREWELL_TIMEOUT;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reads_back_and_nothing_else_passes_for_one() {
        let notice = refusal("your address is not allowed here");
        assert_eq!(
            read_refusal(notice.as_bytes()),
            Some("your address is not allowed here")
        );
        for other in ["refused: x", "-- refused:x", "alice: -- refused: x", ""] {
            assert_eq!(read_refusal(other.as_bytes()), None, "{other:?}");
        }
    }
}
