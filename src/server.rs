//! `chat-server`: an accept loop feeding the waiting line, and one conversation
//! at a time between the operator and the client at the front of it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Exit;
use crate::access::Access;
use crate::connection::Connection;
use crate::conversation;
use crate::ending::{Ending, Rules, STALL_TIMEOUT};
use crate::errors::{describe_failure, lowercase_os_error};
use crate::event::{Event, Input};
use crate::frame::encode_frame;
use crate::input::AfterQuit;
use crate::outbox::Room;
use crate::output::Output;
use crate::queue::{TIDY_INTERVAL, WaitingLine};
use crate::terminal::Console;
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

/// How long an interrupted server waits for its last words to be shown.
const LAST_WORDS_ON_INTERRUPT: Duration = Duration::from_millis(200);

/// Said when the operator's standard input ends.
const INPUT_ENDED: &str = "standard input has ended: from now on, only receiving";

/// The operator's prompt while no client is connected.
const WAITING_PROMPT: &str = "[waiting for a client] > ";

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    pub max_waiting: usize,
    /// Serve one conversation, then exit.
    pub once: bool,
    pub idle_timeout: Option<Duration>,
    /// TLS, if the server speaks it.
    pub tls: Option<TlsConfig>,
    pub access: Access,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The identity file; a default in the user's data directory if `None`.
    pub identity: Option<PathBuf>,
    /// Clients must know a shared code (from `CHAT_CODE`, or made up).
    pub code: bool,
}

/// Serves clients from `listener`, which is already bound, until Ctrl-C (or
/// after one conversation with `once`).
pub fn run(listener: TcpListener, config: Config) -> io::Result<Exit> {
    let (events, inbox) = mpsc::channel();
    let console = Console::open(config.max_message_size, &events, WAITING_PROMPT)?;
    console.start_input(&events, AfterQuit::Continue)?;
    let output = Arc::clone(&console.output);
    let address = listener.local_addr()?;
    let line = Arc::new(WaitingLine::new(
        config.max_waiting,
        events.clone(),
        Arc::clone(&output),
    ));
    let refusals = open_gate(
        listener,
        &config.access,
        config.tls.as_ref(),
        Arc::clone(&line) as Arc<dyn Admit>,
        &output,
    )?;
    {
        let (line, output) = (Arc::clone(&line), Arc::clone(&output));
        thread::Builder::new().name("tidy".into()).spawn(move || {
            loop {
                thread::sleep(TIDY_INTERVAL);
                line.tidy();
                refusals.report_overdue(&output);
            }
        })?;
    }
    output.status(format!("listening on {address}"));
    let exit = serve(&console, &line, &config, &events, &inbox);
    console.close();
    console.finish(match exit {
        Exit::Interrupted => LAST_WORDS_ON_INTERRUPT,
        _ => STALL_TIMEOUT,
    });
    Ok(exit)
}

/// Serves the clients in line, one conversation at a time, until the server
/// should exit.
fn serve(
    console: &Console,
    line: &WaitingLine,
    config: &Config,
    events: &Sender<Event>,
    inbox: &Receiver<Event>,
) -> Exit {
    let output = &console.output;
    let rules = Rules {
        input_end_closes: false,
        idle_timeout: config.idle_timeout,
    };
    let mut operator_gone = false;
    let mut next_id = 0;
    let mut next = None;
    loop {
        let Some(client) = next.take().or_else(|| line.next()) else {
            console.set_prompt(WAITING_PROMPT);
            match inbox.recv().expect("main holds a sender") {
                Event::Interrupt | Event::Input(Input::Interrupted) => return Exit::Interrupted,
                Event::OutputClosed => return Exit::Success,
                Event::Input(Input::Closed) => {
                    operator_gone = true;
                    output.status(INPUT_ENDED);
                }
                Event::Input(Input::Quit) => output.error("nobody is connected; nothing to end"),
                _ => {}
            }
            continue;
        };
        next_id += 1;
        let (peer, waited) = (client.peer, client.waited);
        let label = peer.to_string();
        let connection = match Connection::start(
            next_id,
            client.into_transport(),
            config.max_message_size,
            output,
            &label,
            events,
        ) {
            Ok(connection) => connection,
            Err(e) => {
                output.error(format!("{peer}: cannot start: {}", lowercase_os_error(&e)));
                continue;
            }
        };
        let outbox = connection.outbox();
        if waited {
            let mut notice = Vec::new();
            let text = "your turn: you are now talking with the server";
            encode_frame(&mut notice, text.as_bytes(), usize::MAX).expect("notices are short");
            outbox.push(&mut notice, Room::Take);
        }
        console.recipient.set(Some(outbox));
        let waiting = match line.len() {
            0 => String::new(),
            n => format!(" ({n} waiting)"),
        };
        let prompt = || match line.len() {
            0 => format!("[{peer}] > "),
            n => format!("[{peer}, {n} waiting] > "),
        };
        console.set_prompt(&prompt());
        let quiet = if operator_gone {
            "; standard input has ended, so only receiving"
        } else {
            ""
        };
        output.status(format!("{peer} connected{waiting}{quiet}"));

        let ending = conversation::run(
            next_id,
            connection,
            &label,
            output,
            inbox,
            rules,
            |event| match event {
                Event::Input(Input::Closed) => {
                    operator_gone = true;
                    output.status(INPUT_ENDED);
                }
                Event::LineChanged => console.set_prompt(&prompt()),
                Event::Input(Input::Quit) => console.set_prompt(&format!("[ending {peer}] > ")),
                _ => {}
            },
        );
        console.recipient.set(None);
        // Free the server (or take the next in line) before saying so, so that a
        // client that connects after reading the report is served at once.
        if !config.once {
            next = line.next();
        }
        let failed = report(output, &label, &ending);
        match ending {
            Ending::Interrupted => return Exit::Interrupted,
            Ending::OutputClosed => return Exit::Success,
            _ if config.once && failed => return Exit::Failure,
            _ if config.once => return Exit::Success,
            _ => {}
        }
    }
}

/// Tells the operator how a conversation ended; true if it failed.
fn report(output: &Output, peer: &str, ending: &Ending) -> bool {
    if let Some(why) = describe_failure(ending) {
        output.error(format!("{peer}: {why}"));
        return true;
    }
    match ending {
        Ending::PeerLeft => output.status(format!("{peer} left")),
        Ending::Quit => output.status(format!("ended the conversation with {peer}")),
        Ending::Idle(after) => output.status(format!(
            "{peer}: no traffic for {} s; conversation ended",
            after.as_secs()
        )),
        Ending::Interrupted => {
            output.status(format!("interrupted; closed the conversation with {peer}"))
        }
        Ending::OutputClosed | Ending::CutOff { .. } | Ending::Failed { .. } => {}
    }
    false
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

impl Admit for WaitingLine {
    fn admit(&self, transport: Transport, peer: SocketAddr) {
        WaitingLine::admit(self, transport, peer);
    }
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
            // Closed here and now: no thread, no handshake, no place in line.
            drop(stream);
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
