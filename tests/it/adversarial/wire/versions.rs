//! Versions and mirrored headers (section B, T16–T18): 2026-07-28 claims checked against the body.

use super::*;

/// The `_meta` of a 2026-07-28 request, params of a call to `tool`, and the mirrored headers.
fn stateless_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {}, "_meta": stateless_meta()}})
}

/// T16: an unsupported `MCP-Protocol-Version` gets 400 and -32022 whose data lists the versions
/// the gateway speaks; nothing is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_protocol_version_is_refused_with_the_supported_list() {
    let (upstream, gw) = echo_gateway().await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let call = tool_call(5, "up__echo");
    client.protocol = Some("1999-01-01".into());
    let reply = client.post(&call, &[]).await;
    assert_eq!(reply.status, 400, "{:?}", reply.messages);
    let error = &reply.response()["error"];
    assert_eq!(error["code"], -32022, "{error}");
    assert_eq!(error["data"]["requested"], "1999-01-01");
    let supported = error["data"]["supported"].as_array().expect("a supported list");
    for version in ["2025-11-25", "2026-07-28"] {
        assert!(supported.contains(&json!(version)), "{version} missing from {supported:?}");
    }
    assert!(upstream.calls().is_empty(), "{:?}", upstream.calls());
    client.protocol = Some("2025-11-25".into());
    assert_eq!(client.post(&call, &[]).await.response()["result"]["content"][0]["text"], "{}");
}

/// T17: a 2026-07-28 request whose mirrored headers disagree with its body (another tool in
/// `Mcp-Name`, another method in `Mcp-Method`, or `Mcp-Name` left out) gets 400 and -32020 and
/// reaches no upstream; the same request with honest headers runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_headers_that_disagree_with_the_body_reach_no_upstream() {
    let (upstream, gw) = echo_gateway().await;
    let client = HttpClient::new(&gw.url);
    let version = ("mcp-protocol-version", "2026-07-28");
    let lies: [&[(&str, &str)]; 3] = [
        &[version, ("mcp-method", "tools/call"), ("mcp-name", "up__delete_everything")],
        &[version, ("mcp-method", "tools/list"), ("mcp-name", "up__echo")],
        &[version, ("mcp-method", "tools/call")],
    ];
    for (i, headers) in lies.into_iter().enumerate() {
        let reply = client.post(&stateless_call(i as u64, "up__echo"), headers).await;
        assert_eq!(reply.status, 400, "{headers:?}: {:?}", reply.messages);
        assert_eq!(reply.response()["error"]["code"], -32020, "{headers:?}: {:?}", reply.response());
        assert_eq!(reply.response()["id"], i, "{:?}", reply.response());
    }
    assert!(upstream.calls().is_empty(), "a mismatched request reached the upstream: {:?}", upstream.calls());
    let honest = client
        .post(&stateless_call(9, "up__echo"), &[version, ("mcp-method", "tools/call"), ("mcp-name", "up__echo")])
        .await;
    assert_eq!(honest.status, 200, "{:?}", honest.messages);
    assert_eq!(honest.response()["result"]["content"][0]["text"], "{}", "{:?}", honest.response());
}

/// T18: a 2026-07-28 request without `_meta` protocolVersion or clientCapabilities gets HTTP 400
/// and -32602 naming what is missing, and connects nothing upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_request_without_its_meta_is_invalid_params() {
    let (upstream, gw) = echo_gateway().await;
    let client = HttpClient::new(&gw.url);
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "up__echo")];
    let mut no_capabilities = stateless_call(1, "up__echo");
    no_capabilities["params"]["_meta"].as_object_mut().unwrap().remove("io.modelcontextprotocol/clientCapabilities");
    let mut no_meta = stateless_call(2, "up__echo");
    no_meta["params"].as_object_mut().unwrap().remove("_meta");
    for (body, names) in
        [(no_capabilities, vec!["clientCapabilities"]), (no_meta, vec!["protocolVersion", "clientCapabilities"])]
    {
        let reply = client.post(&body, &headers).await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.messages);
        assert_eq!(reply.response()["error"]["code"], -32602, "{:?}", reply.response());
        let message = reply.response()["error"]["message"].as_str().unwrap();
        for name in names {
            assert!(message.contains(name), "the message should name {name}: {message}");
        }
    }
    assert!(upstream.received().is_empty(), "the upstream heard from a refused request: {:?}", upstream.received());
    let full = client.post(&stateless_call(3, "up__echo"), &headers).await;
    assert_eq!(full.response()["result"]["content"][0]["text"], "{}", "{:?}", full.response());
}
