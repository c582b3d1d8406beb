//! Cost attribution and the "why did this happen?" tools, through the real binary: exact figures
//! per call and per session (audit record, `sessions show`), per upstream and tool as metrics
//! (`/metrics` and OTLP), `usage --since` over the audit log,
//! `audit explain` for allowed, denied and approval-gated calls, and `sessions replay --dry-run`
//! after a policy is tightened.

use crate::support::otlp::OtlpReceiver;
use crate::support::*;
use serde_json::{Value, json};

/// 0.002 EUR per call, 0.5 per 1k tokens in, 1.5 per 1k tokens out, for every tool of `fx`.
const PRICES: &str = "[cost]\ncurrency = \"EUR\"\n[[cost.price]]\nupstream = \"fx\"\ntool = \"*\"\nper_call = 0.002\nper_1k_tokens_in = 0.5\nper_1k_tokens_out = 1.5\n";

fn audit_path(gw: &Listening) -> String {
    gw.dir.path().join("audit/audit.jsonl").display().to_string()
}

/// What the documented arithmetic gives for a forwarded call under [`PRICES`] with the default
/// estimator (4 bytes per token): (tokens in, tokens out, micro-units).
fn expected(args: &str, result: &str) -> (u64, u64, u64) {
    let tokens_in = (args.len() as u64).div_ceil(4);
    let tokens_out = (result.len() as u64).div_ceil(4);
    let micros = 2000 + (tokens_in * 500_000 + tokens_out * 1_500_000 + 500) / 1000;
    (tokens_in, tokens_out, micros)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_is_counted_per_call_and_session_and_summed_over_a_window() {
    let gw = operated_gateway(PRICES, None).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();

    // Two forwarded calls with known payloads: in is the arguments as sent, out the result as received.
    let args = json!({"message": "hello"});
    let reply = client.call_tool("fx__echo", args.clone()).await;
    assert_eq!(first_text(&reply["result"]), "Echo: hello");
    let (result, args_text) = (reply["result"].to_string(), args.to_string());
    let (tin, tout, micros) = expected(&args_text, &result);
    let long = json!({"message": "x".repeat(1001)});
    let reply = client.call_tool("fx__echo", long.clone()).await;
    let (tin2, tout2, micros2) = expected(&long.to_string(), &reply["result"].to_string());
    // A write refused by the zero-config policy: measured, matched by the price, not charged.
    let denied_args = json!({"path": "/tmp/never", "content": "x"});
    let reply = client.call_tool("fx__write_note", denied_args.clone()).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    let denied_tin = (denied_args.to_string().len() as u64).div_ceil(4);

    // The audit record of each call carries its figures.
    let records = audit_records(gw.dir.path());
    let finished: Vec<&Value> = records.iter().filter(|r| r["phase"] != "admitted").collect();
    assert_eq!(finished.len(), 3, "{records:?}");
    let echo = finished[0];
    assert_eq!(echo["bytes_in"], args_text.len() as u64, "{echo}");
    assert_eq!(echo["bytes_out"], result.len() as u64);
    assert_eq!((echo["tokens_in"].as_u64(), echo["tokens_out"].as_u64()), (Some(tin), Some(tout)));
    assert_eq!(echo["cost_micros"], micros);
    assert_eq!(echo["currency"], "EUR");
    assert_eq!(echo["price"], "cost.price[0]");
    assert_eq!(finished[1]["cost_micros"], micros2);
    let denied = finished[2];
    assert_eq!(denied["phase"], "denied");
    assert_eq!((denied["tokens_in"].as_u64(), denied["tokens_out"].as_u64()), (Some(denied_tin), Some(0)));
    assert_eq!(denied["cost_micros"], 0, "a call that never reached its upstream is not charged");

    // The session adds the same figures up (off the request path, so wait for the third call).
    let total = micros + micros2;
    let mut show = Value::Null;
    eventually("the session counts all three calls", async || {
        show = tollgate_json(&gw, &["sessions", "show", &id]).await;
        // Usage and history are written separately: wait for both.
        show["session"]["usage"]["calls"] == 3 && show["history"].as_array().is_some_and(|h| h.len() == 3)
    })
    .await;
    let usage = &show["session"]["usage"];
    assert_eq!(usage["cost_micros"], total, "{show}");
    assert_eq!(usage["tokens_in"], tin + tin2 + denied_tin);
    assert_eq!(usage["tokens_out"], tout + tout2);
    assert_eq!(usage["denied"], 1);
    assert_eq!(show["currency"], "EUR");
    let history = show["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    let newest_echo = &history[1];
    assert_eq!((newest_echo["tokens_in"].as_u64(), newest_echo["cost_micros"].as_u64()), (Some(tin2), Some(micros2)));
    let (ok, text, err) = tollgate(&gw, &["sessions", "show", &id]).await;
    assert!(ok, "{err}");
    let cost_text = format!("cost={}.{:06} EUR", total / 1_000_000, total % 1_000_000);
    assert!(text.contains(&cost_text), "{cost_text} in:\n{text}");

    // `usage` sums the window from the audit log, by principal (default) or by tool.
    let audit = audit_path(&gw);
    let report = tollgate_json(&gw, &["usage", "--since", "1h", "--audit", &audit]).await;
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["key"], json!(["anonymous"]));
    assert_eq!(rows[0]["calls"], 3);
    assert_eq!(rows[0]["denied"], 1);
    assert_eq!(rows[0]["tokens_in"], tin + tin2 + denied_tin);
    assert_eq!(rows[0]["tokens_out"], tout + tout2);
    assert_eq!(rows[0]["cost_micros"], json!({"EUR": total}));
    assert_eq!(report["total"]["calls"], 3);
    let by_tool = tollgate_json(&gw, &["usage", "--since", "1h", "--by", "tool", "--audit", &audit]).await;
    let keys: Vec<&Value> = by_tool["rows"].as_array().unwrap().iter().map(|r| &r["key"][0]).collect();
    assert_eq!(keys, [&json!("fx__echo"), &json!("fx__write_note")]);
    assert_eq!(by_tool["rows"][0]["cost_micros"]["EUR"], total);
    // The config names the log too; a window that starts later holds nothing.
    let config = gw.dir.path().join("tollgate.toml").display().to_string();
    let future = tollgate_json(&gw, &["usage", "--since", "2999-01-01T00:00:00Z", "--config", &config]).await;
    assert_eq!(future["total"]["calls"], 0, "{future}");
    let (ok, text, err) = tollgate(&gw, &["usage", "--since", "24h", "--config", &config]).await;
    assert!(
        ok && text.contains("anonymous")
            && text.contains(&format!("{}.{:06} EUR", total / 1_000_000, total % 1_000_000)),
        "{text} {err}"
    );
    let (ok, _, err) = tollgate(&gw, &["usage", "--since", "soon", "--audit", &audit]).await;
    assert!(!ok && err.contains("--since"), "{err}");
}

/// [`PRICES`] for `echo` only, and a flat price for `write_note`: `add` stays unpriced.
const PRICES_BY_TOOL: &str = "[cost]\ncurrency = \"EUR\"\n\
    [[cost.price]]\nupstream = \"fx\"\ntool = \"echo\"\nper_call = 0.002\nper_1k_tokens_in = 0.5\nper_1k_tokens_out = 1.5\n\
    [[cost.price]]\nupstream = \"fx\"\ntool = \"write_note\"\nper_call = 0.001\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_is_exported_as_metrics_per_upstream_and_tool_to_prometheus_and_otlp() {
    let receiver = OtlpReceiver::start().await;
    let telemetry = format!("[telemetry]\nendpoint = {:?}\nmetrics_interval_secs = 1\n", receiver.url);
    let gw = operated_gateway(&format!("{PRICES_BY_TOOL}{telemetry}"), None).await;
    let admin = gw.admin.clone().expect("admin API announced");
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;

    // Two priced calls with known payloads, a priced write the default policy refuses, an
    // unpriced call, and a tool no catalog knows.
    let (mut echo_in, mut echo_out, mut echo_tin, mut echo_tout, mut echo_micros) = (0, 0, 0, 0, 0);
    for message in ["hello", "a longer message to weigh more"] {
        let args = json!({"message": message});
        let reply = client.call_tool("fx__echo", args.clone()).await;
        assert_eq!(first_text(&reply["result"]), format!("Echo: {message}"));
        let (args, result) = (args.to_string(), reply["result"].to_string());
        let (tin, tout, micros) = expected(&args, &result);
        (echo_in, echo_out) = (echo_in + args.len() as u64, echo_out + result.len() as u64);
        (echo_tin, echo_tout, echo_micros) = (echo_tin + tin, echo_tout + tout, echo_micros + micros);
    }
    let write_args = json!({"path": "/tmp/never", "content": "x"});
    let reply = client.call_tool("fx__write_note", write_args.clone()).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    let add_args = json!({"a": 2, "b": 3});
    let reply = client.call_tool("fx__add", add_args.clone()).await;
    assert_eq!(first_text(&reply["result"]), "5", "{reply}");
    let add_out = reply["result"].to_string().len() as u64;
    let reply = client.call_tool("fx__no_such_tool", json!({"x": "from a client"})).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");

    let (status, text) = scrape(&admin, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let payload = |tool: &str, direction: &str| {
        let bytes =
            format!(r#"tollgate_tool_payload_bytes_total{{upstream="fx",tool="{tool}",direction="{direction}"}}"#);
        let tokens =
            format!(r#"tollgate_tool_estimated_tokens_total{{upstream="fx",tool="{tool}",direction="{direction}"}}"#);
        (sample(&text, &bytes), sample(&text, &tokens))
    };
    let cost = |tool: &str| {
        sample(&text, &format!(r#"tollgate_tool_cost_micros_total{{upstream="fx",tool="{tool}",currency="EUR"}}"#))
    };
    let n = |v: u64| Some(v as f64);
    assert_eq!(payload("echo", "in"), (n(echo_in), n(echo_tin)), "{text}");
    assert_eq!(payload("echo", "out"), (n(echo_out), n(echo_tout)), "{text}");
    assert_eq!(cost("echo"), n(echo_micros), "{text}");
    // Refused before its upstream: its arguments count, nothing came out, the price is matched but not charged.
    let write_in = write_args.to_string().len() as u64;
    assert_eq!(payload("write_note", "in"), (n(write_in), n(write_in.div_ceil(4))), "{text}");
    assert_eq!(payload("write_note", "out"), (n(0), n(0)), "{text}");
    assert_eq!(cost("write_note"), n(0), "{text}");
    // Unpriced: measured, no cost series.
    assert_eq!(payload("add", "out"), (n(add_out), n(add_out.div_ceil(4))), "{text}");
    assert_eq!(cost("add"), None, "{text}");
    // A tool no catalog knows counts under the one bounded label, never under the client's name
    // and never at a price.
    let unknown_in = r#"tollgate_tool_payload_bytes_total{upstream="unknown",tool="unknown",direction="in"}"#;
    assert_eq!(sample(&text, unknown_in), n(json!({"x": "from a client"}).to_string().len() as u64), "{text}");
    assert!(!text.contains(r#"tool="unknown",currency"#), "{text}");
    assert!(!text.contains("no_such_tool"), "{text}");

    // The same totals reach the OTLP collector on the next push.
    let fx =
        |tool: &'static str, key: &'static str, value: &'static str| [("upstream", "fx"), ("tool", tool), (key, value)];
    let i = |v: u64| Some(v as i64);
    receiver.wait_until(|r| r.sum("tollgate.tool.cost_micros", &fx("echo", "currency", "EUR")) == i(echo_micros)).await;
    assert_eq!(receiver.sum("tollgate.tool.payload", &fx("echo", "direction", "in")), i(echo_in));
    assert_eq!(receiver.sum("tollgate.tool.payload", &fx("echo", "direction", "out")), i(echo_out));
    assert_eq!(receiver.sum("tollgate.tool.estimated_tokens", &fx("echo", "direction", "in")), i(echo_tin));
    assert_eq!(receiver.sum("tollgate.tool.estimated_tokens", &fx("echo", "direction", "out")), i(echo_tout));
    assert_eq!(receiver.sum("tollgate.tool.cost_micros", &fx("write_note", "currency", "EUR")), i(0));
    assert_eq!(receiver.sum("tollgate.tool.cost_micros", &fx("add", "currency", "EUR")), None);
}

const OPEN_POLICY: &str = "[[upstream]]\nname = \"fx\"\nallow = [\"*\"]\n[[upstream.tool]]\nname = \"echo\"\napproval_when = { message = [\"deploy*\"] }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_and_replay_reconstruct_calls_from_the_audit_log() {
    let gw = operated_gateway("[approvals]\ntimeout_secs = 1\n", Some(OPEN_POLICY)).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.session.clone().unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    // 1: allowed, with trace context in _meta. 2: a write on a read-only upstream. 3: needs a
    // person, nobody answers.
    let reply = client
        .request(
            "tools/call",
            json!({"name": "fx__echo", "arguments": {"message": "hi"}, "_meta": {"traceparent": traceparent}}),
        )
        .await;
    assert_eq!(first_text(&reply.response()["result"]), "Echo: hi");
    let note = gw.dir.path().join("notes/today.txt").display().to_string();
    let reply = client.call_tool("fx__write_note", json!({"path": note, "content": "x"})).await;
    assert_eq!(reply["error"]["code"], -31002, "{reply}");
    let reply = client.call_tool("fx__echo", json!({"message": "deploy prod"})).await;
    assert_eq!(reply["error"]["code"], -31003, "{reply}");
    let audit = audit_path(&gw);

    // The allowed call: who, what they sent, every decision, timing, outcome, chain.
    let explained = tollgate_json(&gw, &["audit", "explain", &audit, "--session", &id, "--call", "1"]).await;
    let e = &explained[0];
    assert_eq!(e["call"], 1, "{e}");
    assert_eq!(e["client"], json!({"name": "it", "version": "0"}));
    assert_eq!(e["principal"], "anonymous");
    assert_eq!(e["jsonrpc_id"], "2", "initialize was id 1");
    assert_eq!(e["traceparent"], traceparent);
    assert_eq!(e["meta"]["traceparent"], traceparent);
    assert_eq!((e["upstream"].as_str(), e["upstream_tool"].as_str()), (Some("fx"), Some("echo")));
    assert_eq!(e["decision"], "allow");
    assert_eq!(e["rule"], "p.toml:fx:allow:*");
    let trail: Vec<(String, String, String)> = e["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["layer"].as_str().unwrap().into(),
                s["decision"].as_str().unwrap().into(),
                s["rule"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |v: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
        v.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
    };
    assert_eq!(
        trail,
        expect(&[
            ("allowlist", "allow", "p.toml:fx:allow:*"),
            ("pin", "allow", "pin"),
            ("read_only", "allow", "annotation:readOnlyHint"),
            ("arguments", "allow", "schema:inputSchema"),
        ]),
        "{e}"
    );
    assert!(e["admitted"].is_string() && e["completed"].is_string(), "{e}");
    assert!(e["latency_us"].as_u64().is_some());
    assert_eq!(e["outcome"], "ok");
    assert_eq!(e["redactions"], 0);
    assert_eq!(e["writes"], false);
    assert_eq!(e["chain"]["status"], "intact");
    let (ok, text, err) = tollgate(&gw, &["audit", "explain", &audit, "--session", &id, "--call", "1"]).await;
    assert!(ok, "{err}");
    for part in ["call 1 of session", "client      it 0", traceparent, "p.toml:fx:allow:*", "chain       intact"] {
        assert!(text.contains(part), "{part:?} in:\n{text}");
    }

    // The denied call, found by upstream and tool, and by the path its arguments mention.
    let denied =
        tollgate_json(&gw, &["audit", "explain", &audit, "--upstream", "fx", "--tool", "write_note", "--last"]).await;
    let d = &denied[0];
    assert_eq!(d["call"], 2, "{d}");
    assert_eq!((d["decision"].as_str(), d["rule"].as_str()), (Some("deny"), Some("p.toml:fx:read_only")));
    assert_eq!(d["trail"].as_array().unwrap().last().unwrap()["decision"], "deny");
    assert_eq!(d["error_code"], -31002);
    assert!(d["admitted"].is_null(), "never forwarded: {d}");
    assert_eq!(d["writes"], true);
    let by_path = tollgate_json(&gw, &["audit", "explain", &audit, "--path", "notes/today.txt"]).await;
    assert_eq!(by_path.as_array().unwrap().len(), 1);
    assert_eq!(by_path[0]["call"], 2);

    // The call that waited for a person: who decided (the deadline) and when.
    let asked = tollgate_json(&gw, &["audit", "explain", &audit, "--session", &id, "--call", "3"]).await;
    let a = &asked[0];
    assert_eq!(a["approval"]["by"], "timeout", "{a}");
    assert_eq!(a["approval"]["approved"], false);
    assert!(a["approval"]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a["rule"], "p.toml:fx:tool:echo:approval_when:message");

    // Nothing matches: an error, not an empty answer; no selector: a usage error.
    let (ok, _, err) = tollgate(&gw, &["audit", "explain", &audit, "--session", &id, "--call", "9"]).await;
    assert!(!ok && err.contains("no tool call"), "{err}");
    let (ok, _, _) = tollgate(&gw, &["audit", "explain", &audit]).await;
    assert!(!ok);

    // An edit after call 1 leaves call 1 verified and the later calls not.
    let tampered = gw.dir.path().join("tampered.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("\"principal\":\"anonymous\"", "\"principal\":\"someone-else\"");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let tampered = tampered.display().to_string();
    let first = tollgate_json(&gw, &["audit", "explain", &tampered, "--session", &id, "--call", "1"]).await;
    assert_eq!(first[0]["chain"]["status"], "verified_through_call", "{first}");
    let third = tollgate_json(&gw, &["audit", "explain", &tampered, "--session", &id, "--call", "3"]).await;
    assert_eq!(third[0]["chain"]["status"], "not_verified", "{third}");

    // Replay: under the live policy nothing changes; a tightened policy denies call 1 now.
    let config = gw.dir.path().join("tollgate.toml").display().to_string();
    let same = tollgate_json(&gw, &["sessions", "replay", &id, "--dry-run", "--config", &config]).await;
    assert_eq!(same["changed"], 0, "{same}");
    assert_eq!(same["calls"].as_array().unwrap().len(), 3);
    assert_eq!(same["calls"][2]["then"]["decision"], "approval");
    assert_eq!(same["calls"][2]["now"]["decision"], "approval");
    let tight = gw.dir.path().join("tightened");
    std::fs::create_dir_all(&tight).unwrap();
    std::fs::write(tight.join("p.toml"), "[[upstream]]\nname = \"fx\"\nallow = [\"*\"]\ndeny = [\"echo\"]\n").unwrap();
    let tight = tight.display().to_string();
    let replayed =
        tollgate_json(&gw, &["sessions", "replay", &id, "--dry-run", "--policy", &tight, "--audit", &audit]).await;
    let calls = replayed["calls"].as_array().unwrap();
    assert_eq!(calls[0]["then"]["decision"], "allow", "{replayed}");
    assert_eq!(calls[0]["then"]["rule"], "p.toml:fx:allow:*");
    assert_eq!(calls[0]["now"]["decision"], "deny");
    assert_eq!(calls[0]["now"]["rule"], "p.toml:fx:deny:echo");
    assert_eq!(calls[0]["change"], "decision");
    assert_eq!(calls[1]["change"], "same", "still a write on a read-only upstream");
    assert_eq!(calls[2]["change"], "decision", "denied before anyone is asked");
    assert_eq!(replayed["changed"], 2);
    let (ok, text, err) =
        tollgate(&gw, &["sessions", "replay", &id, "--dry-run", "--policy", &tight, "--audit", &audit]).await;
    assert!(ok && text.contains("DENY p.toml:fx:deny:echo") && text.contains("2 of 3"), "{text} {err}");
    // Without --dry-run: refused, saying why.
    let (ok, _, err) = tollgate(&gw, &["sessions", "replay", &id, "--policy", &tight, "--audit", &audit]).await;
    assert!(!ok && err.contains("not supported"), "{err}");
}
