//! Helpers shared by the integration tests: the real binaries run as child
//! processes on loopback port 0, raw protocol peers, and bounded waits.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits on: above the programs' longest
/// timeout (30 s for a peer to close after our end), and generous for a
/// loaded CI machine. Tests go on as soon as what they wait for happens.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
pub const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// A program's standard streams in our hands: its input to write, its
/// stdout and stderr as lines.
pub struct Streams {
    stdin: Option<Box<dyn Write + Send>>,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
    /// Everything read from stderr so far, for failure messages.
    stderr_seen: Vec<String>,
}

/// A running binary with its standard streams in our hands.
pub struct Program {
    pub child: Child,
    pub io: Streams,
}

impl std::ops::Deref for Program {
    type Target = Streams;
    fn deref(&self) -> &Streams {
        &self.io
    }
}

impl std::ops::DerefMut for Program {
    fn deref_mut(&mut self) -> &mut Streams {
        &mut self.io
    }
}

impl Program {
    pub fn spawn(path: &str, args: &[&str]) -> Self {
        Self::spawn_reading_stdout(path, args, usize::MAX)
    }

    /// Like [`spawn`](Self::spawn), with `env` added to its environment.
    pub fn spawn_with_env(path: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start(
            Command::new(path).args(args).envs(env.iter().copied()),
            usize::MAX,
        )
    }

    /// Like [`spawn`](Self::spawn), with the program's stdout read at about
    /// `bytes_per_second`, as a slow terminal or pipeline would.
    pub fn spawn_reading_stdout(path: &str, args: &[&str], bytes_per_second: usize) -> Self {
        Self::start(Command::new(path).args(args), bytes_per_second)
    }

    /// Runs `command` (a binary under a wrapper, say).
    pub fn spawn_command(command: &mut Command) -> Self {
        Self::start(command, usize::MAX)
    }

    fn start(command: &mut Command, bytes_per_second: usize) -> Self {
        let path = command.get_program().to_string_lossy().into_owned();
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(command).unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stdout = match bytes_per_second {
            usize::MAX => lines_of(stdout),
            rate => lines_of(Slow::new(stdout, rate)),
        };
        let stderr = lines_of(child.stderr.take().unwrap());
        let stdin = child.stdin.take().unwrap();
        Self {
            child,
            io: Streams::new(stdin, stdout, stderr),
        }
    }

    /// Waits for the program to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("program did not exit; stderr: {:?}", self.drain_stderr());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends the signal named `name` (`INT`, `TERM`…).
    pub fn signal(&self, name: &str) {
        kill(self.pid(), name);
    }
}

impl Streams {
    pub fn new(
        stdin: impl Write + Send + 'static,
        stdout: Receiver<String>,
        stderr: Receiver<String>,
    ) -> Self {
        Self {
            stdin: Some(Box::new(stdin)),
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// Writes `text` to the program's stdin as it is.
    pub fn type_raw(&mut self, text: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(text).expect("write to stdin");
        stdin.flush().unwrap();
    }

    /// Types one line.
    pub fn say(&mut self, line: &str) {
        self.type_raw(format!("{line}\n").as_bytes());
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Types `text` from another thread (a flood that the program takes
    /// its time to read); the input comes back when it is all typed.
    pub fn type_in_background(
        &mut self,
        text: Vec<u8>,
    ) -> thread::JoinHandle<Box<dyn Write + Send>> {
        let mut stdin = self.stdin.take().expect("stdin still open");
        thread::spawn(move || {
            let _ = stdin.write_all(&text);
            let _ = stdin.flush();
            stdin
        })
    }

    /// Waits for the next stdout line and returns it.
    pub fn next_message(&mut self) -> String {
        match self.stdout.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(e) => panic!(
                "no message on stdout ({e:?}); stderr so far: {:?}",
                self.drain_stderr()
            ),
        }
    }

    /// Waits for a stdout line and checks it.
    pub fn expect_message(&mut self, expected: &str) {
        let got = self.next_message();
        assert_eq!(got, expected, "stderr so far: {:?}", self.drain_stderr());
    }

    /// Waits for a stdout line equal to `expected`, skipping others.
    pub fn expect_message_eventually(&mut self, expected: &str) {
        while self.next_message() != expected {}
    }

    /// Waits for a stderr line containing `part` and returns it.
    pub fn expect_status(&mut self, part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(part) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no stderr line containing {part:?}; saw {:?}",
                        self.stderr_seen
                    )
                }
            }
        }
    }

    /// Waits for a stderr line containing `part`, and checks that no line
    /// before it contained `not`: with a line the test caused itself as
    /// `part`, that nothing happened before it.
    pub fn expects_before(&mut self, part: &str, not: &str) {
        let seen = self.stderr_seen.len();
        self.expect_status(part);
        let early: Vec<&String> = self.stderr_seen[seen..]
            .iter()
            .filter(|line| line.contains(not))
            .collect();
        assert!(early.is_empty(), "too early: {early:?}");
    }

    /// Every stderr line, once the program has closed its stderr (exited).
    pub fn all_stderr(&mut self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return self.stderr_seen.clone(),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("stderr still open; saw {:?}", self.stderr_seen)
                }
            }
        }
    }

    /// The first stderr line so far (printed by now, without waiting) that
    /// contains `part`.
    pub fn said(&mut self, part: &str) -> Option<String> {
        self.drain_stderr()
            .into_iter()
            .find(|line| line.contains(part))
    }

    /// Stderr lines already printed, without waiting.
    pub fn drain_stderr(&mut self) -> Vec<String> {
        self.stderr_seen.extend(self.stderr.try_iter());
        self.stderr_seen.clone()
    }

    /// All remaining stdout lines, up to the program closing stdout.
    pub fn rest_of_stdout(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.stdout.recv_timeout(PATIENCE) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("stdout still open after {} lines", lines.len())
                }
            }
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reader that hands out at most `rate` bytes a second, in reads of a
/// tenth of that.
struct Slow<R> {
    inner: R,
    rate: usize,
    started: Instant,
    given: usize,
}

impl<R> Slow<R> {
    fn new(inner: R, rate: usize) -> Self {
        Self {
            inner,
            rate,
            started: Instant::now(),
            given: 0,
        }
    }
}

impl<R: Read> Read for Slow<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let due = Duration::from_secs_f64(self.given as f64 / self.rate as f64);
        if let Some(early) = due.checked_sub(self.started.elapsed()) {
            thread::sleep(early);
        }
        let chunk = (self.rate / 10).max(1).min(buf.len());
        let n = self.inner.read(&mut buf[..chunk])?;
        self.given += n;
        Ok(n)
    }
}

/// Starts `command`. Under wine, creating a process now and then fails
/// with ERROR_INTERNAL_ERROR (1359) while the same call works a moment
/// later (seen once in a CI run on a fresh wine prefix): that one error is
/// tried again, a few times.
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) && tries < 5 => {
                tries += 1;
                thread::sleep(Duration::from_millis(200));
            }
            spawned => return spawned,
        }
    }
}

pub fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                return;
            }
            line.clear();
        }
    });
    rx
}

/// A chat-server on a free loopback port.
pub struct Server {
    pub program: Program,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// Like [`start`](Self::start), with `env` added to its environment.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut program = Program::spawn_with_env(SERVER, &args, env);
        let line = program.expect_status("listening on ");
        // After the time, if the server shows times.
        let addr = line
            .split("listening on ")
            .nth(1)
            .unwrap_or_default()
            .parse()
            .expect("listening address");
        Self { program, addr }
    }

    pub fn connect_client(&self, extra: &[&str]) -> Program {
        let addr = self.addr.to_string();
        let mut args = vec!["--connect", addr.as_str()];
        args.extend_from_slice(extra);
        Program::spawn(CLIENT, &args)
    }

    /// A default chat-client, once the server says it is talking with it.
    pub fn admit_client(&mut self) -> Program {
        let client = self.connect_client(&[]);
        self.expect_status("connected");
        client
    }

    /// Checks that the server serves a well-mannered client at once: `text`
    /// reaches the operator, and the client is told nothing (no "busy").
    pub fn serves_a_polite_client(&mut self, text: &str) {
        assert_eq!(
            polite_exchange(self.addr, &[text]),
            Vec::<String>::new(),
            "{text}"
        );
        self.expect_message(text);
    }

    /// A raw protocol peer, for sending exactly the bytes a test wants.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to server");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }
}

impl std::ops::Deref for Server {
    type Target = Program;
    fn deref(&self) -> &Program {
        &self.program
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Program {
        &mut self.program
    }
}

/// A connection to `server` from the loopback address `from` (any of
/// 127.0.0.0/8 on Linux and Windows): a peer from another network than
/// 127.0.0.1's, for the rules that count networks (an IPv4 /24).
pub fn connect_from(server: SocketAddr, from: &str) -> TcpStream {
    let from: std::net::IpAddr = from.parse().expect("an address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| {
            panic!("cannot bind {from} (this system has only 127.0.0.1 on loopback?): {e}")
        });
    socket.connect(&server.into()).expect("connect to server");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// One frame as the protocol writes it.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// The last `ACK` a version 2 peer sent on `stream` before its end of
/// stream (`None`: none), reading everything up to that end.
pub fn last_ack_before_the_end(stream: &mut impl Read) -> Option<u64> {
    let mut last = None;
    while let Some((control, payload)) = next_frame(stream) {
        if control && payload.first() == Some(&b'A') {
            last = Some(u64::from_be_bytes(
                payload[1..9].try_into().expect("a count"),
            ));
        }
    }
    last
}

/// The kinds of the control frames a version 2 peer sent on `stream`
/// (`b'A'` for an `ACK`, `b'E'` for an `END`), in order, reading
/// everything up to its end of stream.
pub fn controls_before_the_end(stream: &mut impl Read) -> Vec<u8> {
    let mut kinds = Vec::new();
    while let Some((control, payload)) = next_frame(stream) {
        if control && let Some(&kind) = payload.first() {
            kinds.push(kind);
        }
    }
    kinds
}

/// A version 2 `END` control frame: the sender's side ends on purpose.
pub const END: [u8; 5] = [0x80, 0, 0, 1, b'E'];

/// A version 2 `BYE` control frame: the sender leaves at once.
pub const BYE: [u8; 5] = [0x80, 0, 0, 1, b'B'];

/// The next frame from `stream`: whether it is a control frame (its
/// length header's top bit, version 2), and its payload; `None` at a
/// clean end of stream.
fn next_frame(stream: &mut impl Read) -> Option<(bool, Vec<u8>)> {
    let mut header = [0; 4];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) => panic!("reading a frame header: {e}"),
    }
    let header = u32::from_be_bytes(header);
    let mut payload = vec![0; (header & 0x7fff_ffff) as usize];
    stream.read_exact(&mut payload).expect("reading a payload");
    Some((header & 0x8000_0000 != 0, payload))
}

/// A client (`chat-client --connect`, piped) talking to a server made by
/// hand: the client's offer read and checked, ours and a `HELLO` saying
/// it takes `takes` sent; the server's side of the socket for the test.
pub fn client_of_a_hand_made_server(takes: u32) -> (Program, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let client = Program::spawn(CLIENT, &["--connect", &addr]);
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut offer = [1; 32];
    server.read_exact(&mut offer).unwrap();
    assert_eq!(offer, OFFER, "the client offers version 2");
    server.write_all(&OFFER).unwrap();
    server
        .write_all(&hello_frame([3; 16], [0; 16], 0, takes))
        .unwrap();
    (client, server)
}

/// Reads one message, skipping keepalives (empty frames, which a version 1
/// receiver ignores); `None` at a clean end of stream.
pub fn read_frame(stream: &mut impl Read) -> Option<Vec<u8>> {
    loop {
        let (_, payload) = next_frame(stream)?;
        if !payload.is_empty() {
            return Some(payload);
        }
    }
}

/// Version 2's offer, which a client sends first: eight empty frames.
pub const OFFER: [u8; 32] = [0; 32];

/// A `HELLO` control frame, as the wire has it: the sender's token, the
/// token it resumes (zeros: none), how many of the peer's messages it
/// took, and what it takes (`1`: messages of several lines; a `HELLO`
/// from before that field is sent without it when `takes` is 0).
pub fn hello_frame(token: [u8; 16], resume_of: [u8; 16], received: u64, takes: u32) -> Vec<u8> {
    let mut payload = vec![b'H', 2];
    payload.extend_from_slice(&token);
    payload.extend_from_slice(&resume_of);
    payload.extend_from_slice(&received.to_be_bytes());
    payload.extend_from_slice(&1000u32.to_be_bytes());
    if takes != 0 {
        payload.extend_from_slice(&takes.to_be_bytes());
    }
    let mut frame = (0x8000_0000u32 | payload.len() as u32)
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// The next control frame's payload from `stream`, skipping data frames.
pub fn next_control(stream: &mut impl Read) -> Vec<u8> {
    loop {
        match next_frame(stream) {
            Some((true, payload)) => return payload,
            Some((false, _)) => {}
            None => panic!("the end, not a control frame"),
        }
    }
}

/// The next message from a version 2 peer, skipping keepalives and control
/// frames; `None` at a clean end of stream.
pub fn read_data(stream: &mut impl Read) -> Option<String> {
    loop {
        let (control, payload) = next_frame(stream)?;
        if !control && !payload.is_empty() {
            return Some(String::from_utf8(payload).expect("UTF-8"));
        }
    }
}

/// Reads one frame as text.
pub fn read_text(stream: &mut impl Read) -> String {
    String::from_utf8(read_frame(stream).expect("a frame, not the end")).expect("UTF-8")
}

/// Waits until `check` holds, polling; panics with `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Open file descriptors and threads of a running process, from `/proc`.
pub fn fds_and_threads(pid: u32) -> (usize, usize) {
    let count = |what: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{what}"))
            .unwrap()
            .count()
    };
    (count("fd"), count("task"))
}

/// A `kB` field of `/proc/PID/status`, such as `VmHWM` (peak resident memory).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A raw client that says `text` and stays connected (returned): unlike one
/// that closes at once, it cannot leave the line with what it said if it
/// has to wait for its turn.
pub fn says_and_stays(server: SocketAddr, text: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server).expect("connect");
    stream.write_all(&frame(text.as_bytes())).unwrap();
    stream
}

/// Behaves as a well-mannered client: sends `messages`, ends its sending half
/// and reads until the server closes. Returns what the server sent.
pub fn polite_exchange(server: SocketAddr, messages: &[&str]) -> Vec<String> {
    let mut stream = TcpStream::connect(server).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = Vec::new();
    for message in messages {
        bytes.extend_from_slice(&frame(message.as_bytes()));
    }
    stream.write_all(&bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut received = Vec::new();
    while let Some(payload) = read_frame(&mut stream) {
        received.push(String::from_utf8(payload).unwrap());
    }
    received
}

/// Sends the signal named `name` to `pid`.
pub fn kill(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits for a child started by hand to exit, killing it after [`PATIENCE`].
pub fn wait_child(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("program did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A chat-server started by hand on a free loopback port, with `stdout` as
/// the test asks; its stderr's lines come through the receiver.
pub fn server_child(extra: &[&str], stdout: Stdio) -> (Child, SocketAddr, Receiver<String>) {
    let mut child = spawn(
        Command::new(SERVER)
            .args(["--bind", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped()),
    )
    .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    let line = stderr
        .recv_timeout(PATIENCE)
        .expect("the server says where it listens");
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
    (child, addr, stderr)
}

impl Program {
    /// Waits at most `limit` for the next stdout line.
    pub fn next_message_within(&mut self, limit: Duration) -> Option<String> {
        self.stdout.recv_timeout(limit).ok()
    }
}

/// A `chat-server --room` on a free loopback port.
pub fn start_room(extra: &[&str]) -> Server {
    let mut args = vec!["--room"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args);
    server.expect_status("the room is open");
    server
}

impl Server {
    /// A chat-client in the room as `name`, once it was told it joined.
    pub fn join_room(&self, name: &str) -> Program {
        let mut client = self.connect_client(&["--name", name]);
        client.expect_status(&format!("you joined as {name};"));
        client
    }

    /// [`raw_member`](Self::raw_member), that sends an empty frame first,
    /// as the README asks of a plain peer that reads before it speaks (one
    /// that sends nothing is greeted only once the server has waited a
    /// moment for a resume, 5 s, and is let go after `--speak-within`).
    pub fn speaking_raw_member(&self) -> RawMember {
        let mut stream = self.raw();
        stream.write_all(&[0; 4]).expect("send a keepalive");
        self.raw_member_on(stream)
    }

    /// A raw protocol peer in the room, once it has read the greeting.
    pub fn raw_member(&self) -> RawMember {
        self.raw_member_on(self.raw())
    }

    fn raw_member_on(&self, stream: TcpStream) -> RawMember {
        let mut member = RawMember { stream };
        let greeting = member.next_text();
        assert!(
            greeting.starts_with("-- ") && greeting.ends_with("[room protocol 2]"),
            "{greeting:?}"
        );
        member
    }
}

/// A peer that speaks plain protocol version 1 to a room, as a
/// `struct.pack('!I')` script would.
pub struct RawMember {
    pub stream: TcpStream,
}

impl RawMember {
    pub fn send(&mut self, text: &str) {
        self.stream.write_all(&frame(text.as_bytes())).unwrap();
    }

    pub fn next_text(&mut self) -> String {
        read_text(&mut self.stream)
    }

    /// Reads frames until one equal to `expected`, returning those before it.
    pub fn expect_text(&mut self, expected: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let text = self.next_text();
            if text == expected {
                return before;
            }
            before.push(text);
        }
    }
}

/// Checks that `program` reported no error on stderr (read to its end: call
/// once it has exited).
pub fn no_errors(program: &mut Program, who: &str) {
    let seen = program.all_stderr();
    assert!(
        !seen.iter().any(|l| l.contains("error")),
        "{who} reported an error: {seen:?}"
    );
}

/// Lines of a few megabytes, numbered so that a loss or a swap shows.
pub fn flood(who: &str, bytes: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut size = 0;
    while size < bytes {
        let line = format!("{who} {} {}", lines.len(), "f".repeat(lines.len() % 300));
        size += line.len() + 1;
        lines.push(line);
    }
    lines
}

/// A directory of the test's own, emptied first.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-test-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn path(dir: &std::path::Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

/// A TLS server with its identity in `dir`, and the fingerprint it showed.
pub fn tls_server(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    let identity = path(dir, "identity.pem");
    let mut args = vec!["--tls", "--identity", identity.as_str()];
    args.extend_from_slice(extra);
    let mut server = Server::start_with_env(&args, env);
    let shown = server
        .drain_stderr()
        .into_iter()
        .find(|line| line.starts_with("TLS identity "))
        .expect("the server shows its fingerprint before it listens");
    let print = shown["TLS identity ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(
        print.starts_with("SHA256:") && print.len() == 7 + 43,
        "{shown}"
    );
    (server, print)
}

/// A TLS client of `server` that keeps its known hosts in `dir`.
pub fn tls_client(
    server: &Server,
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Program {
    let known = path(dir, "known_hosts");
    let address = server.addr.to_string();
    let mut args = vec![
        "--connect",
        address.as_str(),
        "--tls",
        "--known-hosts",
        known.as_str(),
    ];
    args.extend_from_slice(extra);
    Program::spawn_with_env(CLIENT, &args, env)
}

/// How a test's programs connect: plain TCP, or TLS with the server's
/// identity and the client's known hosts in a directory of the test's own.
#[derive(Debug, Clone)]
pub enum Wire {
    Plain,
    Tls(PathBuf),
}

impl Wire {
    /// Both kinds, for a test that must hold over each.
    pub fn both(test: &str) -> [Wire; 2] {
        [Wire::Plain, Wire::Tls(scratch(test))]
    }

    pub fn server_args(&self) -> Vec<String> {
        match self {
            Wire::Plain => Vec::new(),
            Wire::Tls(dir) => vec![
                "--tls".into(),
                "--identity".into(),
                path(dir, "identity.pem"),
            ],
        }
    }

    pub fn client_args(&self) -> Vec<String> {
        match self {
            Wire::Plain => Vec::new(),
            Wire::Tls(dir) => vec![
                "--tls".into(),
                "--known-hosts".into(),
                path(dir, "known_hosts"),
            ],
        }
    }
}

/// `base` then `more`, as the argument lists the helpers take.
pub fn args<'a>(base: &'a [&'a str], more: &'a [String]) -> Vec<&'a str> {
    base.iter()
        .copied()
        .chain(more.iter().map(String::as_str))
        .collect()
}

/// A relay to `server` that passes what clients send at once and what the
/// server sends `delay` late: a server far away, as its clients see it.
pub fn slow_to_answer(server: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let upstream = TcpStream::connect(server).unwrap();
            let (mut from_client, mut to_server) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
            let (mut from_server, mut to_client) = (upstream, client);
            thread::spawn(move || {
                thread::sleep(delay);
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A TLS client with the wrong code (`extra` added to its arguments) is
/// refused on both sides and delivers nothing.
pub fn wrong_code_is_refused(server: &mut Server, dir: &std::path::Path, extra: &[&str]) {
    let mut args = vec!["--code"];
    args.extend_from_slice(extra);
    let mut wrong = tls_client(
        server,
        dir,
        &args,
        &[("CHAT_CODE", "42-orbit-velvet-candles")],
    );
    wrong.say("must not arrive");
    assert_eq!(wrong.wait().code(), Some(1));
    let said = wrong.all_stderr().join("\n");
    assert!(said.contains("refused the code: wrong code"), "{said}");
    server.expect_status("wrong code");
}

pub mod inproc;
pub mod netns;
pub mod relay;

/// Whether the pipe whose reading end is `pipe` is full, for a writer that
/// has more to write than it holds (a program flooded with messages): it
/// holds bytes and took no more for half a second. (Not its bytes against
/// its capacity: Linux packs a pipe by pages, and a full one holds less.)
#[cfg(unix)]
pub fn pipe_is_full(pipe: &impl std::os::fd::AsRawFd) -> bool {
    let held = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer it is given.
        let ok = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) } == 0;
        assert!(ok, "FIONREAD: {}", std::io::Error::last_os_error());
        n
    };
    let before = held();
    thread::sleep(Duration::from_millis(500));
    before > 0 && held() == before
}

/// Waits at most `limit` for a line of `lines` containing `part`, keeping
/// every line read in `seen` (for the failure's message); returns it.
pub fn line_within(
    lines: &Receiver<String>,
    part: &str,
    limit: Duration,
    seen: &mut Vec<String>,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(part) {
                    return line;
                }
            }
            Err(e) => panic!("no line containing {part:?} within {limit:?} ({e:?}); saw {seen:?}"),
        }
    }
}

/// The send and receive queues of this network namespace's IPv4 TCP socket
/// from local port `from` to port `to`, from `/proc/net/tcp`: bytes the
/// peer has not acknowledged, and bytes the program has not read.
#[cfg(target_os = "linux")]
pub fn tcp_queues(from: u16, to: u16) -> Option<(u64, u64)> {
    let table = fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |address: &str| {
        let (_, port) = address.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    };
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if port(fields.get(1)?) != Some(from) || port(fields.get(2)?) != Some(to) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// Closes `stream` with a reset, not an orderly end (SO_LINGER 0): a peer
/// gone at once, or a path a router reset. (Under wine, an orderly end.)
pub fn close_with_reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Waits until every connection of port `port` (the server's end and its
/// clients') holds nothing its program has not read, after `lag` (time
/// for a due answer, such as an `ACK`, to arrive). A program killed with unread bytes in a socket
/// is reset there by its system, not closed: what its peer sees then is a
/// reset, as on a lost link, not the end of stream a test may look for.
/// Elsewhere than Linux, the wait is `lag` alone.
pub fn wait_until_all_read(port: u16, lag: Duration) {
    thread::sleep(lag);
    #[cfg(target_os = "linux")]
    wait_until("the server read everything sent to it", || {
        let table = fs::read_to_string("/proc/net/tcp").unwrap();
        table.lines().skip(1).all(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = format!("{port:04X}");
            let at = |address: &str| address.rsplit_once(':').map(|(_, p)| p) == Some(&port);
            let listening = fields[3] == "0A";
            let unread = fields[4].split_once(':').map_or("0", |(_, rx)| rx);
            !(at(fields[1]) || at(fields[2]))
                || listening
                || u64::from_str_radix(unread, 16) == Ok(0)
        })
    });
    #[cfg(not(target_os = "linux"))]
    let _ = port;
}

/// The largest writable private mapping of process `pid`, in bytes, and
/// its line of `/proc/PID/maps`: memory committed to, written or not. (The
/// address space glibc reserves for each thread's arena is mapped without
/// access until used, and is not one; a heap grows only with use.)
#[cfg(target_os = "linux")]
pub fn largest_writable_mapping(pid: u32) -> (u64, String) {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, access) = (fields.next()?, fields.next()?);
            if !access.starts_with("rw") || !access.ends_with('p') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let size = u64::from_str_radix(end, 16).ok()? - u64::from_str_radix(start, 16).ok()?;
            Some((size, line.to_string()))
        })
        .max()
        .unwrap_or_default()
}
