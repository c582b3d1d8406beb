//! Optional TLS on the downstream listener (`[server.tls]`): rustls with the ring provider
//! (pure Rust and assembly; no aws-lc C build), TLS 1.2 and 1.3, HTTP/1.1 by ALPN.
//!
//! The certificate and key are read once at startup; replacing them takes a restart. The
//! handshake runs inside the connection's task under the header read timeout, so a client that
//! stalls it is a slowloris like any other.

use super::listener::{Handshake, Stream};
use crate::config::TlsConfig;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, crypto::ring};

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("server.tls.{what} {}: {e}", path.display()))
}

/// The acceptor for `config`; errors name the file and what is wrong with it (never key bytes).
pub fn handshake(config: &TlsConfig) -> Result<Handshake, String> {
    let cert_pem = read(&config.cert_file, "cert_file")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("server.tls.cert_file {}: not PEM certificates: {e}", config.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("server.tls.cert_file {}: no certificate in the file", config.cert_file.display()));
    }
    let key_pem = read(&config.key_file, "key_file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!("server.tls.key_file {}: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", config.key_file.display())
    })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls: the key does not fit the certificate, or is unusable: {e}"))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    Ok(Arc::new(move |tcp| {
        let acceptor = acceptor.clone();
        Box::pin(async move {
            let stream = acceptor.accept(tcp).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig { cert_file: dir.path().join("cert.pem"), key_file: dir.path().join("key.pem") };
        assert!(handshake(&config).err().unwrap().contains("cert.pem"));
        std::fs::write(&config.cert_file, "not pem").unwrap();
        let e = handshake(&config).err().unwrap();
        assert!(e.contains("cert.pem") && e.contains("no certificate"), "{e}");
    }
}
