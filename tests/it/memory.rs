//! Long-term memory through the real binary: the built-in `memory` upstream is listed and
//! namespaced like any other, policy decides whether it may write, every call is audited, and
//! what is stored survives a gateway crash when the store is a file.

use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;

fn write_policy(dir: &Path, text: &str) {
    std::fs::write(dir.join("policy.toml"), text).unwrap();
}

/// A gateway with memory on, behind a policy directory holding `policy`.
async fn gateway_with_memory(policy: &str, extra: &str) -> (Listening, tempfile::TempDir) {
    let policies = tempfile::tempdir().unwrap();
    write_policy(policies.path(), policy);
    let config = format!("[memory]\nenabled = true\n[policy]\ndir = {:?}\n{extra}", policies.path());
    (Listening::gateway(&config).await, policies)
}

fn tool_text(reply: &Value) -> String {
    first_text(&reply["result"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_tools_round_trip_under_a_policy_that_grants_writes() {
    let (gw, _policies) = gateway_with_memory(
        "[[upstream]]\nname = \"memory\"\nread_only = false\nallow = [\"*\"]\n",
        "[audit]\nfile = \"audit.jsonl\"\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;

    let list = client.request("tools/list", json!({})).await;
    let tools = list.response()["result"]["tools"].as_array().unwrap().clone();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["memory__memory_delete", "memory__memory_get", "memory__memory_list", "memory__memory_put"]);
    let get = tools.iter().find(|t| t["name"] == "memory__memory_get").unwrap();
    assert_eq!(get["annotations"]["readOnlyHint"], true);
    assert_eq!(get["inputSchema"]["required"], json!(["key"]));

    let put = client.call_tool("memory__memory_put", json!({"key": "project/deadline", "value": "Friday"})).await;
    assert_eq!(put["result"]["isError"], false, "{put}");
    client.call_tool("memory__memory_put", json!({"key": "project/owner", "value": "Ada"})).await;
    client.call_tool("memory__memory_put", json!({"key": "tea", "value": "green"})).await;

    let got = client.call_tool("memory__memory_get", json!({"key": "project/deadline"})).await;
    assert_eq!(tool_text(&got), "Friday", "{got}");
    let listed = client.call_tool("memory__memory_list", json!({"prefix": "project/"})).await;
    let listed: Value = serde_json::from_str(&tool_text(&listed)).unwrap();
    assert_eq!(listed, json!({"keys": ["project/deadline", "project/owner"], "more": false}));

    // A 2026-07-28 client of the same principal sees the same memory (and gets resultType).
    let stateless = HttpClient::new(&gw.url)
        .stateless_request("tools/call", json!({"name": "memory__memory_get", "arguments": {"key": "tea"}}))
        .await;
    let stateless = stateless.response();
    assert_eq!(first_text(&stateless["result"]), "green", "{stateless}");
    assert_eq!(stateless["result"]["resultType"], "complete");

    let deleted = client.call_tool("memory__memory_delete", json!({"key": "project/deadline"})).await;
    assert_eq!(deleted["result"]["isError"], false, "{deleted}");
    let gone = client.call_tool("memory__memory_get", json!({"key": "project/deadline"})).await;
    assert_eq!(gone["result"]["isError"], true, "{gone}");
    assert!(tool_text(&gone).contains("Nothing is stored"), "{gone}");

    // The gateway's own argument validation runs first: a schema violation never reaches memory.
    let bad = client.call_tool("memory__memory_put", json!({"key": "k"})).await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(tool_text(&bad).contains("Invalid arguments for tool memory__memory_put"), "{bad}");
    // A limit the schema cannot express (bytes, not characters) is the tool's own error.
    let wide = client.call_tool("memory__memory_get", json!({"key": "€".repeat(100)})).await;
    assert_eq!(wide["result"]["isError"], true, "{wide}");
    assert!(tool_text(&wide).contains("limited to 256 bytes"), "{wide}");

    let audit = std::fs::read_to_string(gw.dir.path().join("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        records
            .iter()
            .any(|r| r["upstream"] == "memory" && r["upstream_tool"] == "memory_put" && r["phase"] == "completed"),
        "memory calls are audited like any upstream's: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_is_read_only_unless_the_policy_grants_writes() {
    let (gw, _policies) = gateway_with_memory("[[upstream]]\nname = \"memory\"\nallow = [\"*\"]\n", "").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let put = client.call_tool("memory__memory_put", json!({"key": "k", "value": "v"})).await;
    assert_eq!(put["error"]["code"], -31002, "{put}");
    assert_eq!(put["error"]["data"]["rule"], "policy.toml:memory:read_only", "{put}");
    let delete = client.call_tool("memory__memory_delete", json!({"key": "k"})).await;
    assert_eq!(delete["error"]["code"], -31002, "{delete}");

    // Reads go through: the key is simply not there, since the write was never forwarded.
    let get = client.call_tool("memory__memory_get", json!({"key": "k"})).await;
    assert!(get.get("error").is_none(), "{get}");
    assert_eq!(get["result"]["isError"], true, "{get}");
    assert!(tool_text(&get).contains("Nothing is stored"), "{get}");
    let list = client.call_tool("memory__memory_list", json!({})).await;
    assert_eq!(serde_json::from_str::<Value>(&tool_text(&list)).unwrap()["keys"], json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_survive_a_gateway_crash_with_a_store_file() {
    let (gw, _policies) = gateway_with_memory(
        "[[upstream]]\nname = \"memory\"\nread_only = false\nallow = [\"*\"]\n",
        "[store]\nfile = \"state/tollgate.redb\"\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let put = client.call_tool("memory__memory_put", json!({"key": "lasting", "value": "still here"})).await;
    assert_eq!(put["result"]["isError"], false, "{put}");

    let gw = gw.crash_and_restart().await;
    assert!(gw.dir.path().join("state/tollgate.redb").exists());
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let got = client.call_tool("memory__memory_get", json!({"key": "lasting"})).await;
    assert_eq!(tool_text(&got), "still here", "{got}");
}
