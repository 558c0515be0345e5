//! A server or a client run in-process, as a value: the operator's console on pipes
//! the test holds, and a manual clock, so that a test lets minutes pass in
//! a call instead of sleeping through them.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat::access::Access;
use chat::clock::Clock;
use chat::frame::DEFAULT_MAX_MESSAGE_SIZE;
use chat::server::{Config, Mode, Server};
use chat::{Exit, Shutdown, Stdio};

use super::{PATIENCE, Streams, lines_of, polite_exchange};

/// A server in a thread of the test, on a free loopback port.
pub struct Running {
    pub io: Streams,
    pub addr: SocketAddr,
    pub clock: Clock,
    pub shutdown: Shutdown,
    server: Option<JoinHandle<Result<Exit, chat::Error>>>,
}

/// The room's settings, as `chat-server --room` has them by default, but
/// for `max_clients`.
#[allow(dead_code)]
pub fn room(max_clients: usize) -> chat::room::Config {
    chat::room::Config {
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        max_clients,
        backlog: 256 << 10,
        rate: 1 << 20,
        name: "server".to_string(),
        idle_timeout: None,
        speak_within: Some(Duration::from_secs(chat::DEFAULT_SPEAK_WITHIN_SECS)),
        dead_after: Some(Duration::from_secs(chat::DEFAULT_DEAD_AFTER_SECS)),
        sessions: true,
        resume_for: Some(Duration::from_secs(chat::DEFAULT_RESUME_FOR_SECS)),
        tls: None,
        access: Access::new(Vec::new(), Vec::new()),
    }
}

/// The conversation mode's settings, as `chat-server` has them by default.
pub fn conversations() -> Config {
    Config {
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        max_waiting: 5,
        once: false,
        idle_timeout: None,
        speak_within: Some(Duration::from_secs(chat::DEFAULT_SPEAK_WITHIN_SECS)),
        dead_after: Some(Duration::from_secs(chat::DEFAULT_DEAD_AFTER_SECS)),
        sessions: true,
        resume_for: Some(Duration::from_secs(chat::DEFAULT_RESUME_FOR_SECS)),
        tls: None,
        access: Access::new(Vec::new(), Vec::new()),
    }
}

impl Running {
    /// Starts a server in `mode`, its time standing still until the test
    /// moves it.
    pub fn start(mode: Mode) -> Self {
        Self::start_reading(mode, None)
    }

    /// [`start`](Self::start), with the operator's stdout read only as far
    /// as `budget` allows, if given.
    pub fn start_reading(mode: Mode, budget: Option<Budget>) -> Self {
        let (input, stdin) = io::pipe().unwrap();
        let (stdout_reader, stdout) = io::pipe().unwrap();
        let stdout_reader: Box<dyn io::Read + Send> = match budget {
            Some(budget) => Box::new(budget.reading(stdout_reader)),
            None => Box::new(stdout_reader),
        };
        let (stderr_reader, stderr) = io::pipe().unwrap();
        let clock = Clock::manual();
        let server = Server::bind("127.0.0.1:0", mode)
            .unwrap()
            .with_stdio(Stdio::piped(input, stdout, stderr))
            .with_clock(clock.clone());
        let addr = server.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = {
            let shutdown = shutdown.clone();
            thread::spawn(move || server.run(&shutdown))
        };
        let mut io = Streams::new(stdin, lines_of(stdout_reader), lines_of(stderr_reader));
        io.expect_status(&format!("listening on {addr}"));
        clock.wait_for_loop();
        Self {
            io,
            addr,
            clock,
            shutdown,
            server: Some(server),
        }
    }

    /// Lets `by` pass for the server, a second at a time: each step is
    /// taken by the server's loop (its timers fire, what its peers sent
    /// meanwhile is read) before the next.
    pub fn pass(&self, by: Duration) {
        pass(&self.clock, by);
    }

    /// A raw protocol peer, for sending exactly the bytes a test wants.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to server");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// A raw protocol peer from loopback address `from` (another network
    /// than 127.0.0.1's, say).
    pub fn raw_from(&self, from: &str) -> TcpStream {
        super::connect_from(self.addr, from)
    }

    /// Checks that the server serves a well-mannered client at once: `text`
    /// reaches the operator, and the client is told nothing (no "busy").
    pub fn serves_a_polite_client(&mut self, text: &str) {
        assert_eq!(polite_exchange(self.addr, &[text]), Vec::<String>::new());
        self.expect_message(text);
    }

    /// Waits for the server to return, and what it returned.
    pub fn exit(&mut self) -> Exit {
        join(self.server.take().expect("still running"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed leaves no server behind.
        if self.server.is_some() {
            self.shutdown.request();
        }
    }
}

impl std::ops::Deref for Running {
    type Target = Streams;
    fn deref(&self) -> &Streams {
        &self.io
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Streams {
        &mut self.io
    }
}

/// A client in a thread of the test, talking with `server` (a raw peer the
/// test holds, say), its time standing still until the test moves it.
pub struct Client {
    pub io: Streams,
    pub clock: Clock,
    pub shutdown: Shutdown,
    client: Option<JoinHandle<Result<Exit, chat::Error>>>,
}

/// The client's settings, as `chat-client` has them by default (no name).
pub fn client_config() -> chat::client::Config {
    chat::client::Config {
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: None,
        dead_after: Some(Duration::from_secs(chat::DEFAULT_DEAD_AFTER_SECS)),
        sessions: true,
        resume_for: Some(Duration::from_secs(chat::DEFAULT_RESUME_FOR_SECS)),
        name: None,
        name_chosen: false,
    }
}

impl Client {
    /// Connects to `server` and starts talking, with `input` as what the
    /// user types (the test writes the rest through [`Streams::say`] if
    /// `input` is `None`).
    pub fn start(
        server: SocketAddr,
        config: chat::client::Config,
        input: Option<Box<dyn io::Read + Send>>,
    ) -> Self {
        Self::start_over(server, config, input, None)
    }

    /// [`start`](Self::start), over TLS if `tls` says how.
    pub fn start_over(
        server: SocketAddr,
        config: chat::client::Config,
        input: Option<Box<dyn io::Read + Send>>,
        tls: Option<chat::client::TlsConfig>,
    ) -> Self {
        Self::start_reading(server, config, input, tls, None)
    }

    /// [`start_over`](Self::start_over), with the client's stdout read
    /// only as far as `budget` allows, if given: a reader as slow as the
    /// test makes it.
    pub fn start_reading(
        server: SocketAddr,
        config: chat::client::Config,
        input: Option<Box<dyn io::Read + Send>>,
        tls: Option<chat::client::TlsConfig>,
        budget: Option<Budget>,
    ) -> Self {
        let (stdout_reader, stdout) = io::pipe().unwrap();
        let stdout_reader: Box<dyn io::Read + Send> = match budget {
            Some(budget) => Box::new(budget.reading(stdout_reader)),
            None => Box::new(stdout_reader),
        };
        let (stderr_reader, stderr) = io::pipe().unwrap();
        let (stdin, stdin_writer): (Box<dyn io::Read + Send>, Box<dyn io::Write + Send>) =
            match input {
                Some(input) => (input, Box::new(io::sink())),
                None => {
                    let (reader, writer) = io::pipe().unwrap();
                    (Box::new(reader), Box::new(writer))
                }
            };
        let clock = Clock::manual();
        let connected = chat::client::connect(&server.to_string(), PATIENCE, tls.as_ref())
            .unwrap()
            .with_stdio(Stdio::piped(stdin, stdout, stderr))
            .with_clock(clock.clone());
        let shutdown = Shutdown::new();
        let client = {
            let shutdown = shutdown.clone();
            thread::spawn(move || chat::client::run(connected, config, &shutdown))
        };
        let mut io = Streams::new(
            stdin_writer,
            lines_of(stdout_reader),
            lines_of(stderr_reader),
        );
        io.expect_status("connected to ");
        clock.wait_for_loop();
        Self {
            io,
            clock,
            shutdown,
            client: Some(client),
        }
    }

    /// Lets `by` pass for the client, a second at a time (as
    /// [`Running::pass`]).
    pub fn pass(&self, by: Duration) {
        pass(&self.clock, by);
    }

    /// Waits for the client to return, and what it returned.
    pub fn exit(&mut self) -> Exit {
        join(self.client.take().expect("still running"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.client.is_some() {
            self.shutdown.request();
        }
    }
}

impl std::ops::Deref for Client {
    type Target = Streams;
    fn deref(&self) -> &Streams {
        &self.io
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Streams {
        &mut self.io
    }
}

/// Moves `clock` by `by`, a second at a time, each step taken by the loop
/// that reads it before the next.
fn pass(clock: &Clock, by: Duration) {
    let step = Duration::from_secs(1);
    let mut left = by;
    while !left.is_zero() {
        let now = left.min(step);
        clock.advance(now);
        left -= now;
    }
}

/// Waits for a program's thread to return, and what it returned.
fn join(program: JoinHandle<Result<Exit, chat::Error>>) -> Exit {
    let deadline = Instant::now() + PATIENCE;
    while !program.is_finished() {
        assert!(Instant::now() < deadline, "the program did not stop");
        thread::sleep(Duration::from_millis(10));
    }
    program.join().expect("no panic").expect("no failure")
}

/// How an in-process pair connects: plain TCP, or TLS with the server's
/// identity and the client's known hosts in a directory of the test's own.
pub enum Wire {
    Plain,
    Tls(std::path::PathBuf),
}

impl Wire {
    /// Both kinds, for a test that must hold over each.
    pub fn both(test: &str) -> [Wire; 2] {
        [Wire::Plain, Wire::Tls(super::scratch(test))]
    }

    pub fn server(&self) -> Option<chat::server::TlsConfig> {
        match self {
            Wire::Plain => None,
            Wire::Tls(dir) => Some(chat::server::TlsConfig {
                identity: Some(dir.join("identity.pem")),
                code: false,
            }),
        }
    }

    pub fn client(&self) -> Option<chat::client::TlsConfig> {
        match self {
            Wire::Plain => None,
            Wire::Tls(dir) => Some(chat::client::TlsConfig {
                known_hosts: Some(dir.join("known_hosts")),
                ..Default::default()
            }),
        }
    }
}

/// A server serving one conversation and a client, over `wire`, that have
/// exchanged a line each way.
pub fn talking_once(wire: &Wire) -> (Running, Client) {
    let mut config = conversations();
    config.once = true;
    config.tls = wire.server();
    let mut server = Running::start(Mode::Conversations(config));
    let mut client = Client::start_over(server.addr, client_config(), None, wire.client());
    server.expect_status("connected");
    client.say("hello from the client");
    server.expect_message("hello from the client");
    server.say("hello from the server");
    client.expect_message("hello from the server");
    (server, client)
}

/// Checks that a program said no error (on stderr, which it has closed).
pub fn no_errors(program: &mut Streams, who: &str) {
    let stderr = program.all_stderr();
    let errors: Vec<&String> = stderr.iter().filter(|l| l.starts_with("error")).collect();
    assert!(errors.is_empty(), "{who}: {errors:?}");
}

/// How many bytes a slow reader may still read: the test grants them, the
/// reader takes them, and waits while there are none.
#[derive(Clone, Default)]
pub struct Budget {
    left: std::sync::Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
}

impl Budget {
    /// Lets the reader take `bytes` more.
    pub fn grant(&self, bytes: usize) {
        let (left, changed) = &*self.left;
        *left.lock().unwrap() += bytes;
        changed.notify_all();
    }

    /// Waits until the reader has taken all it was granted, or `patience`
    /// passed; true if it has.
    pub fn spent_within(&self, patience: Duration) -> bool {
        let (left, changed) = &*self.left;
        let (left, _) = changed
            .wait_timeout_while(left.lock().unwrap(), patience, |left| *left > 0)
            .unwrap();
        *left == 0
    }

    fn reading<R: io::Read>(self, inner: R) -> Rationed<R> {
        Rationed {
            inner,
            budget: self,
        }
    }
}

/// A reader that takes only what its [`Budget`] grants.
struct Rationed<R> {
    inner: R,
    budget: Budget,
}

impl<R: io::Read> io::Read for Rationed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (left, changed) = &*self.budget.left;
        let allowed = *changed
            .wait_while(left.lock().unwrap(), |left| *left == 0)
            .unwrap();
        let take = buf.len().min(allowed);
        let n = self.inner.read(&mut buf[..take])?;
        *left.lock().unwrap() -= n;
        changed.notify_all();
        Ok(n)
    }
}
