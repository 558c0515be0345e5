//! The line-editor form of the screen: messages and status go through
//! rustyline's printer, above the line being typed, in colour unless
//! `NO_COLOR` says otherwise.

use std::io::{self, IsTerminal};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use anstyle::{AnsiColor, Style};
use rustyline::ExternalPrinter;

use crate::display::visible;
use crate::screen::{MessageSink, Screen};

use super::CLOSE_TIMEOUT;

/// rustyline's printer, which prints above the line being edited.
pub(super) type Printer = Box<dyn ExternalPrinter + Send>;

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
}

/// The line-editor screen: everything goes through rustyline's printer.
pub(super) struct EditorScreen {
    printer: SharedPrinter,
    flusher: Mutex<Option<Printer>>,
    palette: Palette,
    /// Status and errors go to stderr when it is not the terminal.
    errors_to_stderr: bool,
}

impl EditorScreen {
    /// `printer` shows everything; `flusher`, another printer of the same
    /// editor, only proves that everything was shown (see [`Self::flush`]).
    pub(super) fn new(printer: Printer, flusher: Printer) -> Self {
        Self {
            printer: SharedPrinter(Arc::new(Mutex::new(Some(printer)))),
            flusher: Mutex::new(Some(flusher)),
            palette: Palette::detect(),
            errors_to_stderr: !io::stderr().is_terminal(),
        }
    }

    /// Returns once everything printed so far is on the screen.
    ///
    /// rustyline hands messages to the editing thread through a channel that
    /// holds one, and prints each as it takes it, so after two more hand-overs
    /// everything before them has been printed. They are a cursor-up and a line
    /// end: nothing visible.
    ///
    /// The hand-overs go through a printer of their own (rustyline's printers
    /// share one channel), on a thread of their own, so that neither a wait
    /// nor other output is held up if the editor has stopped taking messages.
    pub(super) fn flush(&self) {
        let Some(mut flusher) = crate::lock(&self.flusher).take() else {
            return;
        };
        let (done, flushed) = mpsc::channel();
        thread::spawn(move || {
            for _ in 0..2 {
                if flusher.print("\x1b[A\n".to_string()).is_err() {
                    break;
                }
            }
            let _ = done.send(flusher);
        });
        if let Ok(flusher) = flushed.recv_timeout(CLOSE_TIMEOUT) {
            *crate::lock(&self.flusher) = Some(flusher);
        }
    }

    /// From now on, print straight to stderr.
    pub(super) fn detach(&self) {
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
