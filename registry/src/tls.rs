//! HTTPS for `serve --tls-cert FILE --tls-key FILE`: rustls with the ring provider, TLS 1.2 and
//! 1.3, HTTP/2 or HTTP/1.1 chosen by ALPN.
//!
//! The certificate can be replaced while the registry runs: [`TlsFiles::reload`] (which the
//! server calls on SIGHUP) reads both files again and swaps the configuration that new
//! handshakes use; connections already open keep the one they started with. A reload that
//! fails leaves the previous certificate in place.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio_rustls::TlsAcceptor;

use crate::serve_error::ServeError;

/// ALPN protocol id of HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A certificate and key from PEM files, reloadable.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Reads the certificate chain (server certificate first) and its private key.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsFiles, ServeError> {
        let config = server_config(cert, key)?;
        Ok(TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads both files again; on success new handshakes use them, on failure nothing changes.
    pub fn reload(&self) -> Result<(), ServeError> {
        let config = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// An acceptor with the current configuration.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    fs::read(path).map_err(|source| ServeError::Io {
        op: "reading",
        path: path.to_owned(),
        source,
    })
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, ServeError> {
    let bad = |path: &Path, what: String| ServeError::Tls {
        path: path.to_owned(),
        what,
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(bad(cert, "holds no certificate".into()));
    }
    let secret = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| bad(key, format!("no PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, secret)
        .map_err(|e| bad(key, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        fs::write(&c, cert.cert.pem()).unwrap();
        fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn loads_reloads_and_keeps_the_old_certificate_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "one.test");
        let files = TlsFiles::load(&cert, &key).unwrap();
        let before = files.acceptor().config().clone();
        let (cert2, key2) = write_pair(dir.path(), "two.test");
        fs::copy(&cert2, &cert).unwrap();
        fs::copy(&key2, &key).unwrap();
        files.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, files.acceptor().config()));
        let now = files.acceptor().config().clone();
        fs::write(&key, "not a key").unwrap();
        let err = files.reload().unwrap_err().to_string();
        assert!(err.contains("no PEM private key"), "{err}");
        assert!(Arc::ptr_eq(&now, files.acceptor().config()));
        assert_eq!(now.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn mismatched_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path(), "one.test");
        let (_, other_key) = write_pair(dir.path(), "two.test");
        let err = TlsFiles::load(&cert, &other_key).unwrap_err().to_string();
        assert!(
            err.contains("two.test.key") && err.contains("does not fit"),
            "{err}"
        );
        let err = TlsFiles::load(&dir.path().join("none.crt"), &other_key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.crt"), "{err}");
        fs::write(dir.path().join("empty.crt"), "").unwrap();
        let err = TlsFiles::load(&dir.path().join("empty.crt"), &other_key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
