//! `chat-server`: an accept loop feeding the waiting line, and one conversation
//! at a time between the operator and the client at the front of it.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use crate::Exit;
use crate::conversation::{Conversation, Ending, Rules};
use crate::errors::lowercase_os_error;
use crate::event::{Event, Input};
use crate::frame::encode_frame;
use crate::input::AfterQuit;
use crate::queue::{TIDY_INTERVAL, WaitingLine};
use crate::screen::Screen;
use crate::terminal::Console;

/// After a failed `accept` (out of file descriptors, say), wait this long
/// before trying again rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
}

/// Serves clients from `listener`, which is already bound, until Ctrl-C (or
/// after one conversation with `once`).
pub fn run(listener: TcpListener, config: Config) -> io::Result<Exit> {
    let (events, inbox) = mpsc::channel();
    let console = Console::open(config.max_message_size, &events)?;
    console.set_prompt(WAITING_PROMPT);
    console.start_input(&events, AfterQuit::Continue)?;
    let screen = Arc::clone(&console.screen);
    let address = listener.local_addr()?;
    let line = Arc::new(WaitingLine::new(
        config.max_waiting,
        events.clone(),
        Arc::clone(&screen),
    ));
    spawn_acceptor(listener, Arc::clone(&line), Arc::clone(&screen))?;
    {
        let line = Arc::clone(&line);
        thread::Builder::new().name("tidy".into()).spawn(move || {
            loop {
                thread::sleep(TIDY_INTERVAL);
                line.tidy();
            }
        })?;
    }
    screen.status(&format!("listening on {address}"));
    let exit = serve(&console, &line, &config, &events, &inbox);
    console.close();
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
    let screen = &console.screen;
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
                Event::Input(Input::Closed) => {
                    operator_gone = true;
                    screen.status(INPUT_ENDED);
                }
                Event::Input(Input::Quit) => screen.error("nobody is connected; nothing to end"),
                _ => {}
            }
            continue;
        };
        next_id += 1;
        let peer = client.peer;
        let label = peer.to_string();
        let conversation = match Conversation::start(
            next_id,
            client.stream,
            config.max_message_size,
            &**screen,
            &label,
            events,
        ) {
            Ok(conversation) => conversation,
            Err(e) => {
                screen.error(&format!("{peer}: cannot start: {}", lowercase_os_error(&e)));
                continue;
            }
        };
        let outbox = conversation.outbox();
        if client.waited {
            let mut notice = Vec::new();
            let text = "your turn: you are now talking with the server";
            encode_frame(&mut notice, text.as_bytes(), usize::MAX).expect("notices are short");
            outbox.push(&mut notice);
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
        screen.status(&format!("{peer} connected{waiting}{quiet}"));

        let ending = conversation.run(inbox, rules, |event| match event {
            Event::Input(Input::Closed) => {
                operator_gone = true;
                screen.status(INPUT_ENDED);
            }
            Event::LineChanged => console.set_prompt(&prompt()),
            _ => {}
        });
        console.recipient.set(None);
        // Free the server (or take the next in line) before saying so, so that a
        // client that connects after reading the report is served at once.
        if !config.once {
            next = line.next();
        }
        let failed = report(&**screen, &label, &ending);
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
fn report(screen: &dyn Screen, peer: &str, ending: &Ending) -> bool {
    match ending {
        Ending::PeerLeft => screen.status(&format!("{peer} left")),
        Ending::Quit => screen.status(&format!("ended the conversation with {peer}")),
        Ending::Idle(after) => screen.status(&format!(
            "{peer}: no traffic for {} s; conversation ended",
            after.as_secs()
        )),
        Ending::Interrupted => {
            screen.status(&format!("interrupted; closed the conversation with {peer}"))
        }
        Ending::OutputClosed => {}
        Ending::Failed(why) => {
            screen.error(&format!("{peer}: {why}"));
            return true;
        }
    }
    false
}

fn spawn_acceptor(
    listener: TcpListener,
    line: Arc<WaitingLine>,
    screen: Arc<dyn Screen>,
) -> io::Result<()> {
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            loop {
                match listener.accept() {
                    Ok((stream, peer)) => line.admit(stream, peer),
                    // A client that gave up before we accepted it.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                    Err(e) => {
                        screen.error(&format!(
                            "cannot accept a connection: {}",
                            lowercase_os_error(&e)
                        ));
                        thread::sleep(ACCEPT_BACKOFF);
                    }
                }
            }
        })?;
    Ok(())
}
