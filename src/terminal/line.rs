//! The line being edited: its text, the cursor and this session's history,
//! changed by keys. No terminal here: the editor thread draws the result.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The line or cursor may have changed: redraw.
    Edited,
    /// Enter: this line is done.
    Submit(String),
    /// Ctrl-D on an empty line.
    Quit,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-Z.
    Suspend,
    /// Ctrl-L.
    ClearScreen,
    /// Nothing to do.
    Ignored,
}

#[derive(Default)]
pub(super) struct Line {
    text: String,
    /// Byte offset of the cursor in `text`, always on a char boundary.
    cursor: usize,
    history: Vec<String>,
    /// The history entry shown, while browsing it.
    browsing: Option<usize>,
    /// What was being typed before browsing started.
    draft: String,
}

impl Line {
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    pub(super) fn cursor(&self) -> usize {
        self.cursor
    }

    pub(super) fn key(&mut self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Enter => return Outcome::Submit(self.submit()),
            KeyCode::Char('j' | 'm') if ctrl => return Outcome::Submit(self.submit()),
            KeyCode::Char('c') if ctrl => return Outcome::Interrupt,
            KeyCode::Char('d') if ctrl && self.text.is_empty() => return Outcome::Quit,
            KeyCode::Char('z') if ctrl => return Outcome::Suspend,
            KeyCode::Char('l') if ctrl => return Outcome::ClearScreen,
            KeyCode::Char('d') if ctrl => self.delete_forward(),
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.text.len(),
            KeyCode::Char('b') if ctrl => self.cursor = self.prev_char(),
            KeyCode::Char('f') if ctrl => self.cursor = self.next_char(),
            KeyCode::Char('w') if ctrl => {
                let start = self.word_start();
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            KeyCode::Char('u') if ctrl => {
                self.text.replace_range(..self.cursor, "");
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => self.text.truncate(self.cursor),
            KeyCode::Char('p') if ctrl => self.history_back(),
            KeyCode::Char('n') if ctrl => self.history_forward(),
            KeyCode::Char('b') if alt => self.cursor = self.word_start(),
            KeyCode::Char('f') if alt => self.cursor = self.word_end(),
            KeyCode::Char('d') if alt => {
                let end = self.word_end();
                self.text.replace_range(self.cursor..end, "");
            }
            KeyCode::Char(_) if ctrl || alt => return Outcome::Ignored,
            KeyCode::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            KeyCode::Tab => self.insert("\t"),
            KeyCode::Backspace => {
                let start = self.prev_char();
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            KeyCode::Delete => self.delete_forward(),
            KeyCode::Left if ctrl || alt => self.cursor = self.word_start(),
            KeyCode::Right if ctrl || alt => self.cursor = self.word_end(),
            KeyCode::Left => self.cursor = self.prev_char(),
            KeyCode::Right => self.cursor = self.next_char(),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.len(),
            KeyCode::Up => self.history_back(),
            KeyCode::Down => self.history_forward(),
            _ => return Outcome::Ignored,
        }
        Outcome::Edited
    }

    /// Pasted text goes in where the cursor is; each line end in it (`\n`,
    /// `\r\n`, or the `\r` most terminals paste) enters the line so far.
    /// Returns the lines entered, in order.
    pub(super) fn paste(&mut self, text: &str) -> Vec<String> {
        let mut entered = Vec::new();
        let mut rest = text;
        while let Some(end) = rest.find(['\r', '\n']) {
            self.insert(&rest[..end]);
            entered.push(self.submit());
            let skip = if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
        }
        self.insert(rest);
        entered
    }

    fn insert(&mut self, text: &str) {
        self.text.insert_str(self.cursor, text);
        self.cursor += text.len();
    }

    fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
        }
        line
    }

    fn delete_forward(&mut self) {
        let end = self.next_char();
        self.text.replace_range(self.cursor..end, "");
    }

    fn prev_char(&self) -> usize {
        self.text[..self.cursor]
            .char_indices()
            .next_back()
            .map_or(0, |(at, _)| at)
    }

    fn next_char(&self) -> usize {
        self.text[self.cursor..]
            .chars()
            .next()
            .map_or(self.cursor, |c| self.cursor + c.len_utf8())
    }

    /// Where the word before the cursor starts (skipping spaces first).
    fn word_start(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(|c: char| !c.is_alphanumeric());
        trimmed
            .char_indices()
            .rev()
            .find(|&(_, c)| !c.is_alphanumeric())
            .map_or(0, |(at, c)| at + c.len_utf8())
    }

    /// Where the word after the cursor ends (skipping spaces first).
    fn word_end(&self) -> usize {
        let after = &self.text[self.cursor..];
        let skipped = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .len();
        let rest = &after[skipped..];
        let word = rest
            .char_indices()
            .find(|&(_, c)| !c.is_alphanumeric())
            .map_or(rest.len(), |(at, _)| at);
        self.cursor + skipped + word
    }

    fn history_back(&mut self) {
        let at = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(at) => at - 1,
        };
        self.browsing = Some(at);
        self.text = self.history[at].clone();
        self.cursor = self.text.len();
    }

    fn history_forward(&mut self) {
        let Some(at) = self.browsing else { return };
        if at + 1 < self.history.len() {
            self.browsing = Some(at + 1);
            self.text = self.history[at + 1].clone();
        } else {
            self.browsing = None;
            self.text = std::mem::take(&mut self.draft);
        }
        self.cursor = self.text.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(line: &mut Line, code: KeyCode, modifiers: KeyModifiers) -> Outcome {
        line.key(KeyEvent::new(code, modifiers))
    }

    fn typed(line: &mut Line, text: &str) {
        for c in text.chars() {
            assert_eq!(
                press(line, KeyCode::Char(c), KeyModifiers::NONE),
                Outcome::Edited
            );
        }
    }

    const NONE: KeyModifiers = KeyModifiers::NONE;
    const CTRL: KeyModifiers = KeyModifiers::CONTROL;
    const ALT: KeyModifiers = KeyModifiers::ALT;

    #[test]
    fn typing_moving_and_deleting() {
        let mut line = Line::default();
        typed(&mut line, "hello wörld");
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Backspace, NONE);
        assert_eq!((line.text(), line.cursor()), ("hello wöld", 9));
        press(&mut line, KeyCode::Char('a'), CTRL);
        typed(&mut line, ">");
        press(&mut line, KeyCode::Char('e'), CTRL);
        press(&mut line, KeyCode::Char('w'), CTRL);
        assert_eq!(line.text(), ">hello ");
        press(&mut line, KeyCode::Char('b'), ALT);
        assert_eq!(line.cursor(), 1);
        press(&mut line, KeyCode::Char('k'), CTRL);
        assert_eq!(line.text(), ">");
        typed(&mut line, "你好");
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Char('u'), CTRL);
        assert_eq!((line.text(), line.cursor()), ("好", 0));
        press(&mut line, KeyCode::Char('d'), CTRL);
        assert_eq!(line.text(), "");
    }

    #[test]
    fn enter_ctrl_d_and_ctrl_c() {
        let mut line = Line::default();
        typed(&mut line, "hi");
        assert_eq!(
            press(&mut line, KeyCode::Enter, NONE),
            Outcome::Submit("hi".into())
        );
        assert_eq!(line.text(), "");
        assert_eq!(press(&mut line, KeyCode::Char('d'), CTRL), Outcome::Quit);
        typed(&mut line, "x");
        assert_eq!(press(&mut line, KeyCode::Char('d'), CTRL), Outcome::Edited);
        assert_eq!(
            press(&mut line, KeyCode::Char('c'), CTRL),
            Outcome::Interrupt
        );
    }

    #[test]
    fn history_keeps_the_draft() {
        let mut line = Line::default();
        for text in ["one", "two"] {
            typed(&mut line, text);
            press(&mut line, KeyCode::Enter, NONE);
        }
        typed(&mut line, "dra");
        press(&mut line, KeyCode::Up, NONE);
        assert_eq!(line.text(), "two");
        press(&mut line, KeyCode::Up, NONE);
        press(&mut line, KeyCode::Up, NONE);
        assert_eq!(line.text(), "one");
        press(&mut line, KeyCode::Down, NONE);
        assert_eq!(line.text(), "two");
        press(&mut line, KeyCode::Down, NONE);
        assert_eq!((line.text(), line.cursor()), ("dra", 3));
    }

    #[test]
    fn a_paste_enters_each_complete_line_and_keeps_the_rest() {
        let mut line = Line::default();
        typed(&mut line, "> ");
        let entered = line.paste("first\r\nsecond\nthird\rfourth\n\nfif");
        assert_eq!(entered, ["> first", "second", "third", "fourth", ""]);
        assert_eq!(line.text(), "fif");
    }
}
