//! `chat-client`: connect, then one conversation with the server's operator.

use std::io::{self, ErrorKind, IsTerminal};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

pub use crate::console::event::Shutdown;
use crate::console::event::{Event, Events, Input};
use crate::console::input::{AfterQuit, Recipient};
use crate::console::outbox::Outbox;
use crate::console::output::Output;
use crate::console::{Console, Stdio};
use crate::engine::connection::{Connection, FirstFrame};
use crate::engine::tls::{ClientError, ClientSettings, KnownHosts};
use crate::engine::transport::Transport;
use crate::errors::describe_failure;
use crate::programs::conversation;
use crate::programs::outcome::Unreachable;
use crate::programs::room::view::RoomView;
use crate::state::ending::{Ending, Rules};
use crate::wire::frame::encode_frame;
use crate::{Error, Exit};

/// How long our lines wait for the server's first frame before they go
/// anyway (to a version 1 server, which speaks first only when its user
/// types). A room greets at once.
const GREETING_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    pub idle_timeout: Option<Duration>,
    /// The name to ask for if the server turns out to be a room.
    pub name: Option<String>,
    /// The user chose the name (`--name`): none of its lines may go
    /// under another.
    pub name_chosen: bool,
}

/// How the client checks the server over TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Accept only this fingerprint.
    pub fingerprint: Option<String>,
    /// Accept certificates issued by the authorities in this PEM file.
    pub authority: Option<PathBuf>,
    /// Where first-use fingerprints are kept; a default in the user's data
    /// directory if `None`.
    pub known_hosts: Option<PathBuf>,
    /// Prove a shared code (from `CHAT_CODE`, or asked for on the terminal).
    pub code: bool,
}

/// A connection made, ready for [`run`].
pub struct Connected {
    transport: Transport,
    /// What the user should hear before the conversation starts.
    notes: Vec<String>,
}

/// Connects to `address` (`host:port`, IPv6 as `[::1]:port`), over TLS if
/// `tls` says how; TCP and TLS together take at most `timeout`.
pub fn connect(
    address: &str,
    timeout: Duration,
    tls: Option<&TlsConfig>,
) -> Result<Connected, Error> {
    let Some(tls) = tls else {
        let stream = connect_tcp(address, timeout)?;
        return Ok(Connected {
            transport: Transport::plain(stream),
            notes: Vec::new(),
        });
    };
    // Asked before connecting: the time a person takes to type it must not
    // count against the server's handshake timeout.
    let code = match tls.code {
        true => Some(read_code()?),
        false => None,
    };
    let known_hosts = match &tls.known_hosts {
        Some(path) => path.clone(),
        None => crate::engine::tls::data_dir()
            .map_err(ClientError::Trust)?
            .join("known_hosts"),
    };
    let settings = ClientSettings {
        address: address.to_string(),
        fingerprint: tls.fingerprint.clone(),
        authority: tls.authority.clone(),
        known_hosts: KnownHosts { path: known_hosts },
        code,
    };
    let start = Instant::now();
    let stream = connect_tcp(address, timeout)?;
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    let secured = crate::engine::tls::connect(stream, &settings, left)?;
    Ok(Connected {
        transport: secured.transport,
        notes: secured.notes,
    })
}

/// The shared code: `CHAT_CODE`, or typed on the terminal without echo (never
/// a command-line argument, which other users can read).
fn read_code() -> Result<String, Error> {
    use crate::console::secret::{Unanswered, ask};
    let code = match std::env::var("CHAT_CODE") {
        Ok(code) => code,
        Err(_) => ask("code (from the server's operator): ").map_err(|e| match e {
            Unanswered::Interrupted => Error::Interrupted,
            Unanswered::Declined => Error::NoCode,
            Unanswered::NoTerminal(why) => Error::CannotAskCode(why),
        })?,
    };
    if crate::engine::tls::normalize_code(&code).is_empty() {
        return Err(Error::NoCode);
    }
    Ok(code)
}

/// The TCP connection, to the first address that answers.
fn connect_tcp(address: &str, timeout: Duration) -> Result<TcpStream, Error> {
    let fail = |why| Error::Connect {
        address: address.to_string(),
        why,
    };
    let candidates: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidInput => fail(Unreachable::Malformed),
            _ => fail(Unreachable::Unresolved(e)),
        })?
        .collect();
    let mut last = None;
    for candidate in &candidates {
        match TcpStream::connect_timeout(candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(match last {
        None => Unreachable::NoAddress,
        Some(e) if e.kind() == ErrorKind::ConnectionRefused => Unreachable::Refused,
        Some(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
            Unreachable::TimedOut(timeout)
        }
        Some(e) => Unreachable::Failed(e),
    }))
}

/// Talks with the server until either side ends it.
pub fn run(connected: Connected, config: Config, shutdown: &Shutdown) -> Result<Exit, Error> {
    let Connected { transport, notes } = connected;
    let (events, inbox) = mpsc::channel();
    let events = Events::new(events);
    let console = Console::open(
        config.max_message_size,
        &events,
        "> ",
        Stdio::process(),
        shutdown,
    )?;
    let output = Arc::clone(&console.output);
    let peer = transport.stream().peer_addr()?;
    // Said first, so that it comes before anything the server sends.
    for note in notes {
        output.status(note);
    }
    let secure = if transport.is_tls() { " over TLS" } else { "" };
    output.status(format!(
        "connected to {peer}{secure}; type a line and press Enter to send it, q to quit"
    ));
    // Reads the first frame to learn whether the server is a room.
    output.set_interpreter(Box::new(RoomView::new(events.clone())));
    let connection = Connection::start(
        0,
        transport,
        config.max_message_size,
        Some(answer_greeting(&config, &console.recipient, &output)),
        &output,
        "server",
        &events,
    )?;
    let outbox = connection.outbox();
    // With a chosen name, or a person at the keys (who never types within
    // the wait), our lines wait for the server's first frame: a room's
    // greeting is answered with our name before any of them (see
    // `answer_greeting`). A script without a name sends at once: a plain
    // server may never speak first.
    if config.name_chosen || io::stdin().is_terminal() {
        outbox.hold_until(Instant::now() + GREETING_WAIT);
    }
    console.recipient.set(Some(Arc::clone(&outbox)));
    console.start_input(&events, AfterQuit::Stop)?;
    let rules = Rules {
        input_end_closes: true,
        idle_timeout: config.idle_timeout,
    };
    let mut input_ended = false;
    let mut turned_away = false;
    let mut closing_from = None;
    let mut cut_short = false;
    let mut told_goodbye = false;
    let gauge = connection.gauge();
    let ending = conversation::run(
        0,
        connection,
        "the server",
        &output,
        &inbox,
        rules,
        |event| match event {
            Event::Input(Input::Closed) => input_ended = true,
            Event::TurnedAway => turned_away = true,
            // What was not yet sent, and all sent from now on, is not relayed.
            Event::RoomGoodbye {
                closing,
                cut_short: cut,
            } => {
                told_goodbye = true;
                if closing {
                    closing_from = closing_from.or(Some(gauge.sent()));
                }
                cut_short |= cut;
            }
            Event::RoomFound => console.recipient.set_room(),
            _ => {}
        },
    );
    let in_room = console.recipient.is_room();
    console.recipient.set(None);
    console.close();
    // Sent after the room began to close, or still unsent then.
    let unrelayed = closing_from.map_or(0, |sent| gauge.accepted().saturating_sub(sent));
    let exit = match &ending {
        // Told why already (the refusal or the room's notice).
        Ending::PeerLeft if turned_away => {
            output.status(match in_room {
                true => "disconnected from the room",
                false => "not served: the server refused this client",
            });
            Exit::Failure
        }
        Ending::PeerLeft if cut_short || unrelayed > 0 => {
            output.error(match unrelayed {
                0 => "the room closed while you were still sending; the rest was not relayed"
                    .to_string(),
                n => format!(
                    "the room closed while you were still sending; the rest, at least {n} bytes, was not relayed"
                ),
            });
            Exit::Failure
        }
        Ending::PeerLeft if input_ended => {
            output.status("input ended, and the server has closed its side too");
            Exit::Success
        }
        // A room says why before it ends a connection; a server that
        // vanished (killed, crashed) does not.
        Ending::PeerLeft if in_room && !told_goodbye => {
            output.error("the server ended the connection without a word (it may have stopped)");
            Exit::Failure
        }
        Ending::PeerLeft if in_room => {
            output.status("disconnected from the room");
            Exit::Success
        }
        Ending::PeerLeft => {
            output.status("the server ended the conversation");
            Exit::Success
        }
        Ending::Quit | Ending::OutputClosed => Exit::Success,
        Ending::Idle(after) => {
            output.status(format!(
                "no traffic for {} s; conversation ended",
                after.as_secs()
            ));
            Exit::Success
        }
        Ending::Interrupted => Exit::Interrupted,
        Ending::CutOff { .. } | Ending::Failed { .. } => {
            let why = describe_failure(&ending).expect("a failure has a description");
            match ending {
                Ending::CutOff { .. } => output.error(format!("the server {why}")),
                _ => output.error(why),
            }
            Exit::Failure
        }
    };
    console.finish_for(exit);
    Ok(exit)
}

/// Answers the server's first frame: if it is a room's greeting, our name
/// goes before every line (they are held until now, so a script's lines are
/// relayed under its name, and its own `/nick` comes after ours), and lines
/// over the room's maximum are refused here; then the lines go. Returns the
/// largest frame the room said it sends, to be taken from it.
fn answer_greeting(
    config: &Config,
    recipient: &Arc<Recipient>,
    output: &Arc<Output>,
) -> FirstFrame {
    let nick = config.name.as_ref().map(|name| format!("/nick {name}"));
    let max = config.max_message_size;
    let recipient = Arc::clone(recipient);
    let output = Arc::clone(output);
    Box::new(move |first: &[u8], outbox: &Outbox| {
        // Lines over what the room takes are refused here from now on,
        // rather than sent and taken as a protocol error.
        if let Some(takes) = crate::programs::room::takes(first).filter(|&takes| takes < max) {
            recipient.set_limit(takes);
            // Those framed already, or being framed now, are dropped.
            let output = Arc::clone(&output);
            outbox.limit_frames(takes, move |n| {
                output.error(format!(
                    "{n} {} over the room's maximum of {takes} bytes; not sent",
                    if n == 1 { "line was" } else { "lines were" }
                ))
            });
        }
        if let Some(line) = nick.filter(|_| crate::programs::room::is_greeting(first)) {
            let mut frame = Vec::new();
            if encode_frame(&mut frame, line.as_bytes(), max).is_ok() {
                outbox.push_front(&mut frame);
            }
        }
        outbox.release();
        crate::programs::room::declared_max(first)
    })
}
