//! Faithful forwarding: what the gateway need not change comes out byte for byte — unknown
//! fields, vendor keys, number formats, key order, unknown methods and notifications.
//! The upstream is the fixture's raw mode, which echoes the exact bytes it received.

use crate::support::*;
use serde_json::json;

async fn raw_session() -> StdioClient {
    let mut client = StdioClient::spawn(&["--", fixture_bin(), "--raw"]);
    client.initialize(json!({})).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_keeps_vendor_fields_and_number_formats() {
    let mut client = raw_session().await;
    client.send_raw(r#"{"jsonrpc":"2.0","id":"list-1","method":"tools/list"}"#).await;
    let line = client.recv_raw().await;
    let tool = r#"{"name":"raw_echo","description":"Echoes what it received","inputSchema":{"type":"object","properties":{"n":{"type":"number"}}},"annotations":{"readOnlyHint":true},"x-vendor":{"nums":[1.0,2.50,1e3,-0.0],"nested":{"z":1,"a":2}},"execution":{"taskSupport":"optional"}}"#;
    assert!(line.contains(tool), "tool object changed:\n{line}");
    assert!(line.contains(r#""x-list-extra":{"keep":true}"#), "list extra field lost:\n{line}");
    assert!(line.contains(r#""id":"list-1""#), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_call_params_and_result_pass_byte_for_byte() {
    let mut client = raw_session().await;
    let params = r#"{"name":"raw_echo","arguments":{"n":1.50,"big":123456789012345678901234567890,"s":"\u00e9\n"},"x-param":{"b":2,"a":1},"_meta":{"progressToken":"p-1","vendor.example/trace":{"k":[1e-7]}}}"#;
    client.send_raw(&format!(r#"{{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{params}}}"#)).await;
    let line = client.recv_raw().await;
    assert!(line.contains(&format!(r#""received":{params}"#)), "upstream did not receive the exact params:\n{line}");
    assert!(line.contains(r#""x-result-extra":{"n":1.0,"big":12345678901234567890}"#), "result changed:\n{line}");
    assert!(line.contains(r#""id":"call-1""#), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_notifications_pass_both_ways() {
    let mut client = raw_session().await;
    client.send_raw(r#"{"jsonrpc":"2.0","id":7,"method":"vendor/thing","params":{"x":-0.0,"y":[1.10]}}"#).await;
    let line = client.recv_raw().await;
    assert!(line.contains(r#""echo":{"x":-0.0,"y":[1.10]}"#), "{line}");
    assert!(line.contains(r#""id":7"#), "{line}");

    client.send_raw(r#"{"jsonrpc":"2.0","method":"vendor/ping-me","params":{"z":1.0,"a":"b"}}"#).await;
    let line = client.recv_raw().await;
    assert_eq!(line, r#"{"jsonrpc":"2.0","method":"vendor/pong","params":{"z":1.0,"a":"b"}}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_string_and_integer_ids_keep_their_ids() {
    let mut client = raw_session().await;
    for id in [r#""a""#, "1", r#""1""#, "99999999999"] {
        client.send_raw(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"vendor/id","params":{{"id":{id}}}}}"#)).await;
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let line = client.recv_raw().await;
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], v["result"]["echo"]["id"], "reply went to the wrong request: {line}");
        got.push(v["id"].clone());
    }
    assert_eq!(got.len(), 4);
}
