//! A server run in-process, as a value: the operator's console on pipes
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

/// The conversation mode's settings, as `chat-server` has them by default.
pub fn conversations() -> Config {
    Config {
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        max_waiting: 5,
        once: false,
        idle_timeout: None,
        tls: None,
        access: Access::new(Vec::new(), Vec::new()),
    }
}

impl Running {
    /// Starts a server in `mode`, its time standing still until the test
    /// moves it.
    pub fn start(mode: Mode) -> Self {
        let (input, stdin) = io::pipe().unwrap();
        let (stdout_reader, stdout) = io::pipe().unwrap();
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
        let step = Duration::from_secs(1);
        let mut left = by;
        while !left.is_zero() {
            let now = left.min(step);
            self.clock.advance(now);
            left -= now;
        }
    }

    /// A raw protocol peer, for sending exactly the bytes a test wants.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to server");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// Checks that the server serves a well-mannered client at once: `text`
    /// reaches the operator, and the client is told nothing (no "busy").
    pub fn serves_a_polite_client(&mut self, text: &str) {
        assert_eq!(polite_exchange(self.addr, &[text]), Vec::<String>::new());
        self.expect_message(text);
    }

    /// Waits for the server to return, and what it returned.
    pub fn exit(&mut self) -> Exit {
        let server = self.server.take().expect("still running");
        let deadline = Instant::now() + PATIENCE;
        while !server.is_finished() {
            assert!(Instant::now() < deadline, "the server did not stop");
            thread::sleep(Duration::from_millis(10));
        }
        server.join().expect("no panic").expect("no failure")
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
