//! Authentication and authorization through the real binary: bearer JWTs checked against a
//! JWKS (file and URL), API keys, 401/403 challenges that lead a standard client to the
//! authorization server, role-bound policy (two identities, two tool lists), sessions bound to
//! their principal, and no client token ever reaching an HTTP upstream.

use crate::support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const ISSUER: &str = "https://as.example";
const CI_KEY: &str = "ci-bot-key-5f0c1a9e3d7b4c2a";
const READER_KEY: &str = "reader-key-8e2d4b6a1c3f5e7d";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/auth").join(name)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sha256(key: &str) -> String {
    tollgate::auth::api_key::hash_key(key)
}

/// A token signed with the fixture key in `<key_file>.der`, naming key id `kid`.
fn sign(key_file: &str, kid: &str, claims: &Value) -> String {
    let der = std::fs::read(fixture(&format!("{key_file}.der"))).unwrap();
    let (key, alg) = if key_file.starts_with("ec") {
        (EncodingKey::from_ec_der(&der), Algorithm::ES256)
    } else {
        (EncodingKey::from_rsa_der(&der), Algorithm::RS256)
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Valid claims for the gateway at `url` (its resource URL is its audience).
fn claims(url: &str, sub: &str, scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": url, "sub": sub, "exp": now() + 300, "iat": now(), "scope": scope})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn fixture_upstream() -> String {
    stdio_upstream("fx", fixture_bin(), &[], "")
}

/// API keys for ci-bot (roles mcp, admin) and a reader (role mcp only), JWTs from ISSUER.
fn auth_section(extra: &str) -> String {
    format!(
        "[auth]\nrequired_roles = [\"mcp\"]\n{extra}\n\
         [[auth.api_key]]\nprincipal = \"ci-bot\"\nsha256 = {:?}\nroles = [\"mcp\", \"admin\"]\n\
         [[auth.api_key]]\nprincipal = \"reader\"\nsha256 = {:?}\nroles = [\"mcp\"]\n\
         [auth.jwt]\nissuer = {ISSUER:?}\njwks_file = {:?}\n",
        sha256(CI_KEY),
        sha256(READER_KEY),
        fixture("jwks.json"),
    )
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params(json!({}))})
}

fn challenge(reply: &http_client::Reply) -> String {
    reply.headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn tool_names(reply: &http_client::Reply) -> Vec<String> {
    let list = reply.response();
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_tokens_get_401_with_a_challenge_and_good_ones_work() {
    let gw = Listening::gateway(&format!("{}{}", fixture_upstream(), auth_section(""))).await;
    let metadata_url = gw.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    let mut client = HttpClient::new(&gw.url);

    // No token: 401, a bare challenge pointing at the metadata, a JSON-RPC error body.
    let reply = client.post(&initialize_body(), &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(challenge(&reply), format!("Bearer realm=\"tollgate\", resource_metadata=\"{metadata_url}\""));
    assert_eq!(reply.response()["error"]["code"], -31014);

    // Expired, wrong audience, wrong issuer, wrong signature, unknown key: 401 invalid_token.
    let mut expired = claims(&gw.url, "alice", "mcp");
    expired["exp"] = json!(now() - 600);
    let mut wrong_aud = claims(&gw.url, "alice", "mcp");
    wrong_aud["aud"] = json!("https://another-service.example/mcp");
    let mut wrong_iss = claims(&gw.url, "alice", "mcp");
    wrong_iss["iss"] = json!("https://evil.example");
    let good = claims(&gw.url, "alice", "mcp");
    for (what, token, says) in [
        ("expired", sign("rsa-a", "rsa-a", &expired), "expired"),
        ("wrong audience", sign("rsa-a", "rsa-a", &wrong_aud), "audience"),
        ("wrong issuer", sign("rsa-a", "rsa-a", &wrong_iss), "issuer"),
        ("wrong signature", sign("rsa-b", "rsa-a", &good), "signature"),
        ("unknown key", sign("rsa-b", "rsa-b", &good), "key"),
        ("garbage", "not-a-jwt-and-not-a-key".to_string(), "well-formed"),
    ] {
        client.authorization = Some(bearer(&token));
        let reply = client.post(&initialize_body(), &[]).await;
        assert_eq!(reply.status, 401, "{what}");
        let c = challenge(&reply);
        assert!(c.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{what}: {c}");
        assert!(c.contains("error=\"invalid_token\""), "{what}: {c}");
        assert!(c.contains(says), "{what}: {c}");
    }

    // A token in the query string is refused outright (400), even with a good header.
    client.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &good)));
    let resp = client
        .http
        .post(format!("{}?access_token=x", gw.url))
        .header("authorization", client.authorization.clone().unwrap())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let c = resp.headers().get("www-authenticate").unwrap().to_str().unwrap().to_string();
    assert!(c.contains("error=\"invalid_request\""), "{c}");

    // Valid identity without the required role: 403 insufficient_scope naming the scope.
    client.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &claims(&gw.url, "alice", "profile"))));
    let reply = client.post(&initialize_body(), &[]).await;
    assert_eq!(reply.status, 403);
    let c = challenge(&reply);
    assert!(c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"mcp\""), "{c}");
    assert_eq!(reply.response()["error"]["code"], -31015);

    // Good tokens (RS256 and ES256) and an API key work, on both protocol generations.
    for authorization in [bearer(&sign("rsa-a", "rsa-a", &good)), bearer(&sign("ec-a", "ec-a", &good)), bearer(CI_KEY)]
    {
        let mut client = HttpClient::new(&gw.url);
        client.authorization = Some(authorization);
        client.initialize(json!({})).await;
        assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "hi"})).await["result"]), "Echo: hi");
        let mut stateless = HttpClient::new(&gw.url);
        stateless.authorization = client.authorization.clone();
        let reply = stateless.stateless_request("tools/list", json!({})).await;
        assert_eq!(reply.status, 200);
        assert!(tool_names(&reply).contains(&"fx__echo".to_string()));
    }

    // The metadata the challenge points at (and the root variant) names us and the issuer.
    for url in [metadata_url.clone(), gw.url.replace("/mcp", "/.well-known/oauth-protected-resource")] {
        let doc: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(doc["resource"], gw.url.as_str(), "{url}");
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert_eq!(doc["scopes_supported"], json!(["mcp"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_which_tools_each_identity_sees_and_may_call() {
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("policy.toml"),
        "[[upstream]]\nname = \"fx\"\nroles = [\"admin\"]\nread_only = false\nallow = [\"*\"]\n\
         [[upstream]]\nname = \"fx\"\nallow = [\"echo\", \"add\", \"write_note\"]\n\
         [[upstream.tool]]\nname = \"add\"\nroles = [\"math\"]\n",
    )
    .unwrap();
    let config = format!(
        "{}[policy]\ndir = {:?}\n[audit]\nfile = \"audit.jsonl\"\n{}",
        fixture_upstream(),
        policies.path(),
        auth_section("")
    );
    let gw = Listening::gateway(&config).await;

    let mut admin = HttpClient::new(&gw.url);
    admin.authorization = Some(bearer(CI_KEY));
    admin.initialize(json!({})).await;
    let mut reader = HttpClient::new(&gw.url);
    reader.authorization = Some(bearer(READER_KEY));
    reader.initialize(json!({})).await;
    let mut mathematician = HttpClient::new(&gw.url);
    mathematician.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &claims(&gw.url, "ada", "mcp math"))));
    mathematician.initialize(json!({})).await;

    let admin_tools = tool_names(&admin.request("tools/list", json!({})).await);
    let reader_tools = tool_names(&reader.request("tools/list", json!({})).await);
    let math_tools = tool_names(&mathematician.request("tools/list", json!({})).await);
    assert!(admin_tools.len() > reader_tools.len(), "{admin_tools:?} vs {reader_tools:?}");
    assert!(admin_tools.contains(&"fx__crash".to_string()));
    assert_eq!(reader_tools, ["fx__echo", "fx__write_note"]);
    assert_eq!(math_tools, ["fx__add", "fx__echo", "fx__write_note"]);

    // Hidden tools answer like unknown ones; the same predicate refuses the call.
    let reply = reader.call_tool("fx__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(first_text(&mathematician.call_tool("fx__add", json!({"a": 1, "b": 2})).await["result"]).contains('3'));

    // Writes: granted to the admin block, refused (naming the rule) for the general one.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("note.txt");
    let reply = reader.call_tool("fx__write_note", json!({"path": target, "content": "x"})).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    assert_eq!(reply["error"]["data"]["rule"], "policy.toml:fx:read_only");
    assert!(!target.exists());
    let reply = admin.call_tool("fx__write_note", json!({"path": target, "content": "x"})).await;
    assert!(first_text(&reply["result"]).starts_with("wrote"), "{reply}");

    // Every call is attributed to the identity that made it.
    let audit = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by = |principal: &str, tool: &str| {
        records
            .iter()
            .filter(|r| r["principal"] == principal && r["tool"] == tool)
            .map(|r| r["decision"].clone())
            .collect::<Vec<_>>()
    };
    assert!(by("ci-bot", "fx__write_note").contains(&json!("allow")), "{audit}");
    assert!(by("reader", "fx__write_note").contains(&json!("deny")), "{audit}");
    assert!(by("https://as.example#ada", "fx__add").contains(&json!("allow")), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_calls_are_attributed_to_the_configured_principal_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/p.toml"),
        "[[upstream]]\nname = \"upstream\"\nroles = [\"operator\"]\nallow = [\"echo\"]\n",
    )
    .unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        "[policy]\ndir = \"policies\"\n[audit]\nfile = \"audit.jsonl\"\n\
         [auth]\nmode = \"none\"\nstdio_principal = \"os:test-operator\"\nstdio_roles = [\"operator\"]\n",
    )
    .unwrap();
    let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap(), "--", fixture_bin()]);
    client.initialize(json!({})).await;
    assert_eq!(first_text(&client.call_tool("echo", json!({"message": "m"})).await["result"]), "Echo: m");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["principal"], "os:test-operator", "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_is_useless_to_another_principal() {
    let gw = Listening::gateway(&format!("{}{}", fixture_upstream(), auth_section(""))).await;
    let mut alice = HttpClient::new(&gw.url);
    alice.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &claims(&gw.url, "alice", "mcp"))));
    alice.initialize(json!({})).await;

    // Bob, with a valid token of his own, presents Alice's session id: exactly like an unknown id.
    let mut bob = HttpClient::new(&gw.url);
    bob.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &claims(&gw.url, "bob", "mcp"))));
    bob.session = alice.session.clone();
    bob.protocol = alice.protocol.clone();
    let stolen = bob.request("tools/list", json!({})).await;
    bob.session = Some("0".repeat(64));
    let unknown = bob.request("tools/list", json!({})).await;
    assert_eq!(stolen.status, 404);
    assert_eq!(stolen.status, unknown.status);
    assert_eq!(stolen.response()["error"], unknown.response()["error"]);
    // Not the GET stream nor DELETE either; Alice's session is untouched.
    bob.session = alice.session.clone();
    let del = bob.http.delete(&gw.url).header("mcp-session-id", bob.session.clone().unwrap());
    let del = del.header("authorization", bob.authorization.clone().unwrap()).send().await.unwrap();
    assert_eq!(del.status(), 404);
    assert_eq!(
        first_text(&alice.call_tool("fx__echo", json!({"message": "still mine"})).await["result"]),
        "Echo: still mine"
    );
    // The same principal with another valid token (refreshed) keeps the session.
    alice.authorization = Some(bearer(&sign("ec-a", "ec-a", &claims(&gw.url, "alice", "mcp"))));
    assert_eq!(alice.request("tools/list", json!({})).await.status, 200);
}

/// An HTTP MCP upstream that records the headers of every request it gets.
async fn recording_upstream() -> (String, Arc<Mutex<Vec<http::HeaderMap>>>) {
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let handler = move |headers: HeaderMap, body: String| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(headers);
            let msg: Value = serde_json::from_str(&body).unwrap_or_default();
            let Some(id) = msg.get("id").cloned() else { return axum::http::StatusCode::ACCEPTED.into_response() };
            let reply = match msg["method"].as_str().unwrap_or_default() {
                "initialize" => json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "recorder", "version": "0"}}}),
                "tools/list" => json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [{
                    "name": "peek", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}]}}),
                "tools/call" => {
                    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "ok"}]}})
                }
                other => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": other}}),
            };
            ([(axum::http::header::CONTENT_TYPE, "application/json")], reply.to_string()).into_response()
        }
    };
    let app = axum::Router::new().route("/mcp", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tokens_never_reach_an_http_upstream() {
    let (upstream, seen) = recording_upstream().await;
    let config = format!(
        "{}{}",
        http_upstream("rec", &upstream, "headers = { Authorization = \"literal:Bearer upstream-own-credential\" }"),
        auth_section("")
    );
    let gw = Listening::gateway(&config).await;
    let token = sign("rsa-a", "rsa-a", &claims(&gw.url, "alice", "mcp"));
    let mut client = HttpClient::new(&gw.url);
    client.authorization = Some(bearer(&token));
    client.initialize(json!({})).await;
    assert_eq!(first_text(&client.call_tool("rec__peek", json!({})).await["result"]), "ok");
    let mut keyed = HttpClient::new(&gw.url);
    keyed.authorization = Some(bearer(CI_KEY));
    keyed.initialize(json!({})).await;
    assert_eq!(first_text(&keyed.call_tool("rec__peek", json!({})).await["result"]), "ok");

    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 4, "the upstream saw {} requests", seen.len());
    for headers in seen.iter() {
        let auth: Vec<&str> = headers.get_all("authorization").iter().filter_map(|v| v.to_str().ok()).collect();
        // Only the upstream's own configured credential, never the client's token or key.
        assert_eq!(auth, ["Bearer upstream-own-credential"], "{headers:?}");
        for value in headers.values() {
            let v = value.to_str().unwrap_or_default();
            assert!(!v.contains(&token) && !v.contains(CI_KEY), "client credential forwarded: {headers:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_is_fetched_again_when_a_token_names_a_new_key() {
    let served = Arc::new(Mutex::new(std::fs::read_to_string(fixture("jwks.json")).unwrap()));
    let jwks = served.clone();
    let app = axum::Router::new()
        .route("/jwks.json", axum::routing::get(move || async move { jwks.lock().unwrap().clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = format!(
        "{}[auth]\n[auth.jwt]\nissuer = {ISSUER:?}\njwks_url = {jwks_url:?}\njwks_min_refresh_secs = 0\nroles_claim = \"roles\"\n",
        fixture_upstream()
    );
    let gw = Listening::gateway(&config).await;
    let mut c = claims(&gw.url, "carol", "");
    c["roles"] = json!(["ops"]);
    let mut client = HttpClient::new(&gw.url);
    client.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &c)));
    client.initialize(json!({})).await;

    // The issuer rotates to rsa-b: refused while the JWKS lacks it, accepted once it is served.
    let mut rotated = HttpClient::new(&gw.url);
    rotated.authorization = Some(bearer(&sign("rsa-b", "rsa-b", &c)));
    assert_eq!(rotated.post(&initialize_body(), &[]).await.status, 401);
    *served.lock().unwrap() = std::fs::read_to_string(fixture("jwks-rotated.json")).unwrap();
    rotated.initialize(json!({})).await;
}

/// An `https` JWKS URL (the usual kind: an IdP's `jwks_uri`) is fetched over TLS, the server's
/// certificate checked against `jwks_ca_file`; without that CA no token passes and the log says
/// why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_over_https_is_fetched_with_a_verified_certificate() {
    let certs = tempfile::tempdir().unwrap();
    crate::tls::self_signed(certs.path());
    let base =
        crate::tls::https_json_server(certs.path(), std::fs::read_to_string(fixture("jwks.json")).unwrap()).await;
    let jwks_url = format!("{base}/jwks.json");
    let jwt = |extra: &str| {
        format!(
            "{}[auth]\n[auth.jwt]\nissuer = {ISSUER:?}\njwks_url = {jwks_url:?}\nroles_claim = \"roles\"\n{extra}",
            fixture_upstream()
        )
    };
    let ca = certs.path().join("cert.pem");
    let gw = Listening::gateway(&jwt(&format!("jwks_ca_file = {:?}\n", ca.to_str().unwrap()))).await;
    let mut c = claims(&gw.url, "dana", "");
    c["roles"] = json!(["ops"]);
    let mut client = HttpClient::new(&gw.url);
    client.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &c)));
    client.initialize(json!({})).await;

    // Without the CA the keys cannot be fetched: the gateway serves (the IdP may come back), but
    // no token passes, and the log says why.
    let untrusting = Listening::gateway(&jwt("")).await;
    let mut c = claims(&untrusting.url, "dana", "");
    c["roles"] = json!(["ops"]);
    let mut refused = HttpClient::new(&untrusting.url);
    refused.authorization = Some(bearer(&sign("rsa-a", "rsa-a", &c)));
    assert_eq!(refused.post(&initialize_body(), &[]).await.status, 401);
    let log = untrusting.stderr();
    let warning = log.lines().find(|l| l.contains("cannot fetch the JWKS")).expect("the failed fetch is logged");
    assert!(warning.contains("certificate"), "the warning does not name the certificate: {warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_finds_the_authorization_server_through_the_metadata() {
    // The fake authorization server runs inside the Python client; its port must be known to
    // the gateway's config (issuer) first.
    let as_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{as_port}");
    let config = format!(
        "{}[auth]\n[auth.jwt]\nissuer = {issuer:?}\njwks_file = {:?}\n",
        fixture_upstream(),
        fixture("jwks.json")
    );
    let gw = Listening::gateway(&config).await;
    let mut c = claims(&gw.url, "sdk-user", "");
    c["iss"] = json!(issuer);
    let token = sign("rsa-a", "rsa-a", &c);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/oauth_discovery.py");
    let out = tokio::time::timeout(
        WAIT * 2,
        tokio::process::Command::new(python()).arg(&script).arg(&gw.url).arg(as_port.to_string()).arg(&token).output(),
    )
    .await
    .expect("the Python client finished in time")
    .expect("run python");
    assert!(out.status.success(), "stderr: {}\ngateway: {}", String::from_utf8_lossy(&out.stderr), gw.stderr());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let requests: Vec<&str> = report["requests"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let metadata_url = gw.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    // 401 first, then the metadata the challenge names, then the authorization server's
    // metadata, registration and token, then the retried request with the token.
    assert_eq!(requests[0], format!("POST {} -> 401", gw.url), "{requests:#?}");
    assert_eq!(requests[1], format!("GET {metadata_url} -> 200"), "{requests:#?}");
    assert_eq!(requests[2], format!("GET {issuer}/.well-known/oauth-authorization-server -> 200"), "{requests:#?}");
    assert_eq!(
        report["as_requests"],
        json!(["GET /.well-known/oauth-authorization-server", "POST /register", "POST /token"])
    );
    assert!(requests.iter().skip(3).any(|r| r.starts_with(&format!("POST {} -> 200", gw.url))), "{requests:#?}");
    assert!(report["tools"].as_array().unwrap().iter().any(|t| t == "fx__echo"), "{report}");
}

#[test]
fn a_network_listener_without_auth_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, "[server]\nlisten = \"0.0.0.0:0\"\n").unwrap();
    let out = std::process::Command::new(tollgate_bin()).arg("serve").arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no [auth] section"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "it must not have listened");
}

#[test]
fn hash_key_prints_the_digest_for_the_config() {
    use std::io::Write;
    let mut child = std::process::Command::new(tollgate_bin())
        .args(["auth", "hash-key"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{CI_KEY}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sha256(CI_KEY));
}
