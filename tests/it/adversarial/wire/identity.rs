//! Who may talk to the gateway (section E, T42, T44, T46): guessed session ids, credentials that
//! must stay at the gateway, Origin and Host.

use super::*;

/// T42 (and T13 over HTTP): session ids are 256 random bits in hex (visible ASCII, never two
/// alike); a zeroed, a short, a truncated, an extended or a case-changed id answers 404 exactly
/// like any unknown one, and nothing it carried reaches the upstream. No id at all is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_session_ids_are_unknown_and_reach_no_upstream() {
    let (upstream, gw) = echo_gateway().await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let mut client = HttpClient::new(&gw.url);
        client.initialize(json!({})).await;
        let id = client.session.clone().unwrap();
        assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "not 256 bits of hex: {id:?}");
        assert!(ids.insert(id));
    }
    let real = ids.iter().next().unwrap().clone();
    let guesses = [
        "0".repeat(64),
        "1".into(),
        real[..63].to_string(),
        format!("{real}0"),
        real.to_ascii_uppercase(),
        "../..".into(),
    ];
    let mut answers = Vec::new();
    for guess in guesses {
        let mut attacker = HttpClient::new(&gw.url);
        (attacker.session, attacker.protocol) = (Some(guess.clone()), Some("2025-11-25".into()));
        let reply = attacker.request("tools/call", json!({"name": "up__echo", "arguments": {"guess": guess}})).await;
        assert_eq!(reply.status, 404, "{guess}: {:?}", reply.messages);
        answers.push(reply.response()["error"].clone());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "guesses are told apart: {answers:?}");
    // T13 over HTTP: no session id at all is 400, naming the header.
    let reply = HttpClient::new(&gw.url).request("tools/call", json!({"name": "up__echo", "arguments": {}})).await;
    assert_eq!((reply.status, reply.response()["error"]["code"].clone()), (400, json!(-32600)), "{:?}", reply.messages);
    assert!(reply.response()["error"]["message"].as_str().unwrap().contains("Mcp-Session-Id"), "{:?}", reply.messages);
    assert!(upstream.calls().is_empty(), "a call on a guessed session reached the upstream: {:?}", upstream.calls());
}

/// T44 (the part that holds without `[auth]`): the client's `Authorization` header and cookies
/// are never passed on to the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_credentials_never_reach_the_upstream() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("echo", "Echoes")], |_| text_result("echoed")).await;
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.next_id();
    let call = tool_call(id, "up__echo");
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
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let call = tool_call(99, "up__echo");
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
