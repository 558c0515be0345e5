//! A man in the middle: a proxy that terminates the client's TLS with its own
//! certificate, opens its own TLS connection to the real server, and relays
//! the plaintext both ways unchanged (the SPAKE2 messages included).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Starts the proxy in front of `server`; returns the address clients use.
/// It serves one client, then stops.
pub fn start(server: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        relay(client, server);
    });
    address
}

fn relay(client: TcpStream, server: SocketAddr) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let made = rcgen::generate_simple_self_signed(vec!["chat-server".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let mut inward = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    inward.alpn_protocols = vec![b"chat-code".to_vec(), b"chat".to_vec()];
    let mut outward = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnyone(provider)))
        .with_no_client_auth();
    let mut near = rustls::StreamOwned::new(
        rustls::ServerConnection::new(Arc::new(inward)).unwrap(),
        client,
    );
    // Finish the client's handshake first, to learn which protocol it wants.
    while near.conn.is_handshaking() {
        if near.conn.complete_io(&mut near.sock).is_err() {
            return;
        }
    }
    outward.alpn_protocols = near
        .conn
        .alpn_protocol()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let Ok(far_socket) = TcpStream::connect(server) else {
        return;
    };
    let name = ServerName::try_from("chat-server").unwrap();
    let mut far = rustls::StreamOwned::new(
        rustls::ClientConnection::new(Arc::new(outward), name).unwrap(),
        far_socket,
    );
    for socket in [&near.sock, &far.sock] {
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut moved = false;
        for (from, to) in [(0, 1), (1, 0)] {
            let read = if from == 0 {
                near.read(&mut buf)
            } else {
                far.read(&mut buf)
            };
            match read {
                Ok(0) => return,
                Ok(n) => {
                    moved = true;
                    let written = if to == 0 {
                        near.write_all(&buf[..n])
                    } else {
                        far.write_all(&buf[..n])
                    };
                    if written.is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
        if !moved {
            thread::yield_now();
        }
    }
}

/// The proxy's own client side takes any server: it is the attacker.
#[derive(Debug)]
struct TrustAnyone(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for TrustAnyone {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
