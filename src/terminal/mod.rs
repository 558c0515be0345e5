//! The user's side of a program: the screen it shows things on and the thread
//! that reads what the user types.
//!
//! [`Console::open`] picks the form. With a terminal on both standard input and
//! output, the user gets a line editor (rustyline): a prompt, editing, history,
//! and incoming messages printed above the line being typed, which stays exactly
//! as it was. Otherwise, plain lines: no prompt, no colour, one message per line.
//!
//! rustyline cannot cancel `readline` from another thread, yet a client must
//! exit the moment its server leaves. While `readline` runs, rustyline handles
//! SIGINT itself by returning `Interrupted` and restoring the terminal, so
//! [`Console::close`] raises SIGINT on the main thread until the input thread
//! has left the editor. Before that it makes sure every message handed to the
//! editor's printer has been shown.
//!
//! Layout: `editor` runs the line editor on the input thread; `screen`
//! shows messages and status through the editor's printer.

mod editor;
mod screen;

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::input::{AfterQuit, Composer, Recipient, read_plain};
use crate::screen::{PlainScreen, Screen};

use editor::restore_terminal;
use editor::{
    EditorState, LineEditor, LineWatch, OUR_SIGINT, interrupt_editor, new_editor, read_edited,
    save_terminal,
};
use screen::EditorScreen;

/// How long closing waits for the editor to show what it was given, and to
/// give the terminal back.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Console {
    pub screen: Arc<dyn Screen>,
    /// Where the user's lines go; the program points it at the current
    /// conversation.
    pub recipient: Arc<Recipient>,
    max_message_size: usize,
    editor: Option<EditorSide>,
}

/// What the line-editor form adds.
struct EditorSide {
    /// Taken by the input thread when it starts.
    editor: Mutex<Option<LineEditor>>,
    watch: LineWatch,
    /// Set to make the input thread restart the editor with the new prompt.
    restart: Arc<AtomicBool>,
    started: AtomicBool,
    screen: Arc<EditorScreen>,
    prompt: Arc<Mutex<String>>,
    stopping: Arc<AtomicBool>,
    stopped: Mutex<Option<Receiver<()>>>,
}

impl Console {
    /// Sets up the screen and forwards Ctrl-C (SIGINT, and SIGTERM) to `events`.
    pub fn open(max_message_size: usize, events: &Sender<Event>) -> io::Result<Self> {
        forward_interrupts(events.clone())?;
        let recipient = Arc::new(Recipient::default());
        let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
        let editor = if interactive { open_editor() } else { None };
        let screen: Arc<dyn Screen> = match &editor {
            Some(side) => Arc::clone(&side.screen) as Arc<dyn Screen>,
            None => Arc::new(PlainScreen),
        };
        Ok(Self {
            screen,
            recipient,
            max_message_size,
            editor,
        })
    }

    /// Sets the editor's prompt, at once, keeping what is being typed (no
    /// effect on plain input).
    pub fn set_prompt(&self, prompt: &str) {
        let Some(side) = &self.editor else { return };
        let mut current = crate::lock(&side.prompt);
        if *current == prompt {
            return;
        }
        *current = prompt.to_string();
        drop(current);
        if side.started.load(Ordering::SeqCst) {
            side.restart.store(true, Ordering::SeqCst);
            interrupt_editor();
        }
    }

    /// Starts reading the user's input on its own thread; point
    /// [`recipient`](Self::recipient) where the first lines should go first.
    pub fn start_input(&self, events: &Sender<Event>, after_quit: AfterQuit) -> io::Result<()> {
        let composer = Composer::new(
            self.max_message_size,
            Arc::clone(&self.recipient),
            Arc::clone(&self.screen),
        );
        let events = events.clone();
        let thread = thread::Builder::new().name("input".into());
        let Some(side) = &self.editor else {
            thread.spawn(move || {
                read_plain(io::stdin(), stdin_ready, composer, events, after_quit)
            })?;
            return Ok(());
        };
        let editor = crate::lock(&side.editor)
            .take()
            .expect("input started once");
        let state = EditorState {
            prompt: Arc::clone(&side.prompt),
            watch: side.watch.clone(),
            restart: Arc::clone(&side.restart),
            stopping: Arc::clone(&side.stopping),
        };
        let (done, stopped) = mpsc::channel();
        *crate::lock(&side.stopped) = Some(stopped);
        side.started.store(true, Ordering::SeqCst);
        thread.spawn(move || {
            read_edited(editor, &state, composer, &events, after_quit);
            let _ = done.send(());
        })?;
        Ok(())
    }

    /// Shows everything still in flight to the screen and gives the terminal
    /// back in its normal state. Call before the program exits; status and
    /// errors shown afterwards go straight to stderr.
    pub fn close(&self) {
        let Some(side) = &self.editor else { return };
        side.screen.flush();
        side.stopping.store(true, Ordering::SeqCst);
        let stopped = crate::lock(&side.stopped).take();
        if let Some(stopped) = stopped {
            let deadline = Instant::now() + CLOSE_TIMEOUT;
            while Instant::now() < deadline {
                interrupt_editor();
                if stopped.recv_timeout(Duration::from_millis(50)).is_ok() {
                    break;
                }
            }
        }
        side.screen.detach();
        restore_terminal();
    }
}

/// The line-editor form, or `None` where rustyline cannot run one (then the
/// plain form is used).
fn open_editor() -> Option<EditorSide> {
    save_terminal();
    let (mut editor, watch) = new_editor()?;
    let printer = editor.create_external_printer().ok()?;
    let flusher = editor.create_external_printer().ok()?;
    let screen = Arc::new(EditorScreen::new(Box::new(printer), Box::new(flusher)));
    Some(EditorSide {
        editor: Mutex::new(Some(editor)),
        watch,
        restart: Arc::new(AtomicBool::new(false)),
        started: AtomicBool::new(false),
        screen,
        prompt: Arc::new(Mutex::new("> ".to_string())),
        stopping: Arc::new(AtomicBool::new(false)),
        stopped: Mutex::new(None),
    })
}

/// Whether standard input can be read without waiting (for a file: always,
/// until its end; for a pipe: while it holds data).
fn stdin_ready() -> bool {
    let mut poll = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and a zero timeout.
    unsafe { libc::poll(&mut poll, 1, 0) == 1 && poll.revents & libc::POLLIN != 0 }
}

fn forward_interrupts(events: Sender<Event>) -> io::Result<()> {
    ctrlc::set_handler(move || {
        if !OUR_SIGINT.swap(false, Ordering::SeqCst) {
            let _ = events.send(Event::Interrupt);
        }
    })
    .map_err(io::Error::other)
}
