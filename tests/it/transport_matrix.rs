//! The transport matrix: every downstream × upstream transport pair, through the fixture server,
//! driven by a scripted client and by rmcp's own client.

use crate::support::*;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;

async fn assert_stdio_session(client: &mut StdioClient, prefix: &str) {
    let init = client.initialize(json!({})).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "tollgate", "{init}");
    let tools = client.request("tools/list", json!({})).await;
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&format!("{prefix}echo").as_str()), "{names:?}");
    let reply = client.call_tool(&format!("{prefix}echo"), json!({"message": "through"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: through", "{reply}");
    let reply = client.call_tool(&format!("{prefix}add"), json!({"a": 2, "b": 3})).await;
    assert_eq!(first_text(&reply["result"]), "5", "{reply}");
}

async fn assert_http_session(url: &str, prefix: &str) {
    let mut client = HttpClient::new(url);
    let init = client.initialize(json!({})).await;
    assert_eq!(init.response()["result"]["serverInfo"]["name"], "tollgate");
    let reply = client.call_tool(&format!("{prefix}echo"), json!({"message": "through"})).await;
    assert_eq!(first_text(&reply["result"]), "Echo: through", "{reply}");
    let reply = client.call_tool(&format!("{prefix}add"), json!({"a": 2, "b": 3})).await;
    assert_eq!(first_text(&reply["result"]), "5", "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_to_stdio() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    assert_stdio_session(&mut client, "").await;
    assert!(client.close().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_to_http() {
    let fixture = Listening::fixture_http().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, http_upstream("fx", &fixture.url, "")).unwrap();
    let mut client = StdioClient::spawn(&["--config", config.to_str().unwrap()]);
    assert_stdio_session(&mut client, "fx__").await;
    assert!(client.close().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_stdio() {
    let gw = Listening::gateway(&stdio_upstream("fx", fixture_bin(), &[], "")).await;
    assert_http_session(&gw.url, "fx__").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_http() {
    let fixture = Listening::fixture_http().await;
    let gw = Listening::gateway(&http_upstream("fx", &fixture.url, "")).await;
    assert_http_session(&gw.url, "fx__").await;
}

/// rmcp's client launching `tollgate stdio -- fixture` as its server, like Claude Desktop would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_stdio_to_stdio() {
    let transport = TokioChildProcess::new(tokio::process::Command::new(tollgate_bin()).configure(|cmd| {
        cmd.arg("stdio").arg("--").arg(fixture_bin());
    }))
    .unwrap();
    let client = ().serve(transport).await.expect("rmcp handshake through the gateway");
    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("tollgate"));
    let tools = client.list_all_tools().await.unwrap();
    let write = tools.iter().find(|t| t.name == "write_note").expect("write_note listed");
    assert_eq!(write.annotations.as_ref().and_then(|a| a.read_only_hint), Some(false));
    let result = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(json!({"message": "rmcp"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(first_text(&serde_json::to_value(&result).unwrap()), "Echo: rmcp");
    client.cancel().await.unwrap();
}

/// rmcp's Streamable HTTP client against the gateway's HTTP endpoint, fixture behind it over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_http_to_http() {
    let fixture = Listening::fixture_http().await;
    let gw = Listening::gateway(&http_upstream("fx", &fixture.url, "")).await;
    // rmcp builds its reqwest client itself; reqwest needs a rustls provider installed first.
    tollgate::transport::client_tls::install_crypto_provider();
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(gw.url.as_str())).await.expect("rmcp handshake over HTTP");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "fx__slow"));
    let result = client
        .call_tool(
            CallToolRequestParams::new("fx__add")
                .with_arguments(json!({"a": 20, "b": 22}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(first_text(&serde_json::to_value(&result).unwrap()), "42");
    client.cancel().await.unwrap();
}
