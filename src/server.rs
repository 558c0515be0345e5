//! `chat-server`: clients let in by the [`crate::gate`] wait in line, and one
//! conversation at a time runs between the operator and the first of them.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::Exit;
use crate::access::Access;
use crate::connection::Connection;
use crate::conversation;
use crate::ending::{Ending, Rules};
use crate::errors::{describe_failure, lowercase_os_error};
use crate::event::{Event, Input};
use crate::farewell::Farewells;
use crate::frame::encode_frame;
pub use crate::gate::TlsConfig;
use crate::gate::{Admit, open_gate};
use crate::input::AfterQuit;
use crate::outbox::Room;
use crate::output::Output;
use crate::queue::{TIDY_INTERVAL, WaitingLine};
use crate::terminal::Console;
use crate::transport::Transport;

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

/// Serves clients from `listener`, which is already bound, until Ctrl-C (or
/// after one conversation with `once`).
pub fn run(listener: TcpListener, config: Config) -> io::Result<Exit> {
    let (events, inbox) = mpsc::channel();
    let console = Console::open(config.max_message_size, &events, WAITING_PROMPT)?;
    console.start_input(&events, AfterQuit::Continue)?;
    let output = Arc::clone(&console.output);
    let address = listener.local_addr()?;
    let farewells = Arc::new(Farewells::default());
    let line = Arc::new(WaitingLine::new(
        config.max_waiting,
        events.clone(),
        Arc::clone(&output),
        Arc::clone(&farewells),
    ));
    let refusals = open_gate(
        listener,
        &config.access,
        config.tls.as_ref(),
        Arc::clone(&line) as Arc<dyn Admit>,
        &output,
        &farewells,
    )?;
    {
        let (line, output) = (Arc::clone(&line), Arc::clone(&output));
        thread::Builder::new().name("tidy".into()).spawn(move || {
            loop {
                thread::sleep(TIDY_INTERVAL);
                line.tidy();
                farewells.tidy(Instant::now());
                refusals.report_overdue(&output);
            }
        })?;
    }
    output.status(format!("listening on {address}"));
    let exit = serve(&console, &line, &config, &events, &inbox);
    console.close();
    console.finish_for(exit);
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
            None,
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

impl Admit for WaitingLine {
    fn admit(&self, transport: Transport, peer: SocketAddr) {
        WaitingLine::admit(self, transport, peer);
    }
}
