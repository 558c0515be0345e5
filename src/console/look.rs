//! How what is shown looks, as the user chose on the command line: the
//! time before each line (`--timestamps`), colour (`--color`, `NO_COLOR`),
//! mentions and the bell (`--bell`), and a transcript (`--log`).
//!
//! Times are the local time at which a line is shown, which is when it
//! arrived unless the screen was not taking lines: `12:31` at a terminal,
//! RFC 3339 (`2026-12-07T12:31:05+01:00`) in piped output and the
//! transcript. Lines from before we joined a room carry the time they were
//! said, as the room tells it (`crate::wire::room::said_at`), never the
//! time they were shown, which would pass for it; none if the room does not
//! tell.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use anstyle::{AnsiColor, Style};
use time::{OffsetDateTime, UtcOffset};

use crate::Error;
use crate::console::output::{Output, Shown, piped_form};
use crate::errors::lowercase_os_error;

/// `--color`: whether what is shown has colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Color {
    /// At a terminal, unless `NO_COLOR` is set or the terminal is dumb.
    #[default]
    Auto,
    /// Always, piped too, whatever `NO_COLOR` says.
    Always,
    Never,
}

/// `--bell`: when the terminal's bell rings (never in piped output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Bell {
    Off,
    /// For a room message that names you, or one said to you alone (`/msg`).
    #[default]
    Mention,
    /// For every message received.
    All,
}

impl Bell {
    /// Whether a message received rings the bell; `mention`, whether it
    /// names the user or was said to the user alone (a private message).
    pub(crate) fn rings(self, mention: bool) -> bool {
        match self {
            Bell::Off => false,
            Bell::Mention => mention,
            Bell::All => true,
        }
    }
}

/// What the user chose about how things are shown.
#[derive(Debug, Default)]
pub struct Look {
    pub timestamps: bool,
    pub color: Color,
    pub bell: Bell,
    /// Where a transcript goes, opened (see [`Transcript::open`]).
    pub log: Option<Transcript>,
}

impl Look {
    /// Whether lines are coloured; `terminal`, whether they go to one the
    /// line editor drives.
    pub(crate) fn colour(&self, terminal: bool) -> bool {
        match self.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                terminal && !no_color && !super::terminal_is_dumb()
            }
        }
    }
}

/// What the consumers of the output go by: the user's [`Look`], resolved
/// for where the output goes.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    pub stamps: bool,
    /// The line editor shows it: status lines written after it gave the
    /// terminal back are stamped as it stamps them (`12:31`).
    pub terminal: bool,
    pub palette: Palette,
    pub bell: Bell,
    pub log: Option<Transcript>,
}

impl Shape {
    /// `terminal`: the line editor shows it.
    pub fn new(look: Look, terminal: bool) -> Self {
        Self {
            stamps: look.timestamps,
            terminal,
            palette: Palette::new(look.colour(terminal)),
            bell: look.bell,
            log: look.log,
        }
    }

    /// Whether messages are written exactly as received (no time, no
    /// colour, no copy to keep).
    pub fn is_plain(&self) -> bool {
        !self.stamps && self.log.is_none() && !self.palette.names
    }

    /// Appends `shown` to the transcript, if there is one, with the time
    /// now (`buffer` is scratch space); a failure is said once, as an error.
    pub fn log(&self, output: &Output, shown: &Shown, buffer: &mut Vec<u8>) {
        let Some(log) = &self.log else { return };
        buffer.clear();
        let time = full_time();
        piped_form(shown, Some(&time), &Palette::new(false), None, true, buffer);
        if let Some(failure) = log.write(buffer) {
            output.error(failure);
        }
    }
}

/// A transcript: every message and status line, with its time, appended
/// to a file as it is shown (each line one write, nothing held in a
/// buffer, so that whatever was shown before a crash is in it).
#[derive(Debug)]
pub struct Transcript {
    path: PathBuf,
    /// `None` once a write failed: said once, then the program goes on
    /// without it.
    file: Mutex<Option<File>>,
}

impl Transcript {
    /// Opens `path` for appending (made if missing). At the start, so that
    /// a log that cannot be written stops the program before anything
    /// happens, not in the middle of a conversation.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|cause| Error::Log {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
        })
    }

    /// Appends `text` (whole lines); the error to tell the user if this
    /// write failed, the first time only.
    pub(crate) fn write(&self, text: &[u8]) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        let mut file = crate::lock(&self.file);
        let written = file.as_mut()?.write_all(text);
        let e = written.err()?;
        *file = None;
        Some(format!(
            "cannot write the log {}: {}; going on without it",
            self.path.display(),
            lowercase_os_error(&e)
        ))
    }
}

/// The local offset, learnt once at the start (see [`learn_local_offset`]).
static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Learns the local time's offset from UTC. Call it first thing in
/// `main`: on Unix it can be read safely only while the process has one
/// thread (the `time` crate refuses otherwise), and is kept for the run
/// (a change of summer time during a run is not followed). UTC if it
/// cannot be read.
pub fn learn_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = OFFSET.set(offset);
}

fn local(time: SystemTime) -> OffsetDateTime {
    let offset = OFFSET.get().copied().unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from(time).to_offset(offset)
}

/// The time now as a terminal shows it: `12:31`.
pub(crate) fn short_time() -> String {
    short_time_of(SystemTime::now())
}

/// `time` as a terminal shows it, in local time: `12:31`.
pub(crate) fn short_time_of(time: SystemTime) -> String {
    let time = local(time);
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// The time now in RFC 3339, to the second, with the local offset:
/// `2026-12-07T12:31:05+01:00`.
pub(crate) fn full_time() -> String {
    full_time_of(SystemTime::now())
}

/// `time` in RFC 3339, to the second, with the local offset.
pub(crate) fn full_time_of(time: SystemTime) -> String {
    let now = local(time);
    let offset = now.offset();
    let (hours, minutes, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        hours.unsigned_abs(),
        minutes.unsigned_abs()
    )
}

/// Whether `line` names `name`: as a word (not part of a longer name),
/// without regard to case.
pub(crate) fn names(line: &str, name: &str) -> bool {
    let line: Vec<char> = line.chars().flat_map(char::to_lowercase).collect();
    let name: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    if name.is_empty() || name.len() > line.len() {
        return false;
    }
    // A name's own characters besides letters and digits; `.` and `'` end
    // sentences and start possessives ("alice." "alice's").
    let in_word = |c: &char| c.is_alphanumeric() || *c == '-' || *c == '_';
    (0..=line.len() - name.len()).any(|at| {
        line[at..at + name.len()] == name[..]
            && (at == 0 || !in_word(&line[at - 1]))
            && line.get(at + name.len()).is_none_or(|c| !in_word(c))
    })
}

/// Colours for the parts of what is shown, or none.
#[derive(Clone, Copy)]
pub(crate) struct Palette {
    pub peer: Style,
    pub status: Style,
    pub error: Style,
    /// A message that names the user.
    pub mention: Style,
    /// Named senders (a room's members) each get a colour of their own.
    pub names: bool,
}

impl Palette {
    pub fn new(colour: bool) -> Self {
        if !colour {
            return Self {
                peer: Style::new(),
                status: Style::new(),
                error: Style::new(),
                mention: Style::new(),
                names: false,
            };
        }
        Self {
            peer: Style::new().bold().fg_color(Some(AnsiColor::Cyan.into())),
            status: Style::new().dimmed().italic(),
            error: Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
            mention: Style::new().bold().invert(),
            names: true,
        }
    }

    /// The style of a named sender's name: bold, in a colour that depends
    /// only on the name (the same in every session), never the errors' red.
    pub fn name(&self, name: &str) -> Style {
        const COLOURS: [AnsiColor; 10] = [
            AnsiColor::Cyan,
            AnsiColor::Green,
            AnsiColor::Yellow,
            AnsiColor::Blue,
            AnsiColor::Magenta,
            AnsiColor::BrightCyan,
            AnsiColor::BrightGreen,
            AnsiColor::BrightYellow,
            AnsiColor::BrightBlue,
            AnsiColor::BrightMagenta,
        ];
        if !self.names {
            return Style::new();
        }
        // FNV-1a: stable across runs and platforms, unlike std's hasher.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let colour = COLOURS[(hash % COLOURS.len() as u64) as usize];
        Style::new().bold().fg_color(Some(colour.into()))
    }

    /// The dim style times are shown in.
    pub fn time(&self) -> Style {
        match self.names {
            true => Style::new().dimmed(),
            false => Style::new(),
        }
    }
}

impl Default for Palette {
    fn default() -> Self {
        Self::new(false)
    }
}

impl std::fmt::Debug for Palette {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.names { "colour" } else { "plain" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_found_as_a_word_in_any_case() {
        assert!(names("hi alice", "alice"));
        assert!(names("ALICE: look", "alice"));
        assert!(names("alice's turn.", "Alice"));
        assert!(names("see @alice, now", "alice"));
        assert!(!names("malice", "alice"));
        assert!(!names("alice-2 is here", "alice"));
        assert!(!names("alice_b", "alice"));
        assert!(!names("al", "alice"));
        assert!(names("你好 李雷", "李雷"));
        assert!(!names("李雷雷", "李雷"));
    }

    #[test]
    fn times_have_their_forms() {
        let short = short_time();
        assert_eq!(short.len(), 5, "{short}");
        assert_eq!(&short[2..3], ":");
        let full = full_time();
        assert_eq!(full.len(), 25, "{full}");
        assert_eq!(&full[10..11], "T");
        assert!(matches!(&full[19..20], "+" | "-"), "{full}");
    }
}
