//! Adversarial clients: framing, parsing, headers and sessions (sections A, B and E of the case
//! list in `SECURITY.md`).

use crate::support::recording::{RecordingUpstream, text_result};
use crate::support::*;
use serde_json::{Value, json};

/// T1: a truncated JSON body gets HTTP 400 with -32700 and `id: null`; nothing reaches the
/// upstream and the same session goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_is_a_parse_error_and_the_session_keeps_serving() {
    let upstream = RecordingUpstream::start(vec![crate::support::recording::read_only_tool("echo", "Echoes")], |_| {
        text_result("echoed")
    })
    .await;
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
    let upstream = RecordingUpstream::start(vec![crate::support::recording::read_only_tool("echo", "Echoes")], |_| {
        text_result("echoed")
    })
    .await;
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
