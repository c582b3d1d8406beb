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

/// T1, T17, T42, T46: requests refused before any session exists leave "security" records in
/// the audit chain — a bad Origin, a malformed frame, mirrored headers that disagree with the
/// body, a guessed session id — and a flood of them is recorded logarithmically (1, 2, 4, …
/// with the running count), so probing is on the record without flooding the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_a_session_are_security_records_even_in_a_flood() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("echo", "Echoes")], |_| text_result("x")).await;
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let client = HttpClient::new(&gw.url);
    for _ in 0..100 {
        assert_eq!(client.post_raw("{}".into(), &[("origin", "http://evil.example")]).await.status, 403);
    }
    assert_eq!(client.post_raw("{\"jsonrpc\":".into(), &[]).await.status, 400);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "up__echo", "arguments": {}, "_meta": stateless_meta()}});
    let mismatch = client
        .post(&call, &[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "up__other")])
        .await;
    assert_eq!(mismatch.response()["error"]["code"], -32020);
    let guessed = client
        .post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), &[("mcp-session-id", "0123abcd")])
        .await;
    assert_eq!(guessed.status, 404);

    let security = || audit_records(gw.dir.path()).into_iter().filter(|r| r["phase"] == "security").collect::<Vec<_>>();
    eventually("every kind of refusal is on the record", async || {
        let rules: Vec<String> = security().iter().map(|r| r["rule"].as_str().unwrap().to_string()).collect();
        ["security:origin", "security:malformed_frame", "security:header_mismatch", "security:unknown_session"]
            .iter()
            .all(|rule| rules.iter().any(|r| r == rule))
            && rules.iter().filter(|r| *r == "security:origin").count() == 7
    })
    .await;
    let origin_counts: Vec<u64> =
        security().iter().filter(|r| r["rule"] == "security:origin").map(|r| r["events"].as_u64().unwrap()).collect();
    let mut sorted = origin_counts.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 4, 8, 16, 32, 64], "100 refused origins: {origin_counts:?}");
    assert!(upstream.calls().is_empty());
    let (ok, out, err) =
        tollgate(&gw, &["audit", "verify", gw.dir.path().join("audit/audit.jsonl").to_str().unwrap()]).await;
    assert!(ok, "the chain with security records verifies: {out}{err}");
}
