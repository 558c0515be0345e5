//! Asking for a secret on the terminal, without echo: the shared code.
//!
//! The terminal is in raw mode while the secret is typed, so Ctrl-C is a
//! key, not a signal: the terminal is given back in its normal state
//! however the question ends.

use std::io::{self, Write};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal;

/// How asking ended without an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D or Esc on an empty answer.
    Declined,
    /// No terminal to ask on.
    NoTerminal(String),
}

/// Shows `prompt` on stderr and reads a line from the terminal (even when
/// standard input is a pipe), showing nothing of what is typed.
pub fn ask(prompt: &str) -> Result<String, Unanswered> {
    let no_terminal = |e: io::Error| Unanswered::NoTerminal(crate::errors::lowercase_os_error(&e));
    terminal::enable_raw_mode().map_err(no_terminal)?;
    let _restore = RawMode;
    let mut stderr = io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let mut answer = String::new();
    let ended = loop {
        match event::read().map_err(no_terminal)? {
            Event::Key(key) if key.kind != KeyEventKind::Release => {
                if let Some(ended) = step(&mut answer, key) {
                    break ended;
                }
            }
            Event::Paste(text) => answer.push_str(&text),
            _ => {}
        }
    };
    let _ = write!(stderr, "\r\n");
    let _ = stderr.flush();
    ended.map(|()| answer)
}

/// One key: `Some` once the question is over.
fn step(answer: &mut String, key: KeyEvent) -> Option<Result<(), Unanswered>> {
    let control = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Enter => Some(Ok(())),
        KeyCode::Char('c') if control => Some(Err(Unanswered::Interrupted)),
        KeyCode::Char('d') | KeyCode::Esc
            if answer.is_empty() && (control || key.code == KeyCode::Esc) =>
        {
            Some(Err(Unanswered::Declined))
        }
        KeyCode::Char('u') if control => {
            answer.clear();
            None
        }
        KeyCode::Char('h') if control => {
            answer.pop();
            None
        }
        KeyCode::Backspace => {
            answer.pop();
            None
        }
        KeyCode::Char(c) if !control => {
            answer.push(c);
            None
        }
        _ => None,
    }
}

/// Gives the terminal back when dropped, on every path out.
struct RawMode;

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn keys_edit_the_hidden_answer() {
        let mut answer = String::new();
        let none = KeyModifiers::NONE;
        for c in "7 orbiz".chars() {
            assert_eq!(step(&mut answer, key(KeyCode::Char(c), none)), None);
        }
        step(&mut answer, key(KeyCode::Backspace, none));
        step(&mut answer, key(KeyCode::Char('t'), none));
        assert_eq!(answer, "7 orbit");
        step(&mut answer, key(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(answer, "");
        assert_eq!(
            step(&mut answer, key(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            Some(Err(Unanswered::Declined))
        );
        step(&mut answer, key(KeyCode::Char('x'), none));
        // Ctrl-D with an answer typed does nothing; Ctrl-C always ends.
        assert_eq!(
            step(&mut answer, key(KeyCode::Char('d'), KeyModifiers::CONTROL)),
            None
        );
        assert_eq!(
            step(&mut answer, key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Err(Unanswered::Interrupted))
        );
        assert_eq!(step(&mut answer, key(KeyCode::Enter, none)), Some(Ok(())));
    }
}
