//! The server's identity: a private key and its certificate, kept in one PEM
//! file that is made on first use, and the fingerprint clients know it by.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The name in a certificate we make: clients do not check names (they pin
/// the fingerprint), so it only tells a person what the certificate is for.
const SUBJECT: &str = "chat-server";

pub struct Identity {
    /// The server's certificate first, then any that vouch for it.
    pub certificates: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: String,
}

/// Where this program keeps its files: the platform's per-user data
/// directory (`$XDG_DATA_HOME/chat`, `~/.local/share/chat` on Linux,
/// `~/Library/Application Support/chat` on macOS, `%APPDATA%\chat` on
/// Windows).
pub fn data_dir() -> Result<PathBuf, String> {
    dirs::data_dir()
        .map(|dir| dir.join("chat"))
        .ok_or_else(|| "cannot find a data directory for this user (is HOME set?)".to_string())
}

/// The fingerprint of a certificate as OpenSSH writes one: `SHA256:` and the
/// unpadded base64 of the SHA-256 of its DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    fingerprint_of_digest(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// The written form of a SHA-256 digest.
pub fn fingerprint_of_digest(digest: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Loads the identity at `path`, or makes one there if there is no file.
/// Returns it and whether it was just made.
pub fn load_or_create(path: &Path) -> Result<(Identity, bool), String> {
    match fs::symlink_metadata(path) {
        Ok(_) => load(path).map(|identity| (identity, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create(path).map(|identity| (identity, true))
        }
        Err(e) => Err(format!(
            "cannot read {}: {}",
            path.display(),
            crate::errors::lowercase_os_error(&e)
        )),
    }
}

fn load(path: &Path) -> Result<Identity, String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!(
            "{shown} is a directory; --identity names a PEM file (made there if missing)"
        ));
    }
    let text = super::read_limited(path).map_err(|e| {
        format!(
            "cannot read {shown}: {}",
            crate::errors::lowercase_os_error(&e)
        )
    })?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a valid PEM file: {e}"))?;
    let Some(first) = certificates.first() else {
        return Err(format!(
            "{shown} holds no certificate (expected a PEM certificate and its private key)"
        ));
    };
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|_| {
        format!("{shown} holds no private key (expected a PEM certificate and its private key)")
    })?;
    // Only a file that holds a key must be private.
    check_private(path)?;
    // The key must be one rustls can sign with, and must match the certificate.
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("{shown}: unusable private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(certificates.clone(), signing);
    if let Err(e) = certified.keys_match() {
        return Err(format!(
            "{shown}: the private key does not belong to the certificate ({e})"
        ));
    }
    Ok(Identity {
        fingerprint: fingerprint(first),
        certificates,
        key,
    })
}

fn create(path: &Path) -> Result<Identity, String> {
    let shown = path.display();
    let fail = |e: rcgen::Error| format!("cannot make a certificate: {e}");
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![SUBJECT.to_string()]).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SUBJECT);
    let certificate = params.self_signed(&key).map_err(fail)?;
    let pem = format!("{}{}", key.serialize_pem(), certificate.pem());
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        private_dir(dir).map_err(|e| {
            format!(
                "cannot create {}: {}",
                dir.display(),
                crate::errors::lowercase_os_error(&e)
            )
        })?;
    }
    let mut file = create_private(path).map_err(|e| {
        format!(
            "cannot create {shown}: {}",
            crate::errors::lowercase_os_error(&e)
        )
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            format!(
                "cannot write {shown}: {}",
                crate::errors::lowercase_os_error(&e)
            )
        })?;
    let der = certificate.der().clone();
    Ok(Identity {
        fingerprint: fingerprint(&der),
        certificates: vec![der],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

/// Creates a new file that only its owner can read.
pub fn create_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates a directory (and its parents) that only its owner can enter.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Refuses a key file that other users can read, as ssh does.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| {
            format!(
                "cannot read {}: {}",
                path.display(),
                crate::errors::lowercase_os_error(&e)
            )
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds a private key and other users can read it (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

/// Windows files in a user's profile are private to the user by default.
#[cfg(windows)]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chat-identity-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn fingerprints_have_the_openssh_form() {
        // SHA-256 of the empty string, base64 without padding.
        assert_eq!(
            fingerprint(b""),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn an_identity_is_made_once_then_reloaded() {
        let dir = scratch("reload");
        let path = dir.join("sub").join("identity.pem");
        let (made, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (loaded, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.fingerprint, loaded.fingerprint);
        assert_eq!(made.certificates, loaded.certificates);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("open");
        let path = dir.join("identity.pem");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create(&path).err().unwrap();
        assert!(error.contains("chmod 600"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_without_key_or_certificate_is_refused() {
        let dir = scratch("bad");
        private_dir(&dir).unwrap();
        let path = dir.join("identity.pem");
        let mut file = create_private(&path).unwrap();
        file.write_all(b"not a pem file\n").unwrap();
        drop(file);
        let error = load_or_create(&path).err().unwrap();
        assert!(error.contains("no certificate"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
