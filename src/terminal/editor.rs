//! The line editor on the input thread: rustyline's `readline` in a loop,
//! restarted with a new prompt without losing what is being typed, ended from
//! another thread by a SIGINT that rustyline turns into `Interrupted`, and the
//! terminal's modes saved to put back whatever happens.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};

use rustyline::completion::Completer;
use rustyline::config::ColorMode;
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, Helper};
use unicode_width::UnicodeWidthStr;

use crate::event::{Event, Input};
use crate::input::{AfterQuit, Composer, Entered};

/// Records the line being edited, which rustyline shows its highlighter on
/// every repaint, so that the editor can be restarted with a new prompt
/// without losing a keystroke.
#[derive(Default, Clone)]
pub(super) struct LineWatch {
    line: Arc<Mutex<(String, usize)>>,
}

impl LineWatch {
    pub(super) fn take(&self) -> (String, usize) {
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

pub(super) type LineEditor = Editor<LineWatch, DefaultHistory>;

/// An editor with history and a [`LineWatch`] on what is typed; `None` where
/// rustyline cannot run.
pub(super) fn new_editor() -> Option<(LineEditor, LineWatch)> {
    // Colours forced on for rustyline means only that it always asks the
    // highlighter, which adds none; ours are the screen's.
    let config = Config::builder()
        .auto_add_history(true)
        .color_mode(ColorMode::Forced)
        .build();
    let mut editor: LineEditor = Editor::with_config(config).ok()?;
    let watch = LineWatch::default();
    editor.set_helper(Some(watch.clone()));
    Some((editor, watch))
}

/// Set while a SIGINT raised by this program is on its way, so that the
/// handler outside the editor does not take it for the user's Ctrl-C.
pub(super) static OUR_SIGINT: AtomicBool = AtomicBool::new(false);

/// Sends SIGINT to the calling thread: while the input thread is in
/// `readline`, rustyline's handler makes it return `Interrupted`.
pub(super) fn interrupt_editor() {
    OUR_SIGINT.store(true, Ordering::SeqCst);
    // SAFETY: raise only sends a signal to this thread; the handler in force
    // (rustyline's during readline, ctrlc's otherwise) runs on it.
    unsafe { libc::raise(libc::SIGINT) };
}

/// What the input thread shares with the console.
pub(super) struct EditorState {
    pub(super) prompt: Arc<Mutex<String>>,
    pub(super) watch: LineWatch,
    pub(super) restart: Arc<AtomicBool>,
    pub(super) stopping: Arc<AtomicBool>,
}

/// The input thread of the line-editor form.
pub(super) fn read_edited(
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

/// The terminal's modes when the program started, to put back at the end
/// whatever happens.
static SAVED_TERMINAL: OnceLock<libc::termios> = OnceLock::new();

pub(super) fn save_terminal() {
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
pub(super) fn restore_terminal() {
    if let Some(modes) = SAVED_TERMINAL.get() {
        // SAFETY: `modes` came from tcgetattr on the same descriptor.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, modes) };
    }
}
