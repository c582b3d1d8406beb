//! No upstream process outlives its session: not after an abrupt client disconnect, not after
//! SIGTERM, not when the upstream itself spawned children (process groups).

use crate::support::*;
use serde_json::json;

/// Every descendant of `pid` (from /proc), so grandchildren count too.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parents = std::collections::HashMap::<i32, Vec<i32>>::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // Fields after the command name (which may contain spaces) start after the last ')'.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: i32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
        parents.entry(ppid).or_default().push(child);
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for c in parents.get(&p).cloned().unwrap_or_default() {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

/// Alive means present and not a zombie waiting for a reaper.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits (bounded) until none of `pids` is alive; the kernel reaps asynchronously.
async fn assert_all_gone(pids: &[i32]) {
    let deadline = std::time::Instant::now() + WAIT;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The upstream command runs the fixture as a grandchild (`sh` forks it because more follows).
fn wrapped_fixture() -> Vec<String> {
    vec!["sh".into(), "-c".into(), format!("{} ; exit 0", fixture_bin())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_client_disconnect_mid_call_leaves_no_process() {
    let cmd = wrapped_fixture();
    let mut args = vec!["--"];
    args.extend(cmd.iter().map(String::as_str));
    let mut client = StdioClient::spawn(&args);
    client.initialize(json!({})).await;
    client.send(&json!({"jsonrpc":"2.0","id":"long","method":"tools/call","params":{"name":"slow","arguments":{"ms":60000}}})).await;
    client.request("ping", json!({})).await;
    let gateway = client.child.id().unwrap() as i32;
    let spawned = descendants(gateway);
    assert!(spawned.len() >= 2, "expected sh and the fixture under the gateway, got {spawned:?}");
    // Abrupt disconnect: stdin closes with a call in flight.
    let status = client.close().await;
    assert!(status.success(), "{status:?}");
    assert_all_gone(&spawned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_upstream_process() {
    let cmd = wrapped_fixture();
    let args: Vec<&str> = cmd[1..].iter().map(String::as_str).collect();
    let mut gw = Listening::gateway(&stdio_upstream("fx", &cmd[0], &args, "")).await;
    let mut a = HttpClient::new(&gw.url);
    a.initialize(json!({})).await;
    let mut b = HttpClient::new(&gw.url);
    b.initialize(json!({})).await;
    assert_eq!(first_text(&b.call_tool("fx__echo", json!({"message": "x"})).await["result"]), "Echo: x");
    let spawned = descendants(gw.pid());
    assert!(spawned.len() >= 4, "two sessions, each sh + fixture: {spawned:?}");
    let status = gw.terminate().await;
    assert!(status.success(), "{status:?}\n{}", gw.stderr());
    assert_all_gone(&spawned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_session_delete_stops_its_upstream() {
    let gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "")).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let spawned = descendants(gw.pid());
    assert_eq!(spawned.len(), 1, "{spawned:?}");
    let resp =
        client.http.delete(&gw.url).header("mcp-session-id", client.session.clone().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_all_gone(&spawned).await;
    let r = client.request("ping", json!({})).await;
    assert_eq!(r.status, 404, "a deleted session is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_calls() {
    let mut gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "")).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.next_id();
    let call =
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"fx__slow","arguments":{"ms":1500}}});
    let pending = tokio::spawn({
        let url = gw.url.clone();
        let session = client.session.clone();
        async move {
            let mut c = HttpClient::new(&url);
            c.session = session;
            c.protocol = Some("2025-11-25".into());
            c.post(&call, &[]).await
        }
    });
    // The call is in flight once the gateway has forwarded it; a ping after it proves it was read.
    client.request("ping", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let status = gw.terminate().await;
    assert!(status.success());
    let reply = pending.await.unwrap();
    assert_eq!(
        first_text(&reply.response()["result"]),
        "slept 1500ms",
        "in-flight call must finish: {:?}",
        reply.messages
    );
}
