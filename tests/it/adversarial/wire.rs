//! Adversarial clients: framing, parsing, headers and sessions (sections A, B and E of the case
//! list in `SECURITY.md`).

use crate::support::recording::{RecordingUpstream, Reply, read_only_tool, text_result};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// T1: a truncated JSON body gets HTTP 400 with -32700 and `id: null`; nothing reaches the
/// upstream and the same session goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_is_a_parse_error_and_the_session_keeps_serving() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("echo", "Echoes")], |_| text_result("echoed")).await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let before = upstream.received().len();
    let reply = client.post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"#.to_string(), &[]).await;
    assert_eq!(reply.status, 400, "{:?}", reply.response());
    assert_eq!(reply.response()["error"]["code"], -32700);
    assert_eq!(reply.response()["id"], Value::Null);
    assert_eq!(upstream.received().len(), before, "a malformed frame reached the upstream");
    let echoed = client.call_tool("up__echo", json!({})).await;
    assert_eq!(echoed["result"]["content"][0]["text"], "echoed", "{echoed}");
}

/// T44 (the part that holds without `[auth]`): the client's `Authorization` header and cookies
/// are never passed on to the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_credentials_never_reach_the_upstream() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("echo", "Echoes")], |_| text_result("echoed")).await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.next_id();
    let call =
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "up__echo", "arguments": {}}});
    let reply = client.post(&call, &[("authorization", "Bearer client-token"), ("cookie", "sid=client-cookie")]).await;
    assert_eq!(reply.response()["result"]["content"][0]["text"], "echoed", "{:?}", reply.response());
    let calls: Vec<_> = upstream.received().into_iter().filter(|r| r.method() == Some("tools/call")).collect();
    assert_eq!(calls.len(), 1);
    for name in ["authorization", "cookie"] {
        assert!(calls[0].headers.get(name).is_none(), "{name} was forwarded: {:?}", calls[0].headers);
    }
}

/// T46: a browser page on a hostile site can name loopback in the userinfo of its Origin, or a
/// rebinding attacker's Host can carry it before an `@` or after a `#`; each is refused with 403
/// and -32600 before any session sees the body, nothing reaches the upstream, and the gateway
/// goes on serving the honest client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_and_hosts_that_only_look_like_loopback_are_refused() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("echo", "Echoes")], |_| text_result("echoed")).await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let call =
        json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "up__echo", "arguments": {}}});
    let spoofs = [
        ("origin", "http://localhost:80@evil.example"),
        ("origin", "http://localhost@evil.example"),
        ("origin", "http://127.0.0.1@evil.example:8080"),
        ("origin", "http://localhost/@evil.example"),
        ("origin", "https://evil.example"),
        ("host", "localhost@evil.example"),
        ("host", "localhost:80@evil.example"),
        ("host", "evil.example#localhost"),
        ("host", "evil.example:8080"),
    ];
    for (name, value) in spoofs {
        let reply = client.post(&call, &[(name, value)]).await;
        assert_eq!(reply.status, 403, "{name}: {value} was let through: {:?}", reply.messages);
        assert_eq!(reply.response()["error"]["code"], -32600, "{name}: {value}");
        let message = reply.response()["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("allowed_"), "{name}: {value}: the message should say what to configure: {message}");
    }
    assert!(upstream.calls().is_empty(), "a refused request reached the upstream: {:?}", upstream.calls());
    let plain = client.post(&call, &[("origin", "http://localhost:5173")]).await;
    assert_eq!(plain.response()["result"]["content"][0]["text"], "echoed", "{:?}", plain.response());
}

/// T33 over HTTP (the reply-matching half, a fix): an upstream answers one POST with a reply
/// bearing the id of another request in flight on the same connection. That stray reply must not
/// resolve the other request (its client would get someone else's result); the request whose POST
/// carried it fails at once with -31005 instead of waiting for its deadline, its failure is
/// audited, and the other request still gets its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_another_requests_id_resolves_neither_request() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let held_id = Arc::new(Mutex::new(None::<Value>));
    let (script_gate, script_held) = (gate.clone(), held_id.clone());
    let tools =
        vec![read_only_tool("hold", "Answers when let go"), read_only_tool("stray", "Answers with the wrong id")];
    let upstream = RecordingUpstream::start(tools, move |request| match request["params"]["name"].as_str() {
        Some("hold") => {
            *script_held.lock().unwrap() = Some(request["id"].clone());
            Reply::After(script_gate.clone(), Box::new(text_result("held")))
        }
        _ => {
            let other = script_held.lock().unwrap().clone().expect("hold arrives first");
            Reply::Raw(
                json!({"jsonrpc": "2.0", "id": other, "result": {"content": [{"type": "text", "text": "stray"}]}})
                    .to_string(),
            )
        }
    })
    .await;
    // Without the fix the stray call would wait for its deadline: 5 s, so a regression fails fast.
    let gw = super::gateway_before(
        &upstream,
        "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"stray\"\ntimeout_ms = 5000\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut second = HttpClient::new(&gw.url);
    (second.session, second.protocol) = (client.session.clone(), client.protocol.clone());
    let hold =
        json!({"jsonrpc": "2.0", "id": "h", "method": "tools/call", "params": {"name": "up__hold", "arguments": {}}});
    let held = tokio::spawn(async move { second.post(&hold, &[]).await.response().clone() });
    eventually("the held call reaches the upstream", async || upstream.calls().len() == 1).await;

    let stray = client.call_tool("up__stray", json!({})).await;
    assert_eq!(stray["error"]["code"], -31005, "{stray}");
    assert!(!stray.to_string().contains("stray"), "the stray payload reached a client: {stray}");
    assert!(!held.is_finished(), "the stray reply resolved the held call: {:?}", held.await);

    gate.notify_one();
    let held = tokio::time::timeout(WAIT, held).await.expect("held call answered").unwrap();
    assert_eq!(held["id"], "h", "{held}");
    assert_eq!(held["result"]["content"][0]["text"], "held", "the held call got another reply: {held}");
    eventually("the failed call is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__stray" && r["outcome"] == "upstream_unavailable")
    })
    .await;
}
