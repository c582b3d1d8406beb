//! Built-in upstreams: MCP servers the gateway answers in-process (long-term memory).
//!
//! They sit behind the same [`Peer`](super::Peer) and [`Dispatcher`] as real upstreams: requests
//! arrive as frames with the peer's ids, replies go back through `Dispatcher::dispatch`. So the
//! handshake, tool-list merging, namespacing and the whole policy stack (allowlist, read-only,
//! approval, rate limits, schema validation, redaction, audit) apply unchanged, and nothing else
//! in the gateway can tell a built-in upstream from a process or a URL.

use super::Dispatcher;
use crate::config::Builtin;
use crate::config::memory::{MAX_KEY_BYTES, MAX_LIST_LIMIT};
use crate::error::Error;
use crate::jsonrpc::{self, Frame, Kind};
use crate::mcp;
use crate::session::store::SessionStore;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// Keys `memory_list` returns when the caller gives no `limit`.
const DEFAULT_LIST_LIMIT: usize = 100;

/// What a built-in upstream serves from: whom its session speaks for, and where state lives.
#[derive(Clone)]
pub struct BuiltinContext {
    pub principal: String,
    pub store: Arc<dyn SessionStore>,
}

pub struct BuiltinWire {
    server: Arc<Memory>,
    dispatcher: Arc<Dispatcher>,
}

impl BuiltinWire {
    pub fn new(kind: &Builtin, context: &BuiltinContext, dispatcher: Arc<Dispatcher>) -> BuiltinWire {
        let Builtin::Memory { max_value_bytes } = *kind;
        let server = Memory { principal: context.principal.clone(), store: context.store.clone(), max_value_bytes };
        BuiltinWire { server: Arc::new(server), dispatcher }
    }

    /// Answers a request in the caller's task (like an HTTP upstream: no spawn per call, and
    /// dropping the caller drops the work); the reply reaches the waiting request through the
    /// dispatcher, exactly as a real upstream's would.
    pub async fn send(&self, frame: &Frame) {
        if frame.kind() != Kind::Request {
            // `notifications/initialized`, cancellations (the work stops when its caller drops)
            // and replies (we never ask the client anything): nothing to do.
            return;
        }
        deliver(&self.dispatcher, frame, self.server.answer(frame).await);
    }

    /// From synchronous code (cancellations, replies): only a request would need work, and that
    /// runs on its own task.
    pub fn send_now(&self, text: String) {
        let Ok(frame) = Frame::parse(text) else { return };
        if frame.kind() != Kind::Request {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (server, dispatcher) = (self.server.clone(), self.dispatcher.clone());
        runtime.spawn(async move {
            let reply = server.answer(&frame).await;
            deliver(&dispatcher, &frame, reply);
        });
    }
}

fn deliver(dispatcher: &Dispatcher, request: &Frame, reply: String) {
    match Frame::parse(reply) {
        Ok(reply) => dispatcher.dispatch(reply, None),
        // Unreachable unless a reply builder is wrong; the caller still gets an answer.
        Err(e) => {
            if let Some(id) = request.id().and_then(|i| i.parse::<u64>().ok()) {
                dispatcher.fail(id, Error::Internal(format!("built-in upstream built an invalid reply: {e:?}")));
            }
        }
    }
}

/// The long-term memory server: one principal's key-value space in the state store.
struct Memory {
    principal: String,
    store: Arc<dyn SessionStore>,
    max_value_bytes: usize,
}

/// What a tool call produced: text for the model, and whether it is a tool-level error (the model
/// can correct it) rather than a protocol one.
struct ToolOutput {
    text: String,
    is_error: bool,
}

impl ToolOutput {
    fn ok(text: impl Into<String>) -> ToolOutput {
        ToolOutput { text: text.into(), is_error: false }
    }
    fn error(text: impl Into<String>) -> ToolOutput {
        ToolOutput { text: text.into(), is_error: true }
    }
}

#[derive(Deserialize)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutArgs {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    prefix: String,
    limit: Option<u64>,
}

impl Memory {
    /// The reply to one request as JSON-RPC text: a result, or an error built by `Error`.
    async fn answer(&self, frame: &Frame) -> String {
        let id = frame.id().unwrap_or("null");
        let outcome = match frame.method() {
            "server/discover" => Ok(discover_result()),
            "initialize" => Ok(initialize_result(frame.params())),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({ "tools": tool_definitions() })),
            "tools/call" => self
                .call(frame)
                .await
                .map(|out| json!({ "content": [{ "type": "text", "text": out.text }], "isError": out.is_error })),
            other => Err(Error::MethodNotFound(other.to_string())),
        };
        match outcome {
            Ok(mut result) => {
                // A 2026-07-28 request gets a 2026-07-28 result, as from any server speaking it.
                let stateless = mcp::declared_version(frame.params()).as_deref() == Some(mcp::STATELESS_VERSION);
                if stateless && let Value::Object(map) = &mut result {
                    map.entry("resultType").or_insert(json!("complete"));
                }
                jsonrpc::result(id, &result.to_string())
            }
            Err(e) => e.to_jsonrpc(Some(id)),
        }
    }

    async fn call(&self, frame: &Frame) -> Result<ToolOutput, Error> {
        let params: CallParams = frame
            .params_as()
            .map_err(|e| Error::InvalidParams(format!("tools/call needs params with a string `name`: {e}")))?;
        let args = params.arguments.unwrap_or_else(|| json!({}));
        match params.name.as_str() {
            "memory_put" => {
                let a: PutArgs = arguments(&params.name, args)?;
                if let Some(problem) = check_key(&a.key) {
                    return Ok(problem);
                }
                if a.value.len() > self.max_value_bytes {
                    return Ok(ToolOutput::error(format!(
                        "The value is {} bytes; values are limited to {} bytes. Store less, or split it over several keys.",
                        a.value.len(),
                        self.max_value_bytes
                    )));
                }
                self.store.memory_put(&self.principal, &a.key, &a.value).await?;
                Ok(ToolOutput::ok(format!("Stored {} bytes under key {:?}.", a.value.len(), a.key)))
            }
            "memory_get" => {
                let a: KeyArgs = arguments(&params.name, args)?;
                if let Some(problem) = check_key(&a.key) {
                    return Ok(problem);
                }
                match self.store.memory_get(&self.principal, &a.key).await? {
                    Some(value) => Ok(ToolOutput::ok(value)),
                    None => Ok(ToolOutput::error(format!(
                        "Nothing is stored under key {:?}; memory_list shows the keys that exist.",
                        a.key
                    ))),
                }
            }
            "memory_list" => {
                let a: ListArgs = arguments(&params.name, args)?;
                if a.prefix.len() > MAX_KEY_BYTES {
                    return Ok(ToolOutput::error(format!(
                        "The prefix is {} bytes; keys (and so prefixes) are limited to {MAX_KEY_BYTES} bytes.",
                        a.prefix.len()
                    )));
                }
                let limit = match a.limit {
                    None => DEFAULT_LIST_LIMIT,
                    Some(n) if (1..=MAX_LIST_LIMIT as u64).contains(&n) => n as usize,
                    Some(n) => {
                        return Ok(ToolOutput::error(format!(
                            "limit = {n}: give a limit between 1 and {MAX_LIST_LIMIT}."
                        )));
                    }
                };
                // One key more than asked for tells whether there are more.
                let mut keys = self.store.memory_list(&self.principal, &a.prefix, limit + 1).await?;
                let more = keys.len() > limit;
                keys.truncate(limit);
                Ok(ToolOutput::ok(json!({ "keys": keys, "more": more }).to_string()))
            }
            "memory_delete" => {
                let a: KeyArgs = arguments(&params.name, args)?;
                if let Some(problem) = check_key(&a.key) {
                    return Ok(problem);
                }
                if self.store.memory_delete(&self.principal, &a.key).await? {
                    Ok(ToolOutput::ok(format!("Deleted key {:?}.", a.key)))
                } else {
                    // Deleting is idempotent: the outcome the caller wanted already holds.
                    Ok(ToolOutput::ok(format!("Nothing was stored under key {:?}; nothing to delete.", a.key)))
                }
            }
            other => Err(Error::UnknownTool(other.to_string())),
        }
    }
}

fn arguments<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, Error> {
    serde_json::from_value(args).map_err(|e| Error::InvalidParams(format!("{tool} arguments: {e}")))
}

/// A key the store would accept, or the tool error that says why not.
fn check_key(key: &str) -> Option<ToolOutput> {
    if key.is_empty() {
        return Some(ToolOutput::error("The key is empty; give a key of 1 to 256 bytes."));
    }
    (key.len() > MAX_KEY_BYTES).then(|| {
        ToolOutput::error(format!("The key is {} bytes; keys are limited to {MAX_KEY_BYTES} bytes.", key.len()))
    })
}

fn server_info() -> Value {
    json!({ "name": "tollgate-memory", "title": "Tollgate long-term memory", "version": env!("CARGO_PKG_VERSION") })
}

fn capabilities() -> Value {
    json!({ "tools": { "listChanged": false } })
}

fn discover_result() -> Value {
    json!({
        "supportedVersions": [mcp::STATELESS_VERSION, mcp::LATEST_STATEFUL],
        "capabilities": capabilities(),
        "resultType": "complete",
        "_meta": { mcp::META_SERVER_INFO: server_info() },
    })
}

/// Echoes a version we speak, else offers our latest (the 2025-11-25 negotiation rule).
fn initialize_result(params: Option<&str>) -> Value {
    let requested = params
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p.get("protocolVersion").and_then(Value::as_str).map(str::to_string));
    let version = requested
        .filter(|v| mcp::STATEFUL_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| mcp::LATEST_STATEFUL.to_string());
    json!({ "protocolVersion": version, "capabilities": capabilities(), "serverInfo": server_info() })
}

/// The four tools. Their text does not depend on settings, so a changed limit does not change
/// the definitions (and so does not trip definition pins); the limit is in the error instead.
fn tool_definitions() -> Value {
    let key = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_BYTES,
        "description": "The key: 1 to 256 bytes of text, e.g. \"project/deadline\"."
    });
    let annotations = |title: &str, read_only: bool| {
        json!({
            "title": title,
            "readOnlyHint": read_only,
            "destructiveHint": !read_only,
            "idempotentHint": true,
            "openWorldHint": false
        })
    };
    json!([
        {
            "name": "memory_put",
            "title": "Remember a value",
            "description": "Store a text value under a key in your long-term memory, replacing any value already stored under that key. Memory is private to you, outlives this conversation and never expires: keep facts, preferences and notes worth having later. Keys are at most 256 bytes; values are limited in size (64 KiB unless the operator set otherwise).",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "key": key,
                    "value": { "type": "string", "description": "The text to store (store JSON as text if you need structure)." }
                },
                "required": ["key", "value"],
                "additionalProperties": false
            },
            "annotations": annotations("Remember a value", false)
        },
        {
            "name": "memory_get",
            "title": "Recall a value",
            "description": "Read the value stored under a key in your long-term memory. A key with nothing stored is reported as an error; memory_list shows which keys exist.",
            "inputSchema": {
                "type": "object",
                "properties": { "key": key },
                "required": ["key"],
                "additionalProperties": false
            },
            "annotations": annotations("Recall a value", true)
        },
        {
            "name": "memory_list",
            "title": "List remembered keys",
            "description": "List the keys in your long-term memory in sorted order, optionally only those starting with a prefix. Returns JSON {\"keys\": [...], \"more\": true|false}; more is true when further keys exist beyond the limit (default 100, at most 1000).",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "prefix": { "type": "string", "maxLength": MAX_KEY_BYTES, "description": "Only keys starting with this text (default: all keys)." },
                    "limit": { "type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "description": "At most this many keys (default 100, at most 1000)." }
                },
                "additionalProperties": false
            },
            "annotations": annotations("List remembered keys", true)
        },
        {
            "name": "memory_delete",
            "title": "Forget a value",
            "description": "Delete the value stored under a key in your long-term memory. Deleting a key with nothing stored changes nothing.",
            "inputSchema": {
                "type": "object",
                "properties": { "key": key },
                "required": ["key"],
                "additionalProperties": false
            },
            "annotations": annotations("Forget a value", false)
        }
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::embedded::EmbeddedStore;
    use crate::session::store::*;
    use std::time::Duration;

    fn memory(principal: &str, store: Arc<dyn SessionStore>) -> Memory {
        Memory { principal: principal.into(), store, max_value_bytes: 64 * 1024 }
    }

    fn store() -> Arc<dyn SessionStore> {
        EmbeddedStore::in_memory().unwrap()
    }

    async fn ask(m: &Memory, method: &str, params: Value) -> Value {
        let frame = Frame::parse(jsonrpc::request("7", method, Some(&params.to_string()))).unwrap();
        let reply = m.answer(&frame).await;
        let v: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["id"], 7, "{v}");
        v
    }

    async fn call(m: &Memory, tool: &str, args: Value) -> Value {
        ask(m, "tools/call", json!({ "name": tool, "arguments": args })).await
    }

    fn text(reply: &Value) -> &str {
        reply["result"]["content"][0]["text"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn handshakes_answer_both_protocol_generations() {
        let m = memory("p", store());
        let d = ask(&m, "server/discover", json!({})).await;
        let hello = mcp::lifecycle::parse_discover(&d["result"].to_string()).expect("offers 2026-07-28");
        assert!(hello.has_capability("tools"));
        assert_eq!(hello.server_info["name"], "tollgate-memory");

        let i =
            ask(&m, "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}})).await;
        let hello = mcp::lifecycle::parse_initialize(&i["result"].to_string()).unwrap();
        assert_eq!(hello.version, "2025-06-18");
        assert!(hello.has_capability("tools"));
        let i = ask(&m, "initialize", json!({"protocolVersion": "1999-01-01"})).await;
        assert_eq!(i["result"]["protocolVersion"], mcp::LATEST_STATEFUL);

        assert_eq!(ask(&m, "ping", json!({})).await["result"], json!({}));
        assert_eq!(ask(&m, "resources/list", json!({})).await["error"]["code"], -32601);
    }

    #[tokio::test]
    async fn tools_are_listed_with_schemas_and_read_only_hints() {
        let m = memory("p", store());
        let list = ask(&m, "tools/list", json!({})).await;
        let tools = list["result"]["tools"].as_array().unwrap();
        let hint = |name: &str| {
            let t = tools.iter().find(|t| t["name"] == name).unwrap();
            assert_eq!(t["inputSchema"]["type"], "object");
            assert!(t["description"].as_str().unwrap().len() > 40);
            crate::policy::ToolDefinition::from_listing(&t.to_string()).unwrap().read_only_hint
        };
        assert_eq!(hint("memory_get"), Some(true));
        assert_eq!(hint("memory_list"), Some(true));
        assert_eq!(hint("memory_put"), Some(false));
        assert_eq!(hint("memory_delete"), Some(false));
        assert_eq!(tools.len(), 4);
        assert!(list["result"].get("resultType").is_none(), "a 2025-11-25 request gets a 2025-11-25 result");

        let meta = json!({ "_meta": { mcp::META_PROTOCOL_VERSION: mcp::STATELESS_VERSION } });
        assert_eq!(ask(&m, "tools/list", meta).await["result"]["resultType"], "complete");
    }

    #[tokio::test]
    async fn put_get_list_delete_round_trip() {
        let m = memory("p", store());
        let put = call(&m, "memory_put", json!({"key": "a/1", "value": "one"})).await;
        assert_eq!(put["result"]["isError"], false, "{put}");
        call(&m, "memory_put", json!({"key": "a/2", "value": "two"})).await;
        call(&m, "memory_put", json!({"key": "b", "value": "bee"})).await;
        call(&m, "memory_put", json!({"key": "a/1", "value": "uno"})).await;

        let got = call(&m, "memory_get", json!({"key": "a/1"})).await;
        assert_eq!((text(&got), &got["result"]["isError"]), ("uno", &json!(false)));

        let all: Value = serde_json::from_str(text(&call(&m, "memory_list", json!({})).await)).unwrap();
        assert_eq!(all, json!({"keys": ["a/1", "a/2", "b"], "more": false}));
        let some: Value =
            serde_json::from_str(text(&call(&m, "memory_list", json!({"prefix": "a/", "limit": 1})).await)).unwrap();
        assert_eq!(some, json!({"keys": ["a/1"], "more": true}));

        let del = call(&m, "memory_delete", json!({"key": "a/1"})).await;
        assert_eq!(del["result"]["isError"], false);
        assert!(text(&del).contains("Deleted"), "{del}");
        let again = call(&m, "memory_delete", json!({"key": "a/1"})).await;
        assert_eq!(again["result"]["isError"], false);
        assert!(text(&again).contains("nothing to delete"), "{again}");

        let missing = call(&m, "memory_get", json!({"key": "a/1"})).await;
        assert_eq!(missing["result"]["isError"], true, "{missing}");
        assert!(text(&missing).contains("Nothing is stored under key \"a/1\""), "{missing}");
    }

    #[tokio::test]
    async fn principals_do_not_see_each_other() {
        let shared = store();
        let (alice, bob) = (memory("alice", shared.clone()), memory("bob", shared));
        call(&alice, "memory_put", json!({"key": "secret", "value": "alice's"})).await;
        assert_eq!(call(&bob, "memory_get", json!({"key": "secret"})).await["result"]["isError"], true);
        let bobs: Value = serde_json::from_str(text(&call(&bob, "memory_list", json!({})).await)).unwrap();
        assert_eq!(bobs["keys"], json!([]));
        call(&bob, "memory_delete", json!({"key": "secret"})).await;
        assert_eq!(text(&call(&alice, "memory_get", json!({"key": "secret"})).await), "alice's");
    }

    #[tokio::test]
    async fn limits_are_tool_errors_with_clear_messages() {
        let m = Memory { principal: "p".into(), store: store(), max_value_bytes: 10 };
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        for (tool, args) in [
            ("memory_put", json!({"key": long_key, "value": "v"})),
            ("memory_get", json!({"key": long_key})),
            ("memory_delete", json!({"key": long_key})),
        ] {
            let r = call(&m, tool, args).await;
            assert_eq!(r["result"]["isError"], true, "{tool}: {r}");
            assert!(text(&r).contains("limited to 256 bytes"), "{tool}: {r}");
        }
        // The limit is in bytes, not characters: 86 three-byte characters are 258 bytes.
        let r = call(&m, "memory_get", json!({"key": "€".repeat(86)})).await;
        assert!(text(&r).contains("258 bytes"), "{r}");
        let r = call(&m, "memory_put", json!({"key": "k", "value": "x".repeat(11)})).await;
        assert_eq!(r["result"]["isError"], true);
        assert!(text(&r).contains("limited to 10 bytes"), "{r}");
        let r = call(&m, "memory_put", json!({"key": "", "value": "x"})).await;
        assert!(text(&r).contains("empty"), "{r}");
        let r = call(&m, "memory_list", json!({"limit": 1001})).await;
        assert_eq!(r["result"]["isError"], true);
        assert!(text(&r).contains("between 1 and 1000"), "{r}");
        let r = call(&m, "memory_list", json!({"limit": 0})).await;
        assert_eq!(r["result"]["isError"], true);
        assert_eq!(call(&m, "memory_get", json!({"key": "k"})).await["result"]["isError"], true, "nothing stored");
    }

    #[tokio::test]
    async fn bad_params_and_unknown_tools_are_invalid_params() {
        let m = memory("p", store());
        let unknown = call(&m, "memory_drop", json!({})).await;
        assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
        assert!(unknown["error"]["message"].as_str().unwrap().contains("memory_drop"));
        for (tool, args) in [
            ("memory_put", json!({"key": "k"})),
            ("memory_put", json!({"key": "k", "value": 3})),
            ("memory_get", json!({"key": "k", "extra": 1})),
            ("memory_get", json!("k")),
            ("memory_list", json!({"limit": -1})),
            ("memory_list", json!({"limit": 1.5})),
        ] {
            let r = call(&m, tool, args.clone()).await;
            assert_eq!(r["error"]["code"], -32602, "{tool} {args}: {r}");
            assert!(r["error"]["message"].as_str().unwrap().contains(tool), "{r}");
        }
        for params in [json!({}), json!({"name": 5}), json!([1])] {
            assert_eq!(ask(&m, "tools/call", params).await["error"]["code"], -32602);
        }
        // No arguments (absent or null) read as `{}`.
        assert_eq!(call(&m, "memory_list", Value::Null).await["result"]["isError"], false);
        let none = ask(&m, "tools/call", json!({"name": "memory_list"})).await;
        assert_eq!(none["result"]["isError"], false, "{none}");
    }

    /// A store that refuses everything, as an unreachable Redis would.
    struct Down;

    fn down<T>() -> StoreResult<T> {
        Err(StoreError::Unavailable("redis at 10.0.0.1 refused".into()))
    }

    #[async_trait::async_trait]
    impl SessionStore for Down {
        fn kind(&self) -> &'static str {
            "down"
        }
        async fn ping(&self) -> StoreResult<()> {
            down()
        }
        async fn put_session(&self, _: &SessionRecord, _: Duration) -> StoreResult<()> {
            down()
        }
        async fn get_session(&self, _: &str) -> StoreResult<Option<SessionRecord>> {
            down()
        }
        async fn session_state(&self, _: &str) -> StoreResult<Option<SessionState>> {
            down()
        }
        async fn set_session_state(&self, _: &str, _: SessionState) -> StoreResult<bool> {
            down()
        }
        async fn touch_session(&self, _: &str, _: Duration) -> StoreResult<()> {
            down()
        }
        async fn add_usage(&self, _: &str, _: &Usage) -> StoreResult<()> {
            down()
        }
        async fn delete_session(&self, _: &str) -> StoreResult<()> {
            down()
        }
        async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
            down()
        }
        async fn push_history(&self, _: &str, _: &[CallSummary], _: usize, _: Duration) -> StoreResult<()> {
            down()
        }
        async fn history(&self, _: &str, _: usize) -> StoreResult<Vec<CallSummary>> {
            down()
        }
        async fn put_approval(&self, _: &ApprovalRecord) -> StoreResult<()> {
            down()
        }
        async fn get_approval(&self, _: &str) -> StoreResult<Option<ApprovalRecord>> {
            down()
        }
        async fn pending_approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
            down()
        }
        async fn decide_approval(&self, _: &str, _: &ApprovalDecision) -> StoreResult<DecideOutcome> {
            down()
        }
        async fn use_nonce(&self, _: &str, _: Duration) -> StoreResult<bool> {
            down()
        }
        async fn get_pin(&self, _: &str, _: &str) -> StoreResult<Option<String>> {
            down()
        }
        async fn pin_if_absent(&self, _: &str, _: &str, _: &str) -> StoreResult<String> {
            down()
        }
        async fn set_pin(&self, _: &str, _: &str, _: &str) -> StoreResult<()> {
            down()
        }
        async fn list_pins(&self) -> StoreResult<Vec<(String, String, String)>> {
            down()
        }
        async fn rate_check(&self, _: &str, _: &RateQuota) -> StoreResult<RateVerdict> {
            down()
        }
        async fn memory_put(&self, _: &str, _: &str, _: &str) -> StoreResult<()> {
            down()
        }
        async fn memory_get(&self, _: &str, _: &str) -> StoreResult<Option<String>> {
            down()
        }
        async fn memory_list(&self, _: &str, _: &str, _: usize) -> StoreResult<Vec<String>> {
            down()
        }
        async fn memory_delete(&self, _: &str, _: &str) -> StoreResult<bool> {
            down()
        }
    }

    #[tokio::test]
    async fn an_unavailable_store_fails_closed_with_the_store_error() {
        let m = memory("p", Arc::new(Down));
        for (tool, args) in [
            ("memory_put", json!({"key": "k", "value": "v"})),
            ("memory_get", json!({"key": "k"})),
            ("memory_list", json!({})),
            ("memory_delete", json!({"key": "k"})),
        ] {
            let r = call(&m, tool, args).await;
            assert_eq!(r["error"]["code"], -31011, "{tool}: {r}");
            assert!(!r["error"]["message"].as_str().unwrap().contains("10.0.0.1"), "details stay in the logs: {r}");
        }
    }

    #[tokio::test]
    async fn replies_reach_the_waiting_request_through_the_dispatcher() {
        let dispatcher = Dispatcher::new("memory");
        let context = BuiltinContext { principal: "p".into(), store: store() };
        let wire = BuiltinWire::new(&Builtin::Memory { max_value_bytes: 16 }, &context, dispatcher.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        dispatcher.pending.lock().unwrap().insert(3, super::super::PendingCall { reply: tx, related: None });
        let frame = Frame::parse(jsonrpc::request("3", "ping", None)).unwrap();
        wire.send(&frame).await;
        let reply = rx.await.unwrap().unwrap();
        assert_eq!(reply.id(), Some("3"));
        assert_eq!(reply.result(), Some("{}"));
        // Notifications are absorbed: nothing is dispatched, nothing fails.
        wire.send(&Frame::parse(jsonrpc::notification("notifications/initialized", None)).unwrap()).await;
        wire.send_now(jsonrpc::notification("notifications/cancelled", Some("{\"requestId\":3}")));
    }
}
