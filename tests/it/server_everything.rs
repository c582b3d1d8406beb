//! Against `@modelcontextprotocol/server-everything` (npm): progress, sampling, elicitation and
//! roots traffic through the gateway in both directions.

use crate::support::*;
use serde_json::{Value, json};

/// server-everything's sampling/elicitation/roots tools are not annotated read-only, so the
/// zero-config default would refuse them: these tests opt in to writes.
fn everything_stdio() -> Vec<String> {
    vec!["--allow-writes".into(), "--".into(), "node".into(), server_everything(), "stdio".into()]
}

fn everything_http_config() -> String {
    format!("{}[policy]\nallow_writes = true\n", stdio_upstream("ev", "node", &[&server_everything(), "stdio"], ""))
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_request_reaches_the_client_and_its_answer_the_server() {
    let cmd = everything_stdio();
    let mut client = StdioClient::spawn(&args(&cmd));
    client.initialize(json!({"sampling": {}})).await;
    client.send(&json!({"jsonrpc":"2.0","id":"t","method":"tools/call","params":{"name":"trigger-sampling-request","arguments":{"prompt":"hi","maxTokens":10}}})).await;
    let request = client.recv_until(|m| m["method"] == "sampling/createMessage").await;
    let id = request["id"].clone();
    assert!(id.as_str().is_some_and(|s| s.starts_with("tg-")), "gateway-mapped id expected: {request}");
    client
        .send(&json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","content":{"type":"text","text":"sampled-by-test"},"model":"test-model","stopReason":"endTurn"}}))
        .await;
    let reply = client.recv_until(|m| m["id"] == "t").await;
    assert!(reply.to_string().contains("sampled-by-test"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elicitation_round_trip() {
    let cmd = everything_stdio();
    let mut client = StdioClient::spawn(&args(&cmd));
    client.initialize(json!({"elicitation": {}})).await;
    client.send(&json!({"jsonrpc":"2.0","id":"e","method":"tools/call","params":{"name":"trigger-elicitation-request","arguments":{}}})).await;
    let request = client.recv_until(|m| m["method"] == "elicitation/create").await;
    let schema = request["params"]["requestedSchema"]["properties"].as_object().expect("schema").clone();
    let mut content = serde_json::Map::new();
    for (key, prop) in schema {
        let value = match prop["type"].as_str() {
            Some("boolean") => json!(true),
            Some("number") | Some("integer") => json!(5),
            _ => prop.get("enum").and_then(|e| e.get(0)).cloned().unwrap_or(json!("elicited-value")),
        };
        content.insert(key, value);
    }
    client.send(&json!({"jsonrpc":"2.0","id":request["id"],"result":{"action":"accept","content":content}})).await;
    let reply = client.recv_until(|m| m["id"] == "e").await;
    assert!(reply["result"].is_object(), "{reply}");
    assert!(reply.to_string().contains("accept"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_request_is_answered_by_the_client() {
    let cmd = everything_stdio();
    let mut client = StdioClient::spawn(&args(&cmd));
    client.request("initialize", initialize_params(json!({"roots": {"listChanged": true}}))).await;
    client.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await;
    // server-everything asks for roots as soon as it is initialized.
    let request = client.recv_until(|m| m["method"] == "roots/list").await;
    client.send(&json!({"jsonrpc":"2.0","id":request["id"],"result":{"roots":[{"uri":"file:///tmp/tollgate-root","name":"test root"}]}})).await;
    let reply = client.call_tool("get-roots-list", json!({})).await;
    assert!(reply.to_string().contains("file:///tmp/tollgate-root"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_streams_on_the_post_before_the_result() {
    let gw = Listening::gateway(&stdio_upstream("ev", "node", &[&server_everything(), "stdio"], "")).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let id = client.next_id();
    let reply = client
        .post(
            &json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"ev__trigger-long-running-operation","arguments":{"duration":1,"steps":3},"_meta":{"progressToken":"tok"}}}),
            &[],
        )
        .await;
    assert!(reply.content_type.starts_with("text/event-stream"), "{}", reply.content_type);
    let progress: Vec<&Value> = reply.messages.iter().filter(|m| m["method"] == "notifications/progress").collect();
    assert_eq!(progress.len(), 3, "{:?}", reply.messages);
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "tok"));
    assert_eq!(reply.response()["id"], id);
    assert!(first_text(&reply.response()["result"]).contains("completed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_over_http_goes_on_the_post_stream() {
    let gw = Listening::gateway(&everything_http_config()).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({"sampling": {}})).await;
    let id = client.next_id();
    let mut stream = client
        .post_streaming(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"ev__trigger-sampling-request","arguments":{"prompt":"hi","maxTokens":10}}}))
        .await;
    // Unrelated notifications (the server's early list_changed) may come first on the stream.
    let request = loop {
        let msg =
            tokio::time::timeout(WAIT, stream.recv()).await.expect("sampling request in time").expect("stream open");
        if msg["method"] == "sampling/createMessage" {
            break msg;
        }
        assert!(msg.get("method").is_some(), "reply before the sampling request: {msg}");
    };
    let answer = json!({"jsonrpc":"2.0","id":request["id"],"result":{"role":"assistant","content":{"type":"text","text":"http-sampled"},"model":"m"}});
    assert_eq!(client.post(&answer, &[]).await.status, 202);
    let reply = tokio::time::timeout(WAIT, stream.recv()).await.expect("result in time").expect("stream open");
    assert_eq!(reply["id"], id);
    assert!(reply.to_string().contains("http-sampled"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_prompts_and_completions_pass_through() {
    let cmd = everything_stdio();
    let mut client = StdioClient::spawn(&args(&cmd));
    client.initialize(json!({})).await;
    let resources = client.request("resources/list", json!({})).await;
    let uri = resources["result"]["resources"][0]["uri"].as_str().expect("a resource").to_string();
    let read = client.request("resources/read", json!({"uri": uri})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], uri.as_str(), "{read}");
    let prompts = client.request("prompts/list", json!({})).await;
    assert!(prompts["result"]["prompts"].as_array().unwrap().iter().any(|p| p["name"] == "simple-prompt"), "{prompts}");
    let got = client.request("prompts/get", json!({"name": "simple-prompt"})).await;
    assert!(got["result"]["messages"].is_array(), "{got}");
    let level = client.request("logging/setLevel", json!({"level": "debug"})).await;
    assert_eq!(level["result"], json!({}));
}
