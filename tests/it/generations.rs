//! Both protocol generations on each side, and the bridge between them.

use crate::support::*;
use serde_json::{Value, json};

/// An old (2025-11-25) client through to a new (2026-07-28) server: the fixture is probed with
/// `server/discover`, so the gateway talks to it statelessly and adds `_meta` to every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_client_to_new_server() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    let init = client.initialize(json!({})).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    let reply = client.call_tool("echo", json!({"message": "bridged"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: bridged", "{reply}");
    client.close().await;
    assert!(client.stderr().contains("version=2026-07-28"), "upstream should be stateless:\n{}", client.stderr());
}

/// The same server pinned to 2025-11-25 also works (initialize handshake upstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_client_to_old_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, stdio_upstream("fx", fixture_bin(), &[], "protocol = \"2025-11-25\"\ntool_prefix = \"\""))
        .unwrap();
    let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("echo", json!({"message": "old"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: old");
    client.close().await;
    assert!(client.stderr().contains("version=2025-11-25"), "{}", client.stderr());
}

/// A new (2026-07-28, stateless) client through to an old server (server-everything only speaks
/// 2025-11-25): no session header, `_meta` on each request, mirrored headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_client_to_old_server() {
    let gw = Listening::gateway(&stdio_upstream("ev", "node", &[&server_everything(), "stdio"], "")).await;
    let mut client = HttpClient::new(&gw.url);
    let discover = client.stateless_request("server/discover", json!({})).await;
    assert_eq!(discover.status, 200);
    let result = &discover.response()["result"];
    let versions: Vec<&str> =
        result["supportedVersions"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(versions.contains(&"2026-07-28") && versions.contains(&"2025-11-25"), "{versions:?}");
    assert_eq!(result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "tollgate");
    assert!(discover.headers.get("mcp-session-id").is_none(), "2026-07-28 has no sessions");

    let reply =
        client.stateless_request("tools/call", json!({"name": "ev__echo", "arguments": {"message": "new"}})).await;
    let response = reply.response();
    assert_eq!(first_text(&response["result"]), "Echo: new", "{response}");
    assert_eq!(response["result"]["resultType"], "complete");
}

/// The official Python SDK (2.x) probes `server/discover` first and then speaks 2026-07-28;
/// in legacy mode it initializes. Both work against the gateway, over HTTP and stdio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_clients_both_generations() {
    let gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "")).await;
    for (mode, expected) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let out = run_python(&["--mode", mode, &gw.url, "--call", "fx__echo", r#"{"message":"py"}"#]).await;
        assert_eq!(out["protocol"], expected, "{out}");
        assert_eq!(out["server"]["name"], "tollgate", "{out}");
        assert_eq!(first_text(&out["result"]), "Echo: py", "{out}");
    }
    let out = run_python(&[
        "--mode",
        "auto",
        tollgate_bin(),
        "stdio",
        "--",
        fixture_bin(),
        "--call",
        "add",
        r#"{"a":1,"b":2}"#,
    ])
    .await;
    assert_eq!(out["protocol"], "2026-07-28", "{out}");
    assert_eq!(first_text(&out["result"]), "3", "{out}");
}

pub async fn run_python(args: &[&str]) -> Value {
    let out = tokio::time::timeout(
        WAIT * 2,
        tokio::process::Command::new(python()).arg(py_client_script()).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("python client finished in time")
    .expect("python client ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python client failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
