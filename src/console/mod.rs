//! The user's side of a program: what is shown and what is typed.
//!
//! [`Console::open`] picks the form. With a terminal on both standard input
//! and output, the user gets a line editor (built on crossterm, so it runs
//! the same on Unix terminals and Windows consoles): a prompt, editing,
//! history, and incoming messages drawn above the line being typed, which
//! stays exactly as it was. Otherwise, plain lines: no prompt, no colour, one
//! message per line on stdout, status on stderr.
//!
//! The [`Output`] queue is consumed by the editor thread ([`editor`]), which
//! also owns the keys and the prompt; or by the plain writers, one thread
//! for stdout and one for stderr (so that a stdout nobody reads cannot hold
//! the status lines). Everything else talks to them through messages and
//! never waits on them, so a terminal that has stopped reading cannot stop
//! an exit.
//!
//! Layout: `line` is the line being edited (pure), `editor` the thread that
//! draws it, `secret` asks for the shared code without echo.

mod editor;
pub(crate) mod event;
pub(crate) mod input;
mod line;
pub(crate) mod look;
pub(crate) mod outbox;
pub(crate) mod output;
pub mod secret;

use std::io::{self, IsTerminal, Read, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::Exit;
use crate::console::event::{Events, Shutdown};
use crate::console::input::{AfterQuit, Composer, LineSource, Recipient, Unwatched, read_plain};
use crate::console::look::{Look, Shape};
use crate::console::outbox::Room;
use crate::console::output::{Output, Sinks, spawn_plain_writer};
use crate::state::ending::STALL_TIMEOUT;

use editor::Msg;

/// How long an interrupted program waits for its last words to be shown.
const LAST_WORDS_ON_INTERRUPT: Duration = Duration::from_millis(200);

/// How long closing waits for the editor thread to give the terminal back
/// before doing it itself.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Where a program reads what the user types and writes what it shows:
/// the process's standard streams, or any reader and writers (a program
/// run in-process, as the tests do).
pub struct Stdio {
    input: Box<dyn LineSource>,
    sinks: Sinks,
    /// The process's own streams: at a terminal, the line editor.
    process: bool,
    /// How what is shown looks.
    look: Look,
}

impl Stdio {
    pub fn process() -> Self {
        Self {
            input: Box::new(io::stdin()),
            sinks: Sinks::process(),
            process: true,
            look: Look::default(),
        }
    }

    /// What is shown looks as `look` says.
    pub(crate) fn with_look(mut self, look: Look) -> Self {
        self.look = look;
        self
    }

    /// Whether what the user types comes from a terminal (a person, who
    /// never types within a second of the start).
    pub fn input_is_terminal(&self) -> bool {
        self.process && io::stdin().is_terminal()
    }

    /// Plain lines from `input`; messages to `stdout`, status to `stderr`.
    pub fn piped(
        input: impl Read + Send + 'static,
        stdout: impl Write + Send + 'static,
        stderr: impl Write + Send + 'static,
    ) -> Self {
        Self {
            input: Box::new(Unwatched(input)),
            sinks: Sinks {
                stdout: Box::new(stdout),
                stderr: Box::new(stderr),
                write_now: None,
            },
            process: false,
            look: Look::default(),
        }
    }
}

pub struct Console {
    /// Where everything shown goes.
    pub output: Arc<Output>,
    /// Where the user's lines go; the program points it at the current
    /// conversation.
    pub recipient: Arc<Recipient>,
    max_message_size: usize,
    /// The editor thread's inbox, in the line-editor form.
    editor: Option<Mutex<Sender<Msg>>>,
    /// Plain input, until it is read.
    input: Mutex<Option<Box<dyn LineSource>>>,
    /// Ctrl-C and the like, which also cut the last words short.
    shutdown: Shutdown,
}

impl Console {
    /// Sets up the screen on `stdio` and has `shutdown` (Ctrl-C, SIGTERM,
    /// hangups, as the binaries arrange) tell `events`; `prompt` is the
    /// editor's first prompt.
    pub fn open(
        max_message_size: usize,
        events: &Events,
        prompt: &str,
        stdio: Stdio,
        shutdown: &Shutdown,
    ) -> io::Result<Self> {
        shutdown.tell(events);
        let output = Output::new(events.clone());
        // A dumb terminal (Emacs' M-x shell, say) gets plain lines: the
        // editor's cursor movements and bracketed paste would show there
        // as garbage.
        let interactive = stdio.process
            && io::stdin().is_terminal()
            && io::stdout().is_terminal()
            && !terminal_is_dumb();
        let (editor, input) = match interactive && editor::enter_terminal().is_ok() {
            true => {
                let shape = Shape::new(stdio.look, true);
                (Some(start_editor(&output, prompt, shape)?), None)
            }
            false => {
                let shape = Arc::new(Shape::new(stdio.look, false));
                spawn_plain_writer(&output, stdio.sinks, shape)?;
                (None, Some(stdio.input))
            }
        };
        Ok(Self {
            output,
            recipient: Arc::new(Recipient::default()),
            max_message_size,
            editor: editor.map(Mutex::new),
            input: Mutex::new(input),
            shutdown: shutdown.clone(),
        })
    }

    /// Sets the editor's prompt, at once, keeping what is being typed (no
    /// effect on plain input).
    pub fn set_prompt(&self, prompt: &str) {
        self.tell_editor(Msg::Prompt(prompt.to_string()));
    }

    /// Starts reading the user's input; point [`recipient`](Self::recipient)
    /// where the first lines should go first.
    pub fn start_input(&self, events: &Events, after_quit: AfterQuit) -> io::Result<()> {
        let room = match self.editor {
            Some(_) => Room::Take,
            None => Room::Wait,
        };
        let composer = Composer::new(
            self.max_message_size,
            Arc::clone(&self.recipient),
            Arc::clone(&self.output),
            room,
            after_quit == AfterQuit::Stop,
        );
        let events = events.clone();
        let Some(editor) = &self.editor else {
            let Some(input) = crate::lock(&self.input).take() else {
                return Ok(());
            };
            // It ends at the end of its input (a process's own stdin is
            // left to the process's exit: a blocking read cannot be taken
            // back portably).
            thread::Builder::new()
                .name("input".into())
                .spawn(move || read_plain(input, composer, events, after_quit))?;
            return Ok(());
        };
        let keys = crate::lock(editor).clone();
        self.tell_editor(Msg::StartInput {
            composer: Box::new(composer),
            events,
            after_quit,
            keys,
        });
        Ok(())
    }

    /// Gives the terminal back in its normal state (the editor thread goes
    /// on writing plain lines), without waiting on a terminal that does not
    /// take output. Call before the program's last words.
    pub fn close(&self) {
        let Some(editor) = &self.editor else { return };
        let (ack, acked) = mpsc::channel();
        let _ = crate::lock(editor).send(Msg::Stop(ack));
        if acked.recv_timeout(CLOSE_TIMEOUT).is_err() {
            restore_terminal();
        }
    }

    /// Waits until everything queued has been shown, or the output moved
    /// nothing for `patience`; whether everything was.
    pub fn finish(&self, patience: Duration) -> bool {
        self.output.drain_unless(
            patience,
            &|| self.shutdown.requested(),
            LAST_WORDS_ON_INTERRUPT,
        )
    }

    /// The last words of a program ending as `exit`: what is queued is shown,
    /// unless the screen moves nothing for a while (briefly after Ctrl-C,
    /// the stall timeout otherwise); then the output's threads end. Returns
    /// the status to exit with: a failure if messages that were taken (and
    /// acknowledged to a version 2 peer) could not be written, which is said.
    pub fn finish_for(&self, exit: Exit) -> Exit {
        let patience = match exit {
            Exit::Interrupted => LAST_WORDS_ON_INTERRUPT,
            _ => STALL_TIMEOUT,
        };
        let shown = self.finish(patience);
        // Interrupted while the last messages were written (a slow
        // stdout): the program was stopped, not done (it exited 0).
        let exit = match exit {
            Exit::Success if self.shutdown.requested() => Exit::Interrupted,
            exit => exit,
        };
        // Said after a failure too: the peer counted them as delivered (a
        // client whose stdout nobody read, cut off at its `q`, exited 1
        // saying only that its own lines were not delivered: a user trial).
        let exit = match (shown, exit) {
            (false, Exit::Success | Exit::Failure) => {
                self.output.error(format!(
                    "messages received were not written: standard output took nothing for {} s",
                    patience.as_secs()
                ));
                Exit::Failure
            }
            // Stopped on purpose, and said so, with what that cost: the peer
            // counted them as delivered (a user trial: a server interrupted
            // while its slow stdout was behind wrote 42,028 of 300,000 lines
            // taken, and said nothing; its client exited 0).
            (false, Exit::Interrupted) => {
                self.output.error(
                    "interrupted before every message received was written: standard output was behind",
                );
                Exit::Interrupted
            }
            (_, exit) => exit,
        };
        self.output.stop();
        // Status lines still held for messages that stdout did not take
        // (it stalled, but for less than the output's order patience) wait
        // no more once stopped: they say how the program ended, and go to
        // stderr before it exits. Briefly: if anything was left, the wait
        // above has already run its course.
        self.output.drain_stderr(LAST_WORDS_ON_INTERRUPT);
        exit
    }

    fn tell_editor(&self, msg: Msg) {
        if let Some(editor) = &self.editor {
            let _ = crate::lock(editor).send(msg);
        }
    }
}

/// Starts the editor thread as the output's consumer.
fn start_editor(output: &Arc<Output>, prompt: &str, shape: Shape) -> io::Result<Sender<Msg>> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    let (inbox, msgs) = mpsc::channel();
    let wake = Mutex::new(inbox.clone());
    output.set_waker(Some(Box::new(move || {
        let _ = crate::lock(&wake).send(Msg::Output);
    })));
    on_resume(inbox.clone());
    let (output, prompt) = (Arc::clone(output), prompt.to_string());
    thread::Builder::new()
        .name("editor".into())
        .spawn(move || editor::run(output, msgs, prompt, shape))?;
    Ok(inbox)
}

/// Puts the terminal back as it was before the editor (or the code's
/// prompt) took it; nothing if neither did.
pub fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
}

/// Raw mode again after the program was stopped and continued.
#[cfg(unix)]
fn resume_raw_mode() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::terminal::enable_raw_mode();
}

/// Tells the editor when the program is continued after a stop.
#[cfg(unix)]
fn on_resume(inbox: Sender<Msg>) {
    use signal_hook::consts::SIGCONT;
    use signal_hook::iterator::Signals;
    let Ok(mut signals) = Signals::new([SIGCONT]) else {
        return;
    };
    let _ = thread::Builder::new().name("resume".into()).spawn(move || {
        for _ in signals.forever() {
            if inbox.send(Msg::Resumed).is_err() {
                return;
            }
        }
    });
}

#[cfg(windows)]
fn on_resume(_inbox: Sender<Msg>) {
    // Windows consoles have no job control.
}

/// Ctrl-Z: gives the terminal back and stops the program, as a shell job;
/// the editor takes the terminal again when continued.
#[cfg(unix)]
fn suspend() {
    restore_terminal();
    let _ = signal_hook::low_level::raise(signal_hook::consts::SIGTSTP);
    let _ = crossterm::terminal::enable_raw_mode();
}

/// `TERM=dumb`: a terminal that takes no control sequences at all.
pub(crate) fn terminal_is_dumb() -> bool {
    std::env::var("TERM").is_ok_and(|term| term == "dumb")
}
