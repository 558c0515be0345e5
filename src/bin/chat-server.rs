//! `chat-server`: talk with one client at a time; others wait in line.

use std::path::PathBuf;
use std::process;
use std::time::Duration;

use chat::access::{Access, parse_network};
use chat::frame::DEFAULT_MAX_MESSAGE_SIZE;
use chat::server::{Config, Mode, Server, TlsConfig};
use chat::{Exit, Shutdown};
use clap::Parser;
use ipnet::IpNet;

/// Chat with TCP clients, one conversation at a time, by typing lines; or,
/// with --room, all together in one room.
///
/// Messages received print on stdout, one per line (in a room, as `NAME:
/// TEXT`); status goes to stderr. Type `q` alone on a line to end the
/// current conversation (in a room: to close the room); Ctrl-C stops the
/// server.
#[derive(Parser, Debug)]
#[command(
    name = "chat-server",
    version = chat::VERSION,
    after_help = "Example:\n  chat-server --bind 127.0.0.1:9527\n  chat-client --connect 127.0.0.1:9527   (in another terminal)",
    after_long_help = concat!("Example:\n  chat-server --bind 127.0.0.1:9527\n  chat-client --connect 127.0.0.1:9527   (in another terminal)", chat::terminal_help!())
)]
struct Args {
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9527",
        value_parser = chat::parse_address,
        help = "Address to listen on (host:port; IPv6 as [::1]:9527; port 0 picks a free port)"
    )]
    bind: String,

    /// Largest message accepted or sent, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE_SIZE as u32,
          value_parser = chat::parse_max_message_size)]
    max_message_size: u32,

    /// How many clients may wait while another is served; one more is turned away
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_waiting: usize,

    /// Serve one conversation, then exit
    #[arg(long)]
    once: bool,

    /// End a conversation after this many seconds with no traffic either way [default: off]
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

    /// A client holding a place, in the waiting line or in the room, must
    /// send something (one whole frame: our client does at once; a
    /// keepalive, an empty frame, will do) within this many seconds of
    /// getting it, or it is told why and let go, so that connections that
    /// send nothing cannot hold the places; and a newcomer to a full line
    /// or room takes the place of a silent one of a network (/24, /64)
    /// holding two more places than its own, or of the one silent longest
    /// once it has held it for half this long; 0: never. Never applies to
    /// the conversation being served
    #[arg(long, value_name = "SECS", default_value_t = chat::DEFAULT_SPEAK_WITHIN_SECS,
          value_parser = chat::parse_speak_within)]
    speak_within: u64,

    /// After a lost connection (a network change, a link that died, a
    /// laptop that slept), keep the conversation, or a room member's place
    /// and name, this many seconds for the client to reconnect and resume
    /// it, nothing lost or shown twice (version 2 peers); 0: never
    #[arg(long, value_name = "SECS", default_value_t = chat::DEFAULT_RESUME_FOR_SECS,
          value_parser = chat::parse_resume_for)]
    resume_for: u64,

    /// The newest protocol version to speak: 2 (messages acknowledged,
    /// heartbeats; used only with a peer that offers it too, so version 1
    /// peers are unaffected) or 1 (as builds before version 2)
    #[arg(long, value_name = "VERSION", default_value = "2", value_parser = ["1", "2"])]
    protocol: String,

    /// Talk over TLS. The server's key and self-signed certificate are made on
    /// first use; each start shows the fingerprint clients check
    #[arg(long)]
    tls: bool,

    /// The identity file: key and certificate, PEM; made if missing, or one
    /// issued by a CA [default: identity.pem in the user's data directory]
    #[arg(long, value_name = "PATH", requires = "tls")]
    identity: Option<PathBuf>,

    /// Clients must prove a shared code: taken from CHAT_CODE, or made up and
    /// shown here (never given on the command line, where others can read it)
    #[arg(long, requires = "tls")]
    code: bool,

    /// Let in only clients from this address or network (repeatable), e.g. 10.0.0.0/8
    #[arg(long, value_name = "CIDR", value_parser = parse_network)]
    allow: Vec<IpNet>,

    /// Refuse clients from this address or network (repeatable); wins over --allow
    #[arg(long, value_name = "CIDR", value_parser = parse_network)]
    deny: Vec<IpNet>,

    /// Room mode: every client and the operator talk in one room, each
    /// message shown under its sender's name
    #[arg(long, conflicts_with_all = ["once", "max_waiting"])]
    room: bool,

    /// The operator's name in the room
    #[arg(long, value_name = "NAME", default_value = "server", requires = "room",
          value_parser = chat::room::parse_name)]
    name: String,

    /// Room members at most; one more is told the room is full
    #[arg(long, value_name = "N", default_value_t = 100, requires = "room",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Bytes that may wait for a room member (queued for it, not yet sent)
    /// while the room reads its talkers; past it, nobody is read until that
    /// member takes some (nothing is lost; a member that takes nothing for
    /// 5 s is cut off)
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 10, requires = "room",
          value_parser = clap::value_parser!(u32).range(1..))]
    member_backlog: u32,

    /// Bytes a second a room member may send, sustained, after a burst of
    /// half a second of it; a faster one is slowed (nothing is lost)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, requires = "room",
          value_parser = clap::value_parser!(u32).range(1..))]
    member_rate: u32,

    #[command(flatten)]
    look: chat::LookArgs,

    /// Write a man page or a shell's completions to stdout, and exit
    #[arg(long, value_name = "KIND", value_enum)]
    generate: Option<chat::Generate>,
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
        Ok(args) => serve(args).unwrap_or_else(|e| chat::report("chat-server", e.as_ref())),
        Err(exit) => exit,
    };
    process::exit(exit.code());
}

fn serve(args: Args) -> anyhow::Result<Exit> {
    let look = args.look.look()?;
    let tls = args.tls.then(|| TlsConfig {
        identity: args.identity.clone(),
        code: args.code,
    });
    let mode = match args.room {
        true => Mode::Room(chat::room::Config {
            max_message_size: args.max_message_size as usize,
            max_clients: args.max_clients as usize,
            backlog: args.member_backlog as usize,
            rate: args.member_rate as usize,
            name: args.name,
            idle_timeout: args.idle_timeout.map(Duration::from_secs),
            speak_within: (args.speak_within > 0).then(|| Duration::from_secs(args.speak_within)),
            dead_after: (args.dead_after > 0).then(|| Duration::from_secs(args.dead_after)),
            sessions: args.protocol == "2",
            resume_for: (args.resume_for > 0).then(|| Duration::from_secs(args.resume_for)),
            tls,
            access: Access::new(args.allow, args.deny),
        }),
        false => Mode::Conversations(Config {
            max_message_size: args.max_message_size as usize,
            max_waiting: args.max_waiting,
            once: args.once,
            idle_timeout: args.idle_timeout.map(Duration::from_secs),
            speak_within: (args.speak_within > 0).then(|| Duration::from_secs(args.speak_within)),
            dead_after: (args.dead_after > 0).then(|| Duration::from_secs(args.dead_after)),
            sessions: args.protocol == "2",
            resume_for: (args.resume_for > 0).then(|| Duration::from_secs(args.resume_for)),
            tls,
            access: Access::new(args.allow, args.deny),
        }),
    };
    let server = Server::bind(&args.bind, mode)?.with_look(look);
    let shutdown = Shutdown::new();
    on_interrupt(&shutdown)?;
    Ok(server.run(&shutdown)?)
}

/// Ctrl-C, SIGTERM and hangups ask the server to stop.
fn on_interrupt(shutdown: &Shutdown) -> anyhow::Result<()> {
    let shutdown = shutdown.clone();
    ctrlc::set_handler(move || {
        shutdown.request();
    })?;
    Ok(())
}
