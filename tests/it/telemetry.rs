//! Observability through the real binary: traces to a real OTLP/HTTP receiver on loopback (one
//! trace from the client's `traceparent` down to each upstream, which receives the context),
//! exact counters at `GET /metrics`, and JSON log lines.

use crate::support::otlp::{OtlpReceiver, ReceivedSpan};
use crate::support::*;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token-0123456789";
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// The `mcp.upstream` span of the `tools/call` hop to `upstream`.
fn hop<'a>(spans: &'a [ReceivedSpan], upstream: &str, trace: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| {
            s.name == "mcp.upstream"
                && s.trace_id == trace
                && s.attr("tollgate.upstream") == Some(upstream)
                && s.attr("mcp.method.name") == Some("tools/call")
        })
        .unwrap_or_else(|| panic!("no tools/call hop to {upstream} in trace {trace}: {spans:#?}"))
}

fn by_id<'a>(spans: &'a [ReceivedSpan], id: &str) -> &'a ReceivedSpan {
    spans.iter().find(|s| s.span_id == id).unwrap_or_else(|| panic!("no span {id}"))
}

/// What `echo_meta` saw: its request's `_meta` and `traceparent` header.
fn echoed(reply: &Value) -> Value {
    serde_json::from_str(&first_text(&reply["result"])).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_client_through_the_gateway_to_each_upstream() {
    let receiver = OtlpReceiver::start().await;
    let upstream_http = Listening::fixture_http().await;
    let config = format!(
        "{}{}[telemetry]\nendpoint = {:?}\nservice_name = \"tollgate-it\"\n",
        stdio_upstream("st", fixture_bin(), &[], ""),
        http_upstream("ht", &upstream_http.url, ""),
        receiver.url
    );
    let mut gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;

    // The client's context as an HTTP header…
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let mut seen = Vec::new();
    for tool in ["st__echo_meta", "ht__echo_meta"] {
        let id = client.next_id();
        let call =
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
        let reply = client.post(&call, &[("traceparent", &traceparent)]).await;
        seen.push(echoed(reply.response()));
    }
    // …and in `params._meta`, which wins over a header.
    let meta_trace = "11111111111111111111111111111111";
    let id = client.next_id();
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "ht__echo_meta", "arguments": {},
        "_meta": {"traceparent": format!("00-{meta_trace}-2222222222222222-01"), "tracestate": "vendor=x"}
    }});
    let from_meta = echoed(client.post(&call, &[("traceparent", &traceparent)]).await.response());

    assert!(gw.terminate().await.success(), "{}", gw.stderr());
    // The exporter flushes at shutdown; the receiver may still be decoding.
    receiver
        .wait_until(|r| {
            r.spans()
                .iter()
                .filter(|s| s.name == "mcp.upstream" && s.attr("mcp.method.name") == Some("tools/call"))
                .count()
                >= 3
        })
        .await;
    let spans = receiver.spans();
    assert!(spans.iter().all(|s| s.service == "tollgate-it"), "service.name");

    for (upstream, echo) in [("st", &seen[0]), ("ht", &seen[1])] {
        let hop = hop(&spans, upstream, TRACE);
        let call = by_id(&spans, &hop.parent_span_id);
        let request = by_id(&spans, &call.parent_span_id);
        assert_eq!((call.name.as_str(), request.name.as_str()), ("mcp.tool_call", "mcp.request"));
        assert_eq!(request.parent_span_id, CLIENT_SPAN, "the request continues the client's span");
        assert_eq!(call.attr("tollgate.decision"), Some("allow"));
        assert_eq!(call.attr("gen_ai.tool.name"), Some(format!("{upstream}__echo_meta").as_str()));
        assert!(call.attr("tollgate.policy.allowlist").is_some_and(|v| v.starts_with("allow ")), "{call:?}");
        assert!(call.events.is_empty(), "decisions and the call's log line are attributes, not events: {call:?}");
        // The upstream's parent is the gateway's hop: stdio gets it in `_meta`, HTTP in a header.
        let expected = format!("00-{TRACE}-{}-01", hop.span_id);
        match upstream {
            "st" => assert_eq!(echo["meta"]["traceparent"], expected, "{echo}"),
            _ => {
                assert_eq!(echo["traceparent_header"], expected, "{echo}");
                assert!(echo["meta"].get("traceparent").is_none(), "no _meta was sent, none is added: {echo}");
            }
        }
    }

    let hop = hop(&spans, "ht", meta_trace);
    let expected = format!("00-{meta_trace}-{}-01", hop.span_id);
    assert_eq!(from_meta["traceparent_header"], expected, "{from_meta}");
    // The client's `_meta.traceparent` is replaced, so the upstream never sees two parents.
    assert_eq!(from_meta["meta"]["traceparent"], expected, "{from_meta}");
    assert_eq!(from_meta["meta"]["tracestate"], "vendor=x", "{from_meta}");

    // Spans carry the session handle, never the session id.
    let session = client.session.clone().unwrap();
    assert!(spans.iter().all(|s| !format!("{s:?}").contains(&session)));
    assert!(spans.iter().any(|s| s.attr("mcp.session.id").is_some_and(|h| h.len() == 16)));
}

fn gateway_with_admin(extra: &str, dir: &tempfile::TempDir) -> String {
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"file:admin.token\"\n{extra}",
        stdio_upstream("fx", fixture_bin(), &[], "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_allowed_denied_timed_out_and_unknown_calls_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("p.toml"),
        "[[upstream]]\nname = \"fx\"\nread_only = true\nallow = [\"echo\", \"slow\", \"write_note\", \"leak_secrets\"]\n\
         [[upstream.tool]]\nname = \"slow\"\ntimeout_ms = 300\n",
    )
    .unwrap();
    let config = gateway_with_admin("[policy]\ndir = \"policies\"\n", &dir);
    let gw = Listening::gateway_in(dir, &config).await;
    let admin = gw.admin.clone().expect("admin API announced");
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;

    for _ in 0..2 {
        assert_eq!(first_text(&client.call_tool("fx__echo", json!({"message": "m"})).await["result"]), "Echo: m");
    }
    let denied = client.call_tool("fx__write_note", json!({"path": "/tmp/never", "content": "x"})).await;
    assert_eq!(denied["error"]["code"], -31002, "{denied}");
    let slow = client.call_tool("fx__slow", json!({"ms": 20000})).await;
    assert_eq!(slow["error"]["code"], -31004, "{slow}");
    let unknown = client.call_tool("fx__no_such_tool_from_a_client", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let leaked = client.call_tool("fx__leak_secrets", json!({})).await;
    assert!(leaked["result"].is_object(), "{leaked}");

    assert_eq!(scrape(&admin, None).await.0, 401, "/metrics needs the admin token by default");
    let (status, text) = scrape(&admin, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let calls = |tool: &str, decision: &str, outcome: &str| {
        sample(
            &text,
            &format!(
                r#"tollgate_tool_calls_total{{upstream="fx",tool="{tool}",decision="{decision}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(calls("echo", "allow", "ok"), Some(2.0), "{text}");
    assert_eq!(calls("write_note", "deny", "denied"), Some(1.0), "{text}");
    assert_eq!(calls("slow", "allow", "timeout"), Some(1.0), "{text}");
    assert_eq!(calls("leak_secrets", "allow", "ok"), Some(1.0), "{text}");
    let unknown_calls =
        r#"tollgate_tool_calls_total{upstream="unknown",tool="unknown",decision="deny",outcome="denied"}"#;
    assert_eq!(sample(&text, unknown_calls), Some(1.0), "{text}");
    assert!(!text.contains("no_such_tool_from_a_client"), "a client's tool name became a label value");
    let series = [
        (r#"tollgate_policy_denials_total{upstream="fx",rule="p.toml:fx:read_only"}"#, 1.0),
        (r#"tollgate_policy_denials_total{upstream="unknown",rule="unknown_tool"}"#, 1.0),
        (r#"tollgate_upstream_timeouts_total{upstream="fx",tool="slow"}"#, 1.0),
        (r#"tollgate_tool_call_duration_seconds_count{upstream="fx",tool="echo",decision="allow"}"#, 2.0),
        (r#"tollgate_upstream_up{upstream="fx"}"#, 1.0),
        ("tollgate_sessions_active", 1.0),
        ("tollgate_approvals_pending", 0.0),
    ];
    for (series, value) in series {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    let redacted = sample(&text, r#"tollgate_redactions_total{upstream="fx",tool="leak_secrets"}"#);
    assert!(redacted.is_some_and(|n| n >= 2.0), "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_scraped_without_the_token_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let config = gateway_with_admin("[telemetry]\nmetrics_require_token = false\n", &dir);
    let gw = Listening::gateway_in(dir, &config).await;
    let admin = gw.admin.clone().expect("admin API announced");
    let (status, text) = scrape(&admin, None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, "tollgate_sessions_active"), Some(0.0), "{text}");
    let sessions = crate::support::http().get(format!("{admin}/v1/sessions")).send().await.unwrap();
    assert_eq!(sessions.status().as_u16(), 401, "the rest of the admin API still needs the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_name_the_session_by_its_handle() {
    let receiver = OtlpReceiver::start().await;
    let config = format!(
        "{}[telemetry]\nendpoint = {:?}\nmetrics_interval_secs = 1\n",
        stdio_upstream("fx", fixture_bin(), &[], ""),
        receiver.url
    );
    let mut gw =
        Listening::gateway_with_env(&config, &[("TOLLGATE_LOG_FORMAT", "json"), ("TOLLGATE_LOG", "info")]).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.next_id();
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"message": "secret-argument"}}});
    let traceparent = format!("00-{TRACE}-{CLIENT_SPAN}-01");
    let reply = client.post(&call, &[("traceparent", &traceparent)]).await;
    assert_eq!(first_text(&reply.response()["result"]), "Echo: secret-argument");
    // OTLP metrics are pushed on their interval.
    receiver.wait_until(|r| r.metric_names().iter().any(|n| n == "tollgate.tool.calls")).await;
    assert!(gw.terminate().await.success());

    let stderr = gw.stderr();
    let lines: Vec<Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["message"].is_string()));
    let session = client.session.clone().unwrap();
    assert!(!stderr.contains(&session), "a log line holds the raw session id");
    assert!(!stderr.contains("secret-argument"), "a log line holds an argument value");
    let call = lines.iter().find(|l| l["message"] == "tool call").expect("one line per tool call");
    assert_eq!(call["decision"], "allow", "{call}");
    assert_eq!(call["tool"], "fx__echo", "{call}");
    assert_eq!(call["trace_id"], TRACE, "{call}");
    assert_eq!(call["session"].as_str().map(str::len), Some(16), "{call}");
    assert!(lines.iter().any(|l| l["message"] == "session closed" && l["session"] == call["session"]));
}
