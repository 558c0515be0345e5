//! A link that fails on demand, on loopback: a relay between clients and a
//! server that can stop forwarding without closing anything (a silent
//! death: both sockets stay open and their systems keep acknowledging, as
//! when a path dies beyond a router), forward again, reset what it
//! carries, or go down for good for the connections it carries while new
//! ones get through (a network that changed: the old path is dead, a new
//! connection finds a new one).
//!
//! What only the programs' own heartbeats can notice: TCP keepalive and
//! the system's acknowledgements see a live relay.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub struct Relay {
    address: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Every connection stops forwarding (until thawed).
    frozen: AtomicBool,
    /// Every connection stops forwarding from the server to its client.
    frozen_back: AtomicBool,
    /// New connections are reset at once.
    down: AtomicBool,
    /// Bytes forwarded, both ways.
    moved: AtomicU64,
    /// Bytes read and held while frozen, both ways.
    held: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicUsize,
    /// The connections carried, for cutting them.
    pairs: Mutex<Vec<Arc<Pair>>>,
}

/// One client's connection and its server side.
struct Pair {
    /// This connection's path is gone for good: it never forwards again.
    dead: AtomicBool,
    /// Reset: its forwarders let go of their sockets at once.
    cut: AtomicBool,
    sockets: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays each client accepted at [`address`](Self::address) to
    /// `server`, on a connection of its own.
    pub fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let relay = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else {
                    continue;
                };
                relay.accepted.fetch_add(1, Ordering::SeqCst);
                if relay.down.load(Ordering::SeqCst) {
                    reset(&client);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(server) else {
                    reset(&client);
                    continue;
                };
                let pair = Arc::new(Pair {
                    dead: AtomicBool::new(false),
                    cut: AtomicBool::new(false),
                    sockets: Mutex::new(vec![
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                    ]),
                });
                relay.pairs.lock().unwrap().push(Arc::clone(&pair));
                let (client_in, upstream_in) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let back = (Arc::clone(&relay), Arc::clone(&pair));
                thread::spawn(move || forward(upstream_in, client, &back.0, &back.1, true));
                let ahead = (Arc::clone(&relay), pair);
                thread::spawn(move || forward(client_in, upstream, &ahead.0, &ahead.1, false));
            }
        });
        Self { address, shared }
    }

    /// Bytes that came while the link was stopped and wait in it.
    pub fn waiting(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (a client's first, and each reconnect).
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Waits until nothing has crossed for `quiet` (what was said has been
    /// acknowledged, the acknowledgements have crossed too).
    pub fn settle(&self, quiet: Duration) {
        let deadline = Instant::now() + super::PATIENCE;
        let mut seen = self.shared.moved.load(Ordering::SeqCst);
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            assert!(Instant::now() < deadline, "the link never went quiet");
            thread::sleep(Duration::from_millis(10));
            let now = self.shared.moved.load(Ordering::SeqCst);
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
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again, what waited first.
    pub fn thaw(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
        self.shared.frozen_back.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding from the server to its clients only: what the
    /// server says waits, what clients say gets through.
    pub fn freeze_back(&self) {
        self.shared.frozen_back.store(true, Ordering::SeqCst);
    }

    /// The network goes away: the connections carried now stop for good,
    /// silently (nothing closed, nothing forwarded ever again), and new
    /// ones are reset until [`up`](Self::up).
    pub fn down(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        for pair in self.shared.pairs.lock().unwrap().iter() {
            pair.dead.store(true, Ordering::SeqCst);
        }
    }

    /// New connections get through again (the old ones stay dead).
    pub fn up(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Resets both sides of every connection carried now, as a router that
    /// lost its state does.
    pub fn cut(&self) {
        for pair in self.shared.pairs.lock().unwrap().drain(..) {
            pair.dead.store(true, Ordering::SeqCst);
            pair.cut.store(true, Ordering::SeqCst);
            // Closed by the last handle, the forwarders' (within 20 ms).
            for socket in pair.sockets.lock().unwrap().drain(..) {
                let _ = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
            }
        }
    }
}

/// Closes `socket` with a reset, not an orderly end.
fn reset(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
    let _ = socket.shutdown(Shutdown::Both);
}

/// Copies `from` to `to` while not frozen, until either ends; then passes
/// the end on (not for a dead path, which passes nothing on).
fn forward(mut from: TcpStream, mut to: TcpStream, shared: &Shared, pair: &Pair, back: bool) {
    let mut buf = vec![0; 64 * 1024];
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let stopped = || {
        shared.frozen.load(Ordering::SeqCst)
            || (back && shared.frozen_back.load(Ordering::SeqCst))
            || pair.dead.load(Ordering::SeqCst)
    };
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // While stopped: held, not let through, and counted.
                if stopped() {
                    shared.held.fetch_add(n as u64, Ordering::SeqCst);
                }
                while stopped() {
                    if pair.cut.load(Ordering::SeqCst) {
                        return;
                    }
                    if pair.dead.load(Ordering::SeqCst) {
                        // Read on, so the sender's system acknowledges as
                        // a live path would, and let nothing through.
                        match from.read(&mut buf) {
                            Ok(0) => return,
                            Ok(_) => continue,
                            Err(e) if is_wait(&e) => continue,
                            Err(_) => return,
                        }
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                shared.moved.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(e) if is_wait(&e) => {
                if pair.cut.load(Ordering::SeqCst) {
                    return;
                }
            }
            // A reset is passed on as a reset, as a router passes it on:
            // the other side's socket goes without an end of stream.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                let _ = socket2::SockRef::from(&to).set_linger(Some(Duration::ZERO));
                pair.cut.store(true, Ordering::SeqCst);
                pair.sockets.lock().unwrap().clear();
                return;
            }
            Err(_) => break,
        }
    }
    if !pair.dead.load(Ordering::SeqCst) {
        let _ = to.shutdown(Shutdown::Write);
    }
}

fn is_wait(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
