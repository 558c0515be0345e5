//! One connection on the event loop: a non-blocking socket, TLS over it
//! when the server speaks it, what was received and not yet taken, what is
//! queued to send, and the counts of bytes moved.
//!
//! Nothing here waits and nothing decides: a read or a write goes as far as
//! the socket allows and says what happened; the loop ([`super::Io`])
//! turns that into [`crate::state::ending`]'s happenings.
//!
//! Memory follows traffic, not members: reads go into the loop's one
//! scratch buffer, and a connection keeps bytes of its own only for a frame
//! that arrived in part (never more than the bytes that came, whatever
//! length its header declares) and for what the peer has not yet taken.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mio::net::TcpStream;

use super::outgoing::{KEEP_CAPACITY, KEEP_LIMIT, Outgoing};
use crate::console::outbox::WriteNow;
use crate::platform::{SENDS_NOW, SHORT_READ_DRAINS, send_now, unacknowledged};
use crate::state::ending::Observed;
use crate::wire::frame::{HEADER_LEN, TooLong, read_header, split_frames, too_long_error};
use crate::wire::session::{self, CONTROL_MAX, Control, Header, Hello, OFFER_FRAMES, OFFER_LEN};

/// Plaintext sealed into TLS records at once: the socket is offered about
/// this much at a time, so rustls never holds much that the peer has not
/// yet taken (what it holds is counted as unsent). Four records, written
/// in one `writev`: one record at a time cost a system call per 16 KiB
/// (TLS bulk at 0.73 of the build before the event loop); sixteen made
/// the allocator give the records' memory back and fault it in again for
/// every piece (16,000 page faults a 128 MiB flood). Measured on 1 KiB
/// lines, 128 MiB and 1 GiB, against c4b007a.
const SEAL_CHUNK: usize = 64 * 1024;

/// Bytes of our messages kept for acknowledgement, after our offer, until
/// the peer's offer comes: enough for what a person or a script says in
/// the first round trip, and little held for a version 1 peer, which never
/// offers.
const BEFORE_OFFER_KEEP: usize = 1 << 20;

/// The least a read asks the socket for, whatever the caller's limit: a
/// read of a few bytes at a time costs a system call for each.
const MIN_READ: usize = 16 * 1024;

/// How our sending half stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    Open,
    /// Send what is queued, then shut our half down.
    Finishing,
    /// Shut down (or aborted): nothing more goes out.
    Done,
}

/// How a read ended the receiving half.
#[derive(Debug)]
pub enum ReadEnd {
    /// End of stream at a frame boundary.
    Closed,
    Failed(io::Error),
}

/// What [`Conn::read_ahead`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ahead {
    /// The socket is empty for now.
    Empty,
    /// As much as was asked for is held.
    Full,
    /// The peer's side ended (or failed).
    Ended,
}

/// What a flush did.
#[derive(Debug)]
pub enum Flushed {
    /// Everything queued is on the socket (and our half is shut down if it
    /// was finishing: see [`Conn::finished_sending`]).
    Idle,
    /// The socket is full: wait until it is writable.
    Blocked,
    Failed(io::Error),
}

pub struct Conn {
    stream: TcpStream,
    /// Shared with the thread that writes beside the loop, if any.
    tls: Option<Session>,
    peer: SocketAddr,
    max: usize,
    /// Received plaintext not yet handed out: whole frames past the last
    /// read's limit, then at most one partial frame.
    pending: Vec<u8>,
    /// Frames to send.
    out: Outgoing,
    received: u64,
    /// Bytes written to the socket (TLS records included).
    written: u64,
    /// Bytes of frames wholly handed to the socket (sealed, under TLS).
    sent: u64,
    accepted: u64,
    /// The most `moved` ever reported, so the count never goes back.
    moved: u64,
    /// The socket may have more to read: it was reported readable and no
    /// read has met `WouldBlock` since.
    readable: bool,
    /// The system reported the peer's end of stream or an error: reads go
    /// on until one says so (see [`Conn::read_plaintext`]).
    end_reported: bool,
    /// The receiving half has ended; how, until it is taken.
    read_end: Option<Option<ReadEnd>>,
    sending: Sending,
    /// The shutdown of our half is done and not yet reported.
    shut_unreported: bool,
    /// Our FIN went into the kernel's send queue, where it counts as a
    /// byte not yet acknowledged. (Not on a connection already dead: a
    /// peer lost after 22 bytes was said to have missed 21.)
    fin_queued: bool,
    /// Another thread may write the socket too (see [`Conn::write_beside`]).
    beside: Option<Arc<Beside>>,
    /// How our first send failed, if one did (see [`Conn::read_plaintext`]).
    send_failed: Option<(ErrorKind, String)>,
    /// A read or a send met a reset.
    reset: bool,
    /// Version 2, as far as the bytes show it.
    wire: Wire,
}

/// Whether the peer offered version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// We do not speak version 2: nothing is looked for.
    Off,
    /// Looking for the offer: this many empty frames in a row so far.
    Listening(usize),
    /// The peer offered: control frames may come.
    Offered,
}

/// Version 2 as the connection's bytes show it; what it means over time is
/// the loop's ([`crate::state::session`]).
#[derive(Debug)]
struct Wire {
    opening: Opening,
    /// The offer was seen and not yet told.
    offer_untold: bool,
    /// Control frames read and not yet taken by the loop.
    controls: Vec<Control>,
    /// Data frames handed out since the peer's offer, and their bytes.
    taken_frames: u64,
    taken_bytes: u64,
    /// Our offer is queued: data frames queued from now on are numbered.
    numbering: bool,
    /// Numbered messages queued so far.
    numbered: u64,
    /// Bytes of the peer's control frames read: heartbeats and
    /// acknowledgements are not progress of the conversation.
    control_bytes: u64,
    /// Plaintext bytes read (TLS records decrypted).
    plain_received: u64,
    /// A whole frame of the peer's was read, of any kind: a message, a
    /// keepalive, version 2's offer or a control (the first-message
    /// deadline's measure: see `crate::state::first_words`).
    framed: bool,
    /// Bytes received (TLS records included) as of the last read.
    raw_received: u64,
    /// Our offer is queued.
    offered: bool,
    /// Our messages are kept until acknowledged (see [`Outgoing`]).
    keep: bool,
    /// Bytes of them kept at most once the peer offered.
    keep_limit: usize,
    /// Bytes received, and plaintext bytes, when the offer was seen:
    /// progress from then on is counted in plaintext, controls left out.
    base: (u64, u64),
    /// Our half is finishing: the peer's messages are no longer taken,
    /// since no acknowledgement of them could follow our last one (see
    /// [`Conn::finish`]).
    deaf: bool,
}

/// A TLS session, shared by the loop and the thread that writes beside it.
type Session = Arc<Mutex<rustls::Connection>>;

/// The socket as another thread writes it while the loop holds nothing for
/// it, and what that thread wrote, which the loop counts as its own.
struct Beside {
    /// Let go when the connection is: the socket closes with its last handle.
    socket: Mutex<Option<std::net::TcpStream>>,
    /// The connection's TLS session, if it has one: lines are sealed in it.
    tls: Option<Session>,
    /// Bytes written to the socket (TLS records included).
    written: AtomicU64,
    /// Bytes of frames taken: wholly on the socket, or sealed under TLS.
    sealed: AtomicU64,
    /// How a send failed, if one did. Taken by the sender, the socket's
    /// error is not there for the loop's next read, which then meets an
    /// end of stream: it is told from here that the connection failed (a
    /// reset in a flood was read as the server's end, and the rest of the
    /// input dropped, exit 0).
    failed: Mutex<Option<(ErrorKind, String)>>,
    /// Only for a session's: for a version 1 peer, an end is an end.
    session: bool,
}

impl Beside {
    /// Writes what the socket takes of `bytes` at once; how many bytes of
    /// them were taken.
    fn send_now(&self, bytes: &[u8]) -> usize {
        let socket = crate::lock(&self.socket);
        let Some(socket) = socket.as_ref() else {
            return 0;
        };
        let taken = match &self.tls {
            None => match send_now(socket, bytes) {
                Ok(n) => {
                    self.written.fetch_add(n as u64, Ordering::SeqCst);
                    n
                }
                Err(e) => {
                    self.fail(&e);
                    0
                }
            },
            Some(tls) => self.seal_and_send(&mut crate::lock(tls), socket, bytes),
        };
        self.sealed.fetch_add(taken as u64, Ordering::SeqCst);
        taken
    }

    /// Under TLS: seals `bytes` a piece at a time, each once the socket
    /// took what was sealed before, so the session never holds more than
    /// a piece for the socket; what the socket has not taken when it is
    /// full the loop writes once it is writable again (it wants to write).
    fn seal_and_send(
        &self,
        tls: &mut rustls::Connection,
        mut socket: &std::net::TcpStream,
        bytes: &[u8],
    ) -> usize {
        let mut taken = 0;
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut socket) {
                    Ok(n) => {
                        self.written.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // Full: the loop writes the rest when it can.
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return taken,
                    Err(e) => {
                        self.fail(&e);
                        return taken;
                    }
                }
            }
            if taken == bytes.len() {
                return taken;
            }
            let end = bytes.len().min(taken + SEAL_CHUNK);
            if tls.writer().write_all(&bytes[taken..end]).is_err() {
                return taken;
            }
            taken = end;
        }
    }
}

impl Beside {
    fn fail(&self, e: &io::Error) {
        if !self.session {
            return;
        }
        crate::lock(&self.failed).get_or_insert_with(|| (e.kind(), e.to_string()));
    }

    /// How a send of this thread's failed, if one did.
    fn failure(&self) -> Option<io::Error> {
        crate::lock(&self.failed)
            .as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, max: usize) -> Self {
        let _ = stream.set_nodelay(true);
        Self {
            stream,
            tls: None,
            peer,
            max,
            pending: Vec::new(),
            out: Outgoing::default(),
            received: 0,
            written: 0,
            sent: 0,
            accepted: 0,
            moved: 0,
            send_failed: None,
            reset: false,
            readable: true,
            end_reported: false,
            read_end: None,
            sending: Sending::Open,
            shut_unreported: false,
            fin_queued: false,
            beside: None,
            wire: Wire {
                opening: Opening::Off,
                offer_untold: false,
                controls: Vec::new(),
                taken_frames: 0,
                taken_bytes: 0,
                numbering: false,
                numbered: 0,
                keep_limit: KEEP_LIMIT,
                control_bytes: 0,
                plain_received: 0,
                framed: false,
                raw_received: 0,
                offered: false,
                keep: true,
                base: (0, 0),
                deaf: false,
            },
        }
    }

    /// Speaks version 2: looks for the peer's offer.
    pub fn listen_for_sessions(&mut self) {
        if self.wire.opening == Opening::Off {
            self.wire.opening = Opening::Listening(0);
        }
    }

    /// Queues our offer, once (a client's first bytes; a server's answer
    /// to its client's offer, its `HELLO` right after): our messages are
    /// numbered from it on, and kept until acknowledged. Until the peer
    /// offers too, only [`BEFORE_OFFER_KEEP`] bytes are kept: a version 1
    /// peer never acknowledges.
    pub fn queue_offer(&mut self) {
        if !std::mem::replace(&mut self.wire.offered, true) {
            self.queue(&[0; OFFER_LEN]);
            self.wire.numbering = true;
            if self.wire.keep {
                self.out.keep_until_acknowledged();
                self.keep_at_most(self.wire.keep_limit);
            }
        }
    }

    /// The peer's offer was seen since the last call.
    pub fn take_offer(&mut self) -> bool {
        let offered = std::mem::take(&mut self.wire.offer_untold);
        if offered {
            self.out.keep_at_most(self.wire.keep_limit);
        }
        offered
    }

    /// Keeps at most `limit` bytes of our messages for the peer's
    /// acknowledgement, once it offered (before, less: see
    /// [`queue_offer`](Self::queue_offer)).
    pub fn keep_at_most(&mut self, limit: usize) {
        self.wire.keep_limit = limit;
        match self.wire.opening {
            Opening::Offered => self.out.keep_at_most(limit),
            _ => self.out.keep_at_most(limit.min(BEFORE_OFFER_KEEP)),
        }
    }

    /// Our messages queued since our offer.
    pub fn numbered(&self) -> u64 {
        self.wire.numbered
    }

    /// Our offer is queued: what we queue is numbered.
    pub fn numbered_from_offer(&self) -> bool {
        self.wire.numbering
    }

    /// A `BYE` is among the control frames read and not yet taken.
    pub fn bye_unseen(&self) -> bool {
        self.wire.controls.contains(&Control::Bye)
    }

    /// The control frames read since the last call.
    pub fn take_controls(&mut self) -> Vec<Control> {
        std::mem::take(&mut self.wire.controls)
    }

    /// Plaintext bytes read so far.
    pub fn plain_received(&self) -> u64 {
        self.wire.plain_received
    }

    /// Whether a whole frame of the peer's was read, of any kind.
    pub fn framed(&self) -> bool {
        self.wire.framed
    }

    /// Data frames of the peer's handed out since its offer, and bytes.
    pub fn taken(&self) -> (u64, u64) {
        (self.wire.taken_frames, self.wire.taken_bytes)
    }

    /// Queues a control frame. Returns false once our half is done.
    pub fn queue_control(&mut self, control: &Control) -> bool {
        if self.sending != Sending::Open {
            return false;
        }
        let mut frame = Vec::with_capacity(64);
        session::encode(&mut frame, control);
        self.out.push_copy(&frame, 0);
        self.accepted += frame.len() as u64;
        true
    }

    /// Queues a `BYE`: also while our half is finishing (what is queued
    /// still going, our end of stream not yet), for an ending given up
    /// (Ctrl-C with lines in flight: the `BYE` was refused, and a stopped
    /// server, continued, kept the conversation 300 s for nobody).
    pub fn queue_bye(&mut self) -> bool {
        if self.sending == Sending::Done {
            return false;
        }
        let mut frame = Vec::with_capacity(8);
        session::encode(&mut frame, &Control::Bye);
        self.out.push_copy(&frame, 0);
        self.accepted += frame.len() as u64;
        true
    }

    /// Queues our `HELLO` of a resumed session: what we queue after it is
    /// numbered from `first` on, as the session was.
    pub fn queue_resumed_hello(&mut self, hello: Hello, first: u64) -> bool {
        if !self.queue_control(&Control::Hello(hello)) {
            return false;
        }
        if self.wire.keep {
            self.out.keep_from(first);
        }
        true
    }

    /// Queues `frames`, `count` messages of ours sent before on another
    /// connection (see [`Outgoing::messages_from`]), numbered as they were.
    pub fn queue_again(&mut self, frames: &[u8], count: u64) {
        self.out.push_copy(frames, count);
        self.accepted += frames.len() as u64;
    }

    /// What we queue from now on is numbered from `first` on (a resumed
    /// session, once the peer said what it took).
    pub fn number_from(&mut self, first: u64) {
        if self.wire.keep {
            self.out.keep_from(first);
        }
    }

    /// The largest frame taken from the peer.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Lets the socket go (a reset: the link is lost, and a session that
    /// may be resumed goes on without it), keeping what is queued and
    /// kept for the connection that resumes it: from now on this holds
    /// what is sent meanwhile (an aborted one too), and writes nothing.
    pub fn disconnect(&mut self) {
        self.sending = Sending::Open;
        self.fin_queued = false;
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        if let Some(beside) = self.beside.take() {
            crate::lock(&beside.socket).take();
        }
        // Closed now, with a reset: a peer still reading it (one that was
        // stopped, and took our silence for its own) must not read an end
        // of stream, which is a clean end, but a failure, which it resumes.
        // (A shutdown would send an end of stream.) An unconnected socket
        // stands in for it.
        if let Ok(standing) = socket2::Socket::new(
            socket2::Domain::for_address(self.peer),
            socket2::Type::STREAM,
            None,
        ) {
            drop(std::mem::replace(
                &mut self.stream,
                TcpStream::from_std(standing.into()),
            ));
        } else {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        self.pending = Vec::new();
        self.readable = false;
        if self.read_end.is_none() {
            self.read_end = Some(None);
        }
    }

    /// Our messages from number `first` on, as frames to send again, and
    /// how many; `None` if not all of them are held.
    pub fn messages_from(&self, first: u64) -> Option<(Vec<u8>, u64)> {
        self.out.messages_from(first)
    }

    /// Reads what has come into the connection's pending bytes without
    /// handing anything out, up to `most` bytes held: the first bytes of a
    /// connection, to tell a resuming client from a new one. Its end, if
    /// it came, is kept for the reader that comes next: a reset read here
    /// is still a reset there.
    pub fn read_ahead(&mut self, scratch: &mut [u8], most: usize) -> Ahead {
        while self.pending.len() < most {
            if self.read_end.is_some() {
                return Ahead::Ended;
            }
            let room = (most - self.pending.len()).min(scratch.len());
            match self.read_plaintext(&mut scratch[..room]) {
                // An end of stream is read again by the next reader.
                Ok(0) => return Ahead::Ended,
                Ok(n) => {
                    self.wire.plain_received += n as u64;
                    self.wire.raw_received = self.received;
                    self.pending.extend_from_slice(&scratch[..n]);
                    if !self.readable {
                        return Ahead::Empty;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ahead::Empty;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end_reading(ReadEnd::Failed(e));
                    return Ahead::Ended;
                }
            }
        }
        Ahead::Full
    }

    /// Whether the peer's offer has come (see [`crate::wire::session`]).
    pub fn peer_offered(&self) -> bool {
        self.wire.opening == Opening::Offered
    }

    /// What [`read_ahead`](Self::read_ahead) holds, not yet handed out.
    pub fn ahead(&self) -> &[u8] {
        &self.pending
    }

    /// The peer took our first `count` messages.
    pub fn acknowledged(&mut self, count: u64) {
        self.out.acknowledge(count);
    }

    /// Message `number` of ours, if it is still held.
    pub fn message(&self, number: u64) -> Option<&[u8]> {
        self.out.message(number)
    }

    /// What we send is not kept for acknowledgement (a room's relays, by
    /// the thousand: what a member missed is the room's to know).
    pub fn keep_nothing(&mut self) {
        self.wire.keep = false;
        self.out.forget();
    }

    /// Whether our sending half is still open.
    pub fn sending_open(&self) -> bool {
        self.sending == Sending::Open
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// From now on the bytes are TLS records for `session` (a server's,
    /// before its handshake; or a client's, handshake done).
    pub fn start_tls(&mut self, mut session: rustls::Connection) {
        // What is sealed is bounded by SEAL_CHUNK per flush.
        session.set_buffer_limit(None);
        self.tls = Some(Arc::new(Mutex::new(session)));
    }

    pub fn tls(&self) -> Option<MutexGuard<'_, rustls::Connection>> {
        self.tls.as_ref().map(|tls| crate::lock(tls))
    }

    /// Bytes of frames wholly handed to the kernel (sealed, under TLS),
    /// by the loop or beside it.
    pub fn sent(&self) -> u64 {
        let beside = self.beside.as_ref();
        self.sent + beside.map_or(0, |beside| beside.sealed.load(Ordering::SeqCst))
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Whole frames read but not taken come first at the next read: a read
    /// may hand out more frames than its caller takes (the gate's code
    /// exchange takes frames one at a time, and the conversation's first
    /// ones may come in the same read as the client's proof).
    pub fn put_back(&mut self, frames: &[u8]) {
        self.pending.splice(0..0, frames.iter().copied());
    }

    /// The socket was reported readable. (Not once the receiving half has
    /// ended: a readiness report after the end, an error or a hang-up, must
    /// not make a read look possible again, or a reader loops on nothing.)
    pub fn set_readable(&mut self) {
        if self.read_end.is_none() {
            self.readable = true;
        }
    }

    /// The system reported the end of the receiving half, or an error.
    pub fn set_end_reported(&mut self) {
        self.end_reported = true;
    }

    /// Whether a read could bring something now: whole frames are pending,
    /// or the socket has not said it is empty, or an end is to be told.
    pub fn can_read(&self) -> bool {
        let controls = self.wire.opening == Opening::Offered;
        self.readable
            || self.read_end.as_ref().is_some_and(Option::is_some)
            || {
                matches!(payload_len(&self.pending, self.max, controls), Some(Ok(len)) if self.pending.len() >= HEADER_LEN + len)
            }
    }

    /// Whether the receiving half has ended (told or not).
    pub fn read_ended(&self) -> bool {
        self.read_end.is_some()
    }

    /// Moves whole frames (headers included) into `into`, about `limit`
    /// bytes at most (one frame always, if one is there), reading the
    /// socket through `scratch` as needed. Returns how the receiving half
    /// ended, once, when it has.
    pub fn read_frames(
        &mut self,
        scratch: &mut [u8],
        into: &mut Vec<u8>,
        limit: usize,
    ) -> Option<ReadEnd> {
        self.read_with(scratch, limit, |frames| into.extend_from_slice(frames))
    }

    /// [`read_frames`](Self::read_frames), handing each run of whole frames
    /// to `each` where it lies (most often in `scratch`, straight from the
    /// socket), without a copy.
    pub fn read_with(
        &mut self,
        scratch: &mut [u8],
        limit: usize,
        mut each: impl FnMut(&[u8]),
    ) -> Option<ReadEnd> {
        let mut taken = 0;
        loop {
            // Whole frames held from before; control frames alone took
            // nothing, so the frames after them are looked at too, and so
            // are the frames after the peer's offer, read as version 2's.
            while !self.pending.is_empty() {
                let controls = self.wire.opening == Opening::Offered;
                let room = limit.saturating_sub(taken).max(1);
                match whole_frames(&self.pending, self.max, room, controls) {
                    Ok(0) => break,
                    Ok(n) => {
                        let handed = hand_out(&mut self.wire, &self.pending[..n], &mut each);
                        self.pending.drain(..n);
                        if self.pending.is_empty() && self.pending.capacity() > KEEP_CAPACITY {
                            self.pending = Vec::new();
                        }
                        let handed = self.check(handed);
                        taken += handed;
                        let offered = !controls && self.wire.opening == Opening::Offered;
                        if (handed > 0 && !offered) || self.read_end.is_some() {
                            break;
                        }
                    }
                    Err(too_long) => {
                        self.end_reading(ReadEnd::Failed(too_long_error(too_long)));
                        break;
                    }
                }
            }
            if taken >= limit || taken > 0 && !self.pending.is_empty() {
                return None;
            }
            if let Some(end) = &mut self.read_end {
                self.readable = false;
                return end.take();
            }
            if !self.readable {
                return None;
            }
            // The socket is asked for no more than the caller takes (and
            // at least a little): what it does not take waits in the
            // system, and past that in the peer's, which TCP holds back,
            // rather than here (a room reading its talkers in turns kept
            // up to the whole scratch buffer for each of them).
            let want = limit.saturating_sub(taken).max(MIN_READ).min(scratch.len());
            match self.read_plaintext(&mut scratch[..want]) {
                Ok(0) => {
                    let end = match self.pending.is_empty() {
                        true => ReadEnd::Closed,
                        false => ReadEnd::Failed(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "connection closed mid-message",
                        )),
                    };
                    self.end_reading(end);
                }
                Ok(n) => {
                    self.wire.plain_received += n as u64;
                    self.wire.raw_received = self.received;
                    let mut got = &scratch[..n];
                    let controls = self.wire.opening == Opening::Offered;
                    if !self.pending.is_empty() {
                        // The frame begun in an earlier read is completed
                        // from this one, and the rest taken where it lies:
                        // appending each read to `pending` (a partial frame
                        // is left by nearly every read of a flood) copied
                        // every byte once more.
                        let Some(need) = completing(&self.pending, got, self.max, controls) else {
                            self.pending.extend_from_slice(got);
                            continue;
                        };
                        self.pending.extend_from_slice(&got[..need]);
                        got = &got[need..];
                        let handed = hand_out(&mut self.wire, &self.pending, &mut each);
                        self.pending.clear();
                        if self.pending.capacity() > KEEP_CAPACITY {
                            self.pending = Vec::new();
                        }
                        taken += self.check(handed);
                        if self.read_end.is_some() {
                            continue;
                        }
                        if taken >= limit {
                            self.pending.extend_from_slice(got);
                            continue;
                        }
                    }
                    // The usual case: whole frames straight from the
                    // scratch buffer, only a tail kept.
                    match scan_whole(got, self.max, limit - taken, controls) {
                        Ok(whole) => {
                            if whole.end > 0 {
                                let run = &got[..whole.end];
                                let handed =
                                    hand_out_scanned(&mut self.wire, run, whole, &mut each);
                                taken += self.check(handed);
                                if self.read_end.is_some() {
                                    continue;
                                }
                            }
                            self.pending.extend_from_slice(&got[whole.end..]);
                        }
                        Err(too_long) => {
                            self.end_reading(ReadEnd::Failed(too_long_error(too_long)))
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => self.end_reading(ReadEnd::Failed(e)),
            }
        }
    }

    /// Bytes of messages handed out; ends reading if handing frames out
    /// met a bad control frame.
    fn check(&mut self, handed: Result<usize, session::BadControl>) -> usize {
        match handed {
            Ok(n) => n,
            Err(bad) => {
                self.end_reading(ReadEnd::Failed(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("the peer broke the protocol: {bad}"),
                )));
                0
            }
        }
    }

    fn end_reading(&mut self, end: ReadEnd) {
        self.readable = false;
        if let ReadEnd::Failed(e) = &end
            && e.kind() == ErrorKind::ConnectionReset
        {
            self.reset = true;
        }
        if self.read_end.is_none() {
            self.read_end = Some(Some(end));
        }
    }

    /// Reads plaintext into `buf`: straight from the socket, or what TLS
    /// records decrypt to. 0 is the end of the stream.
    fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_plaintext_as_is(buf)?;
        // An end of stream after a send failed is that failure: the send
        // took the socket's error, and the read meets only the end its
        // reset left (a reset in a flood was read as the server's end, the
        // rest of the input dropped, exit 0; a server that met its client's
        // reset in an `ACK` took it for the client's end, not resumed).
        // Not a broken pipe: a reset after the peer's end of stream is
        // one (Linux), and then that end came first and is the peer's.
        let failed = |kind: &ErrorKind| *kind != ErrorKind::BrokenPipe;
        if n == 0 {
            if let Some((kind, text)) = self.send_failed.as_ref().filter(|(kind, _)| failed(kind)) {
                return Err(io::Error::new(*kind, text.clone()));
            }
            if let Some(failure) = self.beside.as_ref().and_then(|beside| beside.failure())
                && failed(&failure.kind())
            {
                return Err(failure);
            }
        }
        Ok(n)
    }

    /// [`read_plaintext`](Self::read_plaintext), an end of stream as it is.
    fn read_plaintext_as_is(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            let n = self.stream.read(buf)?;
            self.received += n as u64;
            // A read that left room in `buf` emptied the socket, and what
            // comes next is reported anew: no second read just to meet
            // `WouldBlock` (a system call more for each message, of three).
            // Not once an end was reported: the end is seen by reading it.
            if SHORT_READ_DRAINS && 0 < n && n < buf.len() && !self.end_reported {
                self.readable = false;
            }
            return Ok(n);
        };
        let mut tls = crate::lock(tls);
        loop {
            match tls.reader().read(buf) {
                // The peer's close_notify.
                Ok(0) => return Ok(0),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The TCP stream ended without a close_notify: an end like
                // any other, and the frames decide whether it was clean.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let n = tls.read_tls(&mut self.stream)?;
            self.received += n as u64;
            if n == 0 {
                // rustls now knows the stream ended; what it holds comes next.
                if let Err(e) = tls.process_new_packets() {
                    return Err(tls_error(e));
                }
                continue;
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the peer why, as far as the socket takes it.
                let _ = tls.write_tls(&mut self.stream);
                return Err(tls_error(e));
            }
        }
    }

    /// Drives a TLS handshake as far as the socket allows: `Ok(true)` once
    /// it is complete.
    pub fn handshake(&mut self) -> Result<bool, Handshake> {
        let Some(tls) = &self.tls else {
            return Ok(true);
        };
        let mut tls = crate::lock(tls);
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(n) => self.written += n as u64,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Handshake::Io(e)),
                }
            }
            if !tls.is_handshaking() {
                return Ok(true);
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => return Err(Handshake::Closed),
                Ok(n) => self.received += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Handshake::Io(e)),
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the peer why (the alert rustls queued), then give up.
                let _ = tls.write_tls(&mut self.stream);
                return Err(Handshake::Tls(e));
            }
        }
    }

    /// Queues `frames` to send (after what is queued); dropped once our
    /// half is done. Returns how many are numbered messages of the session.
    pub fn queue(&mut self, frames: &[u8]) -> u64 {
        if self.sending == Sending::Done {
            return 0;
        }
        let numbered = self.count_numbered(frames);
        self.out.push_copy(frames, numbered);
        self.accepted += frames.len() as u64;
        numbered
    }

    /// Queues the frames in `batch` without a copy, leaving it an empty
    /// buffer to fill again (see [`Outgoing::push_batch`]). Returns how
    /// many are numbered messages of the session.
    pub fn queue_batch(&mut self, batch: &mut Vec<u8>) -> u64 {
        if self.sending == Sending::Done {
            batch.clear();
            return 0;
        }
        let numbered = self.count_numbered(batch);
        self.accepted += batch.len() as u64;
        self.out.push_batch(batch, numbered);
        numbered
    }

    /// How many of `frames` (ours: data frames only) count as the session's
    /// messages: every one with a payload, once our offer has gone.
    fn count_numbered(&mut self, frames: &[u8]) -> u64 {
        let numbered = match self.wire.numbering {
            true => split_frames(frames)
                .filter(|frame| frame.len() > HEADER_LEN)
                .count() as u64,
            false => 0,
        };
        self.wire.numbered += numbered;
        numbered
    }

    /// Bytes queued that the socket has not yet taken: what this
    /// connection holds for its peer.
    pub fn unsent(&self) -> usize {
        self.out.len()
    }

    /// [`unsent`](Self::unsent), and what was written and is kept until
    /// the peer acknowledges it.
    pub fn held(&self) -> usize {
        match self.wire.opening {
            Opening::Offered => self.out.len() + self.out.kept(),
            // Kept in case the peer turns out to speak version 2: a
            // version 1 peer never acknowledges, and must not be waited for.
            _ => self.out.len(),
        }
    }

    /// Takes in a batch the thread beside wrote (see
    /// [`Outgoing::take_written`]): its messages are numbered and kept, and
    /// what the socket did not take of it goes first. Returns emptied
    /// buffers for that thread to fill.
    pub fn take_written(
        &mut self,
        written: crate::console::outbox::Written,
        spares: &mut Vec<Vec<u8>>,
    ) {
        let numbered = match self.wire.numbering {
            true => written.messages,
            false => 0,
        };
        self.wire.numbered += numbered;
        // What the socket took is counted where the thread beside counts
        // it (see `observe`); the rest is queued here.
        self.accepted += written.frames.len().saturating_sub(written.written) as u64;
        self.out
            .take_written(written.frames, numbered, written.written);
        if let Some(spare) = self.out.spare() {
            spares.push(spare);
        }
    }

    /// An emptied buffer, to lend where batches are filled.
    pub fn spare(&mut self) -> Option<Vec<u8>> {
        self.out.spare()
    }

    /// Whether there is something to write.
    pub fn wants_write(&self) -> bool {
        self.unsent() > 0
            || self
                .tls
                .as_ref()
                .is_some_and(|tls| crate::lock(tls).wants_write())
            || self.sending == Sending::Finishing
    }

    /// Whether another thread may write the socket now: our half is open
    /// and nothing is queued or sealed here.
    pub fn idle_open(&self) -> bool {
        self.sending == Sending::Open && !self.wants_write()
    }

    /// A way for another thread to write the socket at once, without
    /// waiting, whose bytes count as this connection's (sealed in the
    /// shared session under TLS), where a send can be made without waiting
    /// (`None` otherwise). The caller keeps the two from writing at the
    /// same time. With a session (`session`), a send that failed there
    /// makes the loop's next end of stream that failure (see
    /// `Beside::failed`): a session's loss is resumed, its end is not.
    pub fn write_beside(&mut self, session: bool) -> Option<WriteNow> {
        if !SENDS_NOW {
            return None;
        }
        let socket = socket2::SockRef::from(&self.stream).try_clone().ok()?;
        let beside = Arc::new(Beside {
            socket: Mutex::new(Some(socket.into())),
            tls: self.tls.clone(),
            written: AtomicU64::new(0),
            sealed: AtomicU64::new(0),
            failed: Mutex::new(None),
            session,
        });
        self.beside = Some(Arc::clone(&beside));
        Some(Box::new(move |bytes| Some(beside.send_now(bytes))))
    }

    /// Send what is queued, then shut our half down.
    pub fn finish(&mut self) {
        if self.sending == Sending::Open {
            // On purpose, in order: a peer that offered and has our offer
            // reads `END` before our end of stream, and takes an end of
            // stream without it for our program gone (see
            // [`session::SAYS_END`]). (Not to one that did not offer: a
            // version 1 peer reads a control frame as a huge message.)
            if self.wire.numbering && self.wire.opening == Opening::Offered {
                self.queue_control(&Control::End);
            }
            self.sending = Sending::Finishing;
        }
    }

    /// A version 2 peer's messages are not taken from now on (we end the
    /// conversation, and our last acknowledgement is queued): a message
    /// shown after it would be one the peer reports as not delivered (a
    /// line typed as the other side's operator quit was shown, and its
    /// sender said it was lost).
    pub fn take_no_more(&mut self) {
        self.wire.deaf |= self.wire.opening == Opening::Offered;
    }

    /// Our half was shut down since the last call.
    pub fn finished_sending(&mut self) -> bool {
        std::mem::take(&mut self.shut_unreported)
    }

    /// Writes what is queued, as far as the socket takes it.
    pub fn flush(&mut self) -> Flushed {
        match self.write_out() {
            Ok(true) => {}
            Ok(false) => return Flushed::Blocked,
            Err(e) => {
                self.sending = Sending::Done;
                self.out.clear();
                self.note_send_failure(&e);
                return Flushed::Failed(e);
            }
        }
        if self.sending == Sending::Finishing {
            if let Some(tls) = &self.tls {
                crate::lock(tls).send_close_notify();
                match self.write_out() {
                    Ok(true) => {}
                    Ok(false) => return Flushed::Blocked,
                    Err(e) => {
                        self.sending = Sending::Done;
                        self.note_send_failure(&e);
                        return Flushed::Failed(e);
                    }
                }
            }
            self.sending = Sending::Done;
            match self.stream.shutdown(Shutdown::Write) {
                Ok(()) => self.fin_queued = true,
                // The peer may already be gone entirely; that is its end,
                // not our error.
                Err(e) if e.kind() == ErrorKind::NotConnected => {}
                Err(e) => {
                    self.note_send_failure(&e);
                    return Flushed::Failed(e);
                }
            }
            self.shut_unreported = true;
        }
        Flushed::Idle
    }

    /// Whether the connection ended in a reset (read, or met by a send
    /// here or beside), not in silence or an end of stream. A send's broken
    /// pipe is one: a reset that came after the peer's end of stream (on
    /// Linux; a program killed with nothing unread closes, and our next
    /// bytes draw the reset), or after another took the first.
    pub fn was_reset(&self) -> bool {
        self.reset
            || self
                .beside
                .as_ref()
                .and_then(|beside| beside.failure())
                .is_some_and(|e| is_reset(e.kind()))
    }

    /// Keeps how our first send failed, for a version 2 peer's session
    /// (for a version 1 peer, an end is an end), as [`Beside`] does.
    fn note_send_failure(&mut self, e: &io::Error) {
        self.reset |= is_reset(e.kind());
        if self.wire.numbering && self.send_failed.is_none() {
            self.send_failed = Some((e.kind(), e.to_string()));
        }
    }

    /// Ok(true) once everything queued (and sealed) is on the socket.
    fn write_out(&mut self) -> io::Result<bool> {
        loop {
            if let Some(tls) = &self.tls {
                let mut tls = crate::lock(tls);
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(n) => self.written += n as u64,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if self.out.is_empty() {
                    break;
                }
                let piece = self.out.front(SEAL_CHUNK);
                tls.writer().write_all(piece)?;
                let n = piece.len();
                self.sent += n as u64;
                self.out.consume(n);
                continue;
            }
            if self.out.is_empty() {
                break;
            }
            match self.stream.write(self.out.front(usize::MAX)) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.consume(n);
                    self.written += n as u64;
                    self.sent += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Nothing has reached the kernel yet: what is queued (our offer and
    /// `HELLO`) is dropped for `frames`, which go first and alone, as far
    /// as the socket takes them now (a refusal, before an abort).
    pub fn say_instead(&mut self, frames: &[u8]) {
        if self.sent() > 0 || self.tls.is_some() {
            return;
        }
        self.out.clear();
        self.out.push_copy(frames, 0);
        let _ = self.write_out();
    }

    /// Stops both halves now: what is queued is dropped and the socket shut
    /// down both ways. Closed with unread bytes, it sends a reset: what the
    /// peer was still sending was not taken (otherwise a peer blocked on
    /// our full window would wait for its kernel to give up on us).
    pub fn abort(&mut self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        if self.stream.shutdown(Shutdown::Both).is_ok() && self.sending != Sending::Done {
            self.fin_queued = true;
        }
        self.sending = Sending::Done;
        self.out.clear();
        self.pending = Vec::new();
        self.readable = false;
        if self.read_end.is_none() {
            self.read_end = Some(None);
        }
    }

    /// Closing the socket (dropping this) resets the connection: the peer
    /// reads a failure, not an end of stream.
    pub fn reset_when_closed(&mut self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Bytes moved so far and not yet delivered, for [`crate::state::ending`].
    pub fn observe(&mut self) -> Observed {
        if let Some(beside) = &self.beside {
            // Taken and sent (sealed) in one go, as far as the counts go.
            let sealed = beside.sealed.swap(0, Ordering::SeqCst);
            self.accepted += sealed;
            self.sent += sealed;
            self.written += beside.written.swap(0, Ordering::SeqCst);
        }
        let fin = u64::from(self.fin_queued);
        let unacked = unacknowledged(socket2::SockRef::from(&self.stream))
            .unwrap_or(0)
            .saturating_sub(fin)
            .min(self.written);
        // A peer's heartbeats and acknowledgements are not progress: a
        // peer that reads nothing must not look alive for its pings.
        let received = match self.wire.opening {
            Opening::Offered => {
                let (raw, plain) = self.wire.base;
                raw + (self.wire.plain_received - plain).saturating_sub(self.wire.control_bytes)
            }
            _ => self.received,
        };
        let moved = received + self.written - unacked;
        self.moved = self.moved.max(moved);
        Observed {
            moved: self.moved,
            undelivered: self.accepted.saturating_sub(self.sent) + unacked,
            backlogged: false,
            silent: None,
            unanswered: match unacked {
                0 => None,
                _ => crate::platform::unanswered_for(socket2::SockRef::from(&self.stream)),
            },
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The other thread's handle goes too, so that the socket closes now
        // (a reset, if the connection was aborted), not when that thread
        // lets go of its writer.
        if let Some(beside) = &self.beside {
            crate::lock(&beside.socket).take();
        }
    }
}

/// How many bytes of `got` complete the one frame `pending` begins, if
/// `got` holds them and the frame is within its maximum (otherwise `None`).
fn completing(pending: &[u8], got: &[u8], max: usize, controls: bool) -> Option<usize> {
    let mut header = [0; HEADER_LEN];
    let from_pending = pending.len().min(HEADER_LEN);
    header[..from_pending].copy_from_slice(&pending[..from_pending]);
    let from_got = HEADER_LEN - from_pending;
    header[from_pending..].copy_from_slice(got.get(..from_got)?);
    let len = payload_len(&header, max, controls)?.ok()?;
    let need = (HEADER_LEN + len).checked_sub(pending.len())?;
    (need <= got.len()).then_some(need)
}

/// The payload length the header at the start of `bytes` declares, checked
/// against its maximum: `max` for a message, [`CONTROL_MAX`] for a control
/// frame (where the peer may send them: `controls`).
fn payload_len(bytes: &[u8], max: usize, controls: bool) -> Option<Result<usize, TooLong>> {
    let (len, max) = match controls {
        false => (read_header(bytes)?, max),
        true => match session::read_header(bytes)? {
            Header::Data(len) => (len, max),
            Header::Control(len) => (len, CONTROL_MAX),
        },
    };
    Some(match len > max {
        true => Err(TooLong { len, max }),
        false => Ok(len),
    })
}

/// How many bytes at the start of `buf` are whole frames, about `limit` at
/// most (one frame always, if one is there); a header over its maximum is
/// an error once every frame before it is counted (none of its payload is
/// ever kept).
fn whole_frames(buf: &[u8], max: usize, limit: usize, controls: bool) -> Result<usize, TooLong> {
    scan_whole(buf, max, limit, controls).map(|whole| whole.end)
}

/// What [`scan_whole`] found: the end of the whole frames, and what
/// [`hand_out`] would count in them, so that it need not walk them again
/// (a second walk of every header was an eighth of a flooded server's CPU).
#[derive(Debug, Clone, Copy, Default)]
struct Whole {
    end: usize,
    /// Data frames with a payload, and their payloads' bytes.
    messages: u64,
    bytes: u64,
    /// A control frame is among them.
    control: bool,
}

/// [`whole_frames`], with what the frames are.
fn scan_whole(buf: &[u8], max: usize, limit: usize, controls: bool) -> Result<Whole, TooLong> {
    let mut whole = Whole::default();
    while let Some(len) = payload_len(&buf[whole.end..], max, controls) {
        let len = match len {
            Ok(len) => len,
            Err(too_long) => {
                return match whole.end {
                    0 => Err(too_long),
                    _ => Ok(whole),
                };
            }
        };
        let next = whole.end + HEADER_LEN + len;
        if next > buf.len() || (whole.end > 0 && next > limit) {
            break;
        }
        if controls && buf[whole.end] & 0x80 != 0 {
            whole.control = true;
        } else if len > 0 {
            whole.messages += 1;
            whole.bytes += len as u64;
        }
        whole.end = next;
    }
    Ok(whole)
}

/// [`hand_out`] of `run`, whose frames `whole` describes: at once when
/// they are a version 2 peer's messages alone, the usual case.
fn hand_out_scanned(
    wire: &mut Wire,
    run: &[u8],
    whole: Whole,
    each: &mut impl FnMut(&[u8]),
) -> Result<usize, session::BadControl> {
    if wire.opening != Opening::Offered || whole.control || wire.deaf {
        return hand_out(wire, run, each);
    }
    wire.framed |= !run.is_empty();
    wire.taken_frames += whole.messages;
    wire.taken_bytes += whole.bytes;
    each(run);
    Ok(run.len())
}

/// Hands the whole frames in `run` to `each`, but, from a peer that
/// offered version 2, its control frames, which are kept in `wire`; counts
/// the messages handed out after the peer's `HELLO`. Returns the bytes
/// handed out: a read of control frames alone took nothing, and reading
/// goes on (or a reader would stop with the socket not yet empty, and no
/// readiness report to come for it).
fn hand_out(
    wire: &mut Wire,
    run: &[u8],
    each: &mut impl FnMut(&[u8]),
) -> Result<usize, session::BadControl> {
    wire.framed |= !run.is_empty();
    match wire.opening {
        Opening::Off => {
            each(run);
            return Ok(run.len());
        }
        Opening::Listening(_) => {
            let offered = look_for_offer(wire, run);
            if offered == 0 {
                each(run);
                return Ok(run.len());
            }
            // The frames before the offer are a version 1 stream's; the
            // rest are read as version 2's.
            each(&run[..offered]);
            return Ok(offered + hand_out(wire, &run[offered..], each)?);
        }
        Opening::Offered => {}
    }
    let mut handed = 0;
    let mut start = 0;
    let mut at = 0;
    while let Some(header) = session::read_header(&run[at..]) {
        match header {
            // Not taken: the peer counts it as not delivered.
            Header::Data(len) if len > 0 && wire.deaf => {
                if at > start {
                    each(&run[start..at]);
                    handed += at - start;
                }
                at += HEADER_LEN + len;
                start = at;
            }
            Header::Data(len) => {
                if len > 0 {
                    wire.taken_frames += 1;
                    wire.taken_bytes += len as u64;
                }
                at += HEADER_LEN + len;
            }
            Header::Control(len) => {
                if at > start {
                    each(&run[start..at]);
                    handed += at - start;
                }
                let payload = &run[at + HEADER_LEN..at + HEADER_LEN + len];
                wire.control_bytes += (HEADER_LEN + len) as u64;
                at += HEADER_LEN + len;
                start = at;
                if let Some(control) = session::decode(payload)? {
                    wire.controls.push(control);
                }
            }
        }
    }
    if at > start {
        each(&run[start..at]);
        handed += at - start;
    }
    Ok(handed)
}

/// Counts the empty frames in a row in `run`, looking for the offer: once
/// it is complete, the peer speaks version 2, and the length of `run` up
/// to the offer's end is returned (0 while there is none).
fn look_for_offer(wire: &mut Wire, run: &[u8]) -> usize {
    let Opening::Listening(mut empty) = wire.opening else {
        return 0;
    };
    let mut at = 0;
    for frame in split_frames(run) {
        at += frame.len();
        empty = match frame.len() == HEADER_LEN {
            true => empty + 1,
            false => 0,
        };
        if empty == OFFER_FRAMES {
            wire.opening = Opening::Offered;
            wire.offer_untold = true;
            wire.base = (wire.raw_received, wire.plain_received);
            return at;
        }
    }
    wire.opening = Opening::Listening(empty);
    0
}

/// How a TLS handshake failed.
#[derive(Debug)]
pub enum Handshake {
    Tls(rustls::Error),
    Closed,
    Io(io::Error),
}

/// A TLS failure on an established connection, as an I/O error.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, crate::errors::TlsFailure(e))
}

/// Whether a send failed with `kind` because the peer reset the connection.
fn is_reset(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::encode_frame;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(&mut out, p, usize::MAX).unwrap();
        }
        out
    }

    /// A peer's `HELLO` opening a session.
    fn a_hello() -> session::Hello {
        session::Hello {
            version: session::VERSION,
            token: [1; 16],
            resume_of: [0; 16],
            received: 0,
            heartbeat_ms: 1000,
            takes: session::TAKES,
            max_message: 1 << 20,
        }
    }

    /// A connection over a loopback pair, and the peer's end of it.
    fn pair() -> (Conn, std::net::TcpStream) {
        pair_up_to(1 << 20)
    }

    /// [`pair`], with messages of up to `max` bytes.
    fn pair_up_to(max: usize) -> (Conn, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, addr) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (Conn::new(TcpStream::from_std(ours), addr, max), peer)
    }

    /// A header that declares a huge message (64 MiB, within the maximum)
    /// followed by a little of it: what is held for the frame grows with
    /// the bytes that came, never to what was declared. (The process's
    /// memory cannot show this: an allocation of the declared size that is
    /// never written costs no resident memory; its capacity shows it.)
    #[test]
    fn a_huge_declared_message_holds_only_the_bytes_that_came() {
        use std::io::Write;
        const DECLARED: usize = 67_108_000;
        const SENT: usize = 10 << 20;
        let (mut conn, mut peer) = pair_up_to(64 << 20);
        let sender = std::thread::spawn(move || {
            peer.write_all(&(DECLARED as u32).to_be_bytes()).unwrap();
            // In pieces of all sizes, so that reads end anywhere.
            let mut left = SENT;
            let mut piece = 1;
            while left > 0 {
                let n = piece.min(left);
                peer.write_all(&vec![b'x'; n]).unwrap();
                left -= n;
                piece = piece * 3 % 100_003 + 1;
            }
            // Kept open: the message stays partial, never "closed mid-message".
            peer
        });
        // The loop's own scratch size.
        let mut scratch = vec![0; 256 * 1024];
        let mut got = Vec::new();
        let mut most = (0, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while conn.pending.len() < HEADER_LEN + SENT {
            assert!(
                conn.read_frames(&mut scratch, &mut got, usize::MAX)
                    .is_none(),
                "the peer is still sending"
            );
            let (held, capacity) = (conn.pending.len(), conn.pending.capacity());
            // A buffer that doubles as it grows: at most twice what it holds.
            assert!(
                capacity <= 2 * held.max(scratch.len()),
                "{capacity} bytes reserved for {held} received"
            );
            most = (most.0.max(held), most.1.max(capacity));
            assert!(std::time::Instant::now() < deadline, "{most:?} so far");
            std::thread::sleep(Duration::from_micros(100));
            conn.set_readable();
        }
        let _peer = sender.join().unwrap();
        assert!(got.is_empty(), "nothing handed out");
        assert!(most.1 < DECLARED / 2, "{most:?}");
    }

    /// The gate's code exchange takes one frame at a time, but a read may
    /// bring more: those it does not take are put back, and come first at
    /// the next read, before what the socket brings.
    #[test]
    fn frames_put_back_come_first_at_the_next_read() {
        use std::io::Write;
        let (mut conn, mut peer) = pair();
        peer.write_all(&frames(&[b"proof", b"first", b"second"]))
            .unwrap();
        let mut scratch = vec![0; 1024];
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < frames(&[b"proof", b"first", b"second"]).len() {
            assert!(
                conn.read_frames(&mut scratch, &mut got, usize::MAX)
                    .is_none()
            );
            assert!(std::time::Instant::now() < deadline, "{got:?}");
            conn.set_readable();
        }
        let proof = frames(&[b"proof"]).len();
        conn.put_back(&got[proof..]);
        assert!(conn.can_read());
        peer.write_all(&frames(&[b"third"])).unwrap();
        let mut rest = Vec::new();
        while rest.len() < frames(&[b"first", b"second", b"third"]).len() {
            assert!(
                conn.read_frames(&mut scratch, &mut rest, usize::MAX)
                    .is_none()
            );
            assert!(std::time::Instant::now() < deadline, "{rest:?}");
            conn.set_readable();
        }
        assert_eq!(rest, frames(&[b"first", b"second", b"third"]));
    }

    #[test]
    fn after_its_end_a_connection_is_never_readable_again() {
        use std::io::Write;
        let (mut conn, mut peer) = pair();
        peer.write_all(&frames(&[b"last"])).unwrap();
        drop(peer);
        let mut scratch = vec![0; 1024];
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let end = loop {
            if let Some(end) = conn.read_frames(&mut scratch, &mut got, usize::MAX) {
                break end;
            }
            assert!(std::time::Instant::now() < deadline, "no end");
            conn.set_readable();
        };
        assert!(matches!(end, ReadEnd::Closed), "{end:?}");
        assert_eq!(got, frames(&[b"last"]));
        // A readiness report after the end (a hang-up, the Windows
        // recheck, a read put off to the next round) changes nothing.
        conn.set_readable();
        assert!(!conn.can_read());
        assert!(
            conn.read_frames(&mut scratch, &mut got, usize::MAX)
                .is_none()
        );
        assert!(!conn.can_read());
    }

    #[cfg(unix)]
    #[test]
    fn bytes_written_beside_count_and_the_socket_closes_with_the_connection() {
        use std::io::Read;
        let (mut conn, mut peer) = pair();
        let write_now = conn.write_beside(false).expect("plain TCP on Unix");
        let line = frames(&[b"typed"]);
        assert_eq!(write_now(&line), Some(line.len()));
        let mut got = vec![0; line.len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, line);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let seen = conn.observe();
            if seen.moved == line.len() as u64 {
                assert_eq!(seen.undelivered, 0);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not counted");
            std::thread::sleep(Duration::from_millis(1));
        }
        // The other thread still holds its writer; the socket closes anyway.
        drop(conn);
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(peer.read(&mut got).unwrap(), 0, "end of stream");
        assert_eq!(write_now(&line), Some(0));
    }

    /// Reads everything `conn` gets until its end, `limit` at a time, as a
    /// service would (stopping when a read hands nothing).
    fn read_all(conn: &mut Conn, limit: usize, scratch: usize) -> (Vec<u8>, ReadEnd) {
        let mut scratch = vec![0; scratch];
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = conn.read_frames(&mut scratch, &mut got, limit) {
                return (got, end);
            }
            // A service that is told there is nothing to read waits for
            // the socket to say more came: whole frames held must be
            // told, whatever the socket says.
            let controls = conn.wire.opening == Opening::Offered;
            if whole_frames(&conn.pending, conn.max, usize::MAX, controls) != Ok(0) {
                let readable = std::mem::replace(&mut conn.readable, false);
                assert!(
                    conn.can_read(),
                    "whole frames held, and the reader told there is nothing"
                );
                conn.readable = readable;
            }
            assert!(std::time::Instant::now() < deadline, "no end");
            std::thread::sleep(Duration::from_millis(1));
            conn.set_readable();
        }
    }

    /// A client's line written after its offer and before the server's
    /// `HELLO` (typed while the server's answer was on its way) is the
    /// session's first message on both sides: counted by the reader, and
    /// numbered and kept by the writer, so that a path that dies with it
    /// in flight has it sent again on resume.
    #[test]
    fn messages_are_counted_from_the_offer_not_the_hello() {
        use std::io::Write;
        let mut bytes = vec![0; OFFER_LEN];
        bytes.extend_from_slice(&frames(&[b"typed at once"]));
        let hello = a_hello();
        session::encode(&mut bytes, &Control::Hello(hello));
        bytes.extend_from_slice(&frames(&[b"later"]));
        let (mut conn, mut peer) = pair();
        conn.listen_for_sessions();
        peer.write_all(&bytes).unwrap();
        drop(peer);
        let (_, end) = read_all(&mut conn, 1 << 16, 4096);
        assert!(matches!(end, ReadEnd::Closed), "{end:?}");
        assert!(conn.take_offer());
        assert_eq!(conn.taken(), (2, 18));

        let (mut conn, mut peer) = pair();
        conn.listen_for_sessions();
        conn.queue_offer();
        conn.queue(&frames(&[b"typed at once"]));
        assert_eq!(conn.numbered(), 1);
        assert!(matches!(conn.flush(), Flushed::Idle), "written whole");
        // Kept, but not waited for while the peer may speak version 1
        // only, which never acknowledges.
        assert_eq!(conn.held(), 0);
        assert_eq!(conn.message(1), Some(&b"typed at once"[..]));
        peer.write_all(&[0; OFFER_LEN]).unwrap();
        peer.flush().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !conn.take_offer() {
            conn.readable = true;
            conn.read_frames(&mut [0; 64], &mut Vec::new(), 64);
            assert!(std::time::Instant::now() < deadline, "no offer read");
        }
        // (The offer shares the kept buffer.)
        assert_eq!(conn.held(), OFFER_LEN + HEADER_LEN + 13);
        let (again, count) = conn.messages_from(1).expect("kept");
        assert_eq!((again, count), (frames(&[b"typed at once"]), 1));
    }

    #[test]
    fn a_peer_that_offers_version_2_has_its_controls_kept_apart_and_its_messages_counted() {
        use std::io::Write;
        // A room greets before it has seen its client's offer and answered.
        let mut bytes = frames(&[b"greeting"]);
        bytes.extend_from_slice(&[0; OFFER_LEN]);
        let hello = a_hello();
        session::encode(&mut bytes, &Control::Hello(hello.clone()));
        // Controls alone, many of them, then messages: a reader taking a
        // frame at a time must not stop at the controls.
        for n in 0..40 {
            session::encode(&mut bytes, &Control::Ack(n));
        }
        bytes.extend_from_slice(&frames(&[b"hi", b"", b"there"]));
        session::encode(&mut bytes, &Control::Ping);
        // Written a few bytes at a time (the offer and the frames come in
        // pieces), or at once.
        for (piece, scratch) in [(7, 64), (bytes.len(), 4096)] {
            let (mut conn, mut peer) = pair();
            conn.listen_for_sessions();
            for piece in bytes.chunks(piece) {
                peer.write_all(piece).unwrap();
                peer.flush().unwrap();
            }
            drop(peer);
            let (got, end) = read_all(&mut conn, 1, scratch);
            assert!(matches!(end, ReadEnd::Closed), "{end:?}");
            let shown: Vec<&[u8]> = split_frames(&got)
                .map(|f| &f[HEADER_LEN..])
                .filter(|p| !p.is_empty())
                .collect();
            assert_eq!(shown, [&b"greeting"[..], b"hi", b"there"]);
            assert!(conn.take_offer());
            let controls = conn.take_controls();
            assert_eq!(controls.len(), 42);
            assert_eq!(controls[0], Control::Hello(hello.clone()));
            assert_eq!(controls[41], Control::Ping);
            // Two messages since the `HELLO`: the keepalive is not one,
            // and the greeting came before.
            assert_eq!(conn.taken(), (2, 7));
        }
    }

    #[test]
    fn a_version_1_peer_whose_first_bytes_are_zeros_is_read_as_before() {
        use std::io::Write;
        for first in [
            frames(&[b"", b"after a keepalive"]),
            // Seven keepalives then a message: zeros, but not the offer.
            frames(&[b"", b"", b"", b"", b"", b"", b"", b"x"]),
            // Only keepalives, fewer than the offer, then the end.
            frames(&[b"", b""]),
        ] {
            let (mut conn, mut peer) = pair();
            conn.listen_for_sessions();
            for piece in first.chunks(3) {
                peer.write_all(piece).unwrap();
                peer.flush().unwrap();
            }
            drop(peer);
            let (got, end) = read_all(&mut conn, usize::MAX, 64);
            assert!(matches!(end, ReadEnd::Closed), "{end:?}");
            // The zeros held back are the frames they were (keepalives at
            // the end are nothing at all).
            let shown = |b: &[u8]| split_frames(b).filter(|f| f.len() > HEADER_LEN).count();
            assert_eq!(shown(&got), shown(&first));
            assert!(!conn.take_offer());
            assert!(conn.take_controls().is_empty());
        }
    }

    #[test]
    fn a_bad_control_frame_ends_reading_with_a_protocol_error() {
        use std::io::Write;
        let (mut conn, mut peer) = pair();
        conn.listen_for_sessions();
        let mut bytes = vec![0; OFFER_LEN];
        bytes.extend_from_slice(&[0x80, 0, 0, 2, b'A', 1]);
        peer.write_all(&bytes).unwrap();
        let (_, end) = read_all(&mut conn, usize::MAX, 64);
        let ReadEnd::Failed(e) = end else {
            panic!("{end:?}");
        };
        assert!(e.to_string().contains("broke the protocol"), "{e}");
        // A control frame longer than any is refused before it is read.
        let (mut conn, mut peer) = pair();
        conn.listen_for_sessions();
        let mut bytes = vec![0; OFFER_LEN];
        bytes.extend_from_slice(&[0x80, 0x10, 0, 0]);
        peer.write_all(&bytes).unwrap();
        let (_, end) = read_all(&mut conn, usize::MAX, 64);
        assert!(matches!(end, ReadEnd::Failed(_)), "{end:?}");
    }

    #[test]
    fn a_partial_frame_is_completed_from_the_next_read() {
        let buf = frames(&[b"abcdef", b"gh"]);
        // Header split across reads, then payload split.
        assert_eq!(completing(&buf[..2], &buf[2..], 100, false), Some(8));
        assert_eq!(completing(&buf[..6], &buf[6..], 100, false), Some(4));
        // Not enough yet, or over the maximum: the caller keeps the read.
        assert_eq!(completing(&buf[..2], &buf[2..5], 100, false), None);
        assert_eq!(completing(&buf[..6], &buf[6..8], 100, false), None);
        assert_eq!(completing(&buf[..6], &buf[6..], 5, false), None);
    }

    #[test]
    fn whole_frames_stop_at_a_partial_one_and_at_the_limit() {
        let buf = frames(&[b"abc", b"defgh", b"ij"]);
        assert_eq!(whole_frames(&buf, 100, usize::MAX, false), Ok(buf.len()));
        assert_eq!(
            whole_frames(&buf[..buf.len() - 1], 100, usize::MAX, false),
            Ok(16)
        );
        // The limit cuts between frames, but one frame always goes.
        assert_eq!(whole_frames(&buf, 100, 10, false), Ok(7));
        assert_eq!(whole_frames(&buf, 100, 1, false), Ok(7));
        assert_eq!(whole_frames(&buf[..3], 100, 10, false), Ok(0));
    }

    #[test]
    fn a_header_over_the_maximum_is_refused_after_the_frames_before_it() {
        let mut buf = frames(&[b"ok"]);
        buf.extend_from_slice(&1_000_000u32.to_be_bytes());
        assert_eq!(whole_frames(&buf, 100, usize::MAX, false), Ok(6));
        assert_eq!(
            whole_frames(&buf[6..], 100, usize::MAX, false),
            Err(TooLong {
                len: 1_000_000,
                max: 100
            })
        );
    }
}
