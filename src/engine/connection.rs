//! One connection to a peer: the socket, the thread that receives and shows,
//! the thread that is the socket's only writer, the count of bytes moved, and
//! how it shuts down.
//!
//! Nothing here decides when to stop: each thread reports how its half ended
//! as an [`Event`], and the owner calls [`Connection::finish_sending`] or
//! [`Connection::abort`] as [`crate::state::ending`] says. Received frames are shown
//! a whole read at a time, the moment they are read, whatever frame (a
//! keepalive, a broken header, the end) follows them.

use std::io::{self, ErrorKind};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::console::event::{Event, Events, ReceiveEnd};
use crate::console::outbox::Outbox;
use crate::console::output::Output;
use crate::engine::transport::{Progress, Reader, SentNow, Transport, Writer};
use crate::platform::{SENDS_NOW, unacknowledged};
use crate::state::ending::Observed;
use crate::wire::display::push_visible_line;
use crate::wire::frame::{FrameReader, Payload, too_long_error};

/// How often a read or write blocked on the socket looks whether it was
/// aborted: a shutdown wakes it on Linux, but not everywhere (Windows).
const RECHECK: Duration = Duration::from_millis(250);

/// What the threads and the owner share.
#[derive(Default)]
struct Shared {
    received: AtomicU64,
    /// Bytes written to the socket (TLS records included).
    written: AtomicU64,
    /// Bytes of frames wholly written to the socket (sealed, under TLS).
    sent: AtomicU64,
    /// The most `moved` ever reported, so the count never goes back.
    moved: AtomicU64,
    /// Set by [`Connection::abort`]: a thread waiting for the screen gives up.
    cancelled: AtomicBool,
    /// Our sending half is shut down (its FIN then counts in the kernel's
    /// unacknowledged bytes).
    shut_down: AtomicBool,
}

/// Where a connection's received messages go: shown on the screen (a
/// conversation), or handed to a room's relay.
pub trait Inbound: Send + 'static {
    /// One message, in the order received.
    fn message(&mut self, payload: Payload<'_>);
    /// The end of one read: hands over what the read brought. False once
    /// nothing more will be taken (the socket is then drained unread); waits
    /// that could block give up when `cancelled` is set.
    fn flush(&mut self, cancelled: &AtomicBool) -> bool;
    /// The peer's first frame has arrived (a keepalive, or the message
    /// last handed to [`message`](Self::message) first): what answers it
    /// may be put in front of `outbox`.
    fn spoke(&mut self, _outbox: &Outbox) {}
    /// A larger maximum than ours that the peer declared it sends, if its
    /// first message did and we heed that.
    fn declared_max(&self) -> Option<usize> {
        None
    }
}

/// Answers a peer's first frame (empty if it was a keepalive), given the
/// outbox: the client's, to a room's greeting. Returns a larger maximum
/// message size the peer declared, to be taken from it.
pub type FirstFrame = Box<dyn FnOnce(&[u8], &Outbox) -> Option<usize> + Send>;

/// Messages shown on the screen as from one peer, a whole read at a time.
struct Show {
    output: Arc<Output>,
    from: Arc<str>,
    text: Option<Vec<u8>>,
    /// What answers the peer's first frame, until it came.
    answer: Option<FirstFrame>,
    /// The first message, kept for the answer.
    first: Option<Vec<u8>>,
    declared: Option<usize>,
}

impl Inbound for Show {
    #[inline]
    fn message(&mut self, payload: Payload<'_>) {
        if self.answer.is_some() && self.first.is_none() {
            self.first = Some(payload.bytes().to_vec());
        }
        let text = self.text.get_or_insert_with(|| self.output.buffer());
        push_visible_line(text, payload);
    }

    fn flush(&mut self, cancelled: &AtomicBool) -> bool {
        match self.text.take() {
            Some(text) => self.output.messages(&self.from, text, cancelled),
            None => true,
        }
    }

    fn spoke(&mut self, outbox: &Outbox) {
        if let Some(answer) = self.answer.take() {
            let first = self.first.take().unwrap_or_default();
            self.declared = answer(&first, outbox);
        }
    }

    fn declared_max(&self) -> Option<usize> {
        self.declared
    }
}

/// Counts of what a connection has sent.
pub struct Gauge {
    outbox: Arc<Outbox>,
    shared: Arc<Shared>,
}

impl Gauge {
    /// Bytes of frames handed wholly to the kernel.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// Bytes ever accepted for sending.
    pub fn accepted(&self) -> u64 {
        self.outbox.accepted()
    }
}

pub struct Connection {
    stream: TcpStream,
    outbox: Arc<Outbox>,
    /// Woken on abort, when received messages wait for the screen.
    output: Option<Arc<Output>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Connection {
    /// Starts receiving from and sending to `transport`; messages are shown
    /// as from `label`. Both threads report to `events` under `id`. With
    /// `answer`, the peer's first frame is answered (see [`FirstFrame`]).
    pub fn start(
        id: u64,
        transport: Transport,
        max_message_size: usize,
        answer: Option<FirstFrame>,
        output: &Arc<Output>,
        label: &str,
        events: &Events,
    ) -> io::Result<Self> {
        let show = Show {
            output: Arc::clone(output),
            from: Arc::from(label),
            text: None,
            answer,
            first: None,
            declared: None,
        };
        Self::launch(id, transport, max_message_size, show, Some(output), events)
    }

    fn launch(
        id: u64,
        transport: Transport,
        max_message_size: usize,
        mut inbound: impl Inbound,
        output: Option<&Arc<Output>>,
        events: &Events,
    ) -> io::Result<Self> {
        let stream = transport.stream().try_clone()?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(RECHECK))?;
        stream.set_read_timeout(Some(RECHECK))?;
        let shared = Arc::new(Shared::default());
        let mut outbox = {
            let events = std::sync::Mutex::new(events.clone());
            Outbox::with_backlog_alarm(move || {
                let _ = crate::lock(&events).send(Event::Backlogged);
            })
        };
        // A conversation's lines (not a room's relay, which serves many
        // sockets from one thread) are written at once by whoever pushes
        // them when the sending thread is idle: one thread wake-up less
        // per line.
        if output.is_some() && SENDS_NOW {
            let (sender, shared) = (transport.sender()?, Arc::clone(&shared));
            outbox = outbox.writing_at_once(Box::new(move |frames| {
                let sent = sender.send_now(frames, |socket, payload| {
                    shared.written.fetch_add(socket as u64, Ordering::SeqCst);
                    shared.sent.fetch_add(payload as u64, Ordering::SeqCst);
                });
                match sent {
                    SentNow::Bytes(n) => Some(n),
                    SentNow::Owing => None,
                }
            }));
        }
        let outbox = Arc::new(outbox);
        // The sender first: if the receiver cannot start, the sender is
        // stopped and joined, and it waits on nothing but its outbox (a
        // receiver may already be waiting on whoever takes its messages).
        let sender = {
            let writing = transport.writer()?;
            let (events, outbox, shared) =
                (events.clone(), Arc::clone(&outbox), Arc::clone(&shared));
            thread::Builder::new().name("send".into()).spawn(move || {
                let result = send(writing, &outbox, &shared);
                let _ = events.send(Event::Sent { id, result });
            })?
        };
        let receiver = transport.reader().and_then(|reading| {
            let (events, shared, outbox) =
                (events.clone(), Arc::clone(&shared), Arc::clone(&outbox));
            thread::Builder::new()
                .name("receive".into())
                .spawn(move || {
                    let end = receive(reading, max_message_size, &mut inbound, &shared, &outbox);
                    let _ = events.send(Event::Received { id, end });
                })
        });
        let connection = Self {
            stream,
            outbox,
            output: output.map(Arc::clone),
            shared,
            threads: vec![sender],
        };
        match receiver {
            Ok(receiver) => {
                let mut connection = connection;
                connection.threads.push(receiver);
                Ok(connection)
            }
            Err(e) => {
                connection.abort();
                connection.join();
                Err(e)
            }
        }
    }

    /// Where the user's lines go while this connection lasts.
    pub fn outbox(&self) -> Arc<Outbox> {
        Arc::clone(&self.outbox)
    }

    /// Bytes moved so far and bytes not yet delivered, for [`crate::state::ending`].
    pub fn observe(&self) -> Observed {
        let written = self.shared.written.load(Ordering::SeqCst);
        let sent = self.shared.sent.load(Ordering::SeqCst);
        let accepted = self.outbox.accepted();
        let fin = u64::from(self.shared.shut_down.load(Ordering::SeqCst));
        let unacked = unacknowledged(socket2::SockRef::from(&self.stream))
            .unwrap_or(0)
            .saturating_sub(fin)
            .min(written);
        let moved = self.shared.received.load(Ordering::SeqCst) + written - unacked;
        let moved = self
            .shared
            .moved
            .fetch_max(moved, Ordering::SeqCst)
            .max(moved);
        Observed {
            moved,
            undelivered: accepted.saturating_sub(sent) + unacked,
            backlogged: self.outbox.is_backlogged(),
        }
    }

    /// Sends what is queued, then shuts down our sending half.
    pub fn finish_sending(&self) {
        self.outbox.close();
    }

    /// Stops both threads now: queued frames are dropped and the socket shut
    /// down both ways, which wakes a thread blocked on it. When it is closed,
    /// the peer gets a reset, not an end of stream: what it was still sending
    /// was not taken (otherwise a peer blocked on our full window would wait
    /// for the kernel to give up on us, a minute or more).
    pub fn abort(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        // Its FIN is now in the kernel's queue, not a byte of ours.
        self.shared.shut_down.store(true, Ordering::SeqCst);
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        let _ = self.stream.shutdown(Shutdown::Both);
        self.outbox.abort();
        if let Some(output) = &self.output {
            output.wake_waiting();
        }
    }

    /// What this connection has sent, readable after it has been handed on.
    pub fn gauge(&self) -> Gauge {
        Gauge {
            outbox: Arc::clone(&self.outbox),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Waits for both threads; call once both reported.
    pub fn join(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Reads until the stream ends, handing every complete message of each read
/// to `inbound` before the next read. Once it takes no more the socket is
/// still drained, so that closing it resets nothing.
fn receive(
    reading: Reader,
    max_message_size: usize,
    inbound: &mut impl Inbound,
    shared: &Shared,
    outbox: &Outbox,
) -> ReceiveEnd {
    let mut frames = FrameReader::new(reading, max_message_size);
    let mut showing = true;
    let mut spoke = false;
    loop {
        let read = match frames.fill() {
            Ok(read) => read,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.cancelled.load(Ordering::SeqCst) {
                    return ReceiveEnd::Failed(ErrorKind::ConnectionAborted.into());
                }
                continue;
            }
            Err(e) => return ReceiveEnd::Failed(e),
        };
        shared.received.fetch_add(read as u64, Ordering::SeqCst);
        let mut decoded = frames.drain_payloads(|payload| {
            if showing {
                inbound.message(payload);
            }
        });
        if !spoke && frames.has_framed() {
            spoke = true;
            inbound.spoke(outbox);
        }
        // The frame over our maximum is still buffered: if the peer said
        // it sends such (before it, in order), it is taken after all.
        while let Err(too_long) = &decoded
            && let Some(max) = inbound.declared_max().filter(|&max| max >= too_long.len)
        {
            frames.set_max(max);
            decoded = frames.drain_payloads(|payload| {
                if showing {
                    inbound.message(payload);
                }
            });
        }
        if showing {
            showing = inbound.flush(&shared.cancelled);
        }
        if let Err(too_long) = decoded {
            return ReceiveEnd::Failed(too_long_error(too_long));
        }
        if read == 0 {
            return match frames.end_of_stream() {
                Ok(()) => ReceiveEnd::Closed,
                Err(e) => ReceiveEnd::Failed(e),
            };
        }
    }
}

/// Writes what the outbox hands over until it closes, then shuts down our
/// sending half so the peer sees a clean end.
fn send(mut writer: Writer, outbox: &Outbox, shared: &Shared) -> io::Result<()> {
    let progress = Counting { outbox, shared };
    let mut batches = Vec::new();
    while outbox.take(&mut batches) {
        if !writer.write_batches(&batches, &progress)? {
            return Ok(());
        }
    }
    if outbox.is_aborted() {
        return Ok(());
    }
    let shut = writer.close(&progress);
    shared.shut_down.store(shut.is_ok(), Ordering::SeqCst);
    match shut {
        // The peer may already be gone entirely; that is its end, not our error.
        Err(e) if e.kind() == ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// Counts every byte as it goes (a slow reader's progress is seen byte by
/// byte), and stops a write once the outbox is aborted.
struct Counting<'a> {
    outbox: &'a Outbox,
    shared: &'a Shared,
}

impl Progress for Counting<'_> {
    fn wrote(&self, socket: usize, payload: usize) {
        self.shared
            .written
            .fetch_add(socket as u64, Ordering::SeqCst);
        self.shared.sent.fetch_add(payload as u64, Ordering::SeqCst);
    }

    fn keep_going(&self) -> bool {
        !self.outbox.is_aborted()
    }
}
