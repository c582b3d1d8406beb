//! Upstream credentials come from references and reach only their upstream; the client's own
//! credentials never cross the gateway.
//!
//! The fixture reports what it received as digests (`sha256:<16 hex>`), so a test can prove a
//! secret arrived while the secret itself appears in no reply.

use crate::support::*;
use serde_json::{Value, json};
use sha2::Digest;

fn digest(value: &str) -> String {
    let hash = sha2::Sha256::digest(value.as_bytes());
    format!("sha256:{}", hash.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
}

/// A value no component would produce by chance; it also does not look like a token the
/// redactor knows, so a leak would not be hidden by redaction.
fn planted(label: &str) -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    format!("planted-{label}-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A client that sends its own bearer token and cookie on every request.
fn client_with_credentials(url: &str, token: &str, cookie: &str) -> HttpClient {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("cookie", format!("sid={cookie}").parse().unwrap());
    let mut client = HttpClient::new(url);
    client.http = tollgate::transport::client_tls::builder().default_headers(headers).build().unwrap();
    client
}

/// The headers the HTTP fixture saw on the request that carried the call.
fn seen_headers(reply: &Value) -> serde_json::Map<String, Value> {
    let text = first_text(&reply["result"]);
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("request_headers did not answer JSON ({e}): {reply}"))
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_secrets_reach_only_their_upstream_and_never_show() {
    let fixture = Listening::fixture_http().await;
    let dir = tempfile::tempdir().unwrap();
    let file_secret = planted("file");
    let env_secret = planted("env");
    let (client_token, client_cookie) = (planted("client-token"), planted("client-cookie"));
    std::fs::write(dir.path().join("upstream.key"), format!("{file_secret}\n")).unwrap();
    let config = format!(
        "[audit]\nfile = \"audit.jsonl\"\n{}{}",
        http_upstream(
            "web",
            &fixture.url,
            "headers = { X-Upstream-Key = \"file:upstream.key\", Authorization = \"env:TG_IT_UPSTREAM_TOKEN\" }"
        ),
        stdio_upstream("local", fixture_bin(), &[], "env = { FIXTURE_TOKEN = \"env:TG_IT_UPSTREAM_TOKEN\" }"),
    );
    let mut gw = Listening::gateway_in_with_env(
        dir,
        &config,
        // Trace level: whatever any component logs, the secret must not be in it.
        &[("TG_IT_UPSTREAM_TOKEN", &env_secret), ("TOLLGATE_LOG", "trace")],
    )
    .await;
    let mut client = client_with_credentials(&gw.url, &client_token, &client_cookie);
    let mut replies = vec![client.initialize(json!({})).await.messages];
    let list = client.request("tools/list", json!({})).await;
    assert!(list.response()["result"]["tools"].as_array().is_some_and(|t| t.len() > 4), "{:?}", list.messages);
    replies.push(list.messages);

    // The HTTP upstream got its configured headers, resolved; not the client's.
    let reply = client.call_tool("web__request_headers", json!({})).await;
    let seen = seen_headers(&reply);
    assert_eq!(seen.get("x-upstream-key"), Some(&json!(digest(&file_secret))), "{seen:?}");
    assert_eq!(seen.get("authorization"), Some(&json!(digest(&env_secret))), "{seen:?}");
    assert!(!seen.contains_key("cookie"), "client cookie passed through: {seen:?}");
    replies.push(vec![reply]);

    // The stdio upstream got its configured variable, and not the variable it was read from.
    let reply = client.call_tool("local__get_env", json!({"name": "FIXTURE_TOKEN", "digest": true})).await;
    assert_eq!(first_text(&reply["result"]), digest(&env_secret), "{reply}");
    replies.push(vec![reply]);
    let reply = client.call_tool("local__get_env", json!({"name": "TG_IT_UPSTREAM_TOKEN"})).await;
    assert_eq!(first_text(&reply["result"]), "<unset>", "{reply}");
    replies.push(vec![reply]);
    // An upstream that echoes its own credential hands it to no one.
    let reply = client.call_tool("local__get_env", json!({"name": "FIXTURE_TOKEN"})).await;
    assert_eq!(first_text(&reply["result"]), tollgate::secrets::Scrubber::MARKER, "{reply}");
    replies.push(vec![reply]);

    // Rotation: the file is read again when a connection starts (a new session here).
    let rotated = planted("rotated");
    std::fs::write(gw.dir.path().join("upstream.key"), &rotated).unwrap();
    let ended = client.http.delete(&client.url).header("mcp-session-id", client.session.clone().unwrap()).send();
    assert_eq!(ended.await.unwrap().status(), 204);
    replies.push(client.initialize(json!({})).await.messages);
    let reply = client.call_tool("web__request_headers", json!({})).await;
    assert_eq!(seen_headers(&reply).get("x-upstream-key"), Some(&json!(digest(&rotated))));
    replies.push(vec![reply]);

    assert!(gw.terminate().await.success());
    let stderr = gw.stderr();
    assert!(stderr.contains("TRACE"), "the log level the grep relies on was in effect");
    let audit = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("request_headers"), "the calls were audited");
    let replies = serde_json::to_string(&replies).unwrap();
    for secret in [&file_secret, &env_secret, &rotated, &client_token, &client_cookie] {
        assert!(!stderr.contains(secret.as_str()), "{secret} in the gateway's stderr");
        assert!(!audit.contains(secret.as_str()), "{secret} in the audit log");
        assert!(!replies.contains(secret.as_str()), "{secret} in a reply");
    }
}

/// MCP forbids token passthrough: the client's `Authorization` and cookies are for the gateway
/// only, on both protocol generations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_credentials_never_reach_an_http_upstream() {
    let fixture = Listening::fixture_http().await;
    let gw = Listening::gateway(&http_upstream("web", &fixture.url, "")).await;
    let (token, cookie) = (planted("client-token"), planted("client-cookie"));
    let mut client = client_with_credentials(&gw.url, &token, &cookie);
    client.initialize(json!({})).await;
    let stateful = seen_headers(&client.call_tool("web__request_headers", json!({})).await);
    let mut stateless_client = client_with_credentials(&gw.url, &token, &cookie);
    let reply = stateless_client
        .stateless_request("tools/call", json!({"name": "web__request_headers", "arguments": {}}))
        .await;
    let stateless = seen_headers(reply.response());
    for seen in [&stateful, &stateless] {
        assert!(seen.contains_key("mcp-protocol-version"), "the fixture reports headers: {seen:?}");
        assert!(!seen.contains_key("authorization") && !seen.contains_key("cookie"), "{seen:?}");
        let values: Vec<&Value> = seen.values().collect();
        for secret in [format!("Bearer {token}"), format!("sid={cookie}")] {
            assert!(!values.contains(&&json!(digest(&secret))), "client credential under another name: {seen:?}");
        }
    }
}

/// A reference that cannot be read fails the connection with an error naming the reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_reference_fails_the_connect_naming_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let cases = [
        ("env = { API_TOKEN = \"env:TG_IT_SURELY_UNSET\" }", "env.API_TOKEN (env:TG_IT_SURELY_UNSET)", "not set"),
        ("env = { API_TOKEN = \"file:missing.key\" }", "missing.key", "cannot read secret file"),
    ];
    for (extra, reference, why) in cases {
        let upstream = stdio_upstream("fx", fixture_bin(), &[], &format!("required = true\n{extra}"));
        std::fs::write(&config, upstream).unwrap();
        let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap()]);
        let reply = client.initialize(json!({})).await;
        assert_eq!(reply["error"]["code"], -31005, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(reference) && message.contains(why), "{message}");
    }
}
