//! What happens to calls in flight (section E, T47–T55, and T33 over HTTP): many at once,
//! over a rate limit, cancelled, left at shutdown, redirected, and what the audit log holds.

use super::*;

/// T33 over HTTP (the reply-matching half, a fix): an upstream answers one POST with a reply
/// bearing the id of another request in flight on the same connection. That stray reply must not
/// resolve the other request (its client would get someone else's result); the request whose POST
/// carried it fails at once with -31005 instead of waiting for its deadline, its failure is
/// audited, and the other request still gets its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_another_requests_id_resolves_neither_request() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let held_id = Arc::new(Mutex::new(None::<Value>));
    let (script_gate, script_held) = (gate.clone(), held_id.clone());
    let tools =
        vec![read_only_tool("hold", "Answers when let go"), read_only_tool("stray", "Answers with the wrong id")];
    let upstream = RecordingUpstream::start(tools, move |request| match request["params"]["name"].as_str() {
        Some("hold") => {
            *script_held.lock().unwrap() = Some(request["id"].clone());
            Reply::After(script_gate.clone(), Box::new(text_result("held")))
        }
        _ => {
            let other = script_held.lock().unwrap().clone().expect("hold arrives first");
            Reply::Raw(
                json!({"jsonrpc": "2.0", "id": other, "result": {"content": [{"type": "text", "text": "stray"}]}})
                    .to_string(),
            )
        }
    })
    .await;
    // Without the fix the stray call would wait for its deadline: 5 s, so a regression fails fast.
    let gw = gateway_before(
        &upstream,
        "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"stray\"\ntimeout_ms = 5000\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut second = HttpClient::new(&gw.url);
    (second.session, second.protocol) = (client.session.clone(), client.protocol.clone());
    let hold = tool_call("h", "up__hold");
    let held = tokio::spawn(async move { second.post(&hold, &[]).await.response().clone() });
    eventually("the held call reaches the upstream", async || upstream.calls().len() == 1).await;

    let stray = client.call_tool("up__stray", json!({})).await;
    assert_eq!(stray["error"]["code"], -31005, "{stray}");
    assert!(!stray.to_string().contains("stray"), "the stray payload reached a client: {stray}");
    assert!(!held.is_finished(), "the stray reply resolved the held call: {:?}", held.await);

    gate.notify_one();
    let held = tokio::time::timeout(WAIT, held).await.expect("held call answered").unwrap();
    assert_eq!(held["id"], "h", "{held}");
    assert_eq!(held["result"]["content"][0]["text"], "held", "the held call got another reply: {held}");
    eventually("the failed call is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__stray" && r["outcome"] == "upstream_unavailable")
    })
    .await;
}

/// T51 (and T33 with many calls in flight): 100 concurrent calls on one session each get their
/// own reply, and each has its own audit records under a distinct call id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_calls_on_one_session_each_get_their_own_reply_and_record() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let calls = (0..100).map(|n| {
        let mut c = HttpClient::new(&gw.url);
        (c.session, c.protocol) = (client.session.clone(), client.protocol.clone());
        async move {
            let call = json!({"jsonrpc": "2.0", "id": format!("c{n}"), "method": "tools/call",
                              "params": {"name": "up__echo", "arguments": {"n": n}}});
            (n, c.post(&call, &[]).await.response().clone())
        }
    });
    for (n, reply) in futures::future::join_all(calls).await {
        assert_eq!(reply["id"], format!("c{n}"), "{reply}");
        assert_eq!(
            reply["result"]["content"][0]["text"],
            format!(r#"{{"n":{n}}}"#),
            "call {n} got another's reply: {reply}"
        );
    }
    assert_eq!(upstream.calls().len(), 100);
    eventually("every call is audited", async || {
        let records = audit_records(gw.dir.path());
        let done: std::collections::HashSet<_> = records
            .iter()
            .filter(|r| r["tool"] == "up__echo" && r["outcome"] == "ok")
            .map(|r| r["call_id"].to_string())
            .collect();
        done.len() == 100
    })
    .await;
}

/// T47: a burst over a session's rate limit: the first `burst` calls run, the rest get -31008
/// with a retry hint at once, reach no upstream, and each refusal is audited with its rule;
/// another session has its own budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_rate_limit_are_refused_audited_and_never_forwarded() {
    let upstream = echo_upstream().await;
    let policy =
        "[rate_limits]\nsession = { rate = \"1/min\", burst = 3 }\n[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n";
    let gw = gateway_before(&upstream, policy).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut refused = 0;
    for n in 0..10 {
        let reply = client.call_tool("up__echo", json!({"n": n})).await;
        if n < 3 {
            assert!(reply.get("result").is_some(), "call {n} is within the burst: {reply}");
            continue;
        }
        assert_eq!(reply["error"]["code"], -31008, "call {n}: {reply}");
        assert!(reply["error"]["data"]["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{reply}");
        refused += 1;
    }
    assert_eq!(upstream.calls().len(), 3, "a rate-limited call reached the upstream");
    eventually("every refusal is audited", async || {
        let records = audit_records(gw.dir.path());
        let denied = records.iter().filter(|r| r["decision"] == "deny" && r["rule"] == "p.toml:rate_limits.session");
        denied.count() == refused
    })
    .await;
    let mut other = HttpClient::new(&gw.url);
    other.initialize(json!({})).await;
    assert!(other.call_tool("up__echo", json!({})).await.get("result").is_some());
}

/// T52: `notifications/cancelled` for a call in flight reaches the upstream under the id the
/// upstream knows, the cancelled POST ends without a result, and the call is audited as
/// cancelled; a cancellation for an id not in flight is accepted (202) and goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_is_cancelled_upstream_and_audited() {
    let tools = vec![read_only_tool("stall", "Never answers"), read_only_tool("echo", "Echoes")];
    let upstream = RecordingUpstream::start(tools, |request| match request["params"]["name"].as_str() {
        Some("stall") => Reply::Hang,
        _ => text_result("echoed"),
    })
    .await;
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let mut caller = HttpClient::new(&gw.url);
    (caller.session, caller.protocol) = (client.session.clone(), client.protocol.clone());
    let stall = tool_call("slow", "up__stall");
    let stalled = tokio::spawn(async move { caller.post(&stall, &[]).await });
    eventually("the call reaches the upstream", async || upstream.calls().len() == 1).await;
    let forwarded_id = upstream.calls()[0]["id"].clone();

    let cancel = |id: &str| json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "user"}});
    assert_eq!(client.post(&cancel("slow"), &[]).await.status, 202);
    let cancellations = || {
        upstream.received().into_iter().filter(|r| r.method() == Some("notifications/cancelled")).collect::<Vec<_>>()
    };
    eventually("the upstream is told, under its own id", async || {
        cancellations().iter().any(|r| r.body["params"]["requestId"] == forwarded_id)
    })
    .await;
    let ended = tokio::time::timeout(WAIT, stalled).await.expect("the cancelled POST ends").unwrap();
    assert!(ended.messages.iter().all(|m| m.get("result").is_none()), "{:?}", ended.messages);
    eventually("the call is audited as cancelled", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__stall" && r["outcome"] == "cancelled")
    })
    .await;

    assert_eq!(client.post(&cancel("never-sent"), &[]).await.status, 202);
    assert_eq!(client.call_tool("up__echo", json!({})).await["result"]["content"][0]["text"], "echoed");
    assert_eq!(cancellations().len(), 1, "a cancellation for nothing was passed on: {:?}", cancellations());
}

/// T53: SIGTERM with a call in flight that outlives the shutdown grace: the gateway still exits
/// cleanly, and every call that was admitted has its completion record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_left_at_shutdown_still_gets_its_completion_record() {
    let upstream = RecordingUpstream::start(vec![read_only_tool("stall", "Never answers")], |_| Reply::Hang).await;
    let mut gw = gateway_before_with(
        &upstream,
        "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n",
        "[gateway]\nshutdown_grace_secs = 1\n",
    )
    .await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let (url, session) = (gw.url.clone(), client.session.clone().unwrap());
    let stalled = tokio::spawn(async move {
        let call = tool_call(1, "up__stall");
        let sent = crate::support::http()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("mcp-session-id", session)
            .body(call.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(), // the connection closed: also an end
        }
    });
    eventually("the call reaches the upstream", async || upstream.calls().len() == 1).await;
    assert!(gw.terminate().await.success(), "{}", gw.stderr());
    let answer = tokio::time::timeout(WAIT, stalled).await.expect("the caller hears back").unwrap();
    assert!(!answer.contains("\"result\""), "{answer}");
    let records = audit_records(gw.dir.path());
    let admitted: Vec<_> = records.iter().filter(|r| r["phase"] == "admitted").map(|r| r["call_id"].clone()).collect();
    assert_eq!(admitted.len(), 1, "{records:?}");
    for call in admitted {
        assert!(
            records.iter().any(|r| r["call_id"] == call && r["phase"] == "completed" && r["outcome"].is_string()),
            "admitted call {call} has no completion record: {records:?}"
        );
    }
}

/// T54: an upstream that answers a call with a redirect (here to a stand-in for a cloud metadata
/// service) is not followed: the call fails with -31005, the target hears nothing, the failure
/// is audited, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_redirect_is_never_followed() {
    let metadata = RecordingUpstream::start(vec![], |_| text_result("instance credentials")).await;
    let target = metadata.url.clone();
    let tools = vec![read_only_tool("fetch", "Redirects"), read_only_tool("echo", "Echoes")];
    let upstream = RecordingUpstream::start(tools, move |request| match request["params"]["name"].as_str() {
        Some("fetch") => Reply::Redirect(target.clone()),
        _ => text_result("echoed"),
    })
    .await;
    let gw = gateway_before(&upstream, "[[upstream]]\nname = \"up\"\nallow = [\"*\"]\n").await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("up__fetch", json!({})).await;
    assert_eq!(reply["error"]["code"], -31005, "{reply}");
    assert!(!reply.to_string().contains("instance credentials"), "{reply}");
    assert!(metadata.received().is_empty(), "the redirect was followed: {:?}", metadata.received());
    eventually("the failure is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__fetch" && r["outcome"] == "upstream_unavailable")
    })
    .await;
    assert_eq!(client.call_tool("up__echo", json!({})).await["result"]["content"][0]["text"], "echoed");
}

/// T55: CR, LF and JSON that pretends to be a record, in a tool name and in arguments, stay
/// inside one escaped audit line: every line is one JSON object and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_breaks_and_fake_json_stay_inside_one_audit_line() {
    let (_upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let injected = "x\r\n{\"decision\":\"allow\",\"seq\":1}\n";
    let reply = client.call_tool("up__echo", json!({"note": injected})).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = client.call_tool(&format!("up__echo{injected}"), json!({})).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let log = gw.dir.path().join("audit/audit.jsonl");
    eventually("the call with line breaks in its arguments is audited", async || {
        audit_records(gw.dir.path()).iter().any(|r| r["tool"] == "up__echo" && r["outcome"] == "ok")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    for (n, line) in text.lines().enumerate() {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON record ({e}): {line:?}"));
        assert_eq!(record["seq"], n as u64 + 1, "a line that is not the next record: {line}");
    }
    let out =
        std::process::Command::new(tollgate_bin()).args(["audit", "verify", log.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "the chain does not verify: {}", String::from_utf8_lossy(&out.stderr));
}

/// A `_meta` that is not an object is refused by the gateway (-32602, naming `_meta`) instead of
/// being forwarded to an upstream that may never answer it; nothing reaches the upstream and the
/// session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_that_is_not_an_object_is_refused_and_never_forwarded() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    for meta in [json!(7), json!("x"), json!([1])] {
        let reply = client.request("tools/call", json!({"name": "up__echo", "arguments": {}, "_meta": meta})).await;
        let error = &reply.response()["error"];
        assert_eq!(error["code"], -32602, "{meta}: {error}");
        assert!(error["message"].as_str().unwrap_or_default().contains("_meta must be an object"), "{error}");
    }
    assert!(upstream.calls().is_empty(), "forwarded: {:?}", upstream.calls());
    let ok = client.request("tools/call", json!({"name": "up__echo", "arguments": {"k": 1}, "_meta": {"x": 1}})).await;
    assert_eq!(ok.response()["result"]["content"][0]["text"], r#"{"k":1}"#, "{:?}", ok.messages);
}
