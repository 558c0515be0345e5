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
    /// An incremental search of the history (Ctrl-R), while one runs.
    search: Option<Search>,
}

/// Ctrl-R: the text searched for, the entry found, and the line as it was.
struct Search {
    query: String,
    found: Option<usize>,
    saved: (String, usize),
}

impl Line {
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    pub(super) fn cursor(&self) -> usize {
        self.cursor
    }

    /// While a history search runs, what to show before the line instead
    /// of the prompt.
    pub(super) fn search_prompt(&self) -> Option<String> {
        let search = self.search.as_ref()?;
        let failed = if search.found.is_none() && !search.query.is_empty() {
            "failed "
        } else {
            ""
        };
        Some(format!("({failed}reverse search) `{}': ", search.query))
    }

    pub(super) fn key(&mut self, key: KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if self.search.is_some() && self.searching(key, ctrl, alt) {
            return Outcome::Edited;
        }
        match key.code {
            KeyCode::Char('r') if ctrl => {
                self.search = Some(Search {
                    query: String::new(),
                    found: None,
                    saved: (self.text.clone(), self.cursor),
                });
            }
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
            KeyCode::Char('w') if ctrl => self.delete_back_to(self.word_start()),
            // Many terminals send Ctrl-H for Backspace.
            KeyCode::Char('h') if ctrl => self.delete_back_to(self.prev_char()),
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
            KeyCode::Backspace if alt => self.delete_back_to(self.word_start()),
            KeyCode::Backspace => self.delete_back_to(self.prev_char()),
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

    /// A key during a history search; false when the key ends the search
    /// and should then act as usual.
    fn searching(&mut self, key: KeyEvent, ctrl: bool, alt: bool) -> bool {
        let search = self.search.as_mut().expect("a search runs");
        match key.code {
            KeyCode::Char('r') if ctrl => {
                let before = search.found.unwrap_or(self.history.len());
                self.find(before);
            }
            KeyCode::Char('g') if ctrl => self.cancel_search(),
            KeyCode::Esc => self.cancel_search(),
            KeyCode::Char(c) if !ctrl && !alt => {
                search.query.push(c);
                let from = search.found.map_or(self.history.len(), |at| at + 1);
                self.find(from);
            }
            KeyCode::Backspace => {
                search.query.pop();
                let len = self.history.len();
                self.find(len);
            }
            // A search that found nothing shows an empty line: Enter then
            // sends nothing and gives the draft back, as Esc does, and
            // any other key acts on the draft (the empty line was no one's).
            KeyCode::Enter if search.found.is_none() => self.cancel_search(),
            KeyCode::Char('j' | 'm') if ctrl && search.found.is_none() => self.cancel_search(),
            _ if search.found.is_none() => {
                self.cancel_search();
                return false;
            }
            _ => {
                self.search = None;
                return false;
            }
        }
        true
    }

    /// Shows the latest history entry before `before` that holds the query.
    fn find(&mut self, before: usize) {
        let search = self.search.as_mut().expect("a search runs");
        let found = self.history[..before.min(self.history.len())]
            .iter()
            .rposition(|entry| entry.contains(&search.query));
        if let Some(at) = found {
            search.found = Some(at);
            self.text = self.history[at].clone();
            self.cursor = self.text.find(&search.query).unwrap_or(0);
        } else if search.query.is_empty() {
            search.found = None;
        } else if search.found.is_none() {
            self.text.clear();
            self.cursor = 0;
        }
    }

    fn cancel_search(&mut self) {
        if let Some(search) = self.search.take() {
            (self.text, self.cursor) = search.saved;
        }
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

    fn delete_back_to(&mut self, start: usize) {
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
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
        typed(&mut line, "one two");
        press(&mut line, KeyCode::Char('h'), CTRL);
        assert_eq!(line.text(), "one tw");
        press(&mut line, KeyCode::Backspace, ALT);
        assert_eq!(line.text(), "one ");
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
    fn ctrl_r_searches_the_history_backwards() {
        let mut line = Line::default();
        for text in ["hello world", "goodbye", "hello again", "other"] {
            typed(&mut line, text);
            press(&mut line, KeyCode::Enter, NONE);
        }
        typed(&mut line, "draft");
        press(&mut line, KeyCode::Char('r'), CTRL);
        assert!(line.search_prompt().is_some());
        typed(&mut line, "hel");
        assert_eq!(line.text(), "hello again");
        press(&mut line, KeyCode::Char('r'), CTRL);
        assert_eq!(line.text(), "hello world");
        assert_eq!(line.search_prompt().unwrap(), "(reverse search) `hel': ");
        // Escape puts the draft back.
        press(&mut line, KeyCode::Esc, NONE);
        assert_eq!((line.text(), line.search_prompt()), ("draft", None));
        // Enter takes what was found.
        press(&mut line, KeyCode::Char('r'), CTRL);
        typed(&mut line, "bye");
        assert_eq!(
            press(&mut line, KeyCode::Enter, NONE),
            Outcome::Submit("goodbye".into())
        );
        // A query nothing holds says so.
        press(&mut line, KeyCode::Char('r'), CTRL);
        typed(&mut line, "zzz");
        assert!(line.search_prompt().unwrap().contains("failed"));
        // Another key ends the search and acts on the line.
        press(&mut line, KeyCode::Backspace, NONE);
        press(&mut line, KeyCode::Backspace, NONE);
        press(&mut line, KeyCode::Backspace, NONE);
        typed(&mut line, "oth");
        press(&mut line, KeyCode::End, NONE);
        typed(&mut line, "!");
        assert_eq!(line.text(), "other!");
        assert_eq!(line.search_prompt(), None);
    }

    #[test]
    fn enter_after_a_search_that_found_nothing_keeps_the_draft_and_sends_nothing() {
        let mut line = Line::default();
        typed(&mut line, "hello");
        press(&mut line, KeyCode::Enter, NONE);
        typed(&mut line, "my draft");
        press(&mut line, KeyCode::Char('r'), CTRL);
        typed(&mut line, "zzz");
        assert!(line.search_prompt().unwrap().contains("failed"));
        assert_eq!(press(&mut line, KeyCode::Enter, NONE), Outcome::Edited);
        assert_eq!((line.text(), line.search_prompt()), ("my draft", None));
        // And then Enter sends the draft.
        assert_eq!(
            press(&mut line, KeyCode::Enter, NONE),
            Outcome::Submit("my draft".into())
        );
        // Another key after a failed search acts on the draft.
        typed(&mut line, "second");
        press(&mut line, KeyCode::Char('r'), CTRL);
        typed(&mut line, "qqq");
        press(&mut line, KeyCode::End, NONE);
        typed(&mut line, "!");
        assert_eq!(line.text(), "second!");
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
