//! stdio upstreams start confined: an allowlisted environment, an explicit working directory,
//! and resource limits that end a runaway child without touching the gateway.

use crate::support::*;
use serde_json::json;

async fn env(client: &mut HttpClient, name: &str) -> String {
    first_text(&client.call_tool("get_env", json!({ "name": name })).await["result"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_child_sees_only_allowed_variables_and_runs_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let config = format!(
        "[policy]\nallow_writes = true\n{}",
        stdio_upstream(
            "fx",
            fixture_bin(),
            &[],
            "tool_prefix = \"\"\ncwd = \"work\"\ninherit_env = [\"TG_IT_ALLOWED\", \"TG_IT_PREFIX_*\"]\n\
             env = { FIXTURE_MODE = \"strict\" }"
        )
    );
    let gw = Listening::gateway_in_with_env(
        dir,
        &config,
        &[
            ("TG_IT_ALLOWED", "yes"),
            ("TG_IT_PREFIX_ONE", "one"),
            ("TG_IT_LEAK", "should-not-cross"),
            ("AWS_SECRET_ACCESS_KEY", "should-not-cross"),
        ],
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    assert_eq!(env(&mut client, "TG_IT_ALLOWED").await, "yes");
    assert_eq!(env(&mut client, "TG_IT_PREFIX_ONE").await, "one");
    assert_eq!(env(&mut client, "FIXTURE_MODE").await, "strict");
    assert_ne!(env(&mut client, "PATH").await, "<unset>", "PATH is on the default allowlist");
    assert_eq!(env(&mut client, "TG_IT_LEAK").await, "<unset>");
    assert_eq!(env(&mut client, "AWS_SECRET_ACCESS_KEY").await, "<unset>");
    assert_eq!(env(&mut client, "TOLLGATE_LOG").await, "<unset>", "the gateway's own settings stay with it");
    // A relative path the child writes lands in its configured directory (relative to the config).
    let reply = client.call_tool("write_note", json!({"path": "note.txt", "content": "here"})).await;
    assert!(first_text(&reply["result"]).starts_with("wrote"), "{reply}");
    assert_eq!(std::fs::read_to_string(gw.dir.path().join("work/note.txt")).unwrap(), "here");
}

/// The stdio wrapper passes nothing of the client's environment but the allowlist and what
/// `--inherit-env` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrapped_command_inherits_only_what_is_named() {
    // cargo sets CARGO_* for the test process, so the gateway it starts has them too.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok() && std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let mut client = StdioClient::spawn(&["--inherit-env", "CARGO_PKG_NAME", "--", fixture_bin()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("get_env", json!({"name": "CARGO_PKG_NAME"})).await;
    assert_eq!(first_text(&reply["result"]), "tollgate");
    let reply = client.call_tool("get_env", json!({"name": "CARGO_MANIFEST_DIR"})).await;
    assert_eq!(first_text(&reply["result"]), "<unset>");
}

/// A child over its memory limit dies; its calls fail with an upstream error that says why, the
/// gateway keeps serving, and the next call starts a fresh child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_over_its_memory_limit_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let upstream = stdio_upstream(
        "fx",
        fixture_bin(),
        &[],
        // Thread stacks count against RLIMIT_DATA: pin the fixture's runtime to two workers so
        // the limit means the same on a machine with many cores.
        "tool_prefix = \"\"\nenv = { TOKIO_WORKER_THREADS = \"2\" }\n[upstream.limits]\nmemory_mb = 96\nopen_files = 64",
    );
    std::fs::write(&config, upstream).unwrap();
    let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap()]);
    client.initialize(json!({})).await;
    let reply = client.call_tool("allocate", json!({"mb": 8})).await;
    assert_eq!(first_text(&reply["result"]), "allocated 8 MiB", "{reply}");
    // The kernel's view of the child: its limits, and no new privileges.
    let pid = child_pid(&client.stderr());
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let row = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("Max data size"), "Max data size 100663296 100663296 bytes", "{limits}");
    assert_eq!(row("Max open files"), "Max open files 64 64 files", "{limits}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]), "{status}");

    let reply = client.call_tool("allocate", json!({"mb": 1024})).await;
    assert_eq!(reply["error"]["code"], -31005, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("killed by SIGABRT") && message.contains("memory_mb = 96"), "{message}");
    assert!(client.child.try_wait().unwrap().is_none(), "the gateway is still running");

    let reply = client.call_tool("echo", json!({"message": "after"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: after", "{reply}");
}

/// The pid of the last stdio upstream the gateway started, from its log line.
fn child_pid(stderr: &str) -> u32 {
    let line = stderr.lines().rev().find(|l| l.contains("started stdio upstream")).expect("start logged");
    let digits: String =
        line.split("pid=Some(").nth(1).expect("pid logged").chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a pid")
}
