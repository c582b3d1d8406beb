//! Hostile clients get a clear refusal and cost the gateway bounded memory: a 100 MB body,
//! JSON nested a million deep, a flood of tiny requests on one connection, slowloris headers and
//! bodies, and more idle connections than the gateway accepts. After each, the gateway still
//! serves. Memory is the gateway's resident set (VmRSS), before and after.

use crate::support::raw_http::{self, RawResponse};
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

/// Growth of the gateway's resident memory an attack may cause (Envoy's bar is "no 100x
/// amplification"; each attack here sends far more than this).
const RSS_GROWTH_KIB: u64 = 64 * 1024;

/// A gateway with short client timeouts (so the tests run in seconds) and one stdio upstream.
fn config(server: &str) -> String {
    format!(
        "[server]\nheader_read_timeout_secs = 2\nidle_timeout_secs = 2\nbody_read_timeout_secs = 3\n{server}\n{}",
        stdio_upstream("fx", fixture_bin(), &[], "")
    )
}

/// A fresh client can start a session and call a tool.
async fn assert_serving(url: &str) {
    let mut client = HttpClient::new(url);
    client.initialize(json!({})).await;
    let reply = client.call_tool("fx__echo", json!({"message": "still serving"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: still serving", "{reply}");
}

fn assert_bounded(pid: i32, before: u64, what: &str) {
    let after = raw_http::rss_kib(pid);
    assert!(after.saturating_sub(before) < RSS_GROWTH_KIB, "{what}: gateway RSS grew from {before} KiB to {after} KiB");
}

async fn response(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> RawResponse {
    tokio::time::timeout(WAIT, raw_http::read_response(reader))
        .await
        .expect("a response in time")
        .expect("a response before the connection closed")
}

/// Streams `total` bytes of body after `head`, 1 MiB at a time, until the gateway stops taking
/// them; returns the response and how many MiB were written.
async fn send_huge(url: &str, head: String, total_mib: usize, chunked: bool) -> (RawResponse, usize) {
    let (rd, mut wr) = raw_http::connect(url).await.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return 0;
        }
        let mib = vec![b' '; 1 << 20];
        for sent in 0..total_mib {
            let ok = if chunked {
                wr.write_all(b"100000\r\n").await.is_ok()
                    && wr.write_all(&mib).await.is_ok()
                    && wr.write_all(b"\r\n").await.is_ok()
            } else {
                wr.write_all(&mib).await.is_ok()
            };
            if !ok {
                return sent;
            }
        }
        total_mib
    });
    let mut reader = BufReader::new(rd);
    let resp = response(&mut reader).await;
    drop(reader); // closes our side too, so a blocked writer fails
    let sent = tokio::time::timeout(WAIT, writer).await.expect("writer stops").expect("writer task");
    (resp, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabyte_bodies_are_refused_without_being_read() {
    let gw = Listening::gateway(&config("")).await;
    assert_serving(&gw.url).await;
    let before = raw_http::rss_kib(gw.pid());
    let (addr, path) = raw_http::split_url(&gw.url);
    let common = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");

    // Declared up front: refused before a byte of the body is read.
    let head = format!("{common}Content-Length: {}\r\n\r\n", 100usize << 20);
    let (resp, sent) = send_huge(&gw.url, head, 100, false).await;
    assert_eq!(resp.status, 413, "{resp:?}");
    assert_eq!(resp.json()["error"]["code"], -32600);
    assert!(resp.json()["error"]["message"].as_str().unwrap().contains("larger than"), "{resp:?}");
    assert!(sent < 100, "the gateway kept reading a body it had refused");

    // Chunked, no length: read up to the limit, then refused.
    let head = format!("{common}Transfer-Encoding: chunked\r\n\r\n");
    let (resp, sent) = send_huge(&gw.url, head, 100, true).await;
    assert_eq!(resp.status, 413, "{resp:?}");
    assert!(sent < 100, "the gateway kept reading a body it had refused");

    assert_bounded(gw.pid(), before, "100 MB bodies");
    assert_serving(&gw.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_is_a_parse_error_over_http_and_stdio() {
    let gw = Listening::gateway(&config("")).await;
    assert_serving(&gw.url).await;
    let before = raw_http::rss_kib(gw.pid());
    let client = HttpClient::new(&gw.url);
    for depth in [10_000, 1_000_000] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"fx__echo","arguments":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let r = client.post_raw(body, &[]).await;
        assert_eq!(r.status, 400, "depth {depth}");
        assert_eq!(r.response()["error"]["code"], -32700);
        assert!(
            r.response()["error"]["message"].as_str().unwrap().contains("nested deeper than 64"),
            "{:?}",
            r.messages
        );
    }
    assert_bounded(gw.pid(), before, "deep JSON");
    assert_serving(&gw.url).await;

    let mut stdio = StdioClient::spawn(&["--", fixture_bin()]);
    stdio.initialize(json!({})).await;
    stdio.send_raw(&format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000))).await;
    let reply = stdio.recv().await;
    assert_eq!(reply["error"]["code"], -32700, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("nested"), "{reply}");
    let reply = stdio.call_tool("echo", json!({"message": "after"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tiny_requests_on_one_connection_stays_bounded() {
    const N: usize = 10_000;
    let gw = Listening::gateway(&config("")).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let before = raw_http::rss_kib(gw.pid());
    let session = client.session.clone().unwrap();
    let (rd, mut wr) = raw_http::connect(&gw.url).await.into_split();
    let url = gw.url.clone();
    // All requests written back to back (HTTP/1.1 pipelining) while the replies are read. The
    // write half stays open until the end: a client that half-closes loses replies in flight.
    let writer = tokio::spawn(async move {
        for i in 0..N {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#);
            let headers = [("Mcp-Session-Id", session.as_str()), ("MCP-Protocol-Version", "2025-11-25")];
            if wr.write_all(&raw_http::post(&url, &body, &headers)).await.is_err() {
                return (i, wr);
            }
        }
        (N, wr)
    });
    let mut reader = BufReader::new(rd);
    let started = Instant::now();
    for i in 0..N {
        let resp = response(&mut reader).await;
        assert_eq!(resp.status, 200, "request {i}: {resp:?}");
        assert_eq!(resp.json(), json!({"jsonrpc":"2.0","id":i,"result":{}}));
    }
    assert_eq!(writer.await.unwrap().0, N);
    eprintln!("{N} pipelined requests answered in {:?}", started.elapsed());
    assert_bounded(gw.pid(), before, "request flood");
    assert_serving(&gw.url).await;
}

/// Trickles `prefix` and then one byte every 300 ms; returns how long until the gateway closed
/// the connection (or a response, if it sent one first).
async fn trickle(url: String, prefix: String) -> (Duration, Option<RawResponse>) {
    let (rd, mut wr) = raw_http::connect(&url).await.into_split();
    let started = Instant::now();
    let trickler = tokio::spawn(async move {
        if wr.write_all(prefix.as_bytes()).await.is_err() {
            return;
        }
        // The attack's own pace, not synchronisation: it stops when the gateway hangs up.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if wr.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::new(rd);
    let outcome = tokio::time::timeout(WAIT, raw_http::read_response(&mut reader)).await.expect("closed in time");
    let elapsed = started.elapsed();
    trickler.abort();
    (elapsed, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_and_bodies_are_cut_off_while_others_are_served() {
    let gw = Listening::gateway(&config("")).await;
    assert_serving(&gw.url).await;
    let before = raw_http::rss_kib(gw.pid());
    let (addr, path) = raw_http::split_url(&gw.url);
    // Headers that never end: the connection is closed (no request was read to answer).
    let heads: Vec<_> = (0..20)
        .map(|_| tokio::spawn(trickle(gw.url.clone(), format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Slow: "))))
        .collect();
    // A body that never ends: 408 with a JSON-RPC error.
    let body = tokio::spawn(trickle(
        gw.url.clone(),
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        ),
    ));
    // Healthy clients are served meanwhile.
    assert_serving(&gw.url).await;
    for h in heads {
        let (elapsed, resp) = h.await.unwrap();
        assert!(resp.is_none(), "{resp:?}");
        assert!(elapsed < Duration::from_secs(8), "slow headers were tolerated for {elapsed:?} (limit 2 s)");
    }
    let (elapsed, resp) = body.await.unwrap();
    let resp = resp.expect("a 408 for the slow body");
    assert_eq!(resp.status, 408, "{resp:?}");
    assert!(resp.json()["error"]["message"].as_str().unwrap().contains("body_read_timeout_secs"), "{resp:?}");
    assert!(elapsed < Duration::from_secs(9), "slow body tolerated for {elapsed:?} (limit 3 s)");
    assert_bounded(gw.pid(), before, "slowloris");
    assert_serving(&gw.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_idle_connections_than_allowed_are_refused_then_reaped() {
    let gw = Listening::gateway(&config("max_connections = 16")).await;
    assert_serving(&gw.url).await;
    let before = raw_http::rss_kib(gw.pid());
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(raw_http::connect(&gw.url).await);
    }
    // Once the gateway holds all 16, the next client gets a clear 503 (poll: accepting the 16
    // takes the gateway a moment).
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        let (rd, mut wr) = raw_http::connect(&gw.url).await.into_split();
        wr.write_all(&raw_http::post(&gw.url, &ping, &[])).await.unwrap();
        let resp = response(&mut BufReader::new(rd)).await;
        if resp.status == 503 {
            break resp;
        }
        assert!(Instant::now() < deadline, "never refused past max_connections: {resp:?}");
    };
    assert_eq!(refused.json()["error"]["code"], -31016, "{refused:?}");
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("max_connections"));
    assert_eq!(refused.headers.get("retry-after").map(String::as_str), Some("1"));
    // Hundreds more that never say anything.
    for _ in 0..300 {
        idle.push(raw_http::connect(&gw.url).await);
    }
    // Every one is closed by the gateway: the accepted ones after idle_timeout_secs, the rest
    // at once or after a short grace.
    let closed = futures::future::join_all(idle.iter_mut().map(|c| raw_http::closed_within(c, WAIT))).await;
    assert!(closed.iter().all(|c| *c), "{} connections left open", closed.iter().filter(|c| !**c).count());
    assert_bounded(gw.pid(), before, "idle connections");
    assert_serving(&gw.url).await;
}

/// A keep-alive connection with nothing more to say is closed after `idle_timeout_secs`; one
/// that is waiting for a slow tool is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_an_upstream_is_not_idleness() {
    let gw = Listening::gateway(&config("")).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let session = client.session.clone().unwrap();
    let (rd, mut wr) = raw_http::connect(&gw.url).await.into_split();
    let call =
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"fx__slow","arguments":{"ms":3500}}});
    let headers = [("Mcp-Session-Id", session.as_str()), ("MCP-Protocol-Version", "2025-11-25")];
    wr.write_all(&raw_http::post(&gw.url, &call.to_string(), &headers)).await.unwrap();
    let mut reader = BufReader::new(rd);
    let resp = response(&mut reader).await;
    assert_eq!(resp.status, 200);
    assert_eq!(first_text(&resp.json()["result"]), "slept 3500ms", "a 3.5 s call outlived the 2 s idle limit");
    let started = Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, reader.read_to_end(&mut rest)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0, "nothing more was sent");
    assert!(started.elapsed() < Duration::from_secs(8), "idle keep-alive held for {:?}", started.elapsed());
}

/// A stdio client that writes requests and never reads its replies is pushed back (the gateway
/// stops reading its stdin) instead of having replies pile up in the gateway's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_client_that_never_reads_is_pushed_back() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    let pid = client.child.id().expect("running") as i32;
    let before = raw_http::rss_kib(pid);
    // Write until a write stays blocked: the gateway stopped reading (back-pressure reached us).
    let mut written = 0usize;
    let pushed_back = loop {
        let line = format!(r#"{{"jsonrpc":"2.0","id":"p{written}","method":"ping"}}"#);
        match tokio::time::timeout(Duration::from_secs(2), client.send_raw(&line)).await {
            Ok(()) => written += 1,
            Err(_) => break true,
        }
        if written == 200_000 {
            break false;
        }
    };
    assert!(pushed_back, "{written} requests written and the gateway still reads: unbounded buffering");
    assert_bounded(pid, before, "unread replies");
    // Reading again releases it: every complete request gets its reply (a result, or -31016 for
    // those past the in-flight limit), the interrupted last line is ended, and the gateway serves.
    for _ in 0..written {
        let reply = client.recv().await;
        assert!(reply["result"] == json!({}) || reply["error"]["code"] == -31016, "{reply}");
    }
    client.send_raw("").await;
    let reply = client.request("ping", json!({})).await;
    assert_eq!(reply["result"], json!({}), "{reply}");
    eprintln!("pushed back after {written} unread requests");
}
