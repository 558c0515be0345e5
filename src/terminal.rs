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

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use rustyline::completion::Completer;
use rustyline::config::ColorMode;
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, ExternalPrinter, Helper};
use unicode_width::UnicodeWidthStr;

use crate::conversation::{Event, Input};
use crate::display::visible;
use crate::input::{AfterQuit, Composer, Entered, Recipient, read_plain};
use crate::screen::{MessageSink, PlainScreen, Screen};

/// rustyline's printer, which prints above the line being edited.
type Printer = Box<dyn ExternalPrinter + Send>;

/// Records the line being edited, which rustyline shows its highlighter on
/// every repaint, so that the editor can be restarted with a new prompt
/// without losing a keystroke.
#[derive(Default, Clone)]
struct LineWatch {
    line: Arc<Mutex<(String, usize)>>,
}

impl LineWatch {
    fn take(&self) -> (String, usize) {
        std::mem::take(&mut *crate::lock(&self.line))
    }
}

impl Highlighter for LineWatch {
    fn highlight<'l>(&self, line: &'l str, pos: usize) -> Cow<'l, str> {
        let mut seen = crate::lock(&self.line);
        seen.0.clear();
        seen.0.push_str(line);
        seen.1 = pos;
        Cow::Borrowed(line)
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        // Repaint on every change, so `highlight` always sees the line.
        true
    }
}

impl Completer for LineWatch {
    type Candidate = String;
}

impl Hinter for LineWatch {
    type Hint = String;
}

impl Validator for LineWatch {}

impl Helper for LineWatch {}

type LineEditor = Editor<LineWatch, DefaultHistory>;

/// Set while a SIGINT raised by this program is on its way, so that the
/// handler outside the editor does not take it for the user's Ctrl-C.
static OUR_SIGINT: AtomicBool = AtomicBool::new(false);

/// Sends SIGINT to the calling thread: while the input thread is in
/// `readline`, rustyline's handler makes it return `Interrupted`.
fn interrupt_editor() {
    OUR_SIGINT.store(true, Ordering::SeqCst);
    // SAFETY: raise only sends a signal to this thread; the handler in force
    // (rustyline's during readline, ctrlc's otherwise) runs on it.
    unsafe { libc::raise(libc::SIGINT) };
}

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
        let editor = if interactive { open_editor()? } else { None };
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

fn open_editor() -> io::Result<Option<EditorSide>> {
    save_terminal();
    // Colours forced on for rustyline means only that it always asks the
    // highlighter, which adds none; ours are decided by `Palette`.
    let config = Config::builder()
        .auto_add_history(true)
        .color_mode(ColorMode::Forced)
        .build();
    let mut editor: LineEditor = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(_) => return Ok(None),
    };
    let watch = LineWatch::default();
    editor.set_helper(Some(watch.clone()));
    let Ok(printer) = editor.create_external_printer() else {
        return Ok(None);
    };
    let screen = Arc::new(EditorScreen {
        printer: SharedPrinter(Arc::new(Mutex::new(Some(Box::new(printer))))),
        palette: Palette::detect(),
        errors_to_stderr: !io::stderr().is_terminal(),
    });
    Ok(Some(EditorSide {
        editor: Mutex::new(Some(editor)),
        watch,
        restart: Arc::new(AtomicBool::new(false)),
        started: AtomicBool::new(false),
        screen,
        prompt: Arc::new(Mutex::new("> ".to_string())),
        stopping: Arc::new(AtomicBool::new(false)),
        stopped: Mutex::new(None),
    }))
}

/// What the input thread shares with the console.
struct EditorState {
    prompt: Arc<Mutex<String>>,
    watch: LineWatch,
    restart: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

/// The input thread of the line-editor form.
fn read_edited(
    mut editor: LineEditor,
    state: &EditorState,
    mut composer: Composer,
    events: &Sender<Event>,
    after_quit: AfterQuit,
) {
    // What was being typed when the editor was restarted for a new prompt.
    let mut kept = (String::new(), 0);
    while !state.stopping.load(Ordering::SeqCst) {
        state.restart.store(false, Ordering::SeqCst);
        let prompt = crate::lock(&state.prompt).clone();
        let (line, pos) = std::mem::take(&mut kept);
        let pos = if line.is_char_boundary(pos) {
            pos
        } else {
            line.len()
        };
        let result = editor.readline_with_initial(&prompt, (&line[..pos], &line[pos..]));
        let input = match result {
            Ok(line) => {
                state.watch.take();
                line
            }
            Err(ReadlineError::Interrupted) if state.stopping.load(Ordering::SeqCst) => return,
            Err(ReadlineError::Interrupted) if state.restart.swap(false, Ordering::SeqCst) => {
                OUR_SIGINT.store(false, Ordering::SeqCst);
                kept = state.watch.take();
                erase_edited_line(&prompt, &kept.0);
                continue;
            }
            Err(ReadlineError::Interrupted) => {
                let _ = events.send(Event::Input(Input::Interrupted));
                return;
            }
            // Ctrl-D on an empty line.
            Err(ReadlineError::Eof) => {
                let _ = events.send(Event::Input(Input::Quit));
                if after_quit == AfterQuit::Stop {
                    return;
                }
                continue;
            }
            Err(e) => {
                composer
                    .screen()
                    .error(&format!("cannot read the terminal: {e}"));
                let _ = events.send(Event::Input(Input::Closed));
                return;
            }
        };
        // A paste may bring several lines at once.
        for line in input.split('\n') {
            if composer.enter(line.as_bytes()) == Entered::Quit {
                let _ = events.send(Event::Input(Input::Quit));
                if after_quit == AfterQuit::Stop {
                    return;
                }
            }
        }
        composer.flush();
    }
}

/// Erases the prompt and line that an interrupted `readline` left above the
/// cursor (it ends every line it reads with a line end), so that the editor
/// restarts in the same place.
fn erase_edited_line(prompt: &str, line: &str) {
    // SAFETY: TIOCGWINSZ fills a winsize for a terminal descriptor.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let columns = match unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } {
        0 if size.ws_col > 0 => usize::from(size.ws_col),
        _ => 80,
    };
    let width = prompt.width() + line.width();
    let rows = width / columns + 1;
    let mut out = io::stdout().lock();
    let _ = write!(out, "\x1b[{rows}A\r\x1b[J");
    let _ = out.flush();
}

/// Colours for the parts of the screen, or none.
#[derive(Clone, Copy)]
struct Palette {
    peer: Style,
    status: Style,
    error: Style,
}

impl Palette {
    /// Colour unless `NO_COLOR` is set (<https://no-color.org>) or the terminal
    /// is dumb.
    fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if no_color || dumb {
            return Self {
                peer: Style::new(),
                status: Style::new(),
                error: Style::new(),
            };
        }
        Self {
            peer: Style::new().bold().fg_color(Some(AnsiColor::Cyan.into())),
            status: Style::new().dimmed().italic(),
            error: Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
        }
    }
}

/// The editor's printer, shared by the screen and every conversation's sink;
/// `None` once the editor is closed, and output then goes to stderr directly.
#[derive(Clone)]
struct SharedPrinter(Arc<Mutex<Option<Printer>>>);

impl SharedPrinter {
    /// Prints one line. The line end is ours: rustyline adds none while no
    /// line is being edited.
    fn print(&self, mut text: String) -> io::Result<()> {
        let mut printer = crate::lock(&self.0);
        match printer.as_mut() {
            Some(printer) => {
                text.push('\n');
                printer.print(text).map_err(io::Error::other)
            }
            None => {
                eprintln!("{text}");
                Ok(())
            }
        }
    }

    fn take(&self) -> Option<Printer> {
        crate::lock(&self.0).take()
    }

    fn put_back(&self, printer: Printer) {
        *crate::lock(&self.0) = Some(printer);
    }
}

/// The line-editor screen: everything goes through rustyline's printer.
struct EditorScreen {
    printer: SharedPrinter,
    palette: Palette,
    /// Status and errors go to stderr when it is not the terminal.
    errors_to_stderr: bool,
}

impl EditorScreen {
    /// Returns once everything printed so far is on the screen.
    ///
    /// rustyline hands messages to the editing thread through a channel that
    /// holds one, and prints each as it takes it, so after two more hand-overs
    /// everything before them has been printed. They are a cursor-up and a line
    /// end: nothing visible.
    fn flush(&self) {
        let Some(mut printer) = self.printer.take() else {
            return;
        };
        let (done, flushed) = mpsc::channel();
        thread::spawn(move || {
            for _ in 0..2 {
                if printer.print("\x1b[A\n".to_string()).is_err() {
                    break;
                }
            }
            let _ = done.send(printer);
        });
        if let Ok(printer) = flushed.recv_timeout(CLOSE_TIMEOUT) {
            self.printer.put_back(printer);
        }
    }

    /// From now on, print straight to stderr.
    fn detach(&self) {
        self.printer.take();
    }
}

impl EditorScreen {
    /// A status or error line: above the prompt, or on stderr when that is
    /// not the terminal.
    fn announce(&self, plain: String, styled: impl FnOnce() -> String) {
        if self.errors_to_stderr {
            eprintln!("{plain}");
        } else {
            let _ = self.printer.print(styled());
        }
    }
}

impl Screen for EditorScreen {
    fn status(&self, text: &str) {
        let style = self.palette.status;
        self.announce(text.to_string(), || format!("{style}-- {text}{style:#}"));
    }

    fn error(&self, text: &str) {
        let style = self.palette.error;
        self.announce(format!("error: {text}"), || {
            format!("{style}error:{style:#} {text}")
        });
    }

    fn messages(&self, from: &str) -> Box<dyn MessageSink> {
        let style = self.palette.peer;
        Box::new(EditorSink {
            printer: self.printer.clone(),
            prefix: format!("{style}{from}:{style:#} "),
        })
    }
}

/// One peer's messages on the editor screen, each prefixed with its name.
struct EditorSink {
    printer: SharedPrinter,
    prefix: String,
}

impl MessageSink for EditorSink {
    fn show(&mut self, payload: &[u8], _more: bool) -> io::Result<()> {
        self.printer
            .print(format!("{}{}", self.prefix, visible(payload)))
    }
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

/// The terminal's modes when the program started, to put back at the end
/// whatever happens.
static SAVED_TERMINAL: OnceLock<libc::termios> = OnceLock::new();

fn save_terminal() {
    // SAFETY: tcgetattr writes a termios for a valid descriptor and leaves it
    // unused otherwise; stdin is open for the life of the program.
    let mut modes: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut modes) } == 0 {
        let _ = SAVED_TERMINAL.set(modes);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    }
}

/// Puts the terminal back as it was when the program started.
pub fn restore_terminal() {
    if let Some(modes) = SAVED_TERMINAL.get() {
        // SAFETY: `modes` came from tcgetattr on the same descriptor.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, modes) };
    }
}
