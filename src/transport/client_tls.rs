//! Outgoing HTTPS — to upstreams, JWKS URLs and OTLP collectors — through rustls with the ring
//! provider, the crypto the listener's TLS already uses (no aws-lc C build). Server certificates
//! are checked against the platform's trust store (rustls-platform-verifier: the system's CA
//! bundle on Linux) plus, where config names one, a PEM file of extra roots for a private CA.
//!
//! reqwest is built without a provider of its own and panics when it builds a client before one
//! is installed, so every client the gateway makes comes from [`builder`], and `main` installs
//! the provider before anything else (libraries such as the OTLP exporter build their own).

use std::path::Path;
use std::sync::Once;
use tokio_rustls::rustls::crypto::ring;

/// Makes ring the process's rustls provider; idempotent and cheap after the first call.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    // `Err` means another provider was installed first, which serves as well.
    INSTALL.call_once(|| {
        let _ = ring::default_provider().install_default();
    });
}

/// A client builder that can speak HTTPS and never follows redirects: a redirect would carry an
/// upstream's configured credentials to wherever it points, and make the gateway fetch URLs a
/// server chooses (SSRF). MCP endpoints, JWKS URLs and collectors do not redirect.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// `builder` trusting the certificates in `ca_file` (PEM) besides the platform's roots; `key`
/// names the setting in errors.
pub fn builder_with_roots(ca_file: Option<&Path>, key: &str) -> Result<reqwest::ClientBuilder, String> {
    let builder = builder();
    let Some(path) = ca_file else { return Ok(builder) };
    let pem = std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{key} {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no certificate in the file", path.display()));
    }
    Ok(builder.tls_certs_merge(certs))
}

/// `e` with its causes: reqwest's own text ("error sending request for url ...") leaves out why,
/// such as the certificate that did not verify or the connection that was refused.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_not_pem_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = builder_with_roots(Some(&path), "upstream[0].ca_file").err().unwrap();
        assert!(err.starts_with("upstream[0].ca_file "), "{err}");
        assert!(err.contains("no certificate"), "{err}");
        let missing = builder_with_roots(Some(&dir.path().join("nope.pem")), "k").err().unwrap();
        assert!(missing.contains("nope.pem"), "{missing}");
    }

    #[test]
    fn clients_build_with_the_installed_provider() {
        assert!(builder().build().is_ok());
    }
}
