//! TLS on both sides. `[server.tls]`: the listener speaks HTTPS with the configured certificate,
//! and plain HTTP on that port gets nowhere. `https` upstreams: the gateway checks the server's
//! certificate (system roots plus the upstream's `ca_file`) and refuses one it cannot verify.

use crate::support::raw_http;
use crate::support::*;
use serde_json::json;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, crypto::ring};

/// A self-signed certificate for localhost/127.0.0.1 and its key, made with the openssl CLI.
pub(crate) fn self_signed(dir: &std::path::Path) {
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf, not a CA: webpki refuses a CA certificate as a server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl CLI is needed to make a test certificate");
    assert!(status.success(), "openssl req failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let cert_pem = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let config = format!(
        "[server]\n[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n{}",
        stdio_upstream("fx", fixture_bin(), &[], "")
    );
    let gw = Listening::gateway_in(dir, &config).await;
    let url = gw.url.replacen("https://", "http://", 1);
    assert!(gw.url.starts_with("https://"), "{}", gw.url);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&cert_pem).unwrap()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = raw_http::connect(&url).await;
    let mut stream = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("handshake");
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":initialize_params(json!({}))});
    stream.write_all(&raw_http::post(&url, &init.to_string(), &[])).await.unwrap();
    let mut reader = BufReader::new(stream);
    let resp = raw_http::read_response(&mut reader).await.expect("a response over TLS");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["result"]["serverInfo"]["name"], "tollgate");

    // Plain HTTP to the TLS port: no response, the connection is closed.
    let (rd, mut wr) = raw_http::connect(&url).await.into_split();
    wr.write_all(&raw_http::post(&url, &init.to_string(), &[])).await.unwrap();
    assert!(raw_http::read_response(&mut BufReader::new(rd)).await.is_none());
}

/// One gateway as another's `https` upstream: with the upstream's certificate in `ca_file` the
/// call goes through; without it the certificate is unknown, the upstream is unreachable and its
/// tools are not offered, and the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_used_only_when_its_certificate_verifies() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let cert = dir.path().join("cert.pem");
    let config = format!(
        "[server]\n[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n{}",
        stdio_upstream("fx", fixture_bin(), &[], "")
    );
    let tls_upstream = Listening::gateway_in(dir, &config).await;
    assert!(tls_upstream.url.starts_with("https://"), "{}", tls_upstream.url);

    let trusting =
        Listening::gateway(&http_upstream("b", &tls_upstream.url, &format!("ca_file = {:?}", cert.to_str().unwrap())))
            .await;
    let mut client = HttpClient::new(&trusting.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("b__fx__echo", json!({"message": "over tls"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: over tls", "{reply}");

    let untrusting = Listening::gateway(&http_upstream("b", &tls_upstream.url, "")).await;
    let mut client = HttpClient::new(&untrusting.url);
    client.initialize(json!({})).await;
    let list = client.request("tools/list", json!({})).await;
    let names = list.response()["result"]["tools"].to_string();
    assert!(!names.contains("b__fx__echo"), "an unverified upstream's tools were offered: {names}");
    let reply = client.call_tool("b__fx__echo", json!({"message": "x"})).await;
    assert!(reply["error"].is_object(), "{reply}");
    let log = untrusting.stderr();
    let left_out = log.lines().find(|l| l.contains("upstream left out")).expect("the unreachable upstream is logged");
    assert!(left_out.contains("certificate"), "the log does not say the certificate failed: {left_out}");
}

/// A one-route HTTPS server on loopback answering every request with `body` (JSON), with the
/// certificate [`self_signed`] wrote to `dir`; answers its URL base (`https://127.0.0.1:PORT`).
pub(crate) async fn https_json_server(dir: &std::path::Path, body: String) -> String {
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls::pki_types::PrivateKeyDer;
    let certs = CertificateDer::pem_file_iter(dir.join("cert.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    base
}
