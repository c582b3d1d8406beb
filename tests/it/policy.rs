//! The per-call policy stack through the real binary: zero-config read-only default, allowlist
//! hiding, read-only enforcement with server-filesystem (nothing changes on disk), argument
//! validation, per-tool timeouts, dry run and hot reload.

use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn write_policy(dir: &Path, text: &str) {
    let tmp = dir.join(".p.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("policy.toml")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_wrapper_allows_only_read_only_tools() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("note.txt");
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("write_note", json!({"path": target, "content": "x"})).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("--allow-writes"), "{reply}");
    assert_eq!(reply["error"]["data"]["rule"], "default:read-only");
    assert!(!target.exists(), "a refused write must not reach the upstream");
    assert_eq!(first_text(&client.call_tool("echo", json!({"message": "r"})).await["result"]), "Echo: r");

    let mut client = StdioClient::spawn(&["--allow-writes", "--", fixture_bin()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("write_note", json!({"path": target, "content": "x"})).await;
    assert!(first_text(&reply["result"]).starts_with("wrote"), "{reply}");
    assert!(target.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_server_behind_a_read_only_policy_changes_nothing_on_disk() {
    let root = tempfile::tempdir().unwrap();
    let root_path = std::fs::canonicalize(root.path()).unwrap();
    std::fs::write(root_path.join("keep.txt"), "original").unwrap();
    let policies = tempfile::tempdir().unwrap();
    write_policy(
        policies.path(),
        &format!(
            "[[upstream]]\nname = \"fs\"\nallow = [\"*\"]\n\
             [[upstream.tool]]\nname = \"read_*\"\npaths = {{ args = [\"path\", \"paths\"], roots = [{:?}] }}\n\
             [[upstream.tool]]\nname = \"list_directory\"\npaths = {{ args = [\"path\"], roots = [{:?}] }}\n",
            root_path, root_path
        ),
    );
    let config = format!(
        "{}[policy]\ndir = {:?}\n",
        stdio_upstream("fs", "node", &[&server_filesystem(), root_path.to_str().unwrap()], ""),
        policies.path()
    );
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let snapshot = || {
        let mut entries: Vec<(String, String)> = std::fs::read_dir(&root_path)
            .unwrap()
            .flatten()
            .map(|e| {
                (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default())
            })
            .collect();
        entries.sort();
        entries
    };
    let before = snapshot();
    let keep = root_path.join("keep.txt").display().to_string();
    let writes = [
        ("fs__write_file", json!({"path": root_path.join("new.txt"), "content": "pwned"})),
        ("fs__edit_file", json!({"path": keep, "edits": [{"oldText": "original", "newText": "changed"}]})),
        ("fs__move_file", json!({"source": keep, "destination": root_path.join("moved.txt")})),
        ("fs__create_directory", json!({"path": root_path.join("dir")})),
    ];
    for (tool, args) in writes {
        let reply = client.call_tool(tool, args).await;
        assert_eq!(reply["error"]["code"], -31002, "{tool}: {reply}");
        assert_eq!(reply["error"]["data"]["rule"], "policy.toml:fs:read_only", "{reply}");
    }
    assert_eq!(snapshot(), before, "a refused write changed the disk");

    let read = client.call_tool("fs__read_text_file", json!({"path": keep})).await;
    assert!(read.to_string().contains("original"), "{read}");
    let escape = client
        .call_tool("fs__read_text_file", json!({"path": format!("{}/../../etc/passwd", root_path.display())}))
        .await;
    assert_eq!(escape["result"]["isError"], true, "{escape}");
    assert!(
        first_text(&escape["result"]).contains("Invalid arguments for tool fs__read_text_file"),
        "refused by the gateway: {escape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_tools_are_not_listed_and_answer_like_unknown_tools() {
    let policies = tempfile::tempdir().unwrap();
    write_policy(policies.path(), "[[upstream]]\nname = \"fx\"\nallow = [\"echo\", \"add\"]\n");
    let config = format!("{}[policy]\ndir = {:?}\n", stdio_upstream("fx", fixture_bin(), &[], ""), policies.path());
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut names = tool_names(client.request("tools/list", json!({})).await.response());
    names.sort();
    assert_eq!(names, vec!["fx__add", "fx__echo"]);
    let hidden = client.call_tool("fx__write_note", json!({"path": "/tmp/x", "content": "x"})).await;
    let unknown = client.call_tool("fx__does_not_exist", json!({})).await;
    assert_eq!(hidden["error"]["code"], unknown["error"]["code"]);
    assert_eq!(
        hidden["error"]["message"].as_str().unwrap().replace("write_note", "X"),
        unknown["error"]["message"].as_str().unwrap().replace("does_not_exist", "X")
    );

    // Argument validation against the upstream's inputSchema: never forwarded, listed by pointer.
    let bad = client.call_tool("fx__add", json!({"a": "two", "b": 2})).await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(first_text(&bad["result"]).contains("/a"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tool_timeout_from_policy_leaves_the_session_usable() {
    let policies = tempfile::tempdir().unwrap();
    write_policy(
        policies.path(),
        "[[upstream]]\nname = \"fx\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"slow\"\ntimeout_ms = 300\n",
    );
    let config = format!("{}[policy]\ndir = {:?}\n", stdio_upstream("fx", fixture_bin(), &[], ""), policies.path());
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("fx__slow", json!({"ms": 20000})).await;
    assert_eq!(reply["error"]["code"], -31004, "{reply}");
    assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "ok"})).await["result"]), "Echo: ok");
    assert!(gw.stderr().contains("cancelled upstream request"), "the upstream must be told to stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_lets_denied_calls_through_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("dry.txt");
    let policies = tempfile::tempdir().unwrap();
    write_policy(policies.path(), "dry_run = true\n[[upstream]]\nname = \"fx\"\nallow = [\"echo\"]\n");
    let config = format!("{}[policy]\ndir = {:?}\n", stdio_upstream("fx", fixture_bin(), &[], ""), policies.path());
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("fx__write_note", json!({"path": target, "content": "x"})).await;
    assert!(first_text(&reply["result"]).starts_with("wrote"), "{reply}");
    assert!(target.exists());
    assert!(gw.stderr().contains("would deny"), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_applies_valid_policies_and_keeps_the_old_one_on_errors() {
    let policies = tempfile::tempdir().unwrap();
    write_policy(policies.path(), "[[upstream]]\nname = \"fx\"\nallow = [\"echo\"]\n");
    let config = format!("{}[policy]\ndir = {:?}\n", stdio_upstream("fx", fixture_bin(), &[], ""), policies.path());
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    assert_eq!(client.call_tool("fx__add", json!({"a": 1, "b": 1})).await["error"]["code"], -32602);

    write_policy(policies.path(), "[[upstream]]\nname = \"fx\"\nallow = [\"echo\", \"add\"]\n");
    eventually("condition", async || {
        first_text(&client.call_tool("fx__add", json!({"a": 1, "b": 1})).await["result"]) == "2"
    })
    .await;

    write_policy(policies.path(), "[[upstream]]\nname = \"fx\"\nallow = \"not a list\"\n");
    eventually("condition", async || gw.stderr().contains("policy reload rejected")).await;
    assert_eq!(
        first_text(&client.call_tool("fx__add", json!({"a": 2, "b": 2})).await["result"]),
        "4",
        "old policy must stay"
    );
}

/// Rug pull: the fixture's `shifty` tool changes its description on every listing. The first
/// definition is pinned; after it changes, calls are refused until an operator approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_definition_is_blocked_until_approved() {
    let token = "pins-test-token";
    let config = format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"env:TOLLGATE_TEST_PINS_TOKEN\"\n",
        stdio_upstream("fx", fixture_bin(), &[], "")
    );
    let gw = Listening::gateway_with_env(&config, &[("TOLLGATE_TEST_PINS_TOKEN", token)]).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let description = |list: &Value| {
        list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "fx__shifty").unwrap()["description"]
            .clone()
    };
    let first = description(client.request("tools/list", json!({})).await.response());
    assert!(client.call_tool("fx__shifty", json!({})).await.get("result").is_some());
    // shifty then says its list changed; the next listing shows (and pins) a new definition.
    eventually("condition", async || description(client.request("tools/list", json!({})).await.response()) != first)
        .await;
    let blocked = client.call_tool("fx__shifty", json!({})).await;
    assert_eq!(blocked["error"]["code"], -31006, "{blocked}");
    assert!(blocked["error"]["message"].as_str().unwrap().contains("tollgate pins approve fx shifty"), "{blocked}");
    assert!(
        client.call_tool("fx__echo", json!({"message": "x"})).await.get("result").is_some(),
        "other tools unaffected"
    );

    let admin = gw.admin.clone().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(tollgate_bin())
            .args(args)
            .args(["--admin", &admin])
            .env("TOLLGATE_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    let listed = run(&["pins", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("fx/shifty"), "{listed:?}");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("CHANGED"), "{listed:?}");
    let approved = run(&["pins", "approve", "fx", "shifty"]);
    assert!(approved.status.success(), "{approved:?}");
    let after = client.call_tool("fx__shifty", json!({})).await;
    assert!(after.get("result").is_some(), "approved definition is callable: {after}");
}

/// Secrets, terminal escapes and invisible Unicode from the fixture's `leak_secrets` tool never
/// reach the client, in text or in structured content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_output_is_redacted_before_the_client_sees_it() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    client
        .send(
            &json!({"jsonrpc":"2.0","id":"leak","method":"tools/call","params":{"name":"leak_secrets","arguments":{}}}),
        )
        .await;
    let line = client.recv_raw().await;
    for planted in [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_",
        "BEGIN OPENSSH PRIVATE KEY",
        "\\u001b",
        "\u{1b}",
        "\u{200b}",
        "\u{202e}",
        "\u{e0041}",
        "evil.example",
    ] {
        assert!(!line.contains(planted), "{planted:?} reached the client: {line}");
    }
    for rule in ["aws-access-key", "github-token", "private-key"] {
        assert!(line.contains(&format!("[REDACTED:{rule}]")), "{rule} marker missing: {line}");
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["result"]["structuredContent"]["token"], "[REDACTED:github-token]", "{line}");
}

/// Every call leaves a hash-chained trail: admitted + completed for forwarded calls, denied for
/// refused ones, with who, which session, which request and which rule; `audit verify` catches
/// an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_denials_are_audited_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut client = StdioClient::spawn(&["--audit", audit.to_str().unwrap(), "--", fixture_bin()]);
    client.initialize(json!({})).await;
    let ok = client
        .request("tools/call", json!({"name":"echo","arguments":{"message":"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"},"_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}))
        .await;
    assert!(ok.get("result").is_some());
    let denied = client.call_tool("write_note", json!({"path": "/tmp/never", "content": "x"})).await;
    assert_eq!(denied["error"]["code"], -31002);
    client.close().await;

    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let phases: Vec<&str> = records.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, vec!["admitted", "completed", "denied"], "{text}");
    let done = &records[1];
    assert_eq!(done["tool"], "echo");
    assert_eq!(done["outcome"], "ok");
    assert_eq!(done["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert!(done["principal"].as_str().unwrap().starts_with("os:"));
    assert_eq!(done["client"]["name"], "it");
    assert!(!text.contains("ghp_aBcDeFgHiJkLmNoPq"), "arguments are stored redacted");
    assert_eq!(records[2]["decision"], "deny");
    assert_eq!(records[2]["rule"], "default:read-only");

    let run = |args: &[&str]| std::process::Command::new(tollgate_bin()).args(args).output().unwrap();
    let verified = run(&["audit", "verify", audit.to_str().unwrap()]);
    assert!(verified.status.success(), "{verified:?}");
    std::fs::write(&audit, text.replacen("\"echo\"", "\"ech0\"", 1)).unwrap();
    let tampered = run(&["audit", "verify", audit.to_str().unwrap()]);
    assert_eq!(tampered.status.code(), Some(1), "an edited record must be detected");
    assert!(String::from_utf8_lossy(&tampered.stdout).contains("edited"));
}

/// If the audit log cannot take a record, the call fails closed: nothing is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_fails_calls_closed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("must-not-exist.txt");
    // /dev/full accepts the open and fails every write with ENOSPC: a full disk.
    let mut client = StdioClient::spawn(&["--audit", "/dev/full", "--allow-writes", "--", fixture_bin()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("write_note", json!({"path": target, "content": "x"})).await;
    assert_eq!(reply["error"]["code"], -31007, "{reply}");
    assert!(!target.exists(), "a call that could not be audited must not run");
    assert!(client.stderr().contains("failing the call closed"));
}
