//! A program in a pseudo-terminal, seen as a person sees it: everything it
//! writes goes through a terminal emulator (avt, asciinema's), so that a
//! test checks the rows on the screen and the cursor rather than bytes.
//! avt wraps long lines again when its width changes, as tmux and most
//! terminals do, so a resize here does what it does there.
//!
//! Only the tests in `terminal.rs` use it (Unix: a pseudo-terminal).

use std::io::{ErrorKind, Read, Write};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Instant;

use expectrl::Session;

use crate::support::PATIENCE;

pub struct Screen {
    session: expectrl::session::OsSession,
    /// What the program writes, read by a thread of its own.
    output: Receiver<Vec<u8>>,
    term: avt::Terminal,
    /// The start of a UTF-8 sequence whose end has not arrived yet.
    partial: Vec<u8>,
    /// Everything the program wrote so far, as it came.
    written: Vec<u8>,
}

impl Screen {
    /// Runs `program` (a command line for `sh`) in a pseudo-terminal
    /// `columns` by `rows`, and returns it with its process id (the shell
    /// becomes the program).
    pub fn exec(program: &str, size: (u16, u16)) -> (Self, u32) {
        Self::spawn(&format!("exec {program}"), size)
    }

    /// Runs `script` under `sh -c` in a pseudo-terminal `columns` by
    /// `rows`, and returns it with the shell's process id.
    pub fn spawn(script: &str, (columns, rows): (u16, u16)) -> (Self, u32) {
        // The script waits for a line before it starts: by then the
        // terminal has its size for good (the pseudo-terminal's parent side
        // sets 80x24 once the shell runs, which could undo a size the
        // shell set). A user's terminal has line mode and echo.
        let script = format!("stty icanon echo; echo PID=$$ READY; read go; {script}");
        let mut command = Command::new("sh");
        command
            .args(["-c", &script])
            .env("TERM", "xterm")
            .env("NO_COLOR", "1")
            // The editor takes these to say whether the terminal wraps
            // lines again on a resize; the emulator here does.
            .env_remove("XTERM_VERSION")
            .env_remove("TMUX");
        let mut session = Session::spawn(command).expect("spawn in a pseudo-terminal");
        session
            .get_process_mut()
            .set_window_size(columns, rows)
            .expect("size the pseudo-terminal");
        let mut master = session
            .get_process()
            .get_raw_handle()
            .expect("the pseudo-terminal's master side");
        let (tx, output) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0; 16 * 1024];
            loop {
                match master.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) if tx.send(buf[..n].to_vec()).is_err() => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // EIO once nothing has the terminal open any more.
                    Err(_) => return,
                }
            }
        });
        let term = avt::Terminal::with_scrollback(columns.into(), rows.into(), Some(1000))
            .expect("a screen of some size");
        let mut screen = Self {
            session,
            output,
            term,
            partial: Vec::new(),
            written: Vec::new(),
        };
        let mut pid = None;
        screen.wait_for("the shell", |screen| {
            pid = screen.rows().iter().find_map(|row| {
                let rest = row.strip_prefix("PID=")?;
                rest.strip_suffix(" READY")?.parse::<u32>().ok()
            });
            pid.is_some()
        });
        screen.send("\n");
        (screen, pid.expect("a pid"))
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &str) {
        self.session.write_all(keys.as_bytes()).unwrap();
        self.session.flush().unwrap();
    }

    /// Waits until `check` holds of the screen, as the program's output
    /// arrives; panics with `what` and the screen after [`PATIENCE`].
    pub fn wait_for(&mut self, what: &str, mut check: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !check(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.feed(&bytes),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; the screen:\n{}", self.dump())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the terminal closed waiting for {what}; the screen:\n{}",
                        self.dump()
                    )
                }
            }
        }
    }

    /// A mark in what the program wrote, for [`since`](Self::since).
    pub fn mark(&self) -> usize {
        self.written.len()
    }

    /// How many times the program wrote `bytes` (a control sequence, say)
    /// since `mark`.
    pub fn count_since(&self, mark: usize, bytes: &[u8]) -> usize {
        self.written[mark..]
            .windows(bytes.len())
            .filter(|w| *w == bytes)
            .count()
    }

    /// Resizes the screen, as a person resizing a window: the emulator
    /// first (after all the program wrote before, which the caller has
    /// seen on the screen), then the terminal, which tells the program.
    /// Returns a [`mark`](Self::mark) of what was written before.
    pub fn resize(&mut self, columns: u16, rows: u16) -> usize {
        while let Ok(bytes) = self.output.try_recv() {
            self.feed(&bytes);
        }
        self.term.resize(columns.into(), rows.into());
        self.session
            .get_process_mut()
            .set_window_size(columns, rows)
            .expect("resize the pseudo-terminal");
        self.mark()
    }

    /// The screen's rows, without trailing blanks.
    pub fn rows(&self) -> Vec<String> {
        self.term
            .screen()
            .visible_lines()
            .map(|line| line.text().trim_end().to_string())
            .collect()
    }

    /// Everything shown, scrolled off the top or not: the rows, with those
    /// the terminal wrapped joined again, each with the row it starts on
    /// (negative above the screen's top). A terminal that wraps lines again
    /// when narrower keeps the cursor's row and pushes rows above it off
    /// the top, as tmux does: they are still there, as a person scrolling
    /// back would see them.
    pub fn lines(&self) -> Vec<(isize, String)> {
        let all: Vec<&avt::Line> = self.term.screen().all_lines().collect();
        let off_top = (all.len() - self.term.size().1) as isize;
        let mut lines: Vec<(isize, String)> = Vec::new();
        let mut joining = false;
        for (row, line) in all.into_iter().enumerate() {
            let text = line.text();
            match lines.last_mut() {
                Some((_, last)) if joining => last.push_str(&text),
                _ => lines.push((row as isize - off_top, text)),
            }
            joining = line.is_wrapped();
        }
        for (_, text) in &mut lines {
            text.truncate(text.trim_end().len());
        }
        lines
    }

    /// What the cursor's row shows before the cursor (one character a
    /// column: for text of single-column characters).
    pub fn before_cursor(&self) -> String {
        let (row, column) = self.cursor();
        let line = self.term.screen().line(row).map(avt::Line::text);
        line.unwrap_or_default().chars().take(column).collect()
    }

    /// The cursor's row and column.
    pub fn cursor(&self) -> (usize, usize) {
        let cursor = self.term.cursor();
        (cursor.row, cursor.col)
    }

    /// The screen as text, with the cursor's place, for failure messages.
    pub fn dump(&self) -> String {
        let mut dump = String::new();
        for (n, row) in self.rows().iter().enumerate() {
            dump.push_str(&format!("{n:2}|{row}\n"));
        }
        dump.push_str(&format!("cursor at (row, column) {:?}", self.cursor()));
        dump
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.written.extend_from_slice(bytes);
        self.partial.extend_from_slice(bytes);
        let mut rest = std::mem::take(&mut self.partial);
        loop {
            match std::str::from_utf8(&rest) {
                Ok(text) => {
                    self.term.feed(text);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    self.term
                        .feed(std::str::from_utf8(&rest[..valid]).expect("valid"));
                    match e.error_len() {
                        // The rest of the sequence is still to come.
                        None => {
                            self.partial = rest[valid..].to_vec();
                            return;
                        }
                        Some(bad) => {
                            self.term.feed('\u{fffd}');
                            rest.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}
