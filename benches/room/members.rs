//! The scale run's members: sockets of the benchmark, a share of them on
//! each of a few threads, each thread an event loop (mio) over its share,
//! not a thread per member: 10,000 members would otherwise be 10,000
//! threads here as well, and the benchmark would measure itself. Every
//! member reads everything it is sent, as soon as it is sent, so neither
//! server ever sees a slow reader.
//!
//! The main thread moves the run through its phases (`Shared::phase`); the
//! member threads follow, and count what they see in `Shared`.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// The one room (ngircd's channel); ours has one room anyway.
pub const CHANNEL: &str = "#room";
/// Lines a second the talker says.
pub const LINES_PER_SECOND: u64 = 10;

/// The member that talks once everyone is in (on the first thread).
pub const TALKER: usize = 0;

/// Where the members are in the run. The main thread moves it forward;
/// the member threads follow.
pub const JOINING: u8 = 0;
/// No more members connect; each thread counts its admitted members, the
/// ones whose receipts count from now on.
pub const COUNTING: u8 = 1;
/// The talker says "sync": its arrival at every member means every earlier
/// notice (the joins) has arrived too, as both servers keep each member's
/// stream in order. Only then is the full room's memory read.
pub const SYNCING: u8 = 2;
pub const TALKING: u8 = 3;
pub const STOPPED: u8 = 4;

/// What the main thread and the member threads share.
pub struct Shared {
    pub protocol: Protocol,
    pub phase: AtomicU8,
    /// The clock every time below is counted from, in ns.
    pub base: Instant,
    pub admitted: AtomicUsize,
    /// When the latest member was admitted (ns from `base`).
    pub last_admitted: AtomicU64,
    /// Connections that ended before their member was admitted.
    pub failed: AtomicUsize,
    /// Connections that ended after it.
    pub dropped: AtomicUsize,
    /// Members admitted when joining stopped: theirs are the receipts.
    pub counted: AtomicUsize,
    /// Threads that have counted their members.
    pub threads_counted: AtomicUsize,
    pub talker_counted: AtomicBool,
    pub synced: AtomicUsize,
    /// When the talker starts (ns from `base`).
    pub talk_from: AtomicU64,
    pub lines: usize,
    pub said: AtomicUsize,
    pub received: AtomicUsize,
}

impl Shared {
    pub fn new(protocol: Protocol, lines: usize) -> Self {
        Self {
            protocol,
            phase: AtomicU8::new(JOINING),
            base: Instant::now(),
            admitted: AtomicUsize::new(0),
            last_admitted: AtomicU64::new(0),
            failed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            counted: AtomicUsize::new(0),
            threads_counted: AtomicUsize::new(0),
            talker_counted: AtomicBool::new(false),
            synced: AtomicUsize::new(0),
            talk_from: AtomicU64::new(u64::MAX),
            lines,
            said: AtomicUsize::new(0),
            received: AtomicUsize::new(0),
        }
    }

    pub fn phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }

    pub fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// How members talk to a server.
#[derive(Clone, Copy)]
pub enum Protocol {
    /// Ours: frames of a 4-byte big-endian length and the payload.
    Frames,
    /// IRC: lines ending in CR LF.
    Irc,
}

/// What a member saw that matters to the run.
enum Seen {
    /// Ours: the room's greeting; the member names itself.
    Greeting,
    /// In the room (ours: "you joined as"; IRC: the end of the names).
    Admitted,
    Sync,
    /// The talker's line of this number.
    Line(u32),
    /// IRC: the server asks for a PONG with this token.
    Ping(Vec<u8>),
}

impl Protocol {
    /// What a member sends as soon as it is connected.
    fn hello(self, id: usize) -> Vec<u8> {
        match self {
            // Ours names itself once it sees the greeting, as our client does.
            Protocol::Frames => Vec::new(),
            Protocol::Irc => {
                format!("NICK m{id}\r\nUSER m{id} 0 * :m\r\nJOIN {CHANNEL}\r\n").into_bytes()
            }
        }
    }

    fn nick(self, id: usize) -> Vec<u8> {
        frame(format!("/nick m{id}").as_bytes())
    }

    fn say(self, text: &str) -> Vec<u8> {
        match self {
            Protocol::Frames => frame(text.as_bytes()),
            Protocol::Irc => format!("PRIVMSG {CHANNEL} :{text}\r\n").into_bytes(),
        }
    }

    fn pong(self, token: &[u8]) -> Vec<u8> {
        let mut pong = b"PONG ".to_vec();
        pong.extend_from_slice(token);
        pong.extend_from_slice(b"\r\n");
        pong
    }

    /// Reads what `bytes` holds, whole frames or lines only, into `seen`;
    /// returns how many bytes it took.
    fn parse(self, bytes: &[u8], seen: &mut Vec<Seen>) -> usize {
        match self {
            Protocol::Frames => parse_frames(bytes, seen),
            Protocol::Irc => parse_lines(bytes, seen),
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// The talker's text: "sync", or "line N" (N: the index of its send time).
fn talk(text: &[u8], seen: &mut Vec<Seen>) {
    if text == b"sync" {
        seen.push(Seen::Sync);
    } else if let Some(n) = text
        .strip_prefix(b"line ")
        .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
    {
        seen.push(Seen::Line(n));
    }
}

fn parse_frames(bytes: &[u8], seen: &mut Vec<Seen>) -> usize {
    let talker = format!("m{TALKER}: ");
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
        let Some(payload) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        at += 4 + len;
        if payload.starts_with(b"-- welcome to the room") {
            seen.push(Seen::Greeting);
        } else if payload.starts_with(b"-- ") {
            // "you joined as" comes early in its notice (after a note, if
            // any); the list of who is here after it can be long.
            let head = &payload[..payload.len().min(256)];
            if head.windows(14).any(|w| w == b"you joined as ") {
                seen.push(Seen::Admitted);
            }
        } else if let Some(text) = payload.strip_prefix(talker.as_bytes()) {
            talk(text, seen);
        }
    }
    at
}

fn parse_lines(bytes: &[u8], seen: &mut Vec<Seen>) -> usize {
    let mut at = 0;
    while let Some(end) = bytes[at..].iter().position(|&b| b == b'\n') {
        let line = &bytes[at..at + end];
        at += end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(token) = line.strip_prefix(b"PING ") {
            seen.push(Seen::Ping(token.to_vec()));
            continue;
        }
        // [:prefix] COMMAND params
        let rest = match line.strip_prefix(b":") {
            Some(prefixed) => match prefixed.iter().position(|&b| b == b' ') {
                Some(space) => &prefixed[space + 1..],
                None => continue,
            },
            None => line,
        };
        let (command, params) = match rest.iter().position(|&b| b == b' ') {
            Some(space) => (&rest[..space], &rest[space + 1..]),
            None => (rest, &b""[..]),
        };
        match command {
            // RPL_ENDOFNAMES: "NICK #room :End of NAMES list".
            b"366" => {
                let channel = params.split(|&b| b == b' ').nth(1);
                if channel == Some(CHANNEL.as_bytes()) {
                    seen.push(Seen::Admitted);
                }
            }
            b"PRIVMSG" => {
                if let Some(text) = params
                    .strip_prefix(CHANNEL.as_bytes())
                    .and_then(|p| p.strip_prefix(b" :"))
                {
                    talk(text, seen);
                }
            }
            _ => {}
        }
    }
    at
}

pub struct Member {
    id: usize,
    stream: Option<TcpStream>,
    /// Received, not yet a whole frame or line.
    partial: Vec<u8>,
    /// To send, once the socket takes it.
    unsent: Vec<u8>,
    /// Something came from the server: it has accepted the connection.
    heard: bool,
    admitted: bool,
    /// Admitted when joining stopped: its receipts count.
    counted: bool,
}

/// What a member thread hands back.
#[derive(Default)]
pub struct Tally {
    /// (line, when it arrived) for each line a counted member received.
    pub receipts: Vec<(u32, u64)>,
    /// When each line was said (the talker's thread only).
    pub said: Vec<u64>,
}

/// One thread's members and its event loop.
pub struct Members {
    shared: Arc<Shared>,
    addr: SocketAddr,
    poll: Poll,
    members: Vec<Member>,
    /// The ids of this thread's members, in the order they connect.
    ids: Vec<usize>,
    /// Members connected and not yet admitted, and how many may be.
    joining: usize,
    max_joining: usize,
    /// Members connected that have not heard from the server, and how
    /// many may be: about what the server's accept queue holds.
    unheard: usize,
    max_unheard: usize,
    tally: Tally,
    seen: Vec<Seen>,
    scratch: Vec<u8>,
}

impl Members {
    pub fn new(
        shared: Arc<Shared>,
        addr: SocketAddr,
        ids: Vec<usize>,
        max_joining: usize,
        max_unheard: usize,
    ) -> Self {
        Self {
            shared,
            addr,
            poll: Poll::new().expect("a poll instance"),
            members: Vec::with_capacity(ids.len()),
            ids,
            joining: 0,
            max_joining,
            unheard: 0,
            max_unheard,
            tally: Tally::default(),
            seen: Vec::new(),
            scratch: vec![0; 64 * 1024],
        }
    }

    pub fn run(mut self) -> (Tally, Vec<Member>) {
        let mut events = Events::with_capacity(1024);
        let mut counted = false;
        let mut synced = false;
        loop {
            let phase = self.shared.phase.load(Ordering::Acquire);
            if phase == STOPPED {
                break;
            }
            if phase == JOINING {
                self.connect_more();
            } else if !counted {
                self.count();
                counted = true;
            }
            let talker = self.ids.first() == Some(&TALKER) && !self.members.is_empty();
            if talker && phase >= SYNCING && !synced {
                self.say(0, "sync");
                synced = true;
            }
            let mut timeout = Duration::from_millis(10);
            if talker && phase == TALKING {
                timeout = timeout.min(self.talk());
            }
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("poll: {e}"),
            }
            let before = self.tally.receipts.len();
            for event in events.iter() {
                self.serve(event.token().0);
            }
            let got = self.tally.receipts.len() - before;
            if got > 0 {
                self.shared.received.fetch_add(got, Ordering::Relaxed);
            }
        }
        (self.tally, self.members)
    }

    /// Connects members until `max_joining` are between connecting and
    /// being admitted, or `max_unheard` have not heard from the server.
    fn connect_more(&mut self) {
        while self.joining < self.max_joining
            && self.unheard < self.max_unheard
            && self.members.len() < self.ids.len()
        {
            let id = self.ids[self.members.len()];
            let index = self.members.len();
            let stream = TcpStream::connect(self.addr).and_then(|mut stream| {
                self.poll.registry().register(
                    &mut stream,
                    Token(index),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
            let stream = match stream {
                Ok(stream) => Some(stream),
                Err(e) => {
                    eprintln!("  m{id} cannot connect: {e}");
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            self.joining += usize::from(stream.is_some());
            self.unheard += usize::from(stream.is_some());
            self.members.push(Member {
                id,
                stream,
                partial: Vec::new(),
                unsent: self.shared.protocol.hello(id),
                heard: false,
                admitted: false,
                counted: false,
            });
            // Sent when the connection is up (its first writable event).
        }
    }

    /// Joining stopped: the members admitted now are the ones counted.
    fn count(&mut self) {
        let mut counted = 0;
        for member in &mut self.members {
            if member.admitted && member.stream.is_some() {
                member.counted = true;
                counted += 1;
                if member.id == TALKER {
                    self.shared.talker_counted.store(true, Ordering::Relaxed);
                }
            }
        }
        self.shared.counted.fetch_add(counted, Ordering::Relaxed);
        self.shared.threads_counted.fetch_add(1, Ordering::Release);
    }

    /// Says the lines now due; returns how long until the next one.
    fn talk(&mut self) -> Duration {
        let from = self.shared.talk_from.load(Ordering::Acquire);
        let every = 1_000_000_000 / LINES_PER_SECOND;
        loop {
            let line = self.tally.said.len();
            if line >= self.shared.lines {
                return Duration::from_millis(10);
            }
            let due = from + line as u64 * every;
            let now = self.shared.now();
            if now < due {
                return Duration::from_nanos(due - now);
            }
            // The time is taken before the line goes: its latency includes
            // whatever the sending costs.
            self.tally.said.push(now);
            self.say(0, &format!("line {line}"));
            self.shared.said.store(line + 1, Ordering::Relaxed);
        }
    }

    fn say(&mut self, index: usize, text: &str) {
        let bytes = self.shared.protocol.say(text);
        self.members[index].unsent.extend_from_slice(&bytes);
        self.flush(index);
    }

    /// Sends what the socket takes of member `index`'s unsent bytes.
    fn flush(&mut self, index: usize) {
        let member = &mut self.members[index];
        let Some(stream) = member.stream.as_mut() else {
            return;
        };
        while !member.unsent.is_empty() {
            match stream.write(&member.unsent) {
                Ok(n) => {
                    member.unsent.drain(..n);
                }
                // Not connected yet, or the socket is full: the next
                // writable event comes back here.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => {
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.end(index);
                    return;
                }
            }
        }
    }

    /// A member's socket is ready: send what waits, read all there is.
    fn serve(&mut self, index: usize) {
        self.flush(index);
        loop {
            let Some(stream) = self.members[index].stream.as_mut() else {
                return;
            };
            // Edge-triggered: read until the socket is empty, or no event
            // comes for what is left. A read short of the buffer has
            // emptied it (TCP on Linux, where epoll signals every arrival):
            // no second read to be told so, which would double the reads
            // of the O(N²) join notices.
            let n = match stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.end(index);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.end(index);
                    return;
                }
            };
            self.take(index, n);
            if n < self.scratch.len() {
                return;
            }
        }
    }

    /// Takes in `n` bytes just read into the scratch buffer.
    fn take(&mut self, index: usize, n: usize) {
        let protocol = self.shared.protocol;
        let member = &mut self.members[index];
        if !member.heard {
            member.heard = true;
            self.unheard -= 1;
        }
        if member.partial.is_empty() {
            let used = protocol.parse(&self.scratch[..n], &mut self.seen);
            member.partial.extend_from_slice(&self.scratch[used..n]);
        } else {
            member.partial.extend_from_slice(&self.scratch[..n]);
            let used = protocol.parse(&member.partial, &mut self.seen);
            member.partial.drain(..used);
            // A long notice (who is here) grows it; 10,000 members must not
            // each keep that much.
            if member.partial.is_empty() && member.partial.capacity() > 4096 {
                member.partial = Vec::new();
            }
        }
        let now = self.shared.now();
        for seen in std::mem::take(&mut self.seen) {
            let member = &mut self.members[index];
            match seen {
                Seen::Greeting => {
                    let nick = protocol.nick(member.id);
                    member.unsent.extend_from_slice(&nick);
                    self.flush(index);
                }
                Seen::Admitted if !member.admitted => {
                    member.admitted = true;
                    self.joining -= 1;
                    self.shared.admitted.fetch_add(1, Ordering::Relaxed);
                    self.shared.last_admitted.fetch_max(now, Ordering::Relaxed);
                }
                Seen::Admitted => {}
                Seen::Sync if member.counted => {
                    self.shared.synced.fetch_add(1, Ordering::Relaxed);
                }
                Seen::Line(line) if member.counted => self.tally.receipts.push((line, now)),
                Seen::Sync | Seen::Line(_) => {}
                Seen::Ping(token) => {
                    let pong = protocol.pong(&token);
                    member.unsent.extend_from_slice(&pong);
                    self.flush(index);
                }
            }
        }
    }

    /// Member `index`'s connection ended (the server closed it or failed).
    fn end(&mut self, index: usize) {
        let member = &mut self.members[index];
        if let Some(mut stream) = member.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
            if !member.heard {
                self.unheard -= 1;
            }
            if member.admitted {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.joining -= 1;
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
