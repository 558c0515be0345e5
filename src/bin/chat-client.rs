//! `chat-client`: talk with a chat server by typing lines.

use std::path::PathBuf;
use std::process;
use std::time::Duration;

use chat::client::{self, Config, TlsConfig};
use chat::frame::DEFAULT_MAX_MESSAGE_SIZE;
use chat::{Exit, Shutdown};
use clap::Parser;

/// Chat with a chat-server by typing lines.
///
/// Messages received print on stdout, one per line (in a room, as `NAME:
/// TEXT`); status goes to stderr. Type `q` alone on a line to quit; in a
/// room, `/help` lists the commands. At the end of piped input the client
/// keeps printing what the server sends until the server closes.
#[derive(Parser, Debug)]
#[command(
    name = "chat-client",
    version = chat::VERSION,
    after_help = "Example:\n  chat-server --bind 127.0.0.1:9527   (in one terminal)\n  chat-client --connect 127.0.0.1:9527",
    after_long_help = concat!("Example:\n  chat-server --bind 127.0.0.1:9527   (in one terminal)\n  chat-client --connect 127.0.0.1:9527", chat::terminal_help!())
)]
struct Args {
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9527",
        value_parser = chat::parse_address,
        help = "Server to connect to (host:port; IPv6 as [::1]:9527)"
    )]
    connect: String,

    /// Seconds to wait for the TCP connection to be made (the TLS handshake
    /// and the code exchange have --handshake-timeout)
    #[arg(long, value_name = "SECS", default_value_t = 5.0,
          value_parser = parse_seconds)]
    connect_timeout: f64,

    /// Seconds the TLS handshake and the code exchange may take, once
    /// connected
    #[arg(long, value_name = "SECS", default_value_t = client::HANDSHAKE_LIMIT.as_secs_f64(),
          value_parser = parse_seconds, requires = "tls")]
    handshake_timeout: f64,

    /// Largest message accepted or sent, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE_SIZE as u32,
          value_parser = chat::parse_max_message_size)]
    max_message_size: u32,

    /// End the conversation after this many seconds with no traffic either way [default: off]
    #[arg(long, value_name = "SECS", value_parser = chat::parse_idle_seconds)]
    idle_timeout: Option<u64>,

    /// Take the peer as lost when nothing comes from it for this many
    /// seconds, even while nobody talks, and say so (a version 2 peer sends
    /// a heartbeat every few seconds; with a version 1 peer, the system's
    /// keepalive probes); 0: never (TCP alone gives up after about 15
    /// minutes, and only while something is being sent)
    #[arg(long, value_name = "SECS", default_value_t = chat::DEFAULT_DEAD_AFTER_SECS,
          value_parser = chat::parse_dead_after)]
    dead_after: u64,

    /// After a lost connection (a network change, a link that died, a
    /// laptop that slept), reconnect by itself for up to this many seconds
    /// and resume the conversation, nothing lost or shown twice
    /// (version 2 peers); 0: never
    #[arg(long, value_name = "SECS", default_value_t = chat::DEFAULT_RESUME_FOR_SECS,
          value_parser = chat::parse_resume_for)]
    resume_for: u64,

    /// The newest protocol version to speak: 2 (messages acknowledged,
    /// heartbeats; used only with a peer that offers it too, so version 1
    /// peers are unaffected) or 1 (as builds before version 2)
    #[arg(long, value_name = "VERSION", default_value = "2", value_parser = ["1", "2"])]
    protocol: String,

    /// Talk over TLS; the server's identity is checked as ssh does: on first
    /// use its fingerprint is recorded, and later it must match
    #[arg(long)]
    tls: bool,

    /// Accept only the server with this fingerprint (shown by chat-server --tls)
    #[arg(long, value_name = "SHA256:...", requires = "tls",
          value_parser = chat::tls::parse_fingerprint)]
    fingerprint: Option<String>,

    /// Prove a shared code given by the server's operator, instead of checking
    /// fingerprints; it is asked for without echo, or read from CHAT_CODE
    #[arg(long, requires = "tls", conflicts_with = "fingerprint")]
    code: bool,

    /// Accept a server certificate issued by the authorities in this PEM file
    #[arg(long, value_name = "PATH", requires = "tls", conflicts_with_all = ["fingerprint", "code"])]
    ca: Option<PathBuf>,

    /// Where first-use fingerprints are kept [default: known_hosts in the user's data directory]
    #[arg(long, value_name = "PATH", requires = "tls")]
    known_hosts: Option<PathBuf>,

    /// Your name in a room (chat-server --room): one word of at most 32
    /// letters, digits and - _ . ' from one script [default: your login name]
    #[arg(long, value_name = "NAME", value_parser = chat::room::parse_name)]
    name: Option<String>,

    #[command(flatten)]
    look: chat::LookArgs,

    /// Write a man page or a shell's completions to stdout, and exit
    #[arg(long, value_name = "KIND", value_enum)]
    generate: Option<chat::Generate>,
}

/// The login name, if it can be a room name.
fn login_name() -> Option<String> {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|name| chat::room::parse_name(name).is_ok())
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() && secs <= 3600.0 => Ok(secs),
        _ => Err("expected a number of seconds above 0 and at most 3600".to_string()),
    }
}

/// Parse, run, report: the status is the library's to choose (`chat::Exit`).
fn main() {
    // First, while the process has one thread (see its doc).
    chat::learn_local_offset();
    let exit = match chat::parse_args::<Args>() {
        Ok(Args {
            generate: Some(kind),
            ..
        }) => chat::generate(kind, <Args as clap::CommandFactory>::command()),
        Ok(args) => talk(args).unwrap_or_else(|e| chat::report("chat-client", e.as_ref())),
        Err(exit) => exit,
    };
    process::exit(exit.code());
}

fn talk(args: Args) -> anyhow::Result<Exit> {
    let look = args.look.look()?;
    // Until the conversation listens, Ctrl-C ends the client at once, as
    // shells report it.
    let shutdown = Shutdown::new();
    let on_interrupt = shutdown.clone();
    ctrlc::set_handler(move || {
        if !on_interrupt.request() {
            // The code's prompt may hold the terminal in raw mode.
            chat::restore_terminal();
            process::exit(Exit::Interrupted.code());
        }
    })?;
    let tls = args.tls.then(|| TlsConfig {
        fingerprint: args.fingerprint.clone(),
        authority: args.ca.clone(),
        known_hosts: args.known_hosts.clone(),
        code: args.code,
        handshake_timeout: Duration::from_secs_f64(args.handshake_timeout),
    });
    let timeout = Duration::from_secs_f64(args.connect_timeout);
    let connected = client::connect(&args.connect, timeout, tls.as_ref())?;
    let config = Config {
        max_message_size: args.max_message_size as usize,
        idle_timeout: args.idle_timeout.map(Duration::from_secs),
        dead_after: (args.dead_after > 0).then(|| Duration::from_secs(args.dead_after)),
        sessions: args.protocol == "2",
        resume_for: (args.resume_for > 0).then(|| Duration::from_secs(args.resume_for)),
        name_chosen: args.name.is_some(),
        name: args.name.or_else(login_name),
    };
    Ok(client::run(connected.with_look(look), config, &shutdown)?)
}
