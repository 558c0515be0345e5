//! What carries the frames of one connection: the TCP stream itself, or a TLS
//! session over it.
//!
//! A TLS session does not split into independent reading and writing halves
//! the way a `TcpStream` clones do, so the session state is shared behind a
//! mutex that is held only while bytes are handed to or taken from rustls,
//! never across socket I/O: the receiving thread reads ciphertext from the
//! socket unlocked and then feeds it in; the writer seals plaintext under the
//! lock and writes the ciphertext unlocked. The writer stays the socket's
//! only writer: records that rustls queues while receiving (an alert, a key
//! update) go out with the writer's next write.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::errors::TlsFailure;
use crate::wire::frame::encode_frame;

/// Largest piece of plaintext sealed at once: a few TLS records, so one write
/// carries much and the lock is held briefly.
const SEAL_CHUNK: usize = 256 * 1024;

/// Ciphertext read from the socket at once.
const RAW_CHUNK: usize = 256 * 1024;

pub type Session = Arc<Mutex<rustls::Connection>>;

/// A connected stream, plain or under TLS, ready to carry frames.
pub struct Transport {
    stream: TcpStream,
    tls: Option<Session>,
    /// Bytes read from the stream before anyone read frames (a waiting
    /// client's early lines): the first reader returns them first.
    unread: Mutex<Vec<u8>>,
    /// Ciphertext sealed and sent in part by [`Sender::send_now`].
    owed: Arc<Mutex<Owed>>,
}

/// Ciphertext that [`Sender::send_now`] sealed and the socket did not take
/// at once, with the plaintext it carries: the writer sends it before
/// anything else.
#[derive(Default)]
struct Owed {
    ciphertext: Vec<u8>,
    plaintext: usize,
}

/// What [`Sender::send_now`] did with a batch of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentNow {
    /// This many bytes of it are wholly on the socket (plain TCP; all or
    /// none under TLS).
    Bytes(usize),
    /// All of it was taken (sealed, under TLS) but not all sent: the writer
    /// must write next.
    Owing,
}

impl Transport {
    pub fn plain(stream: TcpStream) -> Self {
        Self {
            stream,
            tls: None,
            unread: Mutex::default(),
            owed: Arc::default(),
        }
    }

    /// A stream whose TLS handshake is complete.
    pub fn tls(stream: TcpStream, mut session: rustls::Connection) -> Self {
        // What is sealed is bounded by the outbox and taken out at once.
        session.set_buffer_limit(None);
        Self {
            stream,
            tls: Some(Arc::new(Mutex::new(session))),
            unread: Mutex::default(),
            owed: Arc::default(),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Keying material exported from the TLS session (RFC 8446 section 7.5).
    pub fn export(&self, label: &[u8]) -> Result<[u8; 32], String> {
        let Some(tls) = &self.tls else {
            return Err("not a TLS connection".into());
        };
        crate::lock(tls)
            .export_keying_material([0u8; 32], label, None)
            .map_err(|e| e.to_string())
    }

    /// Sends one text frame, giving up after `timeout` (for notices to a
    /// client no conversation has started with: only one thread writes).
    pub fn send_notice(&self, notice: &str, timeout: Duration) -> bool {
        let mut frame = Vec::with_capacity(notice.len() + 4);
        encode_frame(&mut frame, notice.as_bytes(), usize::MAX).expect("notices are short");
        self.stream.set_write_timeout(Some(timeout)).is_ok()
            && self
                .writer()
                .and_then(|mut writer| writer.write_batches(&[frame], &GiveUp))
                .unwrap_or(false)
    }

    /// Ends our sending half (TLS close_notify, then TCP's end of stream).
    pub fn close_write(&self) -> io::Result<()> {
        self.writer()?.close(&GiveUp)
    }

    /// Puts back in front bytes read from the stream (raw: ciphertext
    /// under TLS).
    pub fn unread(&mut self, bytes: Vec<u8>) {
        let unread = self.unread.get_mut().unwrap_or_else(|e| e.into_inner());
        let later = std::mem::replace(unread, bytes);
        unread.extend_from_slice(&later);
    }

    /// The stream and its TLS session, for an event loop to carry on
    /// with: bytes read ahead (ciphertext) are handed to the session.
    pub fn into_parts(self) -> io::Result<(TcpStream, Option<rustls::Connection>)> {
        self.stream.set_read_timeout(None)?;
        self.stream.set_write_timeout(None)?;
        let unread = self.unread.into_inner().unwrap_or_else(|e| e.into_inner());
        let Some(tls) = self.tls else {
            if !unread.is_empty() {
                return Err(io::Error::other("bytes read ahead of a plain stream"));
            }
            return Ok((self.stream, None));
        };
        let mut session = Arc::try_unwrap(tls)
            .map_err(|_| io::Error::other("the TLS session is still shared"))?
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let mut rest = &unread[..];
        while !rest.is_empty() {
            if session.read_tls(&mut rest)? == 0 {
                break;
            }
            session.process_new_packets().map_err(tls_error)?;
        }
        Ok((self.stream, Some(session)))
    }

    /// A reader of the plaintext, for the receiving thread.
    pub fn reader(&self) -> io::Result<Reader> {
        Ok(Reader {
            socket: self.stream.try_clone()?,
            tls: self.tls.clone(),
            raw: std::mem::take(&mut *crate::lock(&self.unread)),
            fed: 0,
        })
    }

    /// The writer, for the one thread that writes to the socket.
    pub fn writer(&self) -> io::Result<Writer> {
        Ok(Writer {
            socket: self.stream.try_clone()?,
            tls: self.tls.clone(),
            sealed: Vec::new(),
            owed: Arc::clone(&self.owed),
        })
    }

    /// Sends frames without waiting, for whoever writes while the writer
    /// is idle (never at the same time as it).
    pub fn sender(&self) -> io::Result<Sender> {
        Ok(Sender {
            socket: self.stream.try_clone()?,
            tls: self.tls.clone(),
            owed: Arc::clone(&self.owed),
        })
    }
}

/// Sends frames at once, as far as the socket takes them without waiting.
pub struct Sender {
    socket: TcpStream,
    tls: Option<Session>,
    owed: Arc<Mutex<Owed>>,
}

impl Sender {
    /// Sends `frames`, reporting socket bytes through `wrote(socket,
    /// payload)` as [`Progress::wrote`] does. Under TLS they are sealed
    /// first, so all of them are taken: what the socket does not take of
    /// the ciphertext is owed, and the writer sends it before anything else.
    pub fn send_now(&self, frames: &[u8], wrote: impl Fn(usize, usize)) -> SentNow {
        let Some(tls) = &self.tls else {
            let n = crate::platform::send_now(&self.socket, frames);
            wrote(n, n);
            return SentNow::Bytes(n);
        };
        let mut sealed = Vec::new();
        {
            let mut session = crate::lock(tls);
            if session.writer().write_all(frames).is_err() {
                return SentNow::Bytes(0);
            }
            // Records the receiving side queued go first, as they were
            // queued first.
            while session.wants_write() {
                if session.write_tls(&mut sealed).is_err() {
                    break;
                }
            }
        }
        let n = crate::platform::send_now(&self.socket, &sealed);
        wrote(n, 0);
        if n == sealed.len() {
            wrote(0, frames.len());
            return SentNow::Bytes(frames.len());
        }
        sealed.drain(..n);
        *crate::lock(&self.owed) = Owed {
            ciphertext: sealed,
            plaintext: frames.len(),
        };
        SentNow::Owing
    }
}

/// Reads plaintext: straight from the socket, or what TLS records decrypt
/// to. A socket timeout comes out as the socket's error, so the caller can
/// look whether it should stop and then read again with nothing lost.
pub struct Reader {
    socket: TcpStream,
    tls: Option<Session>,
    /// Bytes read but not yet delivered: put back by [`Transport::unread`],
    /// or ciphertext not yet taken by rustls (its buffer was full).
    raw: Vec<u8>,
    fed: usize,
}

impl Reader {
    /// Ciphertext read from the socket and not yet handed to the session.
    pub fn into_unfed(mut self) -> Vec<u8> {
        self.raw.drain(..self.fed);
        self.raw
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some(tls) = &self.tls else {
            if self.fed < self.raw.len() {
                let n = buf.len().min(self.raw.len() - self.fed);
                buf[..n].copy_from_slice(&self.raw[self.fed..self.fed + n]);
                self.fed += n;
                return Ok(n);
            }
            return self.socket.read(buf);
        };
        loop {
            let (got, ended) = {
                let mut session = crate::lock(tls);
                let mut got = 0;
                // All the plaintext the ciphertext at hand holds, up to `buf`:
                // one pass of the caller per read, not one per TLS record.
                loop {
                    while self.fed < self.raw.len() {
                        match session.read_tls(&mut &self.raw[self.fed..]) {
                            Ok(0) => break,
                            Ok(n) => self.fed += n,
                            // Its buffer is full: take plaintext out first.
                            Err(_) => break,
                        }
                        session.process_new_packets().map_err(tls_error)?;
                    }
                    if got == buf.len() {
                        break (got, false);
                    }
                    match session.reader().read(&mut buf[got..]) {
                        // The peer's close_notify.
                        Ok(0) => break (got, true),
                        Ok(n) => got += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break (got, false),
                        // The TCP stream ended without a close_notify: an end
                        // like any other, and the frame layer decides whether
                        // it is clean.
                        Err(e) if e.kind() == ErrorKind::UnexpectedEof => break (got, true),
                        Err(e) if got == 0 => return Err(e),
                        // Said at the next read, after what came before it.
                        Err(_) => break (got, false),
                    }
                }
            };
            if got > 0 || ended {
                return Ok(got);
            }
            if self.fed == self.raw.len() {
                self.raw.clear();
                self.fed = 0;
            } else {
                // rustls holds undelivered plaintext and took no more: an
                // application that reads nothing would otherwise spin here.
                continue;
            }
            self.raw.resize(RAW_CHUNK, 0);
            let read = self.socket.read(&mut self.raw);
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.raw.clear();
                    return Err(e);
                }
            };
            self.raw.truncate(n);
            if n == 0 {
                let mut session = crate::lock(tls);
                // An empty read tells rustls the stream ended.
                let _ = session.read_tls(&mut &[][..]);
                session.process_new_packets().map_err(tls_error)?;
                return match session.reader().read(buf) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
                    Err(e) => Err(e),
                };
            }
        }
    }
}

/// Writes frames to the socket, sealing them first under TLS. Every method
/// reports socket bytes through `wrote` as they go, so a slow reader's
/// progress is seen byte by byte, and `keep_going` is asked after every
/// timed-out write.
pub struct Writer {
    socket: TcpStream,
    tls: Option<Session>,
    sealed: Vec<u8>,
    owed: Arc<Mutex<Owed>>,
}

/// Progress of a write, for the connection's counters.
pub trait Progress {
    /// `socket` bytes were written; `payload` more bytes of the caller's are
    /// now wholly on the socket.
    fn wrote(&self, socket: usize, payload: usize);
    /// Asked when a write timed out or failed: false stops the write.
    fn keep_going(&self) -> bool;
}

impl Writer {
    /// Writes every batch. Returns false if `progress` said to stop.
    pub fn write_batches(
        &mut self,
        batches: &[Vec<u8>],
        progress: &dyn Progress,
    ) -> io::Result<bool> {
        let Some(tls) = self.tls.clone() else {
            return write_vectored_all(&mut self.socket, batches, progress, true);
        };
        if !self.pay_owed(progress)? {
            return Ok(false);
        }
        for batch in batches {
            for piece in batch.chunks(SEAL_CHUNK) {
                self.sealed.clear();
                {
                    let mut session = crate::lock(&tls);
                    session.writer().write_all(piece)?;
                    while session.wants_write() {
                        session.write_tls(&mut self.sealed)?;
                    }
                }
                let sealed = std::slice::from_ref(&self.sealed);
                if !write_vectored_all(&mut self.socket, sealed, progress, false)? {
                    return Ok(false);
                }
                progress.wrote(0, piece.len());
            }
        }
        Ok(true)
    }

    /// Sends what [`Sender::send_now`] owes first. False if `progress`
    /// said to stop.
    fn pay_owed(&mut self, progress: &dyn Progress) -> io::Result<bool> {
        let owed = std::mem::take(&mut *crate::lock(&self.owed));
        if owed.ciphertext.is_empty() {
            return Ok(true);
        }
        let owed_bytes = std::slice::from_ref(&owed.ciphertext);
        if !write_vectored_all(&mut self.socket, owed_bytes, progress, false)? {
            return Ok(false);
        }
        progress.wrote(0, owed.plaintext);
        Ok(true)
    }

    /// Ends our sending half: TLS's close_notify, then the TCP end of stream.
    pub fn close(&mut self, progress: &dyn Progress) -> io::Result<()> {
        if self.tls.is_some() && !self.pay_owed(progress)? {
            return Ok(());
        }
        if let Some(tls) = self.tls.clone() {
            let mut sealed = Vec::new();
            {
                let mut session = crate::lock(&tls);
                session.send_close_notify();
                while session.wants_write() {
                    session.write_tls(&mut sealed)?;
                }
            }
            if !write_vectored_all(&mut self.socket, &[sealed], progress, false)? {
                return Ok(());
            }
        }
        self.socket.shutdown(Shutdown::Write)
    }
}

/// A write that gives up at its first timeout.
pub struct GiveUp;

impl Progress for GiveUp {
    fn wrote(&self, _socket: usize, _payload: usize) {}
    fn keep_going(&self) -> bool {
        false
    }
}

/// Writes every batch in as few system calls as the kernel allows. With
/// `payload`, the bytes written are the caller's own and are reported as
/// such too.
fn write_vectored_all(
    socket: &mut TcpStream,
    batches: &[Vec<u8>],
    progress: &dyn Progress,
    payload: bool,
) -> io::Result<bool> {
    let mut slices: Vec<IoSlice<'_>> = batches
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| IoSlice::new(b))
        .collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match socket.write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                progress.wrote(n, if payload { n } else { 0 });
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Timed out, or ended by our own shutdown: stop if told to.
            Err(_) if !progress.keep_going() => return Ok(false),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A TLS failure on an established connection, as an I/O error.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, TlsFailure(e))
}
