//! Bad input gets a clear JSON-RPC error with the right code, and the gateway keeps serving.

use crate::support::*;
use serde_json::{Value, json};

fn error_code(msg: &Value) -> i64 {
    msg["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error: {msg}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_rejects_malformed_and_invalid_frames() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    let cases: Vec<(String, i64, &str)> = vec![
        ("{not json".into(), -32700, "Parse error"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"write_note"}}"#.into(),
            -32700,
            "duplicate member name",
        ),
        (r#"{"jsonrpc":"1.0","id":2,"method":"ping"}"#.into(), -32600, "\"2.0\""),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#.into(), -32600, "\"id\""),
        (r#"[{"jsonrpc":"2.0","id":3,"method":"ping"}]"#.into(), -32600, "batches"),
        (format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)), -32700, "nested"),
    ];
    for (text, code, needle) in cases {
        client.send_raw(&text).await;
        let reply = client.recv().await;
        assert_eq!(error_code(&reply), code, "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(needle), "{reply}");
    }
    // The invalid frame's id is echoed when it could be read.
    client.send_raw(r#"{"jsonrpc":"1.0","id":"keep-me","method":"ping"}"#).await;
    assert_eq!(client.recv().await["id"], "keep-me");
    // Still serving.
    let reply = client.call_tool("echo", json!({"message": "alive"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tool_is_invalid_params() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("no_such_tool", json!({})).await;
    assert_eq!(error_code(&reply), -32602);
    assert!(reply["error"]["message"].as_str().unwrap().contains("Unknown tool: no_such_tool"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_in_flight_id_is_refused_not_hung() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    let slow =
        json!({"jsonrpc":"2.0","id":"dup","method":"tools/call","params":{"name":"slow","arguments":{"ms":1500}}});
    client.send(&slow).await;
    // Wait until the first is surely in flight: a ping round trip after it was read.
    let ping = client.request("ping", json!({})).await;
    assert_eq!(ping["result"], json!({}));
    client.send(&slow).await;
    let first = client.recv_until(|m| m["id"] == "dup").await;
    assert_eq!(error_code(&first), -32600, "{first}");
    assert!(first["error"]["message"].as_str().unwrap().contains("already in flight"));
    let second = client.recv_until(|m| m["id"] == "dup").await;
    assert_eq!(first_text(&second["result"]), "slept 1500ms", "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_edge_errors() {
    let gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "[server]\nmax_body_bytes = 4096")).await;
    let client = HttpClient::new(&gw.url);
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});

    let r = client.post(&ping, &[]).await;
    assert_eq!(r.status, 400, "no session and not 2026-07-28");
    assert!(r.response()["error"]["message"].as_str().unwrap().contains("Mcp-Session-Id"));

    let r = client.post(&ping, &[("mcp-session-id", "f00")]).await;
    assert_eq!(r.status, 404);

    let r = client.post_raw("x".repeat(10_000), &[]).await;
    assert_eq!(r.status, 413);
    assert!(r.response()["error"]["message"].as_str().unwrap().contains("larger than 4096"));

    let r = client.post_raw("{oops".into(), &[]).await;
    assert_eq!((r.status, error_code(r.response())), (400, -32700));

    let r = client.post(&ping, &[("origin", "https://evil.example")]).await;
    assert_eq!(r.status, 403);
    let r = client.post(&ping, &[("host", "evil.example")]).await;
    assert_eq!(r.status, 403);

    let r = client.post(&ping, &[("mcp-protocol-version", "1999-01-01"), ("mcp-session-id", "x")]).await;
    assert_eq!((r.status, error_code(r.response())), (400, -32022));

    let get = client.http.get(&gw.url).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(get.status(), 405, "GET without a session (2026-07-28 clients) is not offered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_header_mismatch_is_400_with_32020() {
    let gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "")).await;
    let client = HttpClient::new(&gw.url);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fx__echo","arguments":{"message":"x"},"_meta":stateless_meta()}});
    let r = client
        .post(
            &body,
            &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "fx__write_note")],
        )
        .await;
    assert_eq!((r.status, error_code(r.response())), (400, -32020), "{:?}", r.messages);
    let r = client
        .post(&body, &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list"), ("mcp-name", "fx__echo")])
        .await;
    assert_eq!((r.status, error_code(r.response())), (400, -32020));
    let r = client
        .post(&body, &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "fx__echo")])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(first_text(&r.response()["result"]), "Echo: x");
}
