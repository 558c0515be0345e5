//! The commands a room member types: `/who`, `/me ACTION`, `/nick NEW`,
//! `/msg NAME TEXT`, `/help`. Any other line starting with one `/` is an unknown command and
//! goes to nobody; `//text` is the message `/text`.
//!
//! The server applies these to every member's lines (so a plain protocol
//! peer has them too); our client also answers unknown commands itself,
//! before they leave the machine.

/// What one line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// A message to the room (for `//text`, the text without its first `/`).
    Say(&'a [u8]),
    Me(&'a [u8]),
    Nick(&'a [u8]),
    /// A private message: `text` to the member called `to` alone.
    Msg {
        to: &'a [u8],
        text: &'a [u8],
    },
    Who,
    Help,
    /// A known command used wrongly; the text says how to use it.
    Usage(&'static str),
    /// `/WORD` that is no command: the word as typed.
    Unknown(&'a [u8]),
}

/// The answer to `/help`.
pub const HELP: &str = "commands: /who lists who is here; /me ACTION sends an action (/me waves); \
/nick NEW changes your name; /msg NAME TEXT says TEXT to NAME alone; /help shows this; //text sends /text; q alone on a line leaves";

const MSG_USAGE: &str = "/msg needs a name and a message, as in: /msg bob see you at one";

/// Reads one line (without its line end) as a command or a message.
pub fn parse(line: &[u8]) -> Command<'_> {
    let Some(rest) = line.strip_prefix(b"/") else {
        return Command::Say(line);
    };
    if rest.starts_with(b"/") {
        return Command::Say(rest);
    }
    // A message of several lines may break where a space would be.
    let gap = |b: &u8| *b == b' ' || *b == b'\n';
    let (word, argument) = match rest.iter().position(gap) {
        Some(at) => (&rest[..at], trim(&rest[at + 1..])),
        None => (rest, &b""[..]),
    };
    match word {
        b"who" => Command::Who,
        b"help" => Command::Help,
        b"me" if argument.is_empty() => Command::Usage("/me needs an action, as in: /me waves"),
        b"me" => Command::Me(argument),
        b"nick" if argument.is_empty() => Command::Usage("/nick needs a name, as in: /nick alice"),
        b"nick" => Command::Nick(argument),
        b"msg" => match argument.iter().position(gap) {
            Some(at) => Command::Msg {
                to: &argument[..at],
                text: argument[at + 1..].trim_ascii_start(),
            },
            None => Command::Usage(MSG_USAGE),
        },
        _ => Command::Unknown(word),
    }
}

/// What to tell the user, without sending anything, when `line` is an
/// unknown command; `None` for a line that goes to the server.
pub fn answered_locally(line: &[u8]) -> Option<String> {
    match parse(line) {
        Command::Unknown(word) => Some(unknown(word)),
        _ => None,
    }
}

/// The answer to an unknown command.
pub fn unknown(word: &[u8]) -> String {
    let word = String::from_utf8_lossy(word);
    format!(
        "unknown command /{word}: /help lists the commands; to send a line that starts with /, type //"
    )
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_commands_or_messages() {
        assert_eq!(parse(b"hello"), Command::Say(b"hello"));
        assert_eq!(parse(b"//etc/passwd"), Command::Say(b"/etc/passwd"));
        assert_eq!(parse(b"//"), Command::Say(b"/"));
        assert_eq!(parse(b"/who"), Command::Who);
        assert_eq!(parse(b"/help"), Command::Help);
        assert_eq!(
            parse(b"/me waves at \xe4\xbd\xa0"),
            Command::Me("waves at 你".as_bytes())
        );
        assert_eq!(parse(b"/nick  bob "), Command::Nick(b"bob"));
        assert_eq!(parse(b"/nick two words"), Command::Nick(b"two words"));
        assert!(matches!(parse(b"/me"), Command::Usage(_)));
        assert!(matches!(parse(b"/nick   "), Command::Usage(_)));
        assert_eq!(parse(b"/dance now"), Command::Unknown(b"dance"));
        assert_eq!(parse(b"/"), Command::Unknown(b""));
        assert_eq!(parse(b"/WHO"), Command::Unknown(b"WHO"));
        assert_eq!(parse(b" /who"), Command::Say(b" /who"));
    }

    #[test]
    fn a_private_message_is_a_name_then_its_text() {
        assert_eq!(
            parse(b"/msg bob see you at one"),
            Command::Msg {
                to: b"bob",
                text: b"see you at one"
            }
        );
        // Spaces around the name go; those inside the text stay.
        assert_eq!(
            parse(b"/msg   bob   two  words  "),
            Command::Msg {
                to: b"bob",
                text: b"two  words"
            }
        );
        assert_eq!(
            parse("/msg 李雷 你好".as_bytes()),
            Command::Msg {
                to: "李雷".as_bytes(),
                text: "你好".as_bytes()
            }
        );
        // The text is the rest of the line as typed, commands included.
        assert_eq!(
            parse(b"/msg bob /me waves"),
            Command::Msg {
                to: b"bob",
                text: b"/me waves"
            }
        );
        // Bytes that are no name are still a name to look for (and to
        // find nobody under): a peer's line is never refused for its bytes.
        assert_eq!(
            parse(b"/msg \xff\x1b x"),
            Command::Msg {
                to: b"\xff\x1b",
                text: b"x"
            }
        );
        for usage in [&b"/msg"[..], b"/msg ", b"/msg bob", b"/msg  bob  "] {
            assert_eq!(parse(usage), Command::Usage(MSG_USAGE), "{usage:?}");
        }
        assert_eq!(parse(b"/MSG bob hi"), Command::Unknown(b"MSG"));
        assert_eq!(parse(b"//msg bob hi"), Command::Say(b"/msg bob hi"));
        assert_eq!(
            answered_locally(b"/msg bob hi"),
            None,
            "the room delivers it"
        );
        assert_eq!(answered_locally(b"/msg"), None, "the room explains usage");
    }

    #[test]
    fn only_unknown_commands_are_answered_locally() {
        assert_eq!(answered_locally(b"hi"), None);
        assert_eq!(answered_locally(b"/who"), None);
        assert_eq!(answered_locally(b"//x"), None);
        assert_eq!(answered_locally(b"/me"), None, "the server explains usage");
        let answer = answered_locally(b"/dance").unwrap();
        assert!(answer.starts_with("unknown command /dance: "), "{answer}");
    }
}
