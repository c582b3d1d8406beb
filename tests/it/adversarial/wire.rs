//! Adversarial clients: framing, parsing, headers and sessions (sections A, B and E of the case
//! list in `SECURITY.md`).

use crate::support::raw_http;
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

// ------------------------------------------------------------------ framing and parsing (A)

/// An upstream with one read-only tool, `echo`, that answers with its arguments as text; any
/// other method is not found.
async fn echo_upstream() -> RecordingUpstream {
    RecordingUpstream::start(vec![read_only_tool("echo", "Echoes its arguments")], |request| {
        match request["method"].as_str() {
            Some("tools/call") => text_result(&request["params"]["arguments"].to_string()),
            _ => Reply::Error(-32601, "Method not found".into()),
        }
    })
    .await
}

async fn echo_gateway() -> (RecordingUpstream, Listening) {
    let upstream = echo_upstream().await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    (upstream, gw)
}

/// POSTs bytes as they are (not necessarily UTF-8) on the client's session; status and the
/// parsed JSON body.
async fn post_bytes(client: &HttpClient, body: Vec<u8>) -> (u16, Value) {
    let mut request = client
        .http
        .post(&client.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(session) = &client.session {
        request = request.header("mcp-session-id", session).header("mcp-protocol-version", "2025-11-25");
    }
    let resp = tokio::time::timeout(WAIT, request.send()).await.expect("reply in time").expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON reply {text:?}: {e}")))
}

/// Messages no JSON-RPC reader should act on, each with the code, a word of the message that
/// says what to fix, and the id the error must carry (`null` when it could not be read).
fn malformed_messages() -> Vec<(&'static str, Vec<u8>, i64, &'static str, Value)> {
    let call = |id: &str, arguments: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"up__echo","arguments":{arguments}}}}}"#)
            .into_bytes()
    };
    let mut not_utf8 = call("1", r#"{"s":"?"}"#);
    let at = not_utf8.iter().position(|&b| b == b'?').unwrap();
    not_utf8.splice(at..at + 1, [0xff, 0xfe]);
    vec![
        ("T1 truncated JSON", br#"{"jsonrpc":"2.0","id":1,"method":"#.to_vec(), -32700, "EOF", Value::Null),
        ("T2 bytes that are not UTF-8", not_utf8, -32700, "UTF-8", Value::Null),
        ("T2 a lone surrogate", call("2", r#"{"s":"\ud800"}"#), -32700, "escape", Value::Null),
        ("T3 a number", b"42".to_vec(), -32600, "must be an object", Value::Null),
        ("T3 a string", b"\"x\"".to_vec(), -32600, "must be an object", Value::Null),
        ("T3 an empty object", b"{}".to_vec(), -32600, "\"jsonrpc\"", Value::Null),
        ("T3 no method", br#"{"jsonrpc":"2.0","id":3}"#.to_vec(), -32600, "\"method\"", json!(3)),
        (
            "T3 JSON-RPC 1.0",
            br#"{"jsonrpc":"1.0","id":4,"method":"tools/call","params":{"name":"up__echo","arguments":{}}}"#.to_vec(),
            -32600,
            "\"2.0\"",
            json!(4),
        ),
        ("T4 a null id", call("null", "{}"), -32600, "\"id\"", Value::Null),
        ("T4 an object id", call("{}", "{}"), -32600, "\"id\"", Value::Null),
        ("T4 an array id", call("[1]", "{}"), -32600, "\"id\"", Value::Null),
        ("T4 a fractional id", call("1.5", "{}"), -32600, "\"id\"", Value::Null),
        (
            "T5 method twice",
            br#"{"jsonrpc":"2.0","id":5,"method":"tools/list","method":"tools/call","params":{"name":"up__echo"}}"#.to_vec(),
            -32700,
            "duplicate member name \"method\"",
            Value::Null,
        ),
        (
            "T5 params.name twice",
            br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"up__echo","name":"up__other","arguments":{}}}"#
                .to_vec(),
            -32700,
            "duplicate member name \"name\"",
            Value::Null,
        ),
        (
            "T6 a batch of calls",
            [b"[".to_vec(), call("7", "{}"), b",".to_vec(), call("8", "{}"), b"]".to_vec()].concat(),
            -32600,
            "batches",
            Value::Null,
        ),
        ("T7 an empty batch", b"[]".to_vec(), -32600, "batches", Value::Null),
    ]
}

/// T1–T7 over HTTP: each malformed message gets HTTP 400 and one JSON-RPC error object (never
/// an array, even for a batch) with the right code, a message that says what is wrong and the
/// request's id where it could be read; nothing reaches the upstream and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_the_right_code_and_reach_no_upstream() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let before = upstream.received().len();
    for (case, body, code, needle, id) in malformed_messages() {
        let (status, reply) = post_bytes(&client, body).await;
        assert_eq!(status, 400, "{case}: {reply}");
        assert!(reply.is_object(), "{case}: one error object expected: {reply}");
        assert_eq!(reply["error"]["code"], code, "{case}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{case}: the message should mention {needle:?}: {reply}");
        assert_eq!(reply["id"], id, "{case}: {reply}");
    }
    assert_eq!(
        upstream.received().len(),
        before,
        "a malformed message reached the upstream: {:?}",
        upstream.received()
    );
    let echoed = client.call_tool("up__echo", json!({"s": "after"})).await;
    assert_eq!(echoed["result"]["content"][0]["text"], r#"{"s":"after"}"#, "{echoed}");
}

/// A `tollgate stdio` client in front of the recording upstream (config in `dir`).
fn stdio_before(upstream: &RecordingUpstream, dir: &tempfile::TempDir) -> StdioClient {
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, http_upstream("up", &upstream.url, "")).unwrap();
    StdioClient::spawn(&["--config", config.to_str().unwrap()])
}

/// T1–T7, T13 and T15 over stdio: every bad line gets one error line with the right code and
/// id, the connection stays usable (the next line is read and answered), and nothing reaches the
/// upstream — neither a call before `initialize` nor a response that answers nothing (which gets
/// no reply either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_client_gets_one_error_per_bad_line_and_keeps_its_connection() {
    let upstream = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut client = stdio_before(&upstream, &dir);
    let early = client.call_tool("up__echo", json!({})).await;
    assert_eq!(early["error"]["code"], -32600, "T13: a call before initialize: {early}");
    assert!(early["error"]["message"].as_str().unwrap().contains("initialize"), "{early}");
    assert!(upstream.calls().is_empty(), "T13: a call before initialize was forwarded");

    client.initialize(json!({})).await;
    let before = upstream.received().len();
    for (case, line, code, needle, id) in malformed_messages() {
        client.send_bytes(&line).await;
        let reply = client.recv().await;
        assert_eq!(reply["error"]["code"], code, "{case}: {reply}");
        assert!(reply["error"]["message"].as_str().unwrap_or_default().contains(needle), "{case}: {reply}");
        assert_eq!(reply["id"], id, "{case}: {reply}");
    }
    // T15: a response that answers nothing is dropped without a reply: the next line out is the ping's.
    client.send(&json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}})).await;
    client.send(&json!({"jsonrpc": "2.0", "id": "after-stray", "method": "ping"})).await;
    assert_eq!(client.recv().await, json!({"jsonrpc": "2.0", "id": "after-stray", "result": {}}));
    let echoed = client.call_tool("up__echo", json!({"s": "after"})).await;
    assert_eq!(echoed["result"]["content"][0]["text"], r#"{"s":"after"}"#, "{echoed}");
    let forwarded: Vec<_> =
        upstream.received().into_iter().skip(before).filter(|r| r.method() != Some("tools/list")).collect();
    assert_eq!(forwarded.len(), 1, "only the good call may reach the upstream: {forwarded:?}");
}

/// T10, the upstream half: a result nested far deeper than the limit fails the call with
/// -31005 (the nesting never reaches the client), the failure is audited, and the session
/// goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_nested_too_deep_fails_the_call_not_the_gateway() {
    let depth = 100_000;
    let upstream = RecordingUpstream::start(
        vec![read_only_tool("deep", "Answers with deep nesting"), read_only_tool("echo", "Echoes")],
        move |request| match request["params"]["name"].as_str() {
            Some("deep") => Reply::Raw(format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{{"content":{}{}}}}}"#,
                request["id"],
                "[".repeat(depth),
                "]".repeat(depth)
            )),
            _ => text_result("echoed"),
        },
    )
    .await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("up__deep", json!({})).await;
    assert_eq!(reply["error"]["code"], -31005, "{reply}");
    assert!(!reply.to_string().contains("[[[["), "{reply}");
    eventually("the failure is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__deep" && r["outcome"] == "upstream_unavailable")
    })
    .await;
    assert_eq!(client.call_tool("up__echo", json!({})).await["result"]["content"][0]["text"], "echoed");
}

/// T11: a million-element array and a quarter-million-member object in arguments (within the
/// 4 MiB body limit) are decoded, checked and forwarded within a bound, and another session is
/// served meanwhile. The times are printed: debug builds are slower than what users run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_arrays_and_objects_within_the_body_limit_are_handled_in_bounded_time() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("count", "Counts")], |request| {
        let a = &request["params"]["arguments"];
        let n = a["items"].as_array().map(Vec::len).or_else(|| a["members"].as_object().map(|o| o.len()));
        text_result(&n.unwrap_or(0).to_string())
    })
    .await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut other = HttpClient::new(&gw.url);
    other.initialize(json!({})).await;
    let items = format!("[{}0]", "0,".repeat(999_999));
    let members = format!("{{{}}}", (0..250_000).map(|i| format!("\"k{i}\":0")).collect::<Vec<_>>().join(","));
    for (what, arguments, expected) in [
        ("items", format!(r#"{{"items":{items}}}"#), "1000000"),
        ("members", format!(r#"{{"members":{members}}}"#), "250000"),
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"{what}","method":"tools/call","params":{{"name":"up__count","arguments":{arguments}}}}}"#
        );
        assert!(body.len() < 4 * 1024 * 1024, "{what}: {} bytes is over the body limit", body.len());
        let started = std::time::Instant::now();
        let big = client.post_raw(body, &[]);
        let meanwhile = async {
            let started = std::time::Instant::now();
            let listed = other.request("tools/list", json!({})).await;
            assert!(listed.response()["result"]["tools"].is_array(), "{:?}", listed.messages);
            started.elapsed()
        };
        let (reply, other_took) = tokio::join!(big, meanwhile);
        let took = started.elapsed();
        let in_gateway = audit_records(gw.dir.path())
            .iter()
            .rev()
            .find(|r| r["jsonrpc_id"] == format!("\"{what}\"") && r["phase"] == "completed")
            .map(|r| r["latency_us"].clone());
        println!(
            "T11 {what}: {took:?} for the call ({in_gateway:?} µs of it from the gateway's receiving the call to its reply), {other_took:?} for another session's tools/list meanwhile"
        );
        assert_eq!(reply.response()["result"]["content"][0]["text"], expected, "{what}: {:?}", reply.response());
        assert!(took < std::time::Duration::from_secs(20), "{what} took {took:?}");
        assert!(other_took < std::time::Duration::from_secs(5), "another session waited {other_took:?}");
    }
}

/// T14 over HTTP: a second request reusing an id still in flight on the same session gets
/// -32600 at once and is not forwarded; the first one is unaffected and gets its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_in_flight_id_is_refused_and_the_first_call_keeps_its_reply() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let script_gate = gate.clone();
    let tools = vec![read_only_tool("hold", "Answers when let go"), read_only_tool("echo", "Echoes")];
    let upstream = RecordingUpstream::start(tools, move |request| match request["params"]["name"].as_str() {
        Some("hold") => Reply::After(script_gate.clone(), Box::new(text_result("held"))),
        _ => text_result("echoed"),
    })
    .await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut first = HttpClient::new(&gw.url);
    (first.session, first.protocol) = (client.session.clone(), client.protocol.clone());
    let call = |tool: &str| json!({"jsonrpc": "2.0", "id": "dup", "method": "tools/call", "params": {"name": tool, "arguments": {}}});
    let hold = call("up__hold");
    let held = tokio::spawn(async move { first.post(&hold, &[]).await.response().clone() });
    eventually("the first call reaches the upstream", async || upstream.calls().len() == 1).await;

    let second = client.post(&call("up__echo"), &[]).await;
    assert_eq!(second.response()["error"]["code"], -32600, "{:?}", second.response());
    assert!(second.response()["error"]["message"].as_str().unwrap().contains("already in flight"));
    assert_eq!(second.response()["id"], "dup");
    assert_eq!(upstream.calls().len(), 1, "the duplicate was forwarded: {:?}", upstream.calls());

    gate.notify_one();
    let held = tokio::time::timeout(WAIT, held).await.expect("first call answered").unwrap();
    assert_eq!(held["result"]["content"][0]["text"], "held", "{held}");
}

/// T15: a client's JSON-RPC response that answers no request of the upstream's is dropped and
/// logged: HTTP 202 with no body, nothing forwarded, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_response_to_nothing_is_dropped_not_forwarded() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let before = upstream.received().len();
    for stray in [
        json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {"content": []}}),
        json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "for no one"}}),
    ] {
        let reply = client.post(&stray, &[]).await;
        assert_eq!(reply.status, 202, "{stray}: {:?}", reply.messages);
        assert!(reply.messages.is_empty(), "{stray}: {:?}", reply.messages);
    }
    assert_eq!(upstream.received().len(), before, "a stray response was forwarded: {:?}", upstream.received());
    assert_eq!(client.call_tool("up__echo", json!({})).await["result"]["content"][0]["text"], "{}");
    eventually("the drop is logged", async || gw.stderr().contains("dropping a reply to no upstream request")).await;
}

// ------------------------------------------------------------------ versions and headers (B)

/// The `_meta` of a 2026-07-28 request, params of a call to `tool`, and the mirrored headers.
fn stateless_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {}, "_meta": stateless_meta()}})
}

/// T16: an unsupported `MCP-Protocol-Version` gets 400 and -32022 whose data lists the versions
/// the gateway speaks; nothing is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_protocol_version_is_refused_with_the_supported_list() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let call =
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "up__echo", "arguments": {}}});
    client.protocol = Some("1999-01-01".into());
    let reply = client.post(&call, &[]).await;
    assert_eq!(reply.status, 400, "{:?}", reply.messages);
    let error = &reply.response()["error"];
    assert_eq!(error["code"], -32022, "{error}");
    assert_eq!(error["data"]["requested"], "1999-01-01");
    let supported = error["data"]["supported"].as_array().expect("a supported list");
    for version in ["2025-11-25", "2026-07-28"] {
        assert!(supported.contains(&json!(version)), "{version} missing from {supported:?}");
    }
    assert!(upstream.calls().is_empty(), "{:?}", upstream.calls());
    client.protocol = Some("2025-11-25".into());
    assert_eq!(client.post(&call, &[]).await.response()["result"]["content"][0]["text"], "{}");
}

/// T17: a 2026-07-28 request whose mirrored headers disagree with its body (another tool in
/// `Mcp-Name`, another method in `Mcp-Method`, or `Mcp-Name` left out) gets 400 and -32020 and
/// reaches no upstream; the same request with honest headers runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_headers_that_disagree_with_the_body_reach_no_upstream() {
    let (upstream, gw) = echo_gateway().await;
    let client = HttpClient::new(&gw.url);
    let version = ("mcp-protocol-version", "2026-07-28");
    let lies: [&[(&str, &str)]; 3] = [
        &[version, ("mcp-method", "tools/call"), ("mcp-name", "up__delete_everything")],
        &[version, ("mcp-method", "tools/list"), ("mcp-name", "up__echo")],
        &[version, ("mcp-method", "tools/call")],
    ];
    for (i, headers) in lies.into_iter().enumerate() {
        let reply = client.post(&stateless_call(i as u64, "up__echo"), headers).await;
        assert_eq!(reply.status, 400, "{headers:?}: {:?}", reply.messages);
        assert_eq!(reply.response()["error"]["code"], -32020, "{headers:?}: {:?}", reply.response());
        assert_eq!(reply.response()["id"], i, "{:?}", reply.response());
    }
    assert!(upstream.calls().is_empty(), "a mismatched request reached the upstream: {:?}", upstream.calls());
    let honest = client
        .post(&stateless_call(9, "up__echo"), &[version, ("mcp-method", "tools/call"), ("mcp-name", "up__echo")])
        .await;
    assert_eq!(honest.status, 200, "{:?}", honest.messages);
    assert_eq!(honest.response()["result"]["content"][0]["text"], "{}", "{:?}", honest.response());
}

/// T18: a 2026-07-28 request without `_meta` protocolVersion or clientCapabilities gets HTTP 400
/// and -32602 naming what is missing, and connects nothing upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_request_without_its_meta_is_invalid_params() {
    let (upstream, gw) = echo_gateway().await;
    let client = HttpClient::new(&gw.url);
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "up__echo")];
    let mut no_capabilities = stateless_call(1, "up__echo");
    no_capabilities["params"]["_meta"].as_object_mut().unwrap().remove("io.modelcontextprotocol/clientCapabilities");
    let mut no_meta = stateless_call(2, "up__echo");
    no_meta["params"].as_object_mut().unwrap().remove("_meta");
    for (body, names) in
        [(no_capabilities, vec!["clientCapabilities"]), (no_meta, vec!["protocolVersion", "clientCapabilities"])]
    {
        let reply = client.post(&body, &headers).await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.messages);
        assert_eq!(reply.response()["error"]["code"], -32602, "{:?}", reply.response());
        let message = reply.response()["error"]["message"].as_str().unwrap();
        for name in names {
            assert!(message.contains(name), "the message should name {name}: {message}");
        }
    }
    assert!(upstream.received().is_empty(), "the upstream heard from a refused request: {:?}", upstream.received());
    let full = client.post(&stateless_call(3, "up__echo"), &headers).await;
    assert_eq!(full.response()["result"]["content"][0]["text"], "{}", "{:?}", full.response());
}

/// T12: a method nobody implements gets -32601 — for a 2026-07-28 client with HTTP 404 too —
/// and an unknown notification gets 202 and no reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_method_not_found_and_an_unknown_notification_is_accepted() {
    let (_upstream, gw) = echo_gateway().await;
    let client = HttpClient::new(&gw.url);
    let unknown = json!({"jsonrpc": "2.0", "id": 1, "method": "foo/bar", "params": {"_meta": stateless_meta()}});
    let reply = client.post(&unknown, &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "foo/bar")]).await;
    assert_eq!(reply.status, 404, "{:?}", reply.messages);
    assert_eq!(reply.response()["error"]["code"], -32601, "{:?}", reply.response());

    let mut old = HttpClient::new(&gw.url);
    old.initialize(json!({})).await;
    let reply = old.request("foo/bar", json!({})).await;
    assert_eq!((reply.status, reply.response()["error"]["code"].clone()), (200, json!(-32601)), "{:?}", reply.messages);
    let note = old.post(&json!({"jsonrpc": "2.0", "method": "notifications/foo", "params": {}}), &[]).await;
    assert_eq!(note.status, 202);
    assert!(note.messages.is_empty(), "{:?}", note.messages);
}

// ------------------------------------------------------------------ sessions, limits, audit (E)

/// T51 (and T33 with many calls in flight): 100 concurrent calls on one session each get their
/// own reply, and each has its own audit records under a distinct call id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_on_one_session_each_get_their_own_reply_and_record() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let calls = (0..100).map(|n| {
        let mut c = HttpClient::new(&gw.url);
        (c.session, c.protocol) = (client.session.clone(), client.protocol.clone());
        async move {
            let call = json!({"jsonrpc": "2.0", "id": format!("c{n}"), "method": "tools/call",
                              "params": {"name": "up__echo", "arguments": {"n": n}}});
            (n, c.post(&call, &[]).await.response().clone())
        }
    });
    for (n, reply) in futures::future::join_all(calls).await {
        assert_eq!(reply["id"], format!("c{n}"), "{reply}");
        assert_eq!(
            reply["result"]["content"][0]["text"],
            format!(r#"{{"n":{n}}}"#),
            "call {n} got another's reply: {reply}"
        );
    }
    assert_eq!(upstream.calls().len(), 100);
    eventually("every call is audited", async || {
        let records = audit_records(gw.dir.path());
        let done: std::collections::HashSet<_> = records
            .iter()
            .filter(|r| r["tool"] == "up__echo" && r["outcome"] == "ok")
            .map(|r| r["call_id"].to_string())
            .collect();
        done.len() == 100
    })
    .await;
}

/// T55: CR, LF and JSON that pretends to be a record, in a tool name and in arguments, stay
/// inside one escaped audit line: every line is one JSON object and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_breaks_and_fake_json_stay_inside_one_audit_line() {
    let (_upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let injected = "x\r\n{\"decision\":\"allow\",\"seq\":1}\n";
    let reply = client.call_tool("up__echo", json!({"note": injected})).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = client.call_tool(&format!("up__echo{injected}"), json!({})).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let log = gw.dir.path().join("audit/audit.jsonl");
    eventually("the call with line breaks in its arguments is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__echo" && r["outcome"] == "ok")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    for (n, line) in text.lines().enumerate() {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON record ({e}): {line:?}"));
        assert_eq!(record["seq"], n as u64 + 1, "a line that is not the next record: {line}");
    }
    let out =
        std::process::Command::new(tollgate_bin()).args(["audit", "verify", log.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "the chain does not verify: {}", String::from_utf8_lossy(&out.stderr));
}

/// T42 (and T13 over HTTP): session ids are 256 random bits in hex (visible ASCII, never two alike); a zeroed, a
/// short, a truncated, an extended or a case-changed id answers 404 exactly like any unknown one,
/// and nothing it carried reaches the upstream.
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

/// T47: a burst over a session's rate limit: the first `burst` calls run, the rest get -31008
/// with a retry hint at once, reach no upstream, and each refusal is audited with its rule;
/// another session has its own budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_rate_limit_are_refused_audited_and_never_forwarded() {
    let upstream = echo_upstream().await;
    let policy =
        "[rate_limits]\nsession = { rate = \"1/min\", burst = 3 }\n[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n";
    let gw = super::gateway_before(&upstream, policy).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut refused = 0;
    for n in 0..10 {
        let reply = client.call_tool("up__echo", json!({"n": n})).await;
        if n < 3 {
            assert!(reply.get("result").is_some(), "call {n} is within the burst: {reply}");
            continue;
        }
        assert_eq!(reply["error"]["code"], -31008, "call {n}: {reply}");
        assert!(reply["error"]["data"]["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{reply}");
        refused += 1;
    }
    assert_eq!(upstream.calls().len(), 3, "a rate-limited call reached the upstream");
    eventually("every refusal is audited", async || {
        let records = audit_records(gw.dir.path());
        let denied = records.iter().filter(|r| r["decision"] == "deny" && r["rule"] == "p.toml:rate_limits.session");
        denied.count() == refused
    })
    .await;
    let mut other = HttpClient::new(&gw.url);
    other.initialize(json!({})).await;
    assert!(other.call_tool("up__echo", json!({})).await.get("result").is_some());
}

/// T52: `notifications/cancelled` for a call in flight reaches the upstream under the id the
/// upstream knows, the cancelled POST ends without a result, and the call is audited as
/// cancelled; a cancellation for an id not in flight is accepted (202) and goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_cancelled_upstream_and_audited() {
    let tools = vec![read_only_tool("stall", "Never answers"), read_only_tool("echo", "Echoes")];
    let upstream = RecordingUpstream::start(tools, |request| match request["params"]["name"].as_str() {
        Some("stall") => Reply::Hang,
        _ => text_result("echoed"),
    })
    .await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut caller = HttpClient::new(&gw.url);
    (caller.session, caller.protocol) = (client.session.clone(), client.protocol.clone());
    let stall = json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "up__stall", "arguments": {}}});
    let stalled = tokio::spawn(async move { caller.post(&stall, &[]).await });
    eventually("the call reaches the upstream", async || upstream.calls().len() == 1).await;
    let forwarded_id = upstream.calls()[0]["id"].clone();

    let cancel = |id: &str| json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "user"}});
    assert_eq!(client.post(&cancel("slow"), &[]).await.status, 202);
    let cancellations = || {
        upstream.received().into_iter().filter(|r| r.method() == Some("notifications/cancelled")).collect::<Vec<_>>()
    };
    eventually("the upstream is told, under its own id", async || {
        cancellations().iter().any(|r| r.body["params"]["requestId"] == forwarded_id)
    })
    .await;
    let ended = tokio::time::timeout(WAIT, stalled).await.expect("the cancelled POST ends").unwrap();
    assert!(ended.messages.iter().all(|m| m.get("result").is_none()), "{:?}", ended.messages);
    eventually("the call is audited as cancelled", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__stall" && r["outcome"] == "cancelled")
    })
    .await;

    assert_eq!(client.post(&cancel("never-sent"), &[]).await.status, 202);
    assert_eq!(client.call_tool("up__echo", json!({})).await["result"]["content"][0]["text"], "echoed");
    assert_eq!(cancellations().len(), 1, "a cancellation for nothing was passed on: {:?}", cancellations());
}

/// T53: SIGTERM with a call in flight that outlives the shutdown grace: the gateway still exits
/// cleanly, and every call that was admitted has its completion record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_left_at_shutdown_still_gets_its_completion_record() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("stall", "Never answers")], |_| Reply::Hang).await;
    let mut gw = super::gateway_before_with(
        &upstream,
        "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n",
        "[gateway]\nshutdown_grace_secs = 1\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let (url, session) = (gw.url.clone(), client.session.clone().unwrap());
    let stalled = tokio::spawn(async move {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "up__stall", "arguments": {}}});
        let sent = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("mcp-session-id", session)
            .body(call.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(), // the connection closed: also an end
        }
    });
    eventually("the call reaches the upstream", async || upstream.calls().len() == 1).await;
    assert!(gw.terminate().await.success(), "{}", gw.stderr());
    let answer = tokio::time::timeout(WAIT, stalled).await.expect("the caller hears back").unwrap();
    assert!(!answer.contains("\"result\""), "{answer}");
    let records = audit_records(gw.dir.path());
    let admitted: Vec<_> = records.iter().filter(|r| r["phase"] == "admitted").map(|r| r["call_id"].clone()).collect();
    assert_eq!(admitted.len(), 1, "{records:?}");
    for call in admitted {
        assert!(
            records.iter().any(|r| r["call_id"] == call && r["phase"] == "completed" && r["outcome"].is_string()),
            "admitted call {call} has no completion record: {records:?}"
        );
    }
}

/// T54: an upstream that answers a call with a redirect (here to a stand-in for a cloud metadata
/// service) is not followed: the call fails with -31005, the target hears nothing, the failure
/// is audited, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_redirect_is_never_followed() {
    let metadata = RecordingUpstream::start(vec![], |_| text_result("instance credentials")).await;
    let target = metadata.url.clone();
    let tools = vec![read_only_tool("fetch", "Redirects"), read_only_tool("echo", "Echoes")];
    let upstream = RecordingUpstream::start(tools, move |request| match request["params"]["name"].as_str() {
        Some("fetch") => Reply::Redirect(target.clone()),
        _ => text_result("echoed"),
    })
    .await;
    let gw = super::gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("up__fetch", json!({})).await;
    assert_eq!(reply["error"]["code"], -31005, "{reply}");
    assert!(!reply.to_string().contains("instance credentials"), "{reply}");
    assert!(metadata.received().is_empty(), "the redirect was followed: {:?}", metadata.received());
    eventually("the failure is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__fetch" && r["outcome"] == "upstream_unavailable")
    })
    .await;
    assert_eq!(client.call_tool("up__echo", json!({})).await["result"]["content"][0]["text"], "echoed");
}

/// T8 over stdio: a 100 MB line (25 times the message limit) is discarded as it streams in —
/// resident memory stays bounded — and answered with -32600 naming the limit once its newline
/// comes; the reader resynchronises there, so the next line is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabyte_stdio_line_is_discarded_and_the_next_line_served() {
    let upstream = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut client = stdio_before(&upstream, &dir);
    client.initialize(json!({})).await;
    let pid = client.child.id().expect("running") as i32;
    let before = raw_http::rss_kib(pid);
    let mut line =
        br#"{"jsonrpc":"2.0","id":"huge","method":"tools/call","params":{"name":"up__echo","arguments":{"s":""#
            .to_vec();
    line.resize(100 << 20, b'x');
    client.send_bytes(&line).await;
    let reply = client.recv().await;
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("larger than 4194304"), "{reply}");
    let grown = raw_http::rss_kib(pid).saturating_sub(before);
    assert!(grown < 64 * 1024, "the gateway grew by {grown} KiB reading a line it refused");
    assert!(upstream.calls().is_empty(), "{:?}", upstream.calls());
    let echoed = client.call_tool("up__echo", json!({"s": "after"})).await;
    assert_eq!(echoed["result"]["content"][0]["text"], r#"{"s":"after"}"#, "{echoed}");
}
