//! `chat-client`: connect, then one conversation with the server's operator.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::Exit;
use crate::connection::Connection;
use crate::conversation;
use crate::ending::{Ending, Rules, STALL_TIMEOUT};
use crate::errors::{describe_failure, lowercase_os_error};
use crate::event::{Event, Input};
use crate::frame::encode_frame;
use crate::input::AfterQuit;
use crate::outbox::Room;
use crate::room::view::RoomView;
use crate::terminal::Console;

/// How long an interrupted client waits for its last words to be shown.
const LAST_WORDS_ON_INTERRUPT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Config {
    pub max_message_size: usize,
    pub idle_timeout: Option<Duration>,
    /// The name to ask for if the server turns out to be a room.
    pub name: Option<String>,
}

/// Why a connection could not be made, worded for the user.
#[derive(Debug)]
pub struct ConnectError {
    address: String,
    reason: String,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}: {}", self.address, self.reason)
    }
}

impl std::error::Error for ConnectError {}

/// Connects to `address` (`host:port`, IPv6 as `[::1]:port`), trying each
/// address it resolves to for at most `timeout`.
pub fn connect(address: &str, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let fail = |reason: String| ConnectError {
        address: address.to_string(),
        reason,
    };
    let candidates: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidInput => {
                fail("expected HOST:PORT, such as 127.0.0.1:9527".to_string())
            }
            _ => fail(format!("cannot resolve it: {}", lowercase_os_error(&e))),
        })?
        .collect();
    let mut last = None;
    for candidate in &candidates {
        match TcpStream::connect_timeout(candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let reason = match last {
        None => "the name resolved to no address".to_string(),
        Some(e) if e.kind() == ErrorKind::ConnectionRefused => {
            "connection refused (is chat-server running there?)".to_string()
        }
        Some(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
            format!("no answer within {} s", timeout.as_secs_f64())
        }
        Some(e) => lowercase_os_error(&e),
    };
    Err(fail(reason))
}

/// Talks with the server over `stream` until either side ends it.
pub fn run(stream: TcpStream, config: Config) -> io::Result<Exit> {
    let (events, inbox) = mpsc::channel();
    let console = Console::open(config.max_message_size, &events, "> ")?;
    let output = Arc::clone(&console.output);
    let peer = stream.peer_addr()?;
    // Said first, so that it comes before anything the server sends.
    output.status(format!(
        "connected to {peer}; type a line and press Enter to send it, q to quit"
    ));
    // Reads the first frame to learn whether the server is a room.
    output.set_interpreter(Box::new(RoomView::new(events.clone())));
    let connection = Connection::start(
        0,
        stream,
        config.max_message_size,
        &output,
        "server",
        &events,
    )?;
    let outbox = connection.outbox();
    console.recipient.set(Some(Arc::clone(&outbox)));
    console.start_input(&events, AfterQuit::Stop)?;
    let rules = Rules {
        input_end_closes: true,
        idle_timeout: config.idle_timeout,
    };
    let mut input_ended = false;
    let ending = conversation::run(
        0,
        connection,
        "the server",
        &output,
        &inbox,
        rules,
        |event| match event {
            Event::Input(Input::Closed) => input_ended = true,
            Event::RoomFound => {
                console.recipient.set_room();
                if let Some(name) = &config.name {
                    let mut nick = Vec::new();
                    let line = format!("/nick {name}");
                    if encode_frame(&mut nick, line.as_bytes(), config.max_message_size).is_ok() {
                        outbox.push(&mut nick, Room::Take);
                    }
                }
            }
            _ => {}
        },
    );
    let in_room = console.recipient.is_room();
    console.recipient.set(None);
    console.close();
    let exit = match &ending {
        Ending::PeerLeft if input_ended => {
            output.status("input ended, and the server has closed its side too");
            Exit::Success
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
    console.finish(match exit {
        Exit::Interrupted => LAST_WORDS_ON_INTERRUPT,
        _ => STALL_TIMEOUT,
    });
    Ok(exit)
}
