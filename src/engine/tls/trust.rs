//! How a client decides whether it talks to the right server: a fingerprint
//! it was given, the one it recorded on first use (the known-hosts file, as
//! ssh keeps one), or a certificate authority; with a shared code, any
//! certificate, since the code exchange then authenticates both sides.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use super::identity::{create_private, fingerprint, private_dir};

/// The known-hosts file: one line per server, `HOST:PORT SHA256:...`.
pub struct KnownHosts {
    pub path: PathBuf,
}

/// A server's recorded fingerprint and the line it is on.
#[derive(Debug, PartialEq, Eq)]
pub struct Known {
    pub fingerprint: String,
    pub line: usize,
}

impl KnownHosts {
    /// Every fingerprint recorded for `address`, in file order.
    pub fn lookup(&self, address: &str) -> Result<Vec<Known>, String> {
        let text = match super::read_limited(&self.path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(format!(
                    "cannot read {}: {}",
                    self.path.display(),
                    crate::errors::lowercase_os_error(&e)
                ));
            }
        };
        let mut known = Vec::new();
        for (at, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            if let (Some(host), Some(print)) = (words.next(), words.next())
                && host == address
            {
                known.push(Known {
                    fingerprint: print.to_string(),
                    line: at + 1,
                });
            }
        }
        Ok(known)
    }

    /// Records `fingerprint` for `address` at the end of the file, unless
    /// it is there already (another client made the same first connection).
    pub fn record(&self, address: &str, fingerprint: &str) -> Result<(), String> {
        if self
            .lookup(address)?
            .iter()
            .any(|known| known.fingerprint == fingerprint)
        {
            return Ok(());
        }
        let fail = |e: io::Error| {
            format!(
                "cannot record the server in {}: {}",
                self.path.display(),
                crate::errors::lowercase_os_error(&e)
            )
        };
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            private_dir(dir).map_err(fail)?;
        }
        let mut file = match create_private(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                append_not_through_link(&self.path).map_err(fail)?
            }
            Err(e) => return Err(fail(e)),
        };
        // A file edited by hand may lack its last line end.
        let ends_cleanly = super::read_limited(&self.path)
            .map(|text| text.is_empty() || text.ends_with(b"\n"))
            .unwrap_or(true);
        let start = if ends_cleanly { "" } else { "\n" };
        file.write_all(format!("{start}{address} {fingerprint}\n").as_bytes())
            .map_err(fail)
    }
}

/// Opens the existing file at `path` to append to it, unless it is a
/// symbolic link: a link put in place of the known hosts would have us
/// write wherever it points.
fn append_not_through_link(path: &Path) -> io::Result<fs::File> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::other(
            "it is a symbolic link, which is not written through",
        ));
    }
    let mut options = fs::OpenOptions::new();
    options.append(true);
    // And no link put there since the look above.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    options.open(path)
}

/// Which certificate the client accepts.
pub enum Expect {
    /// Only one with one of these fingerprints.
    Fingerprint(Vec<String>),
    /// Any: on first use, it is recorded afterwards.
    Anything,
    /// One issued by these authorities, for the name connected to.
    Authority(Arc<rustls::RootCertStore>),
}

/// Checks the server's certificate as [`Expect`] says, and keeps the
/// fingerprint it saw, so that a refusal can name it. Handshake signatures
/// are always verified with rustls' own functions: the server must hold the
/// key of the certificate it shows.
#[derive(Debug)]
pub struct Verifier {
    expect: Expected,
    algorithms: WebPkiSupportedAlgorithms,
    pub seen: Mutex<Option<String>>,
}

#[derive(Debug)]
enum Expected {
    Fingerprint(Vec<String>),
    Anything,
    Authority(Arc<dyn ServerCertVerifier>),
}

impl Verifier {
    pub fn new(expect: Expect, provider: &Arc<CryptoProvider>) -> Result<Self, String> {
        let expect = match expect {
            Expect::Fingerprint(print) => Expected::Fingerprint(print),
            Expect::Anything => Expected::Anything,
            Expect::Authority(roots) => Expected::Authority(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    roots,
                    Arc::clone(provider),
                )
                .build()
                .map_err(|e| format!("cannot use the certificate authority: {e}"))?,
            ),
        };
        Ok(Self {
            expect,
            algorithms: provider.signature_verification_algorithms,
            seen: Mutex::new(None),
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let presented = fingerprint(end_entity);
        *crate::lock(&self.seen) = Some(presented.clone());
        match &self.expect {
            Expected::Fingerprint(expected) if expected.contains(&presented) => {
                Ok(ServerCertVerified::assertion())
            }
            Expected::Fingerprint(_) => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            Expected::Anything => Ok(ServerCertVerified::assertion()),
            Expected::Authority(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Loads the certificate authorities in a PEM file.
pub fn load_authorities(path: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let mut roots = rustls::RootCertStore::empty();
    let text = super::read_limited(path).map_err(|e| {
        format!(
            "cannot read {shown}: {}",
            crate::errors::lowercase_os_error(&e)
        )
    })?;
    for certificate in CertificateDer::pem_slice_iter(&text) {
        let certificate =
            certificate.map_err(|e| format!("{shown} is not a valid PEM file: {e}"))?;
        roots
            .add(certificate)
            .map_err(|e| format!("{shown}: unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{shown} holds no certificate"));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_recorded_once_and_found_by_exact_address() {
        let dir = std::env::temp_dir().join(format!("chat-known-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let known = KnownHosts {
            path: dir.join("known_hosts"),
        };
        assert_eq!(known.lookup("a:1").unwrap(), vec![]);
        known.record("a:1", "SHA256:one").unwrap();
        known.record("[::1]:2", "SHA256:two").unwrap();
        known.record("a:1", "SHA256:one").unwrap();
        assert_eq!(
            known.lookup("[::1]:2").unwrap(),
            vec![Known {
                fingerprint: "SHA256:two".into(),
                line: 2
            }]
        );
        assert_eq!(known.lookup("a:1").unwrap().len(), 1);
        assert_eq!(known.lookup("a:10").unwrap(), vec![]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_without_its_last_line_end_is_appended_to_cleanly() {
        let dir = std::env::temp_dir().join(format!("chat-known-end-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let known = KnownHosts {
            path: dir.join("known_hosts"),
        };
        fs::write(&known.path, "# mine\na:1 SHA256:one").unwrap();
        known.record("b:2", "SHA256:two").unwrap();
        assert_eq!(
            fs::read_to_string(&known.path).unwrap(),
            "# mine\na:1 SHA256:one\nb:2 SHA256:two\n"
        );
        assert_eq!(known.lookup("a:1").unwrap()[0].fingerprint, "SHA256:one");
        fs::remove_dir_all(dir).unwrap();
    }
}
