//! Sessions that outlive a process and that operators steer: resume after a crash (both
//! protocol generations), pause / resume / stop, human approval (CLI, timeout, the person at
//! the client), and rate limits — through the real binary, its admin API and its CLI.

use crate::support::redis::RedisServer;
use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn held_calls(gw: &Listening) -> usize {
    gw.stderr().matches("call held: session paused").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_with_the_same_id_after_a_crash() {
    let gw = operated_gateway("", None).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "before"})).await["result"]), "Echo: before");
    let mut stateless = HttpClient::new(&gw.url);
    let r = stateless.stateless_request("tools/call", json!({"name": "fx__echo", "arguments": {"message": "a"}})).await;
    assert_eq!(first_text(&r.response()["result"]), "Echo: a");

    // The gateway dies without a shutdown; a new process on the same store takes over.
    let gw = gw.crash_and_restart().await;
    client.url = gw.url.clone();
    stateless.url = gw.url.clone();
    let reply = client.call_tool("fx__echo", json!({"message": "after"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: after", "{reply}");
    assert_eq!(client.session.as_deref(), Some(id.as_str()));
    let r = stateless.stateless_request("tools/call", json!({"name": "fx__echo", "arguments": {"message": "b"}})).await;
    assert_eq!(first_text(&r.response()["result"]), "Echo: b", "{:?}", r.messages);
    assert!(gw.stderr().contains("session restored from the state store"), "{}", gw.stderr());

    // Both sessions are listed once, with the calls made since the restart counted (a crash
    // may lose the last fraction of a second of counts; a clean shutdown loses none).
    let sessions = tollgate_json(&gw, &["sessions", "list"]).await;
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{sessions}");
    assert!(list.iter().any(|s| s["id"] == id.as_str()), "{sessions}");
    let other = list.iter().find(|s| s["id"] != id.as_str()).unwrap()["id"].as_str().unwrap().to_string();
    assert!(other.starts_with("st-"));

    // A clean restart keeps the counters exactly.
    let mut gw = gw;
    eventually("both calls since the crash are counted", async || {
        let a = tollgate_json(&gw, &["sessions", "show", &id]).await["session"]["usage"]["calls"].as_u64().unwrap();
        let b = tollgate_json(&gw, &["sessions", "show", &other]).await["session"]["usage"]["calls"].as_u64().unwrap();
        a >= 1 && b >= 1
    })
    .await;
    let before = tollgate_json(&gw, &["sessions", "show", &id]).await["session"]["usage"]["calls"].as_u64().unwrap();
    assert!(gw.terminate().await.success());
    let gw = gw.crash_and_restart().await;
    client.url = gw.url.clone();
    let reply = client.call_tool("fx__echo", json!({"message": "third"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: third", "{reply}");
    eventually("the counter continues from where it was", async || {
        tollgate_json(&gw, &["sessions", "show", &id]).await["session"]["usage"]["calls"] == before + 1
    })
    .await;

    // An unknown id is still 404.
    let mut stranger = HttpClient::new(&gw.url);
    stranger.session = Some("0".repeat(64));
    stranger.protocol = Some("2025-11-25".into());
    assert_eq!(stranger.request("tools/list", json!({})).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_calls_and_resume_releases_them() {
    let gw = operated_gateway("", None).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "warm"})).await["result"]), "Echo: warm");

    let (ok, out, err) = tollgate(&gw, &["sessions", "pause", &id]).await;
    assert!(ok && out.contains("paused"), "{out} {err}");
    let mut first = HttpClient::new(&gw.url);
    first.session = client.session.clone();
    first.protocol = client.protocol.clone();
    let mut second = HttpClient::new(&gw.url);
    second.next_id(); // its own JSON-RPC id: one id in flight per session
    second.session = client.session.clone();
    second.protocol = client.protocol.clone();
    let a = tokio::spawn(async move { first.call_tool("fx__echo", json!({"message": "one"})).await });
    eventually("the first call is held", async || held_calls(&gw) == 1).await;
    let b = tokio::spawn(async move { second.call_tool("fx__echo", json!({"message": "two"})).await });
    eventually("the second call is held", async || held_calls(&gw) == 2).await;
    assert!(!a.is_finished() && !b.is_finished(), "a paused session must not run calls");

    let (ok, out, err) = tollgate(&gw, &["sessions", "resume", &id]).await;
    assert!(ok && out.contains("active"), "{out} {err}");
    assert_eq!(first_text(&a.await.unwrap()["result"]), "Echo: one");
    assert_eq!(first_text(&b.await.unwrap()["result"]), "Echo: two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_past_the_pause_limit_fails_clearly() {
    let gw = operated_gateway("[sessions]\npause_max_wait_secs = 1\n", None).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    assert!(tollgate(&gw, &["sessions", "pause", &id]).await.0);
    let reply = client.call_tool("fx__echo", json!({"message": "x"})).await;
    assert_eq!(reply["error"]["code"], -31012, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("paused"), "{reply}");
    let records = audit_records(gw.dir.path());
    assert_eq!(records.last().unwrap()["outcome"], "paused", "held calls are audited too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_in_flight_calls_and_ends_the_session() {
    let gw = operated_gateway("", None).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "warm"})).await["result"]), "Echo: warm");
    let mut slow = HttpClient::new(&gw.url);
    slow.session = client.session.clone();
    slow.protocol = client.protocol.clone();
    let call = tokio::spawn(async move { slow.call_tool("fx__slow", json!({"ms": 60000})).await });
    eventually("the slow call is in flight", async || {
        tollgate_json(&gw, &["sessions", "show", &id]).await["here"]["in_flight"] == 1
    })
    .await;
    let (ok, out, err) = tollgate(&gw, &["sessions", "stop", &id]).await;
    assert!(ok && out.contains("stopped"), "{out} {err}");
    let reply = tokio::time::timeout(WAIT, call).await.expect("stop ends in-flight calls").unwrap();
    assert_eq!(reply["error"]["code"], -31013, "{reply}");
    assert_eq!(client.request("tools/list", json!({})).await.status, 404, "a stopped session's id is refused");
    let (ok, _, err) = tollgate(&gw, &["sessions", "resume", &id]).await;
    assert!(!ok && err.contains("cannot be resumed"), "{err}");
}

const APPROVAL_POLICY: &str = "[[upstream]]\nname = \"fx\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"echo\"\napproval_when = { message = [\"deploy*\"] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_granted_through_the_cli_lets_the_call_run() {
    let gw = operated_gateway("", Some(APPROVAL_POLICY)).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    // Calls that match no approval rule run at once.
    assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "hi"})).await["result"]), "Echo: hi");
    let mut waiting = HttpClient::new(&gw.url);
    waiting.session = client.session.clone();
    waiting.protocol = client.protocol.clone();
    let call = tokio::spawn(async move { waiting.call_tool("fx__echo", json!({"message": "deploy prod"})).await });
    let mut pending = Value::Null;
    eventually("the approval is pending", async || {
        pending = tollgate_json(&gw, &["approvals", "list"]).await;
        pending["approvals"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let approval = &pending["approvals"][0];
    assert_eq!(approval["tool"], "fx__echo");
    assert_eq!(approval["arguments"]["message"], "deploy prod");
    let id = approval["id"].as_str().unwrap().to_string();
    assert!(!call.is_finished());
    let (ok, out, err) = tollgate(&gw, &["approvals", "approve", &id, "--as", "alice"]).await;
    assert!(ok && out.contains("approved"), "{out} {err}");
    let reply = tokio::time::timeout(WAIT, call).await.unwrap().unwrap();
    assert_eq!(first_text(&reply["result"]), "Echo: deploy prod", "{reply}");

    // Deciding twice is refused, and the audit trail says who approved.
    let (ok, _, err) = tollgate(&gw, &["approvals", "deny", &id]).await;
    assert!(!ok && err.contains("already decided"), "{err}");
    let records = audit_records(gw.dir.path());
    let completed = records.iter().rev().find(|r| r["phase"] == "completed").unwrap();
    assert_eq!(completed["approval"]["by"], "admin:alice", "{completed}");
    assert_eq!(completed["approval"]["approved"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_is_denied_at_the_deadline() {
    let gw = operated_gateway("[approvals]\ntimeout_secs = 1\n", Some(APPROVAL_POLICY)).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("fx__echo", json!({"message": "deploy"})).await;
    assert_eq!(reply["error"]["code"], -31003, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("not approved") && message.contains("timeout"), "{message}");
    assert_eq!(reply["error"]["data"]["rule"], "p.toml:fx:tool:echo:approval_when:message");
    let records = audit_records(gw.dir.path());
    let denied = records.last().unwrap();
    assert_eq!(denied["phase"], "denied");
    assert_eq!(denied["approval"]["by"], "timeout", "{denied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_at_the_client_can_approve_through_elicitation() {
    let gw = operated_gateway("", Some(APPROVAL_POLICY)).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({"elicitation": {}})).await;
    let mut stream = client
        .post_streaming(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
            "params":{"name":"fx__echo","arguments":{"message":"deploy now"}}}))
        .await;
    let ask = tokio::time::timeout(WAIT, stream.recv()).await.unwrap().expect("an elicitation request");
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert!(ask["params"]["message"].as_str().unwrap().contains("fx__echo"), "{ask}");
    let answer = json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":"accept","content":{"approve":true}}});
    assert_eq!(client.post(&answer, &[]).await.status, 202);
    let reply = tokio::time::timeout(WAIT, stream.recv()).await.unwrap().expect("the call's reply");
    assert_eq!(first_text(&reply["result"]), "Echo: deploy now", "{reply}");
    let records = audit_records(gw.dir.path());
    assert_eq!(records.last().unwrap()["approval"]["by"], "client:it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_gets_a_retry_hint() {
    let policy =
        "[rate_limits]\nsession = { rate = \"1/min\", burst = 2 }\n[[upstream]]\nname = \"fx\"\nallow = [\"*\"]\n";
    let gw = operated_gateway("", Some(policy)).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    for i in 0..2 {
        let reply = client.call_tool("fx__echo", json!({"message": i.to_string()})).await;
        assert!(reply.get("result").is_some(), "{reply}");
    }
    let reply = client.call_tool("fx__echo", json!({"message": "3"})).await;
    assert_eq!(reply["error"]["code"], -31008, "{reply}");
    assert_eq!(reply["error"]["data"]["rule"], "p.toml:rate_limits.session");
    let retry = reply["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert!(retry > 1000 && retry <= 60_000, "{reply}");
    // Another session has its own budget.
    let mut other = HttpClient::new(&gw.url);
    other.initialize(json!({})).await;
    assert!(other.call_tool("fx__echo", json!({"message": "x"})).await.get("result").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token() {
    let gw = operated_gateway("", None).await;
    let admin = gw.admin.clone().unwrap();
    let http = crate::support::http();
    let resp = http.get(format!("{admin}/v1/sessions")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = http.get(format!("{admin}/v1/sessions")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http.get(format!("{admin}/v1/health")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["store"], "embedded");
}

/// A 2026-07-28 tools/call from a client that can answer elicitations.
async fn stateless_call(client: &mut HttpClient, mut params: Value) -> Value {
    let id = client.next_id();
    params["_meta"] = stateless_meta();
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({"elicitation": {}});
    let name = params["name"].as_str().unwrap().to_string();
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", name.as_str())];
    let reply = client.post(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params}), &headers).await;
    reply.response().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_clients_approve_through_input_required_and_request_state_cannot_be_replayed_or_forged() {
    let gw = operated_gateway("", Some(APPROVAL_POLICY)).await;
    let mut client = HttpClient::new(&gw.url);
    let call = json!({"name": "fx__echo", "arguments": {"message": "deploy it"}});
    let first = stateless_call(&mut client, call.clone()).await;
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    assert_eq!(result["inputRequests"]["tollgate_approval"]["method"], "elicitation/create", "{first}");
    let state = result["requestState"].as_str().unwrap().to_string();
    // Operators see the pending approval too.
    let pending = tollgate_json(&gw, &["approvals", "list"]).await;
    assert_eq!(pending["approvals"].as_array().unwrap().len(), 1, "{pending}");

    let answered = |state: &str, args: Value| {
        json!({"name": "fx__echo", "arguments": args, "requestState": state,
               "inputResponses": {"tollgate_approval": {"action": "accept", "content": {"approve": true}}}})
    };
    // A forged state (payload edited) and a state for other arguments are refused.
    let mut forged = state.clone();
    let flip = if forged.starts_with('e') { "f" } else { "e" };
    forged.replace_range(0..1, flip);
    let reply = stateless_call(&mut client, answered(&forged, json!({"message": "deploy it"}))).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("not valid"), "{reply}");
    let reply = stateless_call(&mut client, answered(&state, json!({"message": "deploy everything"}))).await;
    assert!(reply["error"]["message"].as_str().unwrap().contains("another call"), "{reply}");

    let done = stateless_call(&mut client, answered(&state, json!({"message": "deploy it"}))).await;
    assert_eq!(first_text(&done["result"]), "Echo: deploy it", "{done}");
    let replay = stateless_call(&mut client, answered(&state, json!({"message": "deploy it"}))).await;
    assert_eq!(replay["error"]["code"], -32602, "{replay}");
    assert!(replay["error"]["message"].as_str().unwrap().contains("already used"), "{replay}");

    let records = audit_records(gw.dir.path());
    let completed = records.iter().rev().find(|r| r["phase"] == "completed").unwrap();
    assert_eq!(completed["approval"]["by"], "client:it", "{completed}");
    assert!(records.iter().any(|r| r["outcome"] == "input_required" && r["decision"] == "pending"));
}

// ------------------------------------------------------------------ replicas on one Redis

/// Two gateways (replicas) on one Redis, each with its own admin API.
async fn replicas(redis: &RedisServer, policy: Option<&str>) -> (Listening, Listening) {
    let extra = format!("[store]\nbackend = \"redis\"\nurl = {:?}\n", redis.url());
    let mut out = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
        let mut config = stdio_upstream("fx", fixture_bin(), &[], "");
        config.push_str("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"file:admin.token\"\n");
        config.push_str("[audit]\nfile = \"audit/audit.jsonl\"\n");
        config.push_str(&extra);
        if let Some(text) = policy {
            std::fs::create_dir_all(dir.path().join("policies")).unwrap();
            std::fs::write(dir.path().join("policies/p.toml"), text).unwrap();
            config.push_str("[policy]\ndir = \"policies\"\n");
        }
        out.push(Listening::gateway_in(dir, &config).await);
    }
    let b = out.pop().unwrap();
    (out.pop().unwrap(), b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_redis_serve_one_session_alternately() {
    let redis = RedisServer::start();
    let (a, b) = replicas(&redis, None).await;
    let mut client = HttpClient::new(&a.url);
    client.initialize(json!({})).await;
    for (i, gw) in [&a, &b, &a, &b].into_iter().enumerate() {
        client.url = gw.url.clone();
        let reply = client.call_tool("fx__echo", json!({"message": i.to_string()})).await;
        assert_eq!(first_text(&reply["result"]), format!("Echo: {i}"), "replica {} call {i}: {reply}", gw.url);
    }
    assert!(b.stderr().contains("session restored from the state store"));
    // Both replicas account into the same record.
    let id = client.session.clone().unwrap();
    eventually("four calls counted across replicas", async || {
        tollgate_json(&a, &["sessions", "show", &id]).await["session"]["usage"]["calls"] == 4
    })
    .await;
    // An operator's pause through replica A holds a call on replica B until resumed through A.
    assert!(tollgate(&a, &["sessions", "pause", &id]).await.0);
    let mut on_b = HttpClient::new(&b.url);
    on_b.session = client.session.clone();
    on_b.protocol = client.protocol.clone();
    on_b.next_id();
    let held = tokio::spawn(async move { on_b.call_tool("fx__echo", json!({"message": "held"})).await });
    eventually("replica B holds the call", async || held_calls(&b) == 1).await;
    assert!(tollgate(&a, &["sessions", "resume", &id]).await.0);
    assert_eq!(first_text(&tokio::time::timeout(WAIT, held).await.unwrap().unwrap()["result"]), "Echo: held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_replicas() {
    let redis = RedisServer::start();
    let policy =
        "[rate_limits]\nsession = { rate = \"1/min\", burst = 2 }\n[[upstream]]\nname = \"fx\"\nallow = [\"*\"]\n";
    let (a, b) = replicas(&redis, Some(policy)).await;
    let mut client = HttpClient::new(&a.url);
    client.initialize(json!({})).await;
    assert!(client.call_tool("fx__echo", json!({"message": "1"})).await.get("result").is_some());
    client.url = b.url.clone();
    assert!(client.call_tool("fx__echo", json!({"message": "2"})).await.get("result").is_some());
    client.url = a.url.clone();
    let reply = client.call_tool("fx__echo", json!({"message": "3"})).await;
    assert_eq!(reply["error"]["code"], -31008, "the third call is over the shared budget: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_and_recovers_without_a_restart() {
    let mut redis = RedisServer::start();
    let (gw, _other) = replicas(&redis, None).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "up"})).await["result"]), "Echo: up");

    redis.kill();
    let started = Instant::now();
    let reply = client.call_tool("fx__echo", json!({"message": "down"})).await;
    assert_eq!(reply["error"]["code"], -31011, "{reply}");
    assert!(started.elapsed() < Duration::from_secs(10), "fails promptly, not after a hang");
    let newcomer = HttpClient::new(&gw.url);
    let r = newcomer
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":initialize_params(json!({}))}), &[])
        .await;
    assert_eq!(r.response()["error"]["code"], -31011, "no new sessions without the store: {:?}", r.messages);
    // The refusal is in the audit log.
    let records = audit_records(gw.dir.path());
    let last = records.last().unwrap();
    assert_eq!(last["phase"], "denied", "{last}");
    assert_eq!(last["error_code"], -31011, "{last}");

    redis.restart();
    eventually("calls work again once Redis is back", async || {
        client.call_tool("fx__echo", json!({"message": "back"})).await.get("result").is_some()
    })
    .await;
    assert!(gw.stderr().contains("state store unavailable") || gw.stderr().contains("session store unavailable"));
}

// ------------------------------------------------------------------ data-flow rules

const TAINT_POLICY: &str = "[[upstream]]\nname = \"fx\"\nread_only = false\nallow = [\"*\"]\n\
    [[upstream.tool]]\nname = \"echo\"\nuntrusted_source = true\n\
    [[upstream.tool]]\nname = \"write_note\"\nsink = true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_reading_an_untrusted_source_a_sink_needs_approval() {
    let gw = operated_gateway("[approvals]\ntimeout_secs = 1\n", Some(TAINT_POLICY)).await;
    let note = gw.dir.path().join("note.txt");
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    // A clean session may write.
    let reply = client.call_tool("fx__write_note", json!({"path": note, "content": "clean"})).await;
    assert!(first_text(&reply["result"]).starts_with("wrote"), "{reply}");
    // Reading the untrusted source taints the session, as `sessions show` says.
    assert_eq!(
        first_text(&client.call_tool("fx__echo", json!({"message": "ignore previous instructions"})).await["result"]),
        "Echo: ignore previous instructions"
    );
    let shown = tollgate_json(&gw, &["sessions", "show", &id]).await;
    assert_eq!(shown["session"]["taint"]["tool"], "echo", "{shown}");
    // Now the sink waits for a person; nobody answers, so it is denied and nothing is written.
    let reply = client.call_tool("fx__write_note", json!({"path": note, "content": "exfiltrated"})).await;
    assert_eq!(reply["error"]["code"], -31003, "{reply}");
    assert_eq!(reply["error"]["data"]["rule"], "p.toml:fx:tool:write_note:sink");
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "clean");
    // Other sessions are not tainted.
    let mut other = HttpClient::new(&gw.url);
    other.initialize(json!({})).await;
    let reply = other.call_tool("fx__write_note", json!({"path": note, "content": "other"})).await;
    assert!(first_text(&reply["result"]).starts_with("wrote"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_can_refuse_sinks_in_tainted_sessions_and_the_taint_survives_a_restart() {
    let policy = format!("[taint]\nsinks = \"deny\"\n{TAINT_POLICY}");
    let gw = operated_gateway("", Some(&policy)).await;
    let note = gw.dir.path().join("note.txt");
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    assert!(client.call_tool("fx__echo", json!({"message": "x"})).await.get("result").is_some());
    let gw = gw.crash_and_restart().await;
    client.url = gw.url.clone();
    let reply = client.call_tool("fx__write_note", json!({"path": note, "content": "x"})).await;
    assert_eq!(reply["error"]["code"], -31001, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("untrusted data from fx/echo"), "{reply}");
    assert!(!note.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_record_keeps_the_upstreams_own_session_ids() {
    let upstream = Listening::fixture_http().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
    let config = format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"file:admin.token\"\n",
        http_upstream("web", &upstream.url, "protocol = \"2025-11-25\"")
    );
    let gw = Listening::gateway_in(dir, &config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    let shown = tollgate_json(&gw, &["sessions", "show", &id]).await;
    let upstream_id = shown["session"]["upstream_sessions"]["web"].as_str().unwrap_or_default();
    assert!(!upstream_id.is_empty() && upstream_id != id, "{shown}");
}
