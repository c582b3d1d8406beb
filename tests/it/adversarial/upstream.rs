//! Adversarial upstreams: what a hostile or broken MCP server sends back (sections C and D of
//! the case list in `SECURITY.md`).

use super::gateway_before;
use crate::support::recording::{RecordingUpstream, Reply, read_only_tool};
use crate::support::*;
use serde_json::json;

/// T29: an upstream that never answers. The client gets -31004 at the tool's deadline, the
/// upstream is told to stop (`notifications/cancelled` for that request), the call is audited as
/// a timeout, and the session keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_times_out_and_is_cancelled() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("stall", "Never answers")], |_| Reply::Hang).await;
    let gw = gateway_before(
        &upstream,
        "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"stall\"\ntimeout_ms = 300\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("up__stall", json!({})).await;
    assert_eq!(reply["error"]["code"], -31004, "{reply}");
    let forwarded_id = upstream.calls()[0]["id"].clone();
    eventually("the upstream is sent notifications/cancelled", async || {
        upstream
            .received()
            .iter()
            .any(|r| r.method() == Some("notifications/cancelled") && r.body["params"]["requestId"] == forwarded_id)
    })
    .await;
    eventually("the timeout is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["outcome"] == "timeout")
    })
    .await;
    assert!(client.request("tools/list", json!({})).await.response()["result"]["tools"].is_array());
}

/// T32 over HTTP: an upstream answering a call with bytes that are not JSON-RPC fails that call
/// with -31005 (never passed to the client as a result), and the session keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_is_not_json_rpc_fails_the_call_cleanly() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("garble", "Answers garbage")], |_| {
        Reply::Raw("<html>502 Bad Gateway</html>".into())
    })
    .await;
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("up__garble", json!({})).await;
    assert_eq!(reply["error"]["code"], -31005, "{reply}");
    assert!(!reply.to_string().contains("<html>"), "upstream garbage reached the client: {reply}");
    assert!(client.request("tools/list", json!({})).await.response()["result"]["tools"].is_array());
}
