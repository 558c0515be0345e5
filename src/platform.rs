//! What differs between operating systems, one function each with a body per
//! platform, so the rest of the crate reads the same everywhere.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// Sends what the socket takes of `bytes` at once, without waiting: how
/// many bytes that was, 0 if none or on any error. Where a single call
/// cannot be made non-blocking (Windows), nothing is sent this way.
#[cfg(unix)]
pub(crate) fn send_now(stream: &TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = libc::MSG_DONTWAIT;
    let socket = socket2::SockRef::from(stream);
    loop {
        match socket.send_with_flags(bytes, flags) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(windows)]
pub(crate) fn send_now(_stream: &TcpStream, _bytes: &[u8]) -> std::io::Result<usize> {
    Ok(0)
}

/// Waits until `input` has something to read, its end, or an error (which
/// the read that follows meets). Where a pipe cannot be waited on (Windows),
/// returns at once.
#[cfg(unix)]
pub(crate) fn wait_readable(input: &impl std::os::fd::AsRawFd) {
    let mut ready = libc::pollfd {
        fd: input.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    while unsafe { libc::poll(&mut ready, 1, -1) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

#[cfg(windows)]
pub(crate) fn wait_readable<T>(_input: &T) {}

/// How often the server's event loop looks at every connection whether or
/// not it was told that one is ready: never where readiness is reported
/// reliably (epoll, kqueue); every quarter second on Windows, where the
/// emulation the tests run under (wine's AFD polling) can leave a reset or
/// an end of stream unreported for a long time.
#[cfg(unix)]
pub(crate) fn readiness_recheck() -> Option<Duration> {
    None
}

#[cfg(windows)]
pub(crate) fn readiness_recheck() -> Option<Duration> {
    Some(Duration::from_millis(250))
}

/// Whether a read from a socket that returns less than asked for means it
/// is empty, with more data reported as a new readiness event: so with
/// edge-triggered epoll and kqueue (as tokio relies on too); not with
/// Windows' emulated readiness, which a read must meet `WouldBlock` to
/// re-arm.
pub(crate) const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
));

/// How the system probes a silent peer so that it gives up after
/// `dead_after` (whole seconds, at least 3): up to four probes spread over
/// two thirds of it, after a silence of the rest. Returns the silence
/// before the first probe, the time between probes, and how many go
/// unanswered before the system gives up.
fn keepalive_for(dead_after: Duration) -> (Duration, Duration, u32) {
    let secs = dead_after.as_secs().max(3);
    let probes = (secs - 1).min(4);
    let interval = (secs * 2 / 3 / probes).max(1);
    let idle = secs - probes * interval;
    (
        Duration::from_secs(idle),
        Duration::from_secs(interval),
        probes as u32,
    )
}

/// Makes the system give up on a connection whose peer answers nothing for
/// about `dead_after` while nothing of ours is in flight (its machine
/// vanished, or the path died without a word, during a silence): keepalive
/// probes, after which a read fails with `ETIMEDOUT`. While bytes are in
/// flight the system sends no keepalive and retransmits for about 15
/// minutes; [`unanswered_for`] lets the caller judge that case itself.
///
/// Not `TCP_USER_TIMEOUT`: since Linux 5.12 it also ends a connection
/// whose peer has kept its window shut that long while answering every
/// probe (a reader that is only slow, or a client waiting in line): we
/// wait on such a peer as long as it takes, by our own rules.
pub(crate) fn watch_liveness(socket: socket2::SockRef<'_>, dead_after: Duration) -> io::Result<()> {
    let (idle, interval, probes) = keepalive_for(dead_after);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(interval)
        .with_retries(probes);
    socket.set_tcp_keepalive(&keepalive)
}

/// How long the peer's system has answered nothing while something of ours
/// waits for its answer: bytes sent and not acknowledged, or probes of its
/// shut window (two unanswered at least: a live peer answers each, and
/// the count restarts then). `None` when nothing waits for an answer, or
/// where the system does not say (then keepalive alone watches).
#[cfg(target_os = "linux")]
pub(crate) fn unanswered_for(socket: socket2::SockRef<'_>) -> Option<Duration> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: TCP_INFO writes at most `len` bytes of a tcp_info.
    let done = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    let waiting = info.tcpi_unacked > 0 || info.tcpi_probes >= 2;
    (done == 0 && waiting).then(|| Duration::from_millis(u64::from(info.tcpi_last_ack_recv)))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn unanswered_for(_socket: socket2::SockRef<'_>) -> Option<Duration> {
    None
}

/// Whether [`send_now`] can send anything here.
pub(crate) const SENDS_NOW: bool = cfg!(unix);

/// Writes what stdout takes of `bytes` at once, without waiting: how many
/// bytes that was (0 if none, or on an error, which the next ordinary write
/// meets again), or `None` if stdout cannot be written that way. Linux
/// (`pwritev2` with `RWF_NOWAIT`: pipes, `/dev/null`; terminals say no).
#[cfg(target_os = "linux")]
pub(crate) fn write_stdout_now(bytes: &[u8]) -> Option<usize> {
    let iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // Nothing goes through std's stdout meanwhile (which holds nothing
    // back: the plain writer flushes every write).
    let _stdout = std::io::stdout().lock();
    loop {
        // SAFETY: one iovec describing `bytes`, which lives through the
        // call and is only read; offset -1 is the file's own position.
        let n = unsafe { libc::pwritev2(libc::STDOUT_FILENO, &iov, 1, -1, libc::RWF_NOWAIT) };
        if let Ok(n) = usize::try_from(n) {
            return Some(n);
        }
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => None,
            _ => Some(0),
        };
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn write_stdout_now(_bytes: &[u8]) -> Option<usize> {
    None
}

/// Bytes we wrote to `stream` that the peer has not yet acknowledged (still
/// in our kernel's send queue), where the system says; `None` where it does
/// not, and then what the kernel took counts as delivered.
#[cfg(target_os = "linux")]
pub(crate) fn unacknowledged(stream: socket2::SockRef<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int for a TCP socket descriptor.
    let done = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    (done == 0).then(|| u64::try_from(queued).unwrap_or(0))
}

#[cfg(target_os = "macos")]
pub(crate) fn unacknowledged(stream: socket2::SockRef<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_NWRITE writes one int for a socket descriptor.
    let done = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NWRITE,
            (&mut queued as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (done == 0).then(|| u64::try_from(queued).unwrap_or(0))
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn unacknowledged(_stream: socket2::SockRef<'_>) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_gives_up_after_dead_after_exactly() {
        for secs in 3..=1000 {
            let (idle, interval, probes) = keepalive_for(Duration::from_secs(secs));
            assert!(idle >= Duration::from_secs(1), "{secs} s: idle {idle:?}");
            assert!(interval >= Duration::from_secs(1) && (2..=4).contains(&probes));
            assert!(
                idle >= interval,
                "{secs} s: probes before the silence is long"
            );
            assert_eq!((idle + interval * probes).as_secs(), secs);
        }
        let (idle, interval, probes) = keepalive_for(Duration::from_secs(15));
        assert_eq!((idle.as_secs(), interval.as_secs(), probes), (7, 2, 4));
    }
}
