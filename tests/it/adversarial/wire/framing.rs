//! Framing and parsing (section A, T1–T15): what a client sends that is not a usable message,
//! over HTTP and stdio, and the upstream results that are not either.

use super::*;

/// T1: a truncated JSON body gets HTTP 400 with -32700 and `id: null`; nothing reaches the
/// upstream and the same session goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_is_a_parse_error_and_the_session_keeps_serving() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("echo", "Echoes")], |_| text_result("echoed")).await;
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
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
    // T1 over stdio: the bad lines are on the record as security events (1st, 2nd, 4th, … with
    // the running count), attributed to the configured principal.
    let cases = malformed_messages().len() as u64;
    eventually("the bad lines are audited", async || {
        audit_records(dir.path()).iter().any(|r| {
            r["phase"] == "security"
                && r["rule"] == "security:malformed_frame"
                && r["principal"].as_str().is_some_and(|p| p.starts_with("os:"))
                && r["events"].as_u64().is_some_and(|n| n.is_power_of_two() && n * 2 > cases)
        })
    })
    .await;
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
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
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
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
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
            "T11 {what}: {took:?} for the call ({in_gateway:?} µs of it in the policy stack), \
             {other_took:?} for another session's tools/list meanwhile"
        );
        assert_eq!(reply.response()["result"]["content"][0]["text"], expected, "{what}: {:?}", reply.response());
        assert!(took < std::time::Duration::from_secs(20), "{what} took {took:?}");
        assert!(other_took < std::time::Duration::from_secs(5), "another session waited {other_took:?}");
    }
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
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut first = HttpClient::new(&gw.url);
    (first.session, first.protocol) = (client.session.clone(), client.protocol.clone());
    let call = |tool: &str| tool_call("dup", tool);
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
