//! A link that fails on demand, on loopback: a relay between a client and
//! a server that can stop forwarding without closing anything (a silent
//! death: both sockets stay open and their systems keep acknowledging, as
//! when a path dies beyond a router), forward again, or reset both sides.
//!
//! What only the programs' own heartbeats can notice: TCP keepalive and
//! the system's acknowledgements see a live relay.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub struct Relay {
    address: SocketAddr,
    frozen: Arc<AtomicBool>,
    /// Bytes forwarded, both ways.
    moved: Arc<AtomicU64>,
    /// Bytes read and held while frozen, both ways.
    held: Arc<AtomicU64>,
}

impl Relay {
    /// Relays one client, accepted at [`address`](Self::address), to `server`.
    pub fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let switch = Arc::clone(&frozen);
        let moved = Arc::new(AtomicU64::new(0));
        let held = Arc::new(AtomicU64::new(0));
        let counted = (Arc::clone(&moved), Arc::clone(&held));
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(upstream) = TcpStream::connect(server) else {
                return;
            };
            let (client_in, upstream_in) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let back = (Arc::clone(&switch), counted.clone());
            thread::spawn(move || forward(upstream_in, client, &back.0, &back.1));
            forward(client_in, upstream, &switch, &counted);
        });
        Self {
            address,
            frozen,
            moved,
            held,
        }
    }

    /// Bytes that came while the link was stopped and wait in it.
    pub fn waiting(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Waits until nothing has crossed for `quiet` (what was said has been
    /// acknowledged, the acknowledgements have crossed too).
    pub fn settle(&self, quiet: Duration) {
        let deadline = Instant::now() + super::PATIENCE;
        let mut seen = self.moved.load(Ordering::SeqCst);
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            assert!(Instant::now() < deadline, "the link never went quiet");
            thread::sleep(Duration::from_millis(10));
            let now = self.moved.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                since = Instant::now();
            }
        }
    }

    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Stops forwarding either way; nothing is closed, nothing is lost
    /// (what comes meanwhile waits in the sockets).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again, what waited first.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while not frozen, until either ends; then passes
/// the end on.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    frozen: &AtomicBool,
    (moved, held): &(Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let mut buf = vec![0; 64 * 1024];
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // While stopped: held, not let through, and counted.
                if frozen.load(Ordering::SeqCst) {
                    held.fetch_add(n as u64, Ordering::SeqCst);
                }
                while frozen.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                moved.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
