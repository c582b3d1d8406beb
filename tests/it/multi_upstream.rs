//! Several upstreams behind one endpoint: merged, namespaced lists; list_changed refreshes.

use crate::support::*;
use serde_json::{Value, json};

fn names(list: &Value, key: &str) -> Vec<String> {
    list["result"][key].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_namespaced_and_routed_per_upstream() {
    let long_prefix = "p".repeat(58);
    let config = [
        stdio_upstream("a", fixture_bin(), &[], ""),
        stdio_upstream("b", "node", &[&server_everything(), "stdio"], ""),
        stdio_upstream("c", fixture_bin(), &[], &format!("tool_prefix = {long_prefix:?}")),
    ]
    .concat();
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let list = client.request("tools/list", json!({})).await;
    let names = names(list.response(), "tools");
    for expected in ["a__echo", "a__write_note", "b__echo", "b__get-sum"] {
        assert!(names.contains(&expected.to_string()), "{expected} missing from {names:?}");
    }
    assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");
    // `p…p__get_env` is 67 characters: it must be cut to 64, stably, and still route.
    let cut = tollgate::mcp::names::public_name(&long_prefix, "__", "get_env");
    assert_eq!(cut.len(), 64);
    assert!(names.contains(&cut), "{cut} missing from {names:?}");
    let reply = client.call_tool(&cut, json!({"name": "TOLLGATE_NO_SUCH_VAR"})).await;
    assert_eq!(first_text(&reply["result"]), "<unset>", "{reply}");

    // Prompts are merged and renamed the same way (server-everything has some).
    let prompts = client.request("prompts/list", json!({})).await;
    assert!(names_of(prompts.response(), "prompts").iter().any(|n| n.starts_with("b__")), "{:?}", prompts.messages);
}

fn names_of(list: &Value, key: &str) -> Vec<String> {
    names(list, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_fail_open_upstream_does_not_break_the_session() {
    let config =
        [stdio_upstream("good", fixture_bin(), &[], ""), stdio_upstream("broken", "/nonexistent/mcp-server", &[], "")]
            .concat();
    let gw = Listening::gateway(&config).await;
    let mut client = HttpClient::new(&gw.url);
    client.initialize(json!({})).await;
    let list = client.request("tools/list", json!({})).await;
    assert!(names(list.response(), "tools").contains(&"good__echo".to_string()));
    assert_eq!(first_text(&client.call_tool("good__echo", json!({"message": "ok"})).await["result"]), "Echo: ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_required_upstream_fails_closed_with_a_clear_error() {
    let config = [
        stdio_upstream("good", fixture_bin(), &[], ""),
        stdio_upstream("broken", "/nonexistent/mcp-server", &[], "required = true"),
    ]
    .concat();
    let gw = Listening::gateway(&config).await;
    let client = HttpClient::new(&gw.url);
    let r = client
        .post(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":initialize_params(json!({}))}), &[])
        .await;
    let err = &r.response()["error"];
    assert_eq!(err["code"], -31005, "{err}");
    assert!(err["message"].as_str().unwrap().contains("broken"), "{err}");
    assert!(err["message"].as_str().unwrap().contains("cannot start"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_is_forwarded_and_the_cache_refreshed() {
    let mut client = StdioClient::spawn(&["--", fixture_bin()]);
    client.initialize(json!({})).await;
    let describe = |list: &Value| {
        list["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "shifty").unwrap()["description"]
            .clone()
    };
    let first = describe(&client.request("tools/list", json!({})).await);
    let again = describe(&client.request("tools/list", json!({})).await);
    assert_eq!(first, again, "second listing must come from the cache");
    client.call_tool("shifty", json!({})).await;
    client.recv_until(|m| m["method"] == "notifications/tools/list_changed").await;
    let after = describe(&client.request("tools/list", json!({})).await);
    assert_ne!(first, after, "after list_changed the gateway must list again");
}
