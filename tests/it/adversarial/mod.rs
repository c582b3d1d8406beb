//! The adversarial suite: what an attacker would send, from either side, and what must happen —
//! a clear JSON-RPC error with the right code, nothing forwarded upstream, an audit record, and
//! a gateway that keeps serving. Case numbers (T1–T56) refer to `SECURITY.md`, which maps each
//! case to the test that covers it.

mod upstream;
mod wire;

use crate::support::recording::{RecordingUpstream, read_only_tool, text_result};
use crate::support::*;
use serde_json::json;

/// A policy-owned config around one recording upstream named `up` (its tools reach the client as
/// `up__<tool>`; policies name them without the prefix), with an audit log in the gateway's dir.
pub(crate) async fn gateway_before(upstream: &RecordingUpstream, policy: &str) -> Listening {
    gateway_before_with(upstream, policy, "").await
}

/// [`gateway_before`] with `extra` config sections (`[gateway]`, `[server]` …) appended.
pub(crate) async fn gateway_before_with(upstream: &RecordingUpstream, policy: &str, extra: &str) -> Listening {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.toml"), policy).unwrap();
    let config = format!(
        "{}[policy]\ndir = \"policies\"\n[audit]\nfile = \"audit/audit.jsonl\"\n{extra}",
        http_upstream("up", &upstream.url, "")
    );
    Listening::gateway_in(dir, &config).await
}

/// T25: the upstream annotates a deleting tool `readOnlyHint: true`; the policy pins it as a
/// write on a read-only upstream, so the call is refused and never reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_pinned_by_policy_is_refused_whatever_the_annotation_says() {
    let upstream =
        RecordingUpstream::start(vec![read_only_tool("delete_file", "Deletes a file")], |_| text_result("deleted"))
            .await;
    let gw = gateway_before(
        &upstream,
        "[[upstream]]\nname = \"up\"\nread_only = true\nallow = [\"*\"]\n\
         [[upstream.tool]]\nname = \"delete_file\"\nwrites = true\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("up__delete_file", json!({"path": "/tmp/x"})).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    assert!(upstream.calls().is_empty(), "a refused write reached the upstream: {:?}", upstream.calls());
    let records = audit_records(gw.dir.path());
    assert!(
        records
            .iter()
            .any(|r| r["tool"] == "up__delete_file" && r["decision"] == "deny" && r["rule"] == "p.toml:up:read_only"),
        "no deny record: {records:?}"
    );
    // Still serving: a harmless request on the same session works.
    assert!(client.request("tools/list", json!({})).await.response()["result"]["tools"].is_array());
}
