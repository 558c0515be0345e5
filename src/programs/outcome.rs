//! What a program's run comes to, and the one place that turns it into an
//! exit status: [`Exit`] for runs that ended as they may (a conversation
//! over, Ctrl-C), [`Error`] for the failures the library gives back to the
//! programs, [`parse_args`] for the command line and [`report`] for the
//! binaries' last line. The binaries choose no status of their own.
//!
//! Each error's message is the whole line the user reads (after the
//! program's name), worded as [`crate::errors`] words failures: one
//! lowercase line, no OS error numbers. So an error that words its cause
//! does not also give it as its `source()`: a chain printer (anyhow's
//! `{:#}`, or [`report`]) would say it twice.

use std::io;
use std::time::Duration;

use crate::engine::tls::ClientError;
use crate::errors::{lowercase_os_error, to_stderr};

/// Exit status by kind of outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The connection could not be made or failed.
    Failure = 1,
    /// A bad command line, as clap and most tools report it.
    Usage = 2,
    /// Ctrl-C, as shells report a SIGINT.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The status `error` calls for: its [`Error`]'s, if it is or wraps one
    /// (the binaries hold it in an `anyhow::Error`), else a failure.
    fn of(error: &(dyn std::error::Error + 'static)) -> Exit {
        std::iter::successors(Some(error), |e| e.source())
            .find_map(|e| e.downcast_ref::<Error>())
            .map_or(Exit::Failure, Error::exit)
    }

    /// The status for a command line clap did not take: help and version
    /// asked for are a success, anything else a bad argument.
    fn of_arguments(e: &clap::Error) -> Exit {
        match e.use_stderr() {
            true => Exit::Usage,
            false => Exit::Success,
        }
    }
}

/// Why a program could not run, or stopped: what the library gives back to
/// the binaries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not take its address.
    #[error("cannot listen on {address}: {}", lowercase_os_error(.cause))]
    Listen { address: String, cause: io::Error },
    /// The client has no TCP connection to the server.
    #[error("cannot connect to {address}: {why}")]
    Connect { address: String, why: Unreachable },
    /// The client's TLS: its trust files, the server's identity, the
    /// handshake, the shared code.
    #[error(transparent)]
    Tls(#[from] ClientError),
    /// The server's TLS: its identity file (read, made or checked), the
    /// data directory it is kept in, its shared code.
    #[error("{0}")]
    ServerTls(String),
    /// The client was to prove a code, and the user gave none.
    #[error("no code given")]
    NoCode,
    /// The client was to ask for the code, and has no terminal to ask on.
    #[error("cannot ask for the code ({0}): set CHAT_CODE instead")]
    CannotAskCode(String),
    /// Ctrl-C before the conversation began.
    #[error("interrupted")]
    Interrupted,
    /// The transcript (`--log`) cannot be opened for appending: said at
    /// the start, before anything is shown that it would miss.
    #[error("cannot open the log {}: {}", .path.display(), lowercase_os_error(.cause))]
    Log {
        path: std::path::PathBuf,
        cause: io::Error,
    },
    /// The console or a socket failed under a running program.
    #[error("{}", lowercase_os_error(.0))]
    Io(io::Error),
}

/// Not `#[from]`: that would make the I/O error the source too, and the
/// line already says it.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    /// The exit status this failure calls for. Every variant is named, so
    /// that a new one must be given its status here.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Interrupted => Exit::Interrupted,
            Error::Listen { .. }
            | Error::Connect { .. }
            | Error::Tls(_)
            | Error::ServerTls(_)
            | Error::NoCode
            | Error::CannotAskCode(_)
            | Error::Log { .. }
            | Error::Io(_) => Exit::Failure,
        }
    }
}

/// Why the TCP connection to a server was not made.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// Not `HOST:PORT` (the command line checks the form; this is for
    /// other callers).
    #[error("expected HOST:PORT, such as 127.0.0.1:9527")]
    Malformed,
    #[error("cannot resolve it: {}", lowercase_os_error(.0))]
    Unresolved(io::Error),
    #[error("the name resolved to no address")]
    NoAddress,
    #[error("connection refused (is chat-server running there?)")]
    Refused,
    /// No answer within the connect timeout.
    #[error("no answer within {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("{}", lowercase_os_error(.0))]
    Failed(io::Error),
}

/// Parses the command line. If the program is not to run, clap's message
/// is printed (help, version, or a bad argument), without panicking on a
/// closed stream, and the status to exit with at once is returned.
pub fn parse_args<T: clap::Parser>() -> Result<T, Exit> {
    T::try_parse().map_err(|e| {
        let _ = e.print();
        Exit::of_arguments(&e)
    })
}

/// The part of `--help` (and of the man page) after the options that both
/// programs share: the editor's keys and the environment. A macro, so that
/// each binary's help is one `concat!` of literals.
#[macro_export]
#[doc(hidden)]
macro_rules! terminal_help {
    () => {
        "\n\nKeys at a terminal:
  Enter                send the message
  Alt-Enter            a line break (a pasted block is one message too)
  Left Right Home End  move (also Ctrl-B Ctrl-F Ctrl-A Ctrl-E)
  Alt-B Alt-F          move by word (also Ctrl-Left Ctrl-Right)
  Backspace Delete     delete (also Ctrl-W Alt-D Ctrl-U Ctrl-K)
  Up Down              between a message's lines, else the history
  Ctrl-P Ctrl-N        this session's history (Ctrl-R: search it)
  Ctrl-L               clear the screen
  Ctrl-Z               suspend (Unix)
  q, or Ctrl-D         end the conversation (q alone on a line)
  Ctrl-C               quit, closing the connection cleanly

Environment:
  CHAT_CODE            the code for --code (never on the command line)
  CHAT_TIMESTAMPS      the default of --timestamps (true or false)
  NO_COLOR             no colour, unless --color always"
    };
}

/// What `--generate` writes: a man page, or a shell's completions, made
/// from the same argument definitions as `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompletePowershell,
    CompleteElvish,
}

/// Writes what `kind` asks for about `command` (a binary's
/// `Args::command()`) to stdout; the status to exit with (a closed stdout
/// is quiet, as for any output).
pub fn generate(kind: Generate, mut command: clap::Command) -> Exit {
    use clap_complete::Shell;
    let name = command.get_name().to_string();
    let mut out = Vec::new();
    let shell = match kind {
        Generate::Man => {
            if clap_mangen::Man::new(command.clone())
                .render(&mut out)
                .is_err()
            {
                return Exit::Failure;
            }
            None
        }
        Generate::CompleteBash => Some(Shell::Bash),
        Generate::CompleteZsh => Some(Shell::Zsh),
        Generate::CompleteFish => Some(Shell::Fish),
        Generate::CompletePowershell => Some(Shell::PowerShell),
        Generate::CompleteElvish => Some(Shell::Elvish),
    };
    if let Some(shell) = shell {
        clap_complete::generate(shell, &mut command, name, &mut out);
    }
    use std::io::Write;
    match std::io::stdout().write_all(&out) {
        Ok(()) => Exit::Success,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Exit::Success,
        Err(e) => {
            to_stderr(&format!("cannot write: {}", lowercase_os_error(&e)));
            Exit::Failure
        }
    }
}

/// A switch's value, from its flag or its environment variable: the words
/// clap's boolish values take, and empty for off (`export VAR=` is how
/// many unset a default).
fn on_or_off(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "n" | "off" | "f" => Ok(false),
        "1" | "true" | "yes" | "y" | "on" | "t" => Ok(true),
        _ => Err("not one of 1, true, yes, on, 0, false, no, off (from the flag or its environment variable)".to_string()),
    }
}

/// How what is shown looks: the flags both programs take for it.
#[derive(Debug, Clone, clap::Args)]
pub struct LookArgs {
    /// Show the time each message and status line arrived: `12:31` at a
    /// terminal, an RFC 3339 time before each line when piped
    /// (`--timestamps=false` turns a CHAT_TIMESTAMPS default off; an empty
    /// CHAT_TIMESTAMPS is as unset)
    #[arg(long, env = "CHAT_TIMESTAMPS", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = on_or_off)]
    timestamps: bool,

    /// Colour at a terminal (auto, unless NO_COLOR is set), always (piped
    /// output too, whatever NO_COLOR says) or never
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = crate::Color::Auto)]
    color: crate::Color,

    /// Ring the terminal's bell for room messages that name you (mention),
    /// for every message (all), or never (off); never in piped output
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = crate::Bell::Mention)]
    bell: crate::Bell,

    /// Append every message and status line, with its time, to this file
    /// as they are shown (made if missing; checked at the start)
    #[arg(long, value_name = "FILE")]
    log: Option<std::path::PathBuf>,
}

impl LookArgs {
    /// The look the flags ask for; the log is opened here, before anything
    /// happens that it should hold.
    pub fn look(&self) -> Result<crate::Look, Error> {
        let log = match &self.log {
            Some(path) => Some(crate::Transcript::open(path)?),
            None => None,
        };
        Ok(crate::Look {
            timestamps: self.timestamps,
            color: self.color,
            bell: self.bell,
            log,
        })
    }
}

/// The version `--version` shows: the build's, and the protocols it speaks.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (chat protocol 1 and 2, room protocol 2)"
);

/// Says on stderr why `program` stops, in one line (`program: why`), and
/// returns the status it exits with. A Ctrl-C is not worded: the user
/// knows.
pub fn report(program: &str, error: &(dyn std::error::Error + 'static)) -> Exit {
    let exit = Exit::of(error);
    if exit != Exit::Interrupted {
        to_stderr(&line(program, error));
    }
    exit
}

/// `program: why`, with the causes the error gives as its sources, as
/// anyhow's `{:#}` joins them.
fn line(program: &str, error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .fold(program.to_string(), |line, e| format!("{line}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tls::CodeFailure;

    fn every_error() -> Vec<Error> {
        vec![
            Error::Listen {
                address: "127.0.0.1:9527".into(),
                cause: io::Error::from(io::ErrorKind::AddrInUse),
            },
            Error::Connect {
                address: "127.0.0.1:9527".into(),
                why: Unreachable::Refused,
            },
            Error::Tls(ClientError::Trust("cannot read known_hosts".into())),
            Error::Tls(ClientError::Handshake("TLS failed".into())),
            Error::Tls(ClientError::Code(CodeFailure::WrongCode)),
            Error::ServerTls("identity.pem holds no certificate".into()),
            Error::NoCode,
            Error::CannotAskCode("no terminal".into()),
            Error::Io(io::Error::from(io::ErrorKind::BrokenPipe)),
        ]
    }

    #[test]
    fn every_failure_exits_1_and_an_interruption_130() {
        for error in every_error() {
            assert_eq!(error.exit(), Exit::Failure, "{error:?}");
            assert_eq!(error.exit().code(), 1);
        }
        assert_eq!(Error::Interrupted.exit(), Exit::Interrupted);
        assert_eq!(Error::Interrupted.exit().code(), 130);
    }

    #[test]
    fn the_status_is_found_through_wrappers() {
        // As anyhow holds it in the binaries: a wrapper whose source is ours.
        #[derive(Debug, thiserror::Error)]
        #[error("while starting")]
        struct Context(#[source] Error);
        let interrupted = Context(Error::Interrupted);
        assert_eq!(Exit::of(&interrupted), Exit::Interrupted);
        assert_eq!(Exit::of(&Error::NoCode), Exit::Failure);
        // Not ours at all: a failure.
        let other = io::Error::other("something else");
        assert_eq!(Exit::of(&other), Exit::Failure);
    }

    #[test]
    fn bad_arguments_exit_2_and_help_0() {
        #[derive(clap::Parser, Debug)]
        struct Args {
            #[arg(long)]
            port: u16,
        }
        let parse = |args: &[&str]| {
            <Args as clap::Parser>::try_parse_from(args).map_err(|e| Exit::of_arguments(&e))
        };
        assert_eq!(parse(&["x", "--port", "99999"]).unwrap_err(), Exit::Usage);
        assert_eq!(parse(&["x", "--nope"]).unwrap_err(), Exit::Usage);
        assert_eq!(parse(&["x"]).unwrap_err(), Exit::Usage);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(parse(&["x", "--help"]).unwrap_err(), Exit::Success);
        assert_eq!(Exit::Success.code(), 0);
        assert!(parse(&["x", "--port", "1"]).is_ok());
    }

    #[test]
    fn messages_are_the_users_one_line() {
        // A real OS error, worded the same on every platform.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let listen = Error::Listen {
            cause: std::net::TcpListener::bind(&address).unwrap_err(),
            address: address.clone(),
        };
        assert_eq!(
            line("chat-server", &listen),
            format!("chat-server: cannot listen on {address}: address already in use")
        );
        let refused = Error::Connect {
            address: "127.0.0.1:9527".into(),
            why: Unreachable::Refused,
        };
        assert_eq!(
            line("chat-client", &refused),
            "chat-client: cannot connect to 127.0.0.1:9527: connection refused (is chat-server running there?)"
        );
        let timed_out = Error::Connect {
            address: "example.com:9527".into(),
            why: Unreachable::TimedOut(Duration::from_millis(2500)),
        };
        assert_eq!(
            timed_out.to_string(),
            "cannot connect to example.com:9527: no answer within 2.5 s"
        );
        let wrong_code = Error::Tls(ClientError::Code(CodeFailure::WrongCode));
        assert_eq!(
            wrong_code.to_string(),
            "wrong code (or someone in the middle); refused"
        );
        assert_eq!(
            Error::CannotAskCode("stdin is not a terminal".into()).to_string(),
            "cannot ask for the code (stdin is not a terminal): set CHAT_CODE instead"
        );
    }

    #[test]
    fn a_worded_cause_is_not_said_twice() {
        for error in every_error() {
            let said = line("chat", &error);
            assert_eq!(said, format!("chat: {error}"), "{error:?}");
        }
    }
}
