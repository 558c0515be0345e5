//! What every accepted connection goes through before it reaches the
//! waiting line or the room: access control (`--allow`/`--deny`), then the
//! TLS handshake and the shared code, in a thread of its own with a deadline
//! and limits per address. Refusals are reported at most once a second.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::access::Access;
use crate::errors::lowercase_os_error;
use crate::farewell::{Farewells, refusal};
use crate::output::Output;
use crate::throttle::Throttle;
use crate::tls::{CodeFailure, Refused, ServerTls};
use crate::transport::Transport;

/// After a failed `accept` (out of file descriptors, say), the wait before
/// trying again starts here and doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A failing `accept` is reported at most this often.
const ACCEPT_REPORT_PERIOD: Duration = Duration::from_secs(10);

/// A code shorter than this (normalized) is warned about.
const WEAK_CODE: usize = 10;

/// Refused connections are reported at most this often.
const REFUSAL_REPORT_PERIOD: Duration = Duration::from_secs(1);

/// A client has this long for the TLS handshake and the code exchange.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many clients are in the TLS handshake at once, and this many
/// from one address; one more is closed at once (each costs a thread until
/// its handshake ends, at most [`HANDSHAKE_TIMEOUT`]).
const MAX_HANDSHAKES: usize = 64;
const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;

#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The identity file; a default in the user's data directory if `None`.
    pub identity: Option<PathBuf>,
    /// Clients must know a shared code (from `CHAT_CODE`, or made up).
    pub code: bool,
}

fn spawn_acceptor(listener: TcpListener, gate: Gate, output: Arc<Output>) -> io::Result<()> {
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            let mut backoff = ACCEPT_BACKOFF;
            let mut reports = Throttle::new(ACCEPT_REPORT_PERIOD);
            loop {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        backoff = ACCEPT_BACKOFF;
                        gate.admit(stream, peer);
                    }
                    // A client that gave up before we accepted it (wine says
                    // "not connected" for one reset while waiting).
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted | io::ErrorKind::NotConnected
                        ) => {}
                    Err(e) => {
                        if let Some(times) = reports.occurred(Instant::now()) {
                            let again = match times {
                                1 => String::new(),
                                n => format!(" ({n} times since the last report)"),
                            };
                            output.error(format!(
                                "cannot accept a connection: {}{again}; retrying",
                                lowercase_os_error(&e)
                            ));
                        }
                        thread::sleep(backoff);
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                }
            }
        })?;
    Ok(())
}

/// Loads or makes the server's identity and its code, and says so.
fn secure(config: &TlsConfig, output: &Output) -> Result<ServerTls, String> {
    let path = match &config.identity {
        Some(path) => path.clone(),
        None => crate::tls::data_dir()?.join("identity.pem"),
    };
    let (identity, created) = crate::tls::load_identity(&path)?;
    let made = if created { "made now, " } else { "" };
    output.status(format!(
        "TLS identity {} ({made}kept in {})",
        identity.fingerprint,
        path.display()
    ));
    let code = match config.code {
        false => None,
        true => Some(match std::env::var("CHAT_CODE") {
            Ok(code) if !crate::tls::normalize_code(&code).is_empty() => {
                output.status("code taken from CHAT_CODE; clients connect with --tls --code");
                if crate::tls::normalize_code(&code).len() < WEAK_CODE {
                    output.status(
                        "warning: this code is short: one guess a second may find it soon (a number and three words, as the server makes, are safe)",
                    );
                }
                code
            }
            Ok(_) => return Err("CHAT_CODE is set but holds no code".to_string()),
            Err(_) => {
                let code = crate::tls::generate_code()?;
                output.status(format!(
                    "code: {code} (tell it to the client's user: chat-client --tls --code asks for it)"
                ));
                code
            }
        }),
    };
    ServerTls::new(identity, code)
}

/// Where a connection goes once through the gate: the waiting line, or a
/// room.
pub(crate) trait Admit: Send + Sync + 'static {
    fn admit(&self, transport: Transport, peer: SocketAddr);
}

/// Makes or loads the TLS identity if asked (and says so), then accepts
/// connections on `listener` into `target` through the gate. Returns the
/// refusals, to be reported when overdue.
pub(crate) fn open_gate(
    listener: TcpListener,
    access: &Access,
    tls: Option<&TlsConfig>,
    target: Arc<dyn Admit>,
    output: &Arc<Output>,
    farewells: &Arc<Farewells>,
) -> io::Result<Arc<Refusals>> {
    let address = listener.local_addr()?;
    let tls = match tls {
        Some(tls) => Some(Arc::new(secure(tls, output).map_err(io::Error::other)?)),
        None if !address.ip().is_loopback() => {
            output.status(
                "warning: conversations are not encrypted: anyone on the network path can read them (start with --tls to encrypt)",
            );
            None
        }
        None => None,
    };
    let refusals = Arc::new(Refusals::default());
    let gate = Gate {
        access: access.clone(),
        tls,
        target,
        output: Arc::clone(output),
        refusals: Arc::clone(&refusals),
        handshakes: Arc::new(Mutex::new(Handshakes::default())),
        farewells: Arc::clone(farewells),
    };
    spawn_acceptor(listener, gate, Arc::clone(output))?;
    Ok(refusals)
}

/// What every accepted connection goes through before the line (or the
/// room): access control, then TLS and the code if the server has them.
struct Gate {
    access: Access,
    tls: Option<Arc<ServerTls>>,
    target: Arc<dyn Admit>,
    output: Arc<Output>,
    refusals: Arc<Refusals>,
    handshakes: Arc<Mutex<Handshakes>>,
    farewells: Arc<Farewells>,
}

/// The clients in the TLS handshake, in all and by address.
#[derive(Default)]
struct Handshakes {
    total: usize,
    from: HashMap<IpAddr, usize>,
}

impl Handshakes {
    fn enter(&mut self, address: IpAddr) -> bool {
        let mine = self.from.entry(address).or_default();
        if self.total >= MAX_HANDSHAKES || *mine >= MAX_HANDSHAKES_PER_ADDRESS {
            return false;
        }
        *mine += 1;
        self.total += 1;
        true
    }

    fn leave(&mut self, address: IpAddr) {
        self.total -= 1;
        if let Some(mine) = self.from.get_mut(&address) {
            *mine -= 1;
            if *mine == 0 {
                self.from.remove(&address);
            }
        }
    }
}

impl Gate {
    fn admit(&self, stream: TcpStream, peer: SocketAddr) {
        if !self.access.permits(peer.ip()) {
            // Let go here and now: no thread, no handshake, no place in
            // line. A plain client is told why (a few bytes, which a new
            // socket's buffer always takes); one that expects TLS would
            // read a plain frame as a server without TLS, and is just closed.
            if self.tls.is_none() {
                let why = refusal("this server does not accept connections from your address");
                self.farewells.send_off(&Transport::plain(stream), &why);
            }
            self.refusals.occurred(&self.output, &Refusal::Access, peer);
            return;
        }
        let Some(tls) = &self.tls else {
            self.target.admit(Transport::plain(stream), peer);
            return;
        };
        if !crate::lock(&self.handshakes).enter(peer.ip()) {
            drop(stream);
            self.refusals
                .occurred(&self.output, &Refusal::Crowded, peer);
            return;
        }
        let (tls, target, output, handshakes, refusals) = (
            Arc::clone(tls),
            Arc::clone(&self.target),
            Arc::clone(&self.output),
            Arc::clone(&self.handshakes),
            Arc::clone(&self.refusals),
        );
        let started = thread::Builder::new()
            .name("handshake".into())
            .spawn(move || {
                match tls.accept(stream, HANDSHAKE_TIMEOUT) {
                    Ok(transport) => target.admit(transport, peer),
                    // A port scan, or a client that gave up.
                    Err(Refused::Gone) => {}
                    Err(Refused::Code(CodeFailure::TooManyAttempts)) => {
                        refusals.occurred(&output, &Refusal::CodeBusy, peer);
                    }
                    Err(Refused::Plain) => refusals.occurred(&output, &Refusal::Plain, peer),
                    Err(why) => output.error(format!("{peer}: {why}")),
                }
                crate::lock(&handshakes).leave(peer.ip());
            });
        if let Err(e) = started {
            crate::lock(&self.handshakes).leave(peer.ip());
            self.output
                .error(format!("{peer}: cannot start: {}", lowercase_os_error(&e)));
        }
    }
}

/// Why a connection was closed at once.
enum Refusal {
    Access,
    Crowded,
    /// A code check that would wait too long, or a second one from an address.
    CodeBusy,
    /// A client that does not speak TLS (told so).
    Plain,
}

/// Refused connections, told at most once a period with a count.
#[derive(Default)]
pub(crate) struct Refusals {
    access: Mutex<Option<(Throttle, SocketAddr)>>,
    crowded: Mutex<Option<(Throttle, SocketAddr)>>,
    code_busy: Mutex<Option<(Throttle, SocketAddr)>>,
    plain: Mutex<Option<(Throttle, SocketAddr)>>,
}

impl Refusals {
    fn occurred(&self, output: &Output, why: &Refusal, peer: SocketAddr) {
        let slot = self.slot(why);
        let mut slot = crate::lock(slot);
        let (throttle, last) =
            slot.get_or_insert_with(|| (Throttle::new(REFUSAL_REPORT_PERIOD), peer));
        *last = peer;
        if let Some(count) = throttle.occurred(Instant::now()) {
            output.status(describe_refusal(why, count, peer));
        }
    }

    /// Tells the refusals counted since the last report, once it is due.
    pub(crate) fn report_overdue(&self, output: &Output) {
        for why in [
            Refusal::Access,
            Refusal::Crowded,
            Refusal::CodeBusy,
            Refusal::Plain,
        ] {
            let mut slot = crate::lock(self.slot(&why));
            if let Some((throttle, last)) = slot.as_mut()
                && let Some(count) = throttle.overdue(Instant::now())
            {
                output.status(describe_refusal(&why, count, *last));
            }
        }
    }

    fn slot(&self, why: &Refusal) -> &Mutex<Option<(Throttle, SocketAddr)>> {
        match why {
            Refusal::Access => &self.access,
            Refusal::Crowded => &self.crowded,
            Refusal::CodeBusy => &self.code_busy,
            Refusal::Plain => &self.plain,
        }
    }
}

fn describe_refusal(why: &Refusal, count: u64, last: SocketAddr) -> String {
    let what = match why {
        Refusal::Access => "not allowed by --allow/--deny",
        Refusal::Crowded => "too many clients in the TLS handshake",
        Refusal::CodeBusy => "too many code attempts at once",
        Refusal::Plain => "it does not speak TLS, and was told to connect with --tls",
    };
    match count {
        1 => format!("refused a connection from {}: {what}", last.ip()),
        n => format!(
            "refused {n} connections ({what}), the last from {}",
            last.ip()
        ),
    }
}
