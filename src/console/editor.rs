//! The editor thread: the only thread that touches the terminal while the
//! line editor runs. It takes keys (from a thread that only reads them),
//! output to show, prompt changes and the order to stop from one channel, so
//! that nothing else ever waits on it and nothing it does is mistaken for
//! the user: no signals, no shared printer, no second writer.
//!
//! Messages and status lines are drawn above the prompt: the prompt and the
//! line being typed are erased, the new lines written, and the prompt and
//! line drawn again with the cursor where it was.
//!
//! The editor keeps where it drew the prompt and line ([`Drawn`]) so that it
//! can always erase them from their first row: after a resize (where the
//! terminal may have wrapped them anew) and after the program was stopped
//! and continued (where nothing else redraws them: `kill -STOP`, or a
//! session with no shell such as `ssh -t` or `xterm -e`).

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use anstyle::Style;
use crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, KeyEventKind};
use crossterm::{cursor, queue, terminal};
use unicode_width::UnicodeWidthChar;

use super::line::{Drawn, Line, Outcome, layout};
use crate::console::event::{Event, Events, Input};
use crate::console::input::{AfterQuit, Composer, Entered};
use crate::console::look::{self, Shape};
use crate::console::output::{Output, Said, Shown, write_plain};
use crate::errors::to_stderr;
use crate::wire::display::{LINE_BREAK, needs_escape};

/// What the editor thread is told.
pub(super) enum Msg {
    /// From the key-reading thread.
    Term(io::Result<event::Event>),
    /// The output queue has something to show.
    Output,
    Prompt(String),
    /// Start taking keys: lines go to the composer.
    StartInput {
        composer: Box<Composer>,
        events: Events,
        after_quit: AfterQuit,
        keys: Sender<Msg>,
    },
    /// The program was continued after a stop (SIGCONT): the shell may have
    /// put the terminal back in line mode.
    #[cfg(unix)]
    Resumed,
    /// Show what is queued, give the terminal back, then go on as the plain
    /// writer; `ack` is told once the terminal is back.
    Stop(Sender<()>),
}

/// The user's side, once input has started.
struct Typing {
    composer: Box<Composer>,
    events: Events,
    after_quit: AfterQuit,
    /// The client stops taking lines after `q`.
    done: bool,
    /// Whether the key reader may take keys from the terminal.
    gate: Arc<KeyGate>,
}

/// Between the key reader and the editor's end: keys are taken from the
/// terminal only while the editor will still handle them. Keys typed in
/// the moment the program ended were read and then dropped unsaid, their
/// line lost, exit 0 (a user trial, 5 runs in 20 with `q` typed on both
/// sides at once); now they are handled (a line entered then is said not
/// sent, and counted), or left unread for the shell.
#[derive(Default)]
struct KeyGate {
    /// (no more keys are taken, the reader holds keys it took or waits
    /// on the terminal for them)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

/// How long the reader waits on the terminal at a time: the editor's end
/// waits at most this for it.
const KEY_WAIT: Duration = Duration::from_millis(100);

impl KeyGate {
    /// The reader may wait for keys and take them: false once stopped.
    fn begin(&self) -> bool {
        let mut state = crate::lock(&self.state);
        state.1 = !state.0;
        state.1
    }

    /// The reader handed over all it took.
    fn end(&self) {
        crate::lock(&self.state).1 = false;
        self.changed.notify_all();
    }

    /// No more keys are taken: waits (a little longer than the reader's
    /// wait on the terminal, at most) until the reader has handed over
    /// what it took.
    fn stop(&self) {
        let mut state = crate::lock(&self.state);
        state.0 = true;
        let waited = self
            .changed
            .wait_timeout_while(state, KEY_WAIT * 2, |state| state.1);
        drop(waited.unwrap_or_else(|e| e.into_inner()));
    }
}

struct Editor {
    output: Arc<Output>,
    line: Line,
    prompt: String,
    typing: Option<Typing>,
    /// Colours, times, the bell and the transcript.
    shape: Shape,
    /// Status and errors go to stderr when that is not the terminal.
    errors_to_stderr: bool,
    /// Where the prompt and line are on the screen, while drawn.
    drawn: Option<Drawn>,
    /// The first row of the line shown, for a line taller than the screen.
    top: usize,
    /// Whether the terminal wraps lines again when its width changes.
    reflows: bool,
    /// Lines entered since the last repaint, to leave on the screen above
    /// the prompt (written together: a paste of thousands is one write).
    echo: String,
    out: io::Stdout,
}

/// Runs the editor thread until told to stop, then the plain writer.
pub(super) fn run(output: Arc<Output>, inbox: Receiver<Msg>, prompt: String, shape: Shape) {
    let mut editor = Editor {
        output,
        line: Line::default(),
        prompt,
        typing: None,
        shape,
        errors_to_stderr: !io::stderr().is_terminal(),
        drawn: None,
        top: 0,
        reflows: terminal_reflows(),
        echo: String::new(),
        out: io::stdout(),
    };
    editor.draw();
    let mut items = Vec::new();
    while let Ok(msg) = inbox.recv() {
        let mut next = Some(msg);
        let mut show = false;
        // Everything already waiting is handled before one redraw: a burst of
        // keys or of messages costs one repaint.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Output => show = true,
                Msg::Stop(ack) => {
                    // Keys the reader took go to the line first (a line
                    // entered now is said not sent, and counted).
                    if let Some(typing) = &editor.typing {
                        typing.gate.stop();
                        while let Ok(msg) = inbox.try_recv() {
                            if matches!(msg, Msg::Term(_)) {
                                editor.handle(msg);
                            }
                        }
                    }
                    editor.show_queued(&mut items);
                    editor.leave();
                    let _ = ack.send(());
                    editor.output.set_waker(None);
                    // Never written to without waiting: that is set up
                    // for a plain consumer from the start, or not at all.
                    // One thread for both streams, as the editor was (the
                    // last words of a program leaving a terminal).
                    write_plain(
                        &editor.output,
                        &mut io::stdout(),
                        &mut io::stderr(),
                        &editor.shape,
                    );
                    return;
                }
                other => editor.handle(other),
            }
            next = inbox.try_recv().ok();
        }
        if show {
            editor.show_queued(&mut items);
        }
        if let Some(typing) = &mut editor.typing {
            typing.composer.flush();
            typing.composer.end_input();
        }
        editor.redraw();
    }
}

impl Editor {
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Term(Ok(event::Event::Key(key))) if key.kind != KeyEventKind::Release => {
                let outcome = self.line.key(key);
                self.act(outcome);
            }
            Msg::Term(Ok(event::Event::Paste(text))) => self.line.paste(&text),
            Msg::Term(Ok(event::Event::Resize(..))) => {
                // The terminal has already rearranged what was drawn: find
                // its first row where the terminal put it (at the new width,
                // the latest one, as several resizes may be queued) and
                // erase from there. Moving up stops at the screen's top, so
                // a line now taller than the screen is erased from there.
                let columns = screen_size().0;
                let above = self
                    .drawn
                    .take()
                    .map_or(0, |drawn| drawn.rows_above_cursor(columns, self.reflows));
                if above > 0 {
                    let _ = queue!(self.out, cursor::MoveUp(clamp_u16(above)));
                }
                self.erase_down();
            }
            Msg::Term(Ok(_)) => {}
            Msg::Term(Err(e)) => {
                self.output.error(format!(
                    "cannot read the terminal: {}",
                    crate::errors::lowercase_os_error(&e)
                ));
                if let Some(typing) = self.typing.take() {
                    let _ = typing.events.send(Event::Input(Input::Closed));
                }
            }
            Msg::Prompt(prompt) => {
                self.clear();
                self.prompt = prompt;
            }
            Msg::StartInput {
                composer,
                events,
                after_quit,
                keys,
            } => {
                let gate = Arc::new(KeyGate::default());
                self.typing = Some(Typing {
                    composer,
                    events,
                    after_quit,
                    done: false,
                    gate: Arc::clone(&gate),
                });
                spawn_key_reader(keys, gate);
            }
            // Whatever stopped the program, the line is where it was drawn
            // (our own Ctrl-Z erased it first, and then nothing is drawn):
            // the redraw that follows this batch erases it from its first
            // row and draws it once, below what arrived meanwhile. Drawing
            // it again from the cursor, as if nothing were there, left it
            // twice on one row with the cursor in the middle.
            #[cfg(unix)]
            Msg::Resumed => {
                super::resume_raw_mode();
                // A shell that had the terminal meanwhile turned bracketed
                // paste off (bash does before running a command).
                let _ = queue!(self.out, EnableBracketedPaste);
            }
            Msg::Output | Msg::Stop(_) => unreachable!("handled by the loop"),
        }
    }

    fn act(&mut self, outcome: Outcome) {
        let Some(typing) = &mut self.typing else {
            return;
        };
        match outcome {
            Outcome::Edited | Outcome::Ignored => {}
            Outcome::Submit(line) => self.enter(&line),
            Outcome::Quit => self.quit(),
            Outcome::Interrupt => {
                let _ = typing.events.send(Event::Input(Input::Interrupted));
            }
            Outcome::ClearScreen => {
                let _ = queue!(
                    self.out,
                    terminal::Clear(terminal::ClearType::All),
                    cursor::MoveTo(0, 0)
                );
                self.drawn = None;
            }
            // The line is erased before the stop, so that the shell's words
            // follow the messages; once continued, it is drawn where the
            // shell left the cursor (once: see `Msg::Resumed`).
            #[cfg(unix)]
            Outcome::Suspend => {
                self.clear();
                // The shell gets the terminal as it was before us: a shell
                // that knows nothing of bracketed paste would show its marks.
                let _ = queue!(self.out, DisableBracketedPaste);
                let _ = self.out.flush();
                super::suspend();
                let _ = queue!(self.out, EnableBracketedPaste);
            }
            // Windows' end of input is Ctrl-Z (then Enter) on an empty line.
            #[cfg(windows)]
            Outcome::Suspend if self.line.text().is_empty() => self.quit(),
            #[cfg(windows)]
            Outcome::Suspend => {}
        }
    }

    /// One line the user entered: it stays on the screen as typed, above the
    /// prompt, and goes to the peer.
    fn enter(&mut self, line: &str) {
        let Some(typing) = &mut self.typing else {
            return;
        };
        if typing.done {
            // `q` again is the user's word that it need not wait (for an
            // away peer to come back and take its lines): the program
            // decides what a second `q` means.
            if line == "q" {
                self.echo.push_str(&shown_form(&self.prompt, line));
                self.echo.push_str("\r\n");
                let _ = typing.events.send(Event::Input(Input::Quit));
                return;
            }
            self.output
                .error("the conversation is ending; line not sent");
            return;
        }
        // Over already (the peer's end came as it was typed): said, not
        // dropped unsaid (see `Outbox::stop_input`).
        if !typing.composer.begin_input() {
            typing.done = true;
            typing.composer.refuse_late(line.as_bytes());
            self.output.error("the conversation is over; line not sent");
            return;
        }
        self.echo.push_str(&shown_form(&self.prompt, line));
        self.echo.push_str("\r\n");
        if typing.composer.enter(line.as_bytes()) == Entered::Quit {
            self.quit();
        } else if typing.composer.ended() {
            typing.done = true;
        }
    }

    fn quit(&mut self) {
        let Some(typing) = &mut self.typing else {
            return;
        };
        typing.composer.flush();
        let _ = typing.events.send(Event::Input(Input::Quit));
        if typing.after_quit == AfterQuit::Stop {
            typing.done = true;
        }
    }

    /// Writes the lines entered since the last repaint above the prompt.
    fn write_echo(&mut self) {
        if self.echo.is_empty() {
            return;
        }
        self.clear();
        let _ = self.out.write_all(self.echo.as_bytes());
        self.echo.clear();
    }

    /// Shows everything queued above the prompt.
    fn show_queued(&mut self, items: &mut Vec<Shown>) {
        self.write_echo();
        self.output.take(items, false);
        if items.is_empty() {
            return;
        }
        self.clear();
        // A terminal that says nothing of its size (a serial line saying
        // 0) gets its messages unwrapped rather than a row a letter. A
        // narrow one is wrapped here all the same: left to the terminal,
        // a row of a peer's text would start at column 0 (a user trial at
        // 16 columns read `bob: I agree` there, from alice).
        let columns = match terminal::size() {
            Ok((c, _)) if c > 0 => usize::from(c),
            _ => usize::MAX / 2,
        };
        let palette = self.shape.palette;
        // One time for the batch: what arrives together is shown together.
        let time = self.shape.stamps.then(look::short_time);
        let (stamp, stamped) = match &time {
            Some(time) => {
                let style = palette.time();
                (format!("{style}{time}{style:#} "), columns_of(time) + 1)
            }
            None => (String::new(), 0),
        };
        let me = self.output.me();
        let mut bell = false;
        let mut log = Vec::new();
        let mut text = String::new();
        for item in items.iter() {
            self.shape.log(&self.output, item, &mut log);
            match item {
                Shown::Messages { from, text: lines } => {
                    let style = palette.peer;
                    let label = stamped + columns_of(from) + 2;
                    for line in String::from_utf8_lossy(lines).lines() {
                        let line = block(line, label, columns);
                        text.push_str(&format!("{stamp}{style}{from}:{style:#} {line}\r\n"));
                        bell |= self.shape.bell.rings(false);
                    }
                }
                Shown::Named {
                    said,
                    earlier,
                    from,
                    lines,
                    said_at,
                } => {
                    let style = palette.name(from);
                    // Lines from before we joined show when they were
                    // said, if the room said (see `look`), and their mark.
                    let said_stamp = match (*earlier, time.is_some(), said_at) {
                        (true, true, Some(at)) => {
                            let style = palette.time();
                            format!("{style}{}{style:#} ", look::short_time_of(*at))
                        }
                        _ => String::new(),
                    };
                    let (dim, dim_end, stamp, stamped) = match earlier {
                        true => (
                            palette.status,
                            "(earlier) ",
                            said_stamp.as_str(),
                            if said_stamp.is_empty() { 0 } else { stamped },
                        ),
                        false => (Style::new(), "", stamp.as_str(), stamped),
                    };
                    let label = stamped
                        + columns_of(dim_end)
                        + columns_of(from)
                        + match said {
                            Said::Message => 2,
                            Said::Action => 3,
                            // ` → you: `, `you → ` and `: `
                            Said::Private | Said::PrivateSent => 8,
                        };
                    for line in String::from_utf8_lossy(lines).lines() {
                        // A private message to us is for us as much as a
                        // mention: highlighted, and the bell rings.
                        let mention = !earlier
                            && (*said == Said::Private
                                || me.as_deref().is_some_and(|me| look::names(line, me)));
                        // What we said ourselves rings nothing.
                        let ours = *said == Said::PrivateSent;
                        bell |= !earlier && !ours && self.shape.bell.rings(mention);
                        let highlight = match mention {
                            true => palette.mention,
                            false => Style::new(),
                        };
                        let line = block(line, label, columns);
                        text.push_str(&format!("{stamp}{dim}{dim_end}{dim:#}"));
                        match said {
                            Said::Message => text.push_str(&format!(
                                "{style}{from}:{style:#} {highlight}{line}{highlight:#}\r\n"
                            )),
                            Said::Action => text.push_str(&format!(
                                "{style}* {from}{style:#} {highlight}{line}{highlight:#}\r\n"
                            )),
                            Said::Private => text.push_str(&format!(
                                "{style}{from}{style:#} \u{2192} you: {highlight}{line}{highlight:#}\r\n"
                            )),
                            Said::PrivateSent => text.push_str(&format!(
                                "you \u{2192} {style}{from}{style:#}: {highlight}{line}{highlight:#}\r\n"
                            )),
                        }
                    }
                }
                Shown::Status(status) if self.errors_to_stderr => to_stderr(status),
                Shown::Error(error) if self.errors_to_stderr => {
                    to_stderr(&format!("error: {error}"))
                }
                Shown::Status(status) => {
                    let style = palette.status;
                    text.push_str(&format!("{stamp}{style}-- {status}{style:#}\r\n"));
                }
                Shown::Error(error) => {
                    let style = palette.error;
                    text.push_str(&format!("{stamp}{style}error:{style:#} {error}\r\n"));
                }
            }
        }
        // The terminal's bell, once for the batch: only here, at a
        // terminal, never in piped output.
        if bell {
            text.push('\x07');
        }
        let written = self.out.write_all(text.as_bytes());
        self.output.done(items);
        if written.is_err() {
            self.output.close();
        }
    }

    /// Erases the prompt and line, leaving the cursor where the prompt began.
    fn clear(&mut self) {
        if let Some(drawn) = self.drawn.take() {
            let (row, _) = drawn.cursor;
            // Never 0: `CSI 0 A` moves up one row.
            if row > 0 {
                let _ = queue!(self.out, cursor::MoveUp(clamp_u16(row)));
            }
            self.erase_down();
        }
    }

    /// Erases the cursor's row and all below, leaving the cursor at the
    /// row's start. Not by erasing from column 0: from the screen's top
    /// left corner, that is clearing the screen, which tmux (its default
    /// `scroll-on-clear`) copies into its history first; a prompt on the
    /// top row (after Ctrl-L, or a line as tall as the screen) would leave
    /// a copy there at every key.
    fn erase_down(&mut self) {
        let _ = queue!(
            self.out,
            terminal::Clear(terminal::ClearType::CurrentLine),
            cursor::MoveToColumn(1),
            terminal::Clear(terminal::ClearType::FromCursorDown),
            cursor::MoveToColumn(0)
        );
    }

    fn redraw(&mut self) {
        self.write_echo();
        self.clear();
        self.draw();
    }

    /// Draws the prompt and line from the cursor's position (column 0 of a
    /// clear row), then puts the cursor where it belongs in the line.
    fn draw(&mut self) {
        let size = screen_size();
        let prompt = self
            .line
            .search_prompt()
            .unwrap_or_else(|| self.prompt.clone());
        let shown = layout(
            &prompt,
            self.line.text(),
            self.line.cursor(),
            size,
            self.top,
        );
        self.top = shown.top;
        let _ = self.out.write_all(shown.text.as_bytes());
        let (row, column) = shown.cursor;
        if shown.end_row > row {
            let _ = queue!(self.out, cursor::MoveUp(clamp_u16(shown.end_row - row)));
        }
        let _ = queue!(self.out, cursor::MoveToColumn(clamp_u16(column)));
        let _ = self.out.flush();
        self.drawn = Some(Drawn {
            columns: size.0,
            cursor: shown.cursor,
        });
    }

    /// Gives the terminal back: the prompt erased, line mode and echo on.
    fn leave(&mut self) {
        self.clear();
        let _ = queue!(self.out, DisableBracketedPaste);
        let _ = self.out.flush();
        super::restore_terminal();
    }
}

/// Columns `text` takes on the screen.
fn columns_of(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// A message's text as one block on a screen `columns` wide, after a label
/// of `label` columns: each row the terminal would wrap to is started
/// anew, indented under the text, so that nothing a peer sends can begin a
/// row at column 0 and pass for another sender's line, and so is each line
/// of a message of several lines (after each [`LINE_BREAK`]); tabs are
/// spaces to the next multiple of 8 (a tab jumps to wherever the terminal
/// says, which a peer could use the same way).
fn block(text: &str, label: usize, columns: usize) -> String {
    // A label wider than half the screen indents by half the screen.
    let indent = label.min(columns / 2);
    let mut out = String::with_capacity(text.len() + 8);
    let mut used = label.min(columns);
    let mut column_in_text = 0;
    let put = |out: &mut String, c: char, width: usize, used: &mut usize| {
        if *used + width > columns && *used > indent {
            out.push_str("\r\n");
            out.extend(std::iter::repeat_n(' ', indent));
            *used = indent;
        }
        out.push(c);
        *used += width;
    };
    for c in text.chars() {
        if c == LINE_BREAK {
            out.push_str("\r\n");
            out.extend(std::iter::repeat_n(' ', indent));
            used = indent;
            column_in_text = 0;
            continue;
        }
        if c == '\t' {
            let spaces = 8 - column_in_text % 8;
            for _ in 0..spaces {
                put(&mut out, ' ', 1, &mut used);
            }
            column_in_text += spaces;
            continue;
        }
        let width = c.width().unwrap_or(0);
        put(&mut out, c, width, &mut used);
        column_in_text += width;
    }
    out
}

/// What is written for the prompt and `text` once entered, as it was
/// shown while typed: tabs as spaces to the next multiple of 8 of the
/// line, what a peer's screen would escape (controls, line separators,
/// bidirectional controls) as `?`, and the lines of a message of several
/// lines under the first.
fn shown_form(prompt: &str, text: &str) -> String {
    let indent = " ".repeat(columns_of(prompt));
    let mut out = String::with_capacity(prompt.len() + text.len());
    for (n, line) in text.split('\n').enumerate() {
        match n {
            0 => out.push_str(prompt),
            _ => {
                out.push_str("\r\n");
                out.push_str(&indent);
            }
        }
        let mut column = 0;
        for c in line.chars() {
            match c {
                '\t' => {
                    let spaces = 8 - column % 8;
                    out.extend(std::iter::repeat_n(' ', spaces));
                    column += spaces;
                }
                c if needs_escape(c) => {
                    out.push('?');
                    column += 1;
                }
                c => {
                    out.push(c);
                    column += c.width().unwrap_or(0);
                }
            }
        }
    }
    out
}

/// The screen's columns and rows. A terminal that says nothing sensible (a
/// serial line says 0) is taken as 80 columns, of unknown height: a line
/// is then never cut to a screenful.
fn screen_size() -> (usize, usize) {
    let (columns, rows) = terminal::size().unwrap_or((0, 0));
    let columns = match columns {
        0 => 80,
        c => usize::from(c),
    };
    let rows = match rows {
        0 => usize::MAX,
        r => usize::from(r),
    };
    (columns, rows)
}

/// Whether the terminal wraps a long line again when its width changes,
/// which decides where the line's first row is after a resize. Most do
/// (tmux, VTE's, kitty, Alacritty, iTerm2, Windows'); xterm (which says so
/// in `XTERM_VERSION`), rxvt and the Linux console do not. Inside tmux,
/// tmux does, whatever terminal shows it.
fn terminal_reflows() -> bool {
    if std::env::var_os("TMUX").is_some() {
        return true;
    }
    let term = std::env::var("TERM").unwrap_or_default();
    let xterm = std::env::var_os("XTERM_VERSION").is_some();
    !(xterm || term == "linux" || term.starts_with("rxvt"))
}

fn clamp_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// Reads keys on a thread of its own until the editor ends: it only waits
/// on the terminal and forwards what it reads. Waiting for keys takes them
/// from the terminal (into crossterm's queue), so that is done only while
/// `gate` lets it, and all that was taken is forwarded before it is asked
/// again.
fn spawn_key_reader(keys: Sender<Msg>, gate: Arc<KeyGate>) {
    let spawned = thread::Builder::new().name("keys".into()).spawn(move || {
        while gate.begin() {
            let mut ready = event::poll(KEY_WAIT);
            while let Ok(true) = ready {
                if keys.send(Msg::Term(event::read())).is_err() {
                    gate.end();
                    return;
                }
                ready = event::poll(Duration::ZERO);
            }
            gate.end();
            if let Err(e) = ready {
                let _ = keys.send(Msg::Term(Err(e)));
                return;
            }
        }
    });
    if let Err(e) = spawned {
        to_stderr(&format!("error: cannot read the terminal: {e}"));
    }
}

/// Puts the terminal in the editor's mode: raw (keys one by one, no echo)
/// and bracketed paste.
pub(super) fn enter_terminal() -> io::Result<()> {
    terminal::enable_raw_mode()?;
    let mut out = io::stdout();
    queue!(out, EnableBracketedPaste)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::{Style, block, shown_form};
    use crate::console::look::Palette;
    use anstyle::AnsiColor;

    #[test]
    fn each_name_has_a_stable_colour_never_the_errors_red() {
        let palette = Palette::new(true);
        let names = ["alice", "bob", "carol", "李雷", "guest-1", "guest-2", "x"];
        let colours: Vec<Style> = names.iter().map(|n| palette.name(n)).collect();
        let distinct: std::collections::HashSet<String> =
            colours.iter().map(|s| format!("{s:?}")).collect();
        assert!(
            distinct.len() >= 3,
            "names get different colours: {distinct:?}"
        );
        for style in colours {
            assert_ne!(style.get_fg_color(), Some(AnsiColor::Red.into()));
        }
        // The first colour, for a known name, so it cannot drift silently.
        assert_eq!(
            palette.name("bob"),
            Style::new().bold().fg_color(Some(AnsiColor::Yellow.into()))
        );
    }

    /// A long message wraps into rows indented under its text: padding to
    /// the screen's width followed by `bob: hi` cannot put `bob:` at
    /// column 0; tabs become spaces.
    #[test]
    fn a_message_is_one_block_under_its_label() {
        let label = "alice: ".len();
        let fake = format!("{}bob: hi", "x".repeat(80 - label));
        let shown = block(&fake, label, 80);
        let rows: Vec<&str> = shown.split("\r\n").collect();
        assert_eq!(rows.len(), 2, "{shown:?}");
        assert_eq!(rows[0].chars().count(), 80 - label);
        assert_eq!(rows[1], format!("{}bob: hi", " ".repeat(label)));
        for row in &rows[1..] {
            assert!(row.starts_with(&" ".repeat(label)), "{row:?}");
        }
        // Wide characters count two columns: never split across a row.
        let wide = block(&"你".repeat(50), 10, 40);
        for row in wide.split("\r\n") {
            assert!(super::columns_of(row) <= 40, "{row:?}");
        }
        assert_eq!(block("a\tb", 5, 80), "a       b");
        // Each line of a message of several lines starts under the first,
        // its tabs counted from its own start.
        assert_eq!(
            block("one\u{2028}\ttwo\u{2028}bob: three", 7, 80),
            "one\r\n               two\r\n       bob: three"
        );
        assert_eq!(block("short", 7, 80), "short");
    }

    #[test]
    fn an_entered_line_shows_tabs_as_spaces_and_what_a_peer_would_escape_as_question_marks() {
        assert_eq!(
            shown_form("> ", "a\tb\x1b\u{2028}\u{202e}"),
            "> a       b???"
        );
        assert_eq!(shown_form("> ", "e\u{301}"), "> e\u{301}");
        assert_eq!(shown_form("> ", "one\ntwo"), "> one\r\n  two");
    }
}
