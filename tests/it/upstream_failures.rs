//! Upstreams that crash or hang: clear errors, no hang, the session stays usable.

use crate::support::*;
use serde_json::json;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_call_fails_in_flight_calls_and_the_next_call_restarts() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    // Two calls in flight when the process dies: both must fail fast with a clear error.
    client.request("tools/list", json!({})).await;
    // Warm the slow tool's argument validator, so nothing delays its forwarding below.
    assert_eq!(first_text(&client.call_tool("slow", json!({"ms": 1})).await["result"]), "slept 1ms");
    let slow =
        json!({"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"slow","arguments":{"ms":20000}}});
    client.send(&slow).await;
    // A second request with the same id is refused only once the first is in flight (and with
    // the tool list known, it is forwarded in the same step).
    client.send(&slow).await;
    let dup = client.recv_until(|m| m["id"] == "s").await;
    assert_eq!(dup["error"]["code"], -32600, "{dup}");
    let crash = client.call_tool("crash", json!({})).await;
    assert_eq!(crash["error"]["code"], -31005, "{crash}");
    assert!(crash["error"]["message"].as_str().unwrap().contains("exited"), "{crash}");
    let slow = client.recv_until(|m| m["id"] == "s").await;
    assert_eq!(slow["error"]["code"], -31005, "{slow}\n{}", client.stderr());
    // Next use restarts the upstream.
    let reply = client.call_tool("echo", json!({"message": "back"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: back", "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_times_out_and_the_session_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nrequest_timeout_secs = 1\n{}",
            stdio_upstream("fx", fixture_bin(), &[], "tool_prefix = \"\"")
        ),
    )
    .unwrap();
    let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap()]);
    client.initialize(json!({})).await;
    let started = Instant::now();
    let reply = client.call_tool("slow", json!({"ms": 30000})).await;
    assert_eq!(reply["error"]["code"], -31004, "{reply}");
    assert!(started.elapsed().as_secs() < 10, "timeout took {:?}", started.elapsed());
    let reply = client.call_tool("echo", json!({"message": "still here"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancellation_reaches_the_upstream() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    client
        .send(
            &json!({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"slow","arguments":{"ms":30000}}}),
        )
        .await;
    client.request("ping", json!({})).await;
    client
        .send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c1","reason":"user"}}))
        .await;
    // The same id is free again at once (the cancelled call left the in-flight set) and no reply
    // for the cancelled call arrives before this one.
    let again = client.request("ping", json!({})).await;
    assert_eq!(again["result"], json!({}));
    client.send(&json!({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"echo","arguments":{"message":"reused"}}})).await;
    let reply = client.recv_until(|m| m["id"] == "c1").await;
    assert_eq!(first_text(&reply["result"]), "Echo: reused", "{reply}");
    client.close().await;
    assert!(client.stderr().contains("cancelled upstream request"), "{}", client.stderr());
}
