//! The capacity limits of `[server]` answer with a clear error (HTTP 503 and JSON-RPC -31016
//! naming the limit) instead of queueing, and CORS stays off unless configured.

use crate::support::raw_http;
use crate::support::*;
use serde_json::{Value, json};
use std::time::Instant;
use tokio::io::{AsyncWriteExt, BufReader};

fn slow_call(ms: u64) -> Value {
    json!({"name": "fx__slow", "arguments": {"ms": ms}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_max_in_flight_get_503() {
    let config = format!("[server]\nmax_in_flight_requests = 2\n{}", stdio_upstream("fx", fixture_bin(), &[], ""));
    let gw = Listening::gateway(&config).await;
    // Warm the stateless session (and the upstream) so the calls below only wait on the tool.
    let mut warm = HttpClient::new(&gw.url);
    let r = warm.stateless_request("tools/call", slow_call(1)).await;
    assert_eq!(r.status, 200, "{:?}", r.messages);
    let calls = (0..5).map(|_| {
        let url = gw.url.clone();
        async move { HttpClient::new(&url).stateless_request("tools/call", slow_call(3000)).await }
    });
    let replies = futures::future::join_all(calls).await;
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(refused.len(), 3, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in &refused {
        assert_eq!(r.response()["error"]["code"], -31016);
        assert!(r.response()["error"]["message"].as_str().unwrap().contains("max_in_flight_requests"));
        assert_eq!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    }
    for r in replies.iter().filter(|r| r.status != 503) {
        assert_eq!(first_text(&r.response()["result"]), "slept 3000ms", "{:?}", r.messages);
    }
}

/// Over stdio too: a client cannot pile up unbounded work on its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_max_in_flight_per_session_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmax_in_flight_per_session = 2\n{}",
            stdio_upstream("fx", fixture_bin(), &[], "tool_prefix = \"\"")
        ),
    )
    .unwrap();
    let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap()]);
    client.initialize(json!({})).await;
    for id in ["a", "b", "c", "d"] {
        let call =
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"slow","arguments":{"ms":2000}}});
        client.send(&call).await;
    }
    for id in ["c", "d"] {
        let reply = client.recv_until(|m| m["id"] == id).await;
        assert_eq!(reply["error"]["code"], -31016, "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains("max_in_flight_per_session"), "{reply}");
    }
    for id in ["a", "b"] {
        let reply = client.recv_until(|m| m["id"] == id).await;
        assert_eq!(first_text(&reply["result"]), "slept 2000ms", "{reply}");
    }
    // Capacity comes back as replies go out.
    let reply = client.call_tool("echo", json!({"message": "x"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_max_sessions_get_503() {
    let config = format!("[server]\nmax_sessions = 2\n{}", stdio_upstream("fx", fixture_bin(), &[], ""));
    let gw = Listening::gateway(&config).await;
    let mut first = HttpClient::new(&gw.url);
    first.initialize(json!({})).await;
    HttpClient::new(&gw.url).initialize(json!({})).await;
    let third = HttpClient::new(&gw.url)
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":initialize_params(json!({}))}), &[])
        .await;
    assert_eq!(third.status, 503, "{:?}", third.messages);
    assert_eq!(third.response()["error"]["code"], -31016);
    assert!(third.response()["error"]["message"].as_str().unwrap().contains("max_sessions"));
    // Ending a session frees its place.
    let ended = first.http.delete(&first.url).header("mcp-session-id", first.session.clone().unwrap()).send();
    assert_eq!(ended.await.unwrap().status(), 204);
    HttpClient::new(&gw.url).initialize(json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "")).await;
    let client = HttpClient::new(&gw.url);
    let big = "a".repeat(20 * 1024);
    let resp = client.http.post(&gw.url).header("x-big", big).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 431);
    let r = client.post(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}), &[]).await;
    assert_eq!(r.status, 400, "still serving (no session: 400)");
}

/// Bodies share one byte budget: while one client holds most of it, another gets 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_shared_budget_get_503() {
    let server = "[server]\nmax_body_bytes = 65536\nmax_buffered_body_bytes = 65536\nbody_read_timeout_secs = 30\n";
    let gw = Listening::gateway(&format!("{server}{}", stdio_upstream("fx", fixture_bin(), &[], ""))).await;
    // Holds 40 000 bytes of a 60 000-byte body and sends no more.
    let (addr, path) = raw_http::split_url(&gw.url);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    );
    let hold = async || {
        let mut holder = raw_http::connect(&gw.url).await;
        holder.write_all(head.as_bytes()).await.unwrap();
        holder.write_all(&vec![b' '; 40_000]).await.unwrap();
        holder
    };
    let mut holder = hold().await;
    let body = " ".repeat(40_000);
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        let (rd, mut wr) = raw_http::connect(&gw.url).await.into_split();
        wr.write_all(&raw_http::post(&gw.url, &body, &[])).await.unwrap();
        let resp = raw_http::read_response(&mut BufReader::new(rd)).await.expect("a response");
        if resp.status == 503 {
            break resp;
        }
        // 400 (blank JSON) until the holder's bytes are in; then the budget is short.
        assert_eq!(resp.status, 400, "{resp:?}");
        assert!(Instant::now() < deadline, "the budget was never exhausted");
        // Whoever reads first holds the budget: if this request's bytes were read before the
        // holder's, the holder was the one refused (503, its connection answered). Hold again (Ok(0): it was closed).
        let mut peek = [0u8; 1];
        if holder.try_read(&mut peek).is_ok() {
            holder = hold().await;
        }
    };
    assert_eq!(refused.json()["error"]["code"], -31016);
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("max_buffered_body_bytes"));
    drop(holder);
    // The holder's bytes are returned when its request ends.
    let deadline = Instant::now() + WAIT;
    loop {
        let r = HttpClient::new(&gw.url).post_raw(body.clone(), &[]).await;
        if r.status == 400 {
            break;
        }
        assert!(Instant::now() < deadline, "the budget never came back: {}", r.status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_an_origin_is_configured() {
    let upstream = stdio_upstream("fx", fixture_bin(), &[], "");
    let preflight = |client: &HttpClient, origin: &str| {
        client
            .http
            .request(reqwest::Method::OPTIONS, &client.url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, mcp-session-id")
            .send()
    };
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});

    // Default: a loopback page may POST (the Origin check allows it) but gets no CORS headers,
    // so a browser will not let it read the reply; preflights are not answered.
    let gw = Listening::gateway(&upstream).await;
    let client = HttpClient::new(&gw.url);
    let resp = preflight(&client, "http://localhost:5173").await.unwrap();
    assert_ne!(resp.status(), 204);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let r = client.post(&ping, &[("origin", "http://localhost:5173")]).await;
    assert!(r.headers.get("access-control-allow-origin").is_none(), "{:?}", r.headers);

    // Configured: exactly that origin, never a wildcard.
    let gw =
        Listening::gateway(&format!("[server]\ncors_allowed_origins = [\"https://app.example\"]\n{upstream}")).await;
    let client = HttpClient::new(&gw.url);
    let resp = preflight(&client, "https://app.example").await.unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h.get("access-control-allow-origin").unwrap(), "https://app.example");
    assert!(h.get("access-control-allow-headers").unwrap().to_str().unwrap().contains("mcp-session-id"));
    assert!(h.get("access-control-allow-credentials").is_none());
    let r = client.post(&ping, &[("origin", "https://app.example")]).await;
    assert_eq!(r.headers.get("access-control-allow-origin").unwrap(), "https://app.example");
    assert_eq!(r.headers.get("vary").unwrap(), "Origin");
    let resp = preflight(&client, "https://evil.example").await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
