//! TLS for both programs: the server's identity, how a client decides whom
//! it trusts, the handshake driven on a blocking socket with a deadline, and
//! the optional shared code run inside the session.
//!
//! ALPN says which protocol runs inside the session: `chat` (the frames of
//! the plain protocol), or `chat-code` (the code exchange first, then the
//! frames). A server offers only the one it speaks, so a client with the
//! wrong expectation is refused during the handshake with a clear reason.

pub(crate) mod code;
mod identity;
mod trust;

use std::io::{self, ErrorKind};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};

pub use code::Failure as CodeFailure;
pub(crate) use code::{generate as generate_code, normalize as normalize_code};
pub(crate) use identity::{Identity, data_dir, load_or_create as load_identity};
pub(crate) use trust::{Expect, KnownHosts};

const ALPN_CHAT: &[u8] = b"chat";
const ALPN_CODE: &[u8] = b"chat-code";

/// The first byte of every TLS handshake record: what a TLS client sends first.
pub(crate) const HANDSHAKE_RECORD: u8 = 0x16;

/// How long a TLS server waits for a client's first bytes before it takes
/// the client for a plain one (a TLS client speaks at once; a plain client
/// waits for its user) and tells it so in plain text. Long enough for TCP
/// to send a lost ClientHello again twice (after 1 s, then 2 s more) over
/// a slow link: at 2 s, one lost hello on a 300 ms link got a real TLS
/// client refused. (A client whose hello comes later still is told, and
/// ours then tries once more: see [`ClientError::LateHello`].)
pub(crate) const PLAIN_CLIENT_GRACE: Duration = Duration::from_secs(5);

/// Said in plain text to a client that does not speak TLS.
pub(crate) const SPEAK_TLS: &str = "this server speaks TLS only: connect with chat-client --tls";

/// Said inside TLS to a client without the code exchange.
pub(crate) const NEEDS_CODE: &str =
    "this server needs a shared code: connect with chat-client --tls --code";

/// ring's TLS 1.3 suites, AES-128-GCM first: both sides are ours, and it is
/// the fastest with AES instructions at a strength nobody can brute-force.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite;
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

/// The server's side of TLS, shared by every connection.
pub(crate) struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    code: Option<String>,
    gate: Mutex<code::Gate>,
}

impl ServerTls {
    pub fn new(identity: Identity, code: Option<String>) -> Result<Self, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(identity.certificates, identity.key)
            .map_err(|e| format!("unusable identity: {e}"))?;
        config.alpn_protocols = vec![match code {
            Some(_) => ALPN_CODE.to_vec(),
            None => ALPN_CHAT.to_vec(),
        }];
        // Nobody resumes: tickets would only be records to skip.
        config.send_tls13_tickets = 0;
        Ok(Self {
            config: Arc::new(config),
            code,
            gate: Mutex::new(code::Gate::default()),
        })
    }
}

impl ServerTls {
    /// A session for a client that opened a TLS handshake.
    pub(crate) fn session(&self) -> Result<rustls::ServerConnection, String> {
        rustls::ServerConnection::new(Arc::clone(&self.config)).map_err(|e| e.to_string())
    }

    /// The code clients must prove, if the server has one.
    pub(crate) fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Spaces out code checks for the whole server.
    pub(crate) fn code_gate(&self) -> &Mutex<code::Gate> {
        &self.gate
    }

    /// Whether a finished handshake chose the code exchange.
    pub(crate) fn chose_code(session: &rustls::Connection) -> bool {
        session.alpn_protocol() == Some(ALPN_CODE)
    }

    /// Why a client's handshake failed, for the operator.
    pub(crate) fn describe_failure(&self, e: &rustls::Error) -> String {
        match e {
            rustls::Error::NoApplicationProtocol if self.code.is_some() => {
                "its client has no code (told to use --code)".to_string()
            }
            rustls::Error::NoApplicationProtocol => {
                "its client asks for another protocol (a code exchange?), and this server has no code".to_string()
            }
            rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::SupportedVersionsExtensionRequired,
            ) => "its client offers only TLS 1.2 or older; TLS 1.3 is required".to_string(),
            rustls::Error::PeerIncompatible(why) => {
                format!("its client's TLS is incompatible ({why:?})")
            }
            rustls::Error::AlertReceived(
                AlertDescription::AccessDenied
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown,
            ) => "its client refused this server's certificate (it expects another server identity at this address)".to_string(),
            other => other.to_string(),
        }
    }
}

/// What the client is told to expect, and where it keeps what it learns.
pub(crate) struct ClientSettings {
    /// `HOST:PORT` as given: the known-hosts key and the name sent to the server.
    pub address: String,
    pub fingerprint: Option<String>,
    pub authority: Option<PathBuf>,
    pub known_hosts: KnownHosts,
    pub code: Option<String>,
}

/// A client's TLS connection, made and checked.
pub(crate) struct Secured {
    pub stream: TcpStream,
    /// The session, its handshake (and the code's exchange) done.
    pub session: rustls::ClientConnection,
    /// Said to the user before the conversation (a first-use recording).
    pub notes: Vec<String>,
}

/// Why a client's TLS connection was not made, by what failed; each worded
/// for the user in one line (the details here, where they are known).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file the client trusts by could not be used: the authorities'
    /// (`--ca`), the known hosts, or the data directory they are kept in.
    #[error("{0}")]
    Trust(String),
    /// No session with the server it trusts: the server presented another
    /// identity, speaks otherwise (no TLS, a code or none), closed, or did
    /// not answer in time.
    #[error("{0}")]
    Handshake(String),
    /// The server presented a certificate this client does not trust (not
    /// the fingerprint expected or recorded, not from the authority): not
    /// a network's failure, and not worth trying again.
    #[error("{0}")]
    Untrusted(String),
    /// The shared code was not proved, either way.
    #[error(transparent)]
    Code(#[from] CodeFailure),
    /// A TLS server took us for a plain client and said so in plain text:
    /// our ClientHello reached it after its wait (a slow, lossy link).
    /// Worth one more try.
    #[error(
        "the server at {0} took this client for a plain one: its TLS hello came too late (a slow link?)"
    )]
    LateHello(String),
}

/// Makes a TLS connection over `stream` as `settings` say, within `timeout`.
pub(crate) fn connect(
    mut stream: TcpStream,
    settings: &ClientSettings,
    timeout: Duration,
) -> Result<Secured, ClientError> {
    let deadline = Instant::now() + timeout;
    let address = &settings.address;
    let provider = provider();
    let mut known = Vec::new();
    let expect = if let Some(print) = &settings.fingerprint {
        Expect::Fingerprint(vec![print.clone()])
    } else if let Some(path) = &settings.authority {
        Expect::Authority(Arc::new(
            trust::load_authorities(path).map_err(ClientError::Trust)?,
        ))
    } else if settings.code.is_some() {
        Expect::Anything
    } else {
        known = settings
            .known_hosts
            .lookup(address)
            .map_err(ClientError::Trust)?;
        match known.is_empty() {
            false => Expect::Fingerprint(known.iter().map(|k| k.fingerprint.clone()).collect()),
            true => Expect::Anything,
        }
    };
    let verifier =
        Arc::new(trust::Verifier::new(expect, &provider).map_err(ClientError::Handshake)?);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Handshake(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<_>)
        .with_no_client_auth();
    config.alpn_protocols = vec![match settings.code {
        Some(_) => ALPN_CODE.to_vec(),
        None => ALPN_CHAT.to_vec(),
    }];
    let mut session = rustls::ClientConnection::new(Arc::new(config), server_name(address))
        .map_err(|e| ClientError::Handshake(e.to_string()))?;
    let seen = || crate::lock(&verifier.seen).clone().unwrap_or_default();
    if let Err(e) = handshake(&mut stream, &mut session, deadline) {
        let bad_certificate = matches!(
            e,
            Handshake::Tls(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        );
        let untrusted = matches!(e, Handshake::Tls(rustls::Error::InvalidCertificate(_)));
        let why = match (&e, &settings.fingerprint, &known) {
            (_, Some(expected), _) if bad_certificate => format!(
                "the server at {address} presented {}, not the expected {expected}; refused, nothing was sent",
                seen()
            ),
            (_, None, _) if bad_certificate && !known.is_empty() => {
                let prints: Vec<&str> = known.iter().map(|k| k.fingerprint.as_str()).collect();
                let lines: Vec<String> = known.iter().map(|k| k.line.to_string()).collect();
                let (line, that) = match lines.len() {
                    1 => ("line", "that line"),
                    _ => ("lines", "those lines"),
                };
                format!(
                    "the server at {address} presented {}, but {} is recorded for it ({line} {} of {}): someone may be intercepting the connection, so nothing was sent. If the server's identity changed on purpose, delete {that} and connect again",
                    seen(),
                    prints.join(" and "),
                    lines.join(", "),
                    settings.known_hosts.path.display()
                )
            }
            (Handshake::Tls(rustls::Error::InvalidCertificate(why)), _, _) => {
                describe_certificate(why, address, settings.authority.as_ref())
            }
            (
                Handshake::Tls(rustls::Error::AlertReceived(
                    AlertDescription::NoApplicationProtocol,
                )),
                _,
                _,
            ) => match settings.code {
                Some(_) => {
                    format!("the server at {address} does not use a code: connect without --code")
                }
                None => format!("the server at {address} needs a shared code: connect with --code"),
            },
            (Handshake::Tls(rustls::Error::InvalidMessage(_)), _, _) => format!(
                "the server at {address} did not answer in TLS (a plain chat-server?): connect without --tls"
            ),
            (Handshake::LateHello, _, _) => {
                return Err(ClientError::LateHello(address.clone()));
            }
            (Handshake::Closed, _, _) => format!(
                "the server at {address} closed the connection during the TLS handshake: it may refuse your address, be too busy, or not speak TLS"
            ),
            (Handshake::TimedOut, _, _) => format!(
                "no TLS answer from {address} in time (--handshake-timeout): the server may not speak TLS (try without --tls), or the link is very slow"
            ),
            (e, _, _) => format!("TLS with {address} failed: {e}"),
        };
        return Err(match untrusted {
            true => ClientError::Untrusted(why),
            false => ClientError::Handshake(why),
        });
    }
    let mut notes = Vec::new();
    if let Some(code) = &settings.code {
        code::as_client(&mut stream, &mut session, code, deadline)?;
        notes.push(format!(
            "the server at {address} knows the code: both sides are authenticated"
        ));
    } else if settings.fingerprint.is_none() && settings.authority.is_none() && known.is_empty() {
        let print = seen();
        settings
            .known_hosts
            .record(address, &print)
            .map_err(ClientError::Trust)?;
        notes.push(format!(
            "first connection to {address}: its fingerprint {print} is now recorded in {}; check it with the server's operator",
            settings.known_hosts.path.display()
        ));
    }
    Ok(Secured {
        stream,
        session,
        notes,
    })
}

/// Parses `--fingerprint`: `SHA256:` and 43 characters of unpadded base64.
/// Taken as written by OpenSSH, in any case of the prefix, with or without
/// base64 padding (`openssl dgst -sha256 -binary | base64` pads), and
/// returned in the one form compared.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    use base64::Engine;
    let expected = "expected SHA256: and 43 base64 characters, as chat-server --tls shows";
    let text = text.trim();
    let encoded = match text.split_once(':') {
        Some((prefix, encoded)) if prefix.eq_ignore_ascii_case("sha256") => encoded,
        _ => return Err(expected.to_string()),
    };
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded.trim_end_matches('=')) {
        Ok(digest) if digest.len() == 32 => Ok(identity::fingerprint_of_digest(&digest)),
        _ => Err(expected.to_string()),
    }
}

/// The name a client sends (SNI) and checks against a CA-issued certificate.
fn server_name(address: &str) -> ServerName<'static> {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
        ServerName::try_from("chat-server".to_string()).expect("a valid DNS name")
    })
}

fn describe_certificate(
    why: &CertificateError,
    address: &str,
    authority: Option<&PathBuf>,
) -> String {
    let authority = authority.map_or(String::new(), |path| format!(" in {}", path.display()));
    match why {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the server at {address} has an expired certificate; refused")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the server at {address} has a certificate that is not valid yet; refused")
        }
        CertificateError::BadSignature => format!(
            "the server at {address} has a certificate whose signature does not match the certificate authority{authority}; refused"
        ),
        CertificateError::UnknownIssuer => format!(
            "the server at {address} has a certificate not issued by the certificate authority{authority}; refused"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("the server's certificate is not issued for {address}; refused")
        }
        other => {
            format!("the server at {address} has an unacceptable certificate ({other:?}); refused")
        }
    }
}

/// How a handshake failed.
#[derive(Debug, thiserror::Error)]
enum Handshake {
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("the connection closed")]
    Closed,
    /// The server's first bytes were its plain refusal of a client that
    /// does not speak TLS.
    #[error("taken for a plain client")]
    LateHello,
    #[error("no answer in time")]
    TimedOut,
    #[error("{}", crate::errors::lowercase_os_error(.0))]
    Io(io::Error),
}

/// Drives a handshake to its end on a blocking socket, by `deadline`: one
/// read or write at a time, so a peer that trickles bytes cannot stretch it.
fn handshake(
    stream: &mut TcpStream,
    session: &mut rustls::ClientConnection,
    deadline: Instant,
) -> Result<(), Handshake> {
    let io_failure = |e: io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Handshake::TimedOut,
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            Handshake::Closed
        }
        _ => Handshake::Io(e),
    };
    let mut first_read = true;
    while session.is_handshaking() || session.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Handshake::TimedOut);
        }
        stream.set_read_timeout(Some(left)).map_err(Handshake::Io)?;
        stream
            .set_write_timeout(Some(left))
            .map_err(Handshake::Io)?;
        if session.wants_write() {
            session.write_tls(stream).map_err(io_failure)?;
            continue;
        }
        if std::mem::take(&mut first_read) && plain_refusal_first(stream) {
            return Err(Handshake::LateHello);
        }
        match session.read_tls(stream) {
            Ok(0) => return Err(Handshake::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(e)),
        }
        if let Err(e) = session.process_new_packets() {
            // Tell the peer why (the alert rustls queued), then give up.
            let _ = session.write_tls(stream);
            return Err(Handshake::Tls(e));
        }
    }
    Ok(())
}

/// Whether the server's first bytes, waiting on `stream`, are its plain
/// refusal of a client that does not speak TLS (looked at, not taken).
fn plain_refusal_first(stream: &TcpStream) -> bool {
    let refusal = crate::wire::farewell::refusal(SPEAK_TLS);
    let mut expected = Vec::new();
    if crate::wire::frame::encode_frame(&mut expected, refusal.as_bytes(), usize::MAX).is_err() {
        return false;
    }
    let mut seen = vec![0; expected.len()];
    // The refusal comes in one write: whole, or not this (a TLS record's
    // first bytes differ at once: 0x16, not a length's 0x00).
    match stream.peek(&mut seen) {
        Ok(n) => {
            n > 0 && expected.starts_with(&seen[..n]) && n >= HEADER_PREFIX.min(expected.len())
        }
        Err(_) => false,
    }
}

/// How much of the refusal must have come to be sure: its length and the
/// start of its words.
const HEADER_PREFIX: usize = 16;

/// The most a TLS file (an identity, the known hosts, authorities) may
/// hold: far more than any real one, and a bound on what a mistaken path
/// (`/dev/zero`, a disk image) can make us read.
const FILE_LIMIT: u64 = 4 << 20;

/// Reads the file at `path`, refusing one over [`FILE_LIMIT`] without
/// reading more than that.
fn read_limited(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(FILE_LIMIT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > FILE_LIMIT {
        return Err(io::Error::other(format!(
            "larger than {} MiB, which no such file is",
            FILE_LIMIT >> 20
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_fingerprint;

    #[test]
    fn fingerprints_are_taken_in_the_forms_people_paste() {
        let canonical = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        for form in [
            canonical,
            "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            " SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",
        ] {
            assert_eq!(
                parse_fingerprint(form).as_deref(),
                Ok(canonical),
                "{form:?}"
            );
        }
        for bad in [
            "",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "MD5:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
            "SHA256:47DEQpj8HBSa",
            "SHA256:not base64 at all!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad:?}");
        }
    }
}
