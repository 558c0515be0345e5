//! The line being edited: its text, the cursor and this session's history,
//! changed by keys; and where it goes on a screen of a given size
//! ([`layout`]). No terminal here: the editor thread draws the result.
//!
//! The cursor moves over grapheme clusters, what a person sees as one
//! character (`e` and a combining accent, `👍🏽`, a flag): it never stops
//! inside one, so a key can neither split it nor send half of it.
//!
//! The text may have line breaks (`\n`: Alt-Enter, or a paste of several
//! lines): it is still one message, sent whole by Enter. Its lines are
//! shown a row (or more) each, under the first, and the keys that go to a
//! line's start or end, or up and down, act within them.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use unicode_segmentation::{GraphemeCursor, UnicodeSegmentation};
use unicode_width::UnicodeWidthStr;

use crate::wire::display::needs_escape;

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
    /// Byte offset of the cursor in `text`, always on a cluster boundary.
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
            self.onto_boundary();
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
            // Alt-Enter (Esc then Enter, in most terminals): a line break
            // in the message, which Enter then sends whole.
            KeyCode::Enter if alt => self.insert("\n"),
            KeyCode::Enter => return Outcome::Submit(self.submit()),
            KeyCode::Char('j' | 'm') if ctrl => return Outcome::Submit(self.submit()),
            KeyCode::Char('c') if ctrl => return Outcome::Interrupt,
            KeyCode::Char('d') if ctrl && self.text.is_empty() => return Outcome::Quit,
            KeyCode::Char('z') if ctrl => return Outcome::Suspend,
            KeyCode::Char('l') if ctrl => return Outcome::ClearScreen,
            KeyCode::Char('d') if ctrl => self.delete_forward(),
            KeyCode::Char('a') if ctrl => self.cursor = self.line_start(),
            KeyCode::Char('e') if ctrl => self.cursor = self.line_end(),
            KeyCode::Char('b') if ctrl => self.cursor = self.prev_boundary(),
            KeyCode::Char('f') if ctrl => self.cursor = self.next_boundary(),
            KeyCode::Char('w') if ctrl => self.delete_back_to(self.word_start()),
            // Many terminals send Ctrl-H for Backspace.
            KeyCode::Char('h') if ctrl => self.delete_back_to(self.prev_boundary()),
            // At a line's start (Ctrl-U twice), the whole message goes: a
            // wrong paste of 500 lines is not deleted line by line.
            KeyCode::Char('u')
                if ctrl && self.cursor == self.line_start() && self.text.contains('\n') =>
            {
                self.text.clear();
                self.cursor = 0;
            }
            KeyCode::Char('u') if ctrl => self.delete_back_to(self.line_start()),
            // At a line's end, the break after it goes (as in Emacs).
            KeyCode::Char('k') if ctrl => {
                let end = match self.line_end() {
                    end if end == self.cursor && end < self.text.len() => end + 1,
                    end => end,
                };
                self.text.replace_range(self.cursor..end, "");
            }
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
            KeyCode::Backspace => self.delete_back_to(self.prev_boundary()),
            KeyCode::Delete => self.delete_forward(),
            KeyCode::Left if ctrl || alt => self.cursor = self.word_start(),
            KeyCode::Right if ctrl || alt => self.cursor = self.word_end(),
            KeyCode::Left => self.cursor = self.prev_boundary(),
            KeyCode::Right => self.cursor = self.next_boundary(),
            KeyCode::Home => self.cursor = self.line_start(),
            KeyCode::End => self.cursor = self.line_end(),
            // Between the lines of a message, else through the history.
            KeyCode::Up if self.line_start() > 0 => self.line_up(),
            KeyCode::Down if self.line_end() < self.text.len() => self.line_down(),
            KeyCode::Up => self.history_back(),
            KeyCode::Down => self.history_forward(),
            _ => return Outcome::Ignored,
        }
        self.onto_boundary();
        Outcome::Edited
    }

    /// Pasted text goes in where the cursor is, its line ends (`\n`,
    /// `\r\n`, or the `\r` most terminals paste) as line breaks: a paste
    /// of several lines is one message, to look over, edit and send whole
    /// with Enter. (Until 2026-12 each line of it was sent as it came.)
    pub(super) fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        self.insert(&text);
        self.onto_boundary();
    }

    /// Where the cursor's line starts: after the line break before it.
    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |at| at + 1)
    }

    /// Where the cursor's line ends: at the line break after it.
    fn line_end(&self) -> usize {
        self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |at| self.cursor + at)
    }

    /// To the line above, as many clusters in as the cursor is (or its end).
    fn line_up(&mut self) {
        let into = self.clusters_into_line();
        self.cursor = self.line_start() - 1;
        self.cursor = self.line_start();
        self.go_into_line(into);
    }

    /// To the line below, as many clusters in as the cursor is (or its end).
    fn line_down(&mut self) {
        let into = self.clusters_into_line();
        self.cursor = self.line_end() + 1;
        self.go_into_line(into);
    }

    fn clusters_into_line(&self) -> usize {
        self.text[self.line_start()..self.cursor]
            .graphemes(true)
            .count()
    }

    /// From a line's start, `into` clusters on, at most to its end.
    fn go_into_line(&mut self, into: usize) {
        let (start, end) = (self.cursor, self.line_end());
        self.cursor = self.text[start..end]
            .grapheme_indices(true)
            .nth(into)
            .map_or(end, |(at, _)| start + at);
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
        // Line breaks before and after the text say nothing (a paste that
        // ended with a line end).
        let line = std::mem::take(&mut self.text)
            .trim_matches('\n')
            .to_string();
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
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Where the cluster before the cursor starts.
    fn prev_boundary(&self) -> usize {
        // The whole text is the one chunk: the search cannot ask for more.
        GraphemeCursor::new(self.cursor, self.text.len(), true)
            .prev_boundary(&self.text, 0)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Where the cluster after the cursor ends.
    fn next_boundary(&self) -> usize {
        GraphemeCursor::new(self.cursor, self.text.len(), true)
            .next_boundary(&self.text, 0)
            .ok()
            .flatten()
            .unwrap_or(self.text.len())
    }

    /// Moves the cursor to the end of the cluster it is in, if an edit left
    /// it inside one: text typed or deleted next to a cluster can join with
    /// it (a regional indicator typed before another makes a flag; deleting
    /// what stood between two makes one), and a history search can find
    /// its query inside one.
    fn onto_boundary(&mut self) {
        let on_boundary = GraphemeCursor::new(self.cursor, self.text.len(), true)
            .is_boundary(&self.text, 0)
            .unwrap_or(true);
        if !on_boundary {
            self.cursor = self.next_boundary();
        }
    }

    /// Where the word before the cursor starts (skipping spaces first).
    fn word_start(&self) -> usize {
        let mut start = 0;
        let mut in_word = false;
        let before = self
            .text
            .grapheme_indices(true)
            .rev()
            .skip_while(|&(at, _)| at >= self.cursor);
        for (at, cluster) in before {
            if in_word && !wordy(cluster) {
                break;
            }
            in_word |= wordy(cluster);
            start = at;
        }
        start
    }

    /// Where the word after the cursor ends (skipping spaces first).
    fn word_end(&self) -> usize {
        let mut in_word = false;
        let after = self
            .text
            .grapheme_indices(true)
            .skip_while(|&(at, _)| at < self.cursor);
        for (at, cluster) in after {
            if in_word && !wordy(cluster) {
                return at;
            }
            in_word |= wordy(cluster);
        }
        self.text.len()
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

/// Whether a cluster belongs to a word, for the word keys: one that starts
/// with a letter or a digit (its combining marks go with it).
fn wordy(cluster: &str) -> bool {
    cluster.chars().next().is_some_and(char::is_alphanumeric)
}

/// The prompt and the line laid out on a screen: what to write, from
/// column 0 of the row where the prompt starts, and where the cursor goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Layout {
    /// The rows shown, as one text that the terminal wraps itself (so that
    /// a terminal that reflows on resize sees one line): a row is ended by
    /// filling it, with spaces where a wide cluster did not fit at its end
    /// and starts the next row, as terminals do.
    pub(super) text: String,
    /// The row, from the first shown, that `text` ends on.
    pub(super) end_row: usize,
    /// Where the cursor goes: row from the first shown, and column.
    pub(super) cursor: (usize, usize),
    /// The first row shown: a line taller than the screen is shown a
    /// screenful at a time, the one with the cursor, so that the cursor is
    /// never above the screen's top where it cannot go (it would stop at
    /// the top row, and text typed there would go elsewhere than shown).
    pub(super) top: usize,
}

/// Lays out `prompt` and `text`, with the cursor at byte `cursor` of
/// `text`, on a screen `columns` wide and `rows` high. `top` is the first
/// row shown last time, kept while the cursor stays in view so that the
/// line does not jump as one moves in it. Each cluster takes the columns
/// `unicode-width` gives it (a flag or `👍🏽` 2, `e` and an accent 1), as
/// today's terminals show it; control characters show as `?`, so that
/// their width is known.
pub(super) fn layout(
    prompt: &str,
    text: &str,
    cursor: usize,
    (columns, rows): (usize, usize),
    top: usize,
) -> Layout {
    let (columns, rows) = (columns.max(1), rows.max(1));
    // The rows filled so far, and the one being filled.
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut column = 0;
    let mut at_cursor = None;
    // The lines after a line break start under the text's first.
    let indent = prompt.width().min(columns / 2);
    // Columns into the text's line so far, for tabs.
    let mut in_line = 0;
    let prompt_clusters = prompt.grapheme_indices(true).map(|(_, c)| (None, c));
    let text_clusters = text.grapheme_indices(true).map(|(at, c)| (Some(at), c));
    for (at, cluster) in prompt_clusters.chain(text_clusters) {
        // A line break fills its row with spaces (so that the whole stays
        // one line that the terminal wraps, as below), after a full row
        // that the terminal has yet to wrap a row of its own.
        if at.is_some() && cluster == "\n" {
            if column >= columns {
                lines.push(std::mem::take(&mut current));
                column = 0;
            }
            if at == Some(cursor) {
                at_cursor = Some((lines.len(), column));
            }
            current.extend(std::iter::repeat_n(' ', columns - column));
            lines.push(std::mem::take(&mut current));
            current.extend(std::iter::repeat_n(' ', indent));
            column = indent;
            in_line = 0;
            continue;
        }
        // A tab is spaces to the next multiple of 8 of its line, as a
        // peer's screen shows it; what a peer's screen would escape
        // (controls, line separators, bidirectional controls) is `?`.
        let tab = at.is_some() && cluster == "\t";
        let controls = cluster.chars().filter(|&c| needs_escape(c)).count();
        let width = match (tab, controls) {
            (true, _) => 8 - in_line % 8,
            (false, 0) => cluster.width(),
            (false, n) => n,
        };
        // A cluster that does not fit goes to the next row whole (one wider
        // than the screen starts a row of its own and is cut by the terminal).
        if width > 0 && column + width > columns && column > 0 {
            current.extend(std::iter::repeat_n(' ', columns.saturating_sub(column)));
            lines.push(std::mem::take(&mut current));
            column = 0;
        }
        if at == Some(cursor) {
            at_cursor = Some((lines.len(), column));
        }
        match (tab, controls) {
            (true, _) => current.extend(std::iter::repeat_n(' ', width)),
            (false, 0) => current.push_str(cluster),
            (false, n) => current.extend(std::iter::repeat_n('?', n)),
        }
        column += width;
        if at.is_some() {
            in_line += width;
        }
    }
    lines.push(current);
    // At the end of the text, or past the last column (where a terminal's
    // cursor waits to wrap), the cursor is at the start of the next row.
    let (mut row, mut col) = at_cursor.unwrap_or((lines.len() - 1, column));
    if col >= columns {
        (row, col) = (row + 1, 0);
    }
    let total = lines.len().max(row + 1);
    let top = match total > rows {
        true => top
            .min(row)
            .max((row + 1).saturating_sub(rows))
            .min(total - rows),
        false => 0,
    };
    let shown = total.min(rows);
    let mut out = String::new();
    for line in lines.iter().skip(top).take(shown) {
        out.push_str(line);
    }
    // The cursor on a row of its own after a full one: a space makes the
    // terminal wrap there (a line break would end the line, for a terminal
    // that reflows), and the carriage return brings the cursor back to it.
    if row == lines.len() {
        out.push_str(" \r");
    }
    Layout {
        text: out,
        end_row: shown - 1,
        cursor: (row - top, col),
        top,
    }
}

/// What the editor drew last: enough to find its first row again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Drawn {
    /// The screen's width when it was drawn.
    pub(super) columns: usize,
    /// The cursor's row, from the first row drawn, and column.
    pub(super) cursor: (usize, usize),
}

impl Drawn {
    /// Rows from the first row drawn down to the cursor once the screen is
    /// `columns` wide. A terminal that `reflows` (tmux, VTE's, kitty,
    /// Alacritty, iTerm2, Windows') wraps what was drawn, one line, again
    /// at the new width and keeps the cursor at the same place in it; one
    /// that does not (xterm, rxvt, the Linux console) cuts or pads rows and
    /// leaves them where they were.
    pub(super) fn rows_above_cursor(&self, columns: usize, reflows: bool) -> usize {
        let (row, column) = self.cursor;
        match reflows {
            true => (row * self.columns + column) / columns.max(1),
            false => row,
        }
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

    /// Issue 21, item 9: `a`, `e` + combining acute, `b`, Left Left `Y`
    /// sent `a e Y U+0301 b` (the accent moved onto Y), and Backspace after
    /// a flag left half of it.
    #[test]
    fn the_cursor_moves_over_what_people_see_as_one_character() {
        let mut line = Line::default();
        typed(&mut line, "ae\u{301}b");
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Left, NONE);
        typed(&mut line, "Y");
        assert_eq!(line.text(), "aYe\u{301}b");
        press(&mut line, KeyCode::End, NONE);
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Backspace, NONE);
        assert_eq!(line.text(), "aYb");

        // A flag is two regional indicators, typed one by one.
        let mut line = Line::default();
        typed(&mut line, "x🇩🇪");
        press(&mut line, KeyCode::Backspace, NONE);
        assert_eq!((line.text(), line.cursor()), ("x", 1));
        typed(&mut line, "👍🏽y");
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Left, NONE);
        assert_eq!(line.cursor(), 1);
        press(&mut line, KeyCode::Delete, NONE);
        assert_eq!(line.text(), "xy");
        typed(&mut line, "🇫🇷");
        assert_eq!(line.text(), "x🇫🇷y");
        press(&mut line, KeyCode::Char('b'), CTRL);
        assert_eq!(line.cursor(), 1);
        press(&mut line, KeyCode::Char('f'), CTRL);
        press(&mut line, KeyCode::Char('h'), CTRL);
        assert_eq!(line.text(), "xy");
        typed(&mut line, "🇫🇷");
        press(&mut line, KeyCode::Home, NONE);
        press(&mut line, KeyCode::Right, NONE);
        press(&mut line, KeyCode::Char('d'), CTRL);
        assert_eq!(line.text(), "xy");

        // An edit that joins clusters leaves the cursor after the new one,
        // never inside it: a regional indicator typed between two flags
        // pairs with the next one's first; deleting what stood between two
        // indicators makes them one flag.
        let mut line = Line::default();
        typed(&mut line, "🇩🇪🇫🇷");
        press(&mut line, KeyCode::Left, NONE);
        typed(&mut line, "🇮");
        assert_eq!(line.cursor(), "🇩🇪🇮🇫".len());
        let mut line = Line::default();
        typed(&mut line, "🇩a🇪");
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Backspace, NONE);
        assert_eq!((line.text(), line.cursor()), ("🇩🇪", "🇩🇪".len()));
        press(&mut line, KeyCode::Left, NONE);
        assert_eq!(line.cursor(), 0);
    }

    /// The word keys take a letter's combining marks with it.
    #[test]
    fn words_keep_their_accents() {
        let mut line = Line::default();
        typed(&mut line, "nai\u{308}ve cafe\u{301}");
        press(&mut line, KeyCode::Char('w'), CTRL);
        assert_eq!(line.text(), "nai\u{308}ve ");
        press(&mut line, KeyCode::Char('b'), ALT);
        assert_eq!(line.cursor(), 0);
        press(&mut line, KeyCode::Char('f'), ALT);
        assert_eq!(line.cursor(), "nai\u{308}ve".len());
        press(&mut line, KeyCode::Left, CTRL);
        press(&mut line, KeyCode::Char('d'), ALT);
        assert_eq!(line.text(), " ");
        // Emoji and flags are not words: they go as spaces do.
        let mut line = Line::default();
        typed(&mut line, "hi 👍🏽 🇩🇪");
        press(&mut line, KeyCode::Backspace, ALT);
        assert_eq!(line.text(), "");
    }

    /// A history search for a combining mark finds it inside a cluster:
    /// the cursor goes to the cluster's end, not between its parts.
    #[test]
    fn a_search_never_leaves_the_cursor_inside_a_cluster() {
        let mut line = Line::default();
        typed(&mut line, "cafe\u{301} au lait");
        press(&mut line, KeyCode::Enter, NONE);
        press(&mut line, KeyCode::Char('r'), CTRL);
        typed(&mut line, "\u{301}");
        assert_eq!(line.text(), "cafe\u{301} au lait");
        assert_eq!(line.cursor(), "cafe\u{301}".len());
    }

    const WIDE: (usize, usize) = (80, 24);

    /// The rows of a layout's text on a screen `columns` wide (ASCII only).
    fn rows_of(shown: &Layout, columns: usize) -> Vec<String> {
        let chars: Vec<char> = shown.text.chars().collect();
        chars
            .chunks(columns)
            .map(|row| row.iter().collect())
            .collect()
    }

    /// Where the cursor goes, in columns as terminals show clusters.
    #[test]
    fn the_cursor_goes_where_terminals_show_it() {
        let end = |text: &str| layout("> ", text, text.len(), WIDE, 0).cursor;
        assert_eq!(end("hi"), (0, 4));
        assert_eq!(end("e\u{301}"), (0, 3));
        assert_eq!(end("🇩🇪"), (0, 4));
        assert_eq!(end("👍🏽"), (0, 4));
        assert_eq!(end("你好"), (0, 6));
        // What a peer's screen escapes shows as `?`, one column each; a tab
        // as spaces to the next multiple of 8 of its line.
        let shown = layout("> ", "a\x1bb\u{2028}", 1, WIDE, 0);
        assert_eq!((shown.text.as_str(), shown.cursor), ("> a?b?", (0, 3)));
        let shown = layout("> ", "a\tb\n\tc", 3, WIDE, 0);
        assert_eq!(&shown.text[..11], "> a       b");
        assert_eq!(shown.cursor, (0, 11));
        assert!(shown.text.ends_with("          c"), "{:?}", shown.text);
        let middle = "a👍🏽b";
        assert_eq!(
            layout("> ", middle, middle.len() - 1, WIDE, 0).cursor,
            (0, 5)
        );
    }

    #[test]
    fn a_long_line_wraps_as_the_terminal_wraps_it() {
        let size = (10, 24);
        // Exactly a row: the cursor goes to the next row, by a space that
        // the terminal wraps (a line break would end the line).
        let shown = layout("> ", "abcdefgh", 8, size, 0);
        assert_eq!(shown.text, "> abcdefgh \r");
        assert_eq!((shown.end_row, shown.cursor), (1, (1, 0)));
        // The same with the cursor in the line: the terminal's cursor
        // waits at the end of the full row.
        let shown = layout("> ", "abcdefgh", 1, size, 0);
        assert_eq!(shown.text, "> abcdefgh");
        assert_eq!((shown.end_row, shown.cursor), (0, (0, 3)));
        // A wide cluster that does not fit at a row's end starts the next
        // row; a space fills the column it left.
        let shown = layout("> ", "abcdefg你x", "abcdefg".len(), size, 0);
        assert_eq!(shown.text, "> abcdefg 你x");
        assert_eq!((shown.end_row, shown.cursor), (1, (1, 0)));
        let shown = layout("> ", "abcdefg👍🏽", "abcdefg👍🏽".len(), size, 0);
        assert_eq!(shown.cursor, (1, 2));
    }

    /// Issue 21, item 8: a line taller than the screen is shown a screenful
    /// at a time, the one with the cursor, which is never above the top.
    #[test]
    fn a_line_taller_than_the_screen_shows_the_rows_with_the_cursor() {
        let size = (10, 3);
        // 52 columns with the prompt: rows 0 to 5, the last holding "WX".
        let text: String = ('a'..='z').chain('A'..='X').collect();
        let at_end = layout("> ", &text, text.len(), size, 0);
        assert_eq!(at_end.top, 3);
        assert_eq!(rows_of(&at_end, 10), ["CDEFGHIJKL", "MNOPQRSTUV", "WX"]);
        assert_eq!((at_end.end_row, at_end.cursor), (2, (2, 2)));
        // Home: the first screenful, the cursor after the prompt.
        let home = layout("> ", &text, 0, size, at_end.top);
        assert_eq!(home.top, 0);
        assert_eq!(
            rows_of(&home, 10),
            ["> abcdefgh", "ijklmnopqr", "stuvwxyzAB"]
        );
        assert_eq!((home.end_row, home.cursor), (2, (0, 2)));
        // Moving within the rows shown does not move them.
        let near = layout("> ", &text, 20, size, home.top);
        assert_eq!((near.top, near.cursor), (0, (2, 2)));
        // One row past them moves them by one.
        let next = layout("> ", &text, 28, size, near.top);
        assert_eq!((next.top, next.cursor), (1, (2, 0)));
        assert!(rows_of(&next, 10)[2].starts_with('C'));
        // The cursor at the end of a full last row is on a row of its own,
        // which is shown too.
        let full: String = "x".repeat(28);
        let shown = layout("> ", &full, full.len(), size, 0);
        assert_eq!((shown.top, shown.cursor, shown.end_row), (1, (2, 0), 2));
        assert!(shown.text.ends_with(" \r"));
    }

    proptest::proptest! {
        /// Any text, cursor and screen, however small: no panic, and the
        /// cursor is on the screen, within what is shown.
        #[test]
        fn any_line_lays_out_on_any_screen(
            text in "(a|e\u{301}|你|👍🏽|🇩|🇪|\t| |\u{200d}|\u{301}){0,40}",
            at in 0usize..200,
            columns in 0usize..12,
            rows in 0usize..5,
            top in 0usize..20,
        ) {
            let boundaries: Vec<usize> = text
                .grapheme_indices(true)
                .map(|(at, _)| at)
                .chain([text.len()])
                .collect();
            let cursor = boundaries[at % boundaries.len()];
            let shown = layout("> ", &text, cursor, (columns, rows), top);
            proptest::prop_assert!(shown.cursor.0 <= shown.end_row);
            proptest::prop_assert!(shown.end_row < rows.max(1));
            proptest::prop_assert!(shown.cursor.1 < columns.max(1) || columns < 2);
        }
    }

    /// Issue 21, item 8: after a resize, the first row drawn is found where
    /// the terminal put it. At 100 columns, 251 columns of prompt and line
    /// are 3 rows, the cursor at the end on the third.
    #[test]
    fn after_a_resize_the_first_row_drawn_is_found_again() {
        let drawn = Drawn {
            columns: 100,
            cursor: (2, 51),
        };
        // Rewrapped at 60 columns: 5 rows, the cursor on the fifth.
        assert_eq!(drawn.rows_above_cursor(60, true), 4);
        // Cut at 60 columns: the rows stay where they were.
        assert_eq!(drawn.rows_above_cursor(60, false), 2);
        // Wider: fewer rows.
        assert_eq!(drawn.rows_above_cursor(200, true), 1);
        assert_eq!(drawn.rows_above_cursor(100, true), 2);
        // A screen that says 0 columns is taken as 1.
        assert_eq!(drawn.rows_above_cursor(0, true), 251);
    }

    /// Issue 20, item 1: a paste of several lines stays in the editor as
    /// one message, whatever its line ends, and Enter sends it whole,
    /// without the line ends around it.
    #[test]
    fn a_paste_of_several_lines_is_one_message_sent_by_enter() {
        let mut line = Line::default();
        typed(&mut line, "> ");
        line.paste("first\r\nsecond\nthird\rfourth\n\nfif");
        assert_eq!(line.text(), "> first\nsecond\nthird\nfourth\n\nfif");
        assert_eq!(line.cursor(), line.text().len());
        typed(&mut line, "th");
        assert_eq!(
            press(&mut line, KeyCode::Enter, NONE),
            Outcome::Submit("> first\nsecond\nthird\nfourth\n\nfifth".into())
        );
        line.paste("\nlast line\n");
        assert_eq!(
            press(&mut line, KeyCode::Enter, NONE),
            Outcome::Submit("last line".into())
        );
    }

    /// Alt-Enter breaks the line; Home, End, Ctrl-A, Ctrl-E, Ctrl-U and
    /// Ctrl-K act within the cursor's line; Up and Down move between the
    /// lines, and through the history only from the first or the last.
    #[test]
    fn the_lines_of_a_message_are_edited_each_in_place() {
        let mut line = Line::default();
        typed(&mut line, "earlier");
        press(&mut line, KeyCode::Enter, NONE);
        typed(&mut line, "one");
        press(&mut line, KeyCode::Enter, ALT);
        typed(&mut line, "two2");
        press(&mut line, KeyCode::Enter, ALT);
        typed(&mut line, "three");
        assert_eq!(line.text(), "one\ntwo2\nthree");
        press(&mut line, KeyCode::Home, NONE);
        assert_eq!(line.cursor(), "one\ntwo2\n".len());
        press(&mut line, KeyCode::Right, NONE);
        press(&mut line, KeyCode::Right, NONE);
        // Up keeps the column; a shorter line puts it at its end.
        press(&mut line, KeyCode::Up, NONE);
        assert_eq!(line.cursor(), "one\ntw".len());
        press(&mut line, KeyCode::End, NONE);
        press(&mut line, KeyCode::Up, NONE);
        assert_eq!(line.cursor(), "one".len());
        press(&mut line, KeyCode::Down, NONE);
        press(&mut line, KeyCode::Down, NONE);
        assert_eq!(line.cursor(), "one\ntwo2\nthr".len());
        // From the last line, Down is the history's (nothing newer).
        press(&mut line, KeyCode::Down, NONE);
        assert_eq!(line.text(), "one\ntwo2\nthree");
        press(&mut line, KeyCode::Char('a'), CTRL);
        press(&mut line, KeyCode::Char('k'), CTRL);
        assert_eq!(line.text(), "one\ntwo2\n");
        press(&mut line, KeyCode::Backspace, NONE);
        press(&mut line, KeyCode::Left, NONE);
        press(&mut line, KeyCode::Char('u'), CTRL);
        assert_eq!((line.text(), line.cursor()), ("one\n2", 4));
        // Ctrl-U again, at the line's start: the whole message goes.
        let mut other = Line::default();
        other.paste("a\nbc");
        press(&mut other, KeyCode::Char('u'), CTRL);
        assert_eq!(other.text(), "a\n");
        press(&mut other, KeyCode::Char('u'), CTRL);
        assert_eq!((other.text(), other.cursor()), ("", 0));
        press(&mut line, KeyCode::Up, NONE);
        press(&mut line, KeyCode::Char('e'), CTRL);
        // Ctrl-K at a line's end takes the break.
        press(&mut line, KeyCode::Char('k'), CTRL);
        assert_eq!(line.text(), "one2");
        // On the first line, Up is the history's.
        press(&mut line, KeyCode::Up, NONE);
        assert_eq!(line.text(), "earlier");
        press(&mut line, KeyCode::Down, NONE);
        assert_eq!(line.text(), "one2");
    }

    /// The lines of a message are laid out a row each (or more), under the
    /// first line's text; the rows stay one line for the terminal.
    #[test]
    fn a_message_of_several_lines_is_laid_out_under_its_first() {
        let size = (10, 24);
        let text = "ab\ncd\n\nefghijklmn";
        let shown = layout("> ", text, text.len(), size, 0);
        assert_eq!(
            rows_of(&shown, 10),
            ["> ab      ", "  cd      ", "          ", "  efghijkl", "mn"]
        );
        assert_eq!((shown.end_row, shown.cursor), (4, (4, 2)));
        // The cursor at a line's end stays there, before the break.
        let shown = layout("> ", text, 2, size, 0);
        assert_eq!(shown.cursor, (0, 4));
        let shown = layout("> ", text, 3, size, 0);
        assert_eq!(shown.cursor, (1, 2));
        // A line that fills its row: the break takes a row of its own.
        let shown = layout("> ", "abcdefgh\nx", 8, size, 0);
        assert_eq!(rows_of(&shown, 10), ["> abcdefgh", "          ", "  x"]);
        assert_eq!(shown.cursor, (1, 0));
    }
}
