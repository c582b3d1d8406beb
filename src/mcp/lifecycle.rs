//! The lifecycle messages the gateway answers or sends itself: `initialize`, `server/discover`,
//! and what each side told the other. This is where the two protocol generations are bridged.

use super::{LATEST_STATEFUL, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION, META_SERVER_INFO};
use crate::jsonrpc::RawObject;
use crate::jsonrpc::raw_object::raw;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// What a downstream client said about itself: from `initialize`, or from a 2026-07-28 `_meta`.
#[derive(Debug, Clone)]
pub struct ClientHello {
    /// The version the session speaks with this client.
    pub version: String,
    pub stateless: bool,
    pub client_info: Value,
    pub capabilities: Value,
}

/// What an upstream said about itself at connect time.
#[derive(Debug, Clone)]
pub struct ServerHello {
    pub version: String,
    pub stateless: bool,
    pub server_info: Value,
    pub capabilities: Value,
    pub instructions: Option<String>,
}

impl ServerHello {
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.get(name).is_some_and(|v| !v.is_null())
    }
}

#[derive(Deserialize)]
struct InitializeParams {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(default)]
    capabilities: Value,
    #[serde(rename = "clientInfo", default)]
    client_info: Value,
}

impl ClientHello {
    /// From an `initialize` request; the version is negotiated per the 2025-11-25 rules: echo a
    /// version we speak, otherwise offer our latest and let the client decide.
    pub fn from_initialize(params: Option<&str>) -> Result<ClientHello, String> {
        let p: InitializeParams = serde_json::from_str(params.unwrap_or("null"))
            .map_err(|e| format!("initialize params need protocolVersion, capabilities and clientInfo: {e}"))?;
        let version = if super::STATEFUL_VERSIONS.contains(&p.protocol_version.as_str()) {
            p.protocol_version
        } else {
            LATEST_STATEFUL.to_string()
        };
        Ok(ClientHello { version, stateless: false, client_info: p.client_info, capabilities: p.capabilities })
    }

    /// From a 2026-07-28 request's `_meta` (every such request carries it).
    pub fn from_meta(params: Option<&str>) -> Option<ClientHello> {
        let p: Value = serde_json::from_str(params?).ok()?;
        let meta = p.get("_meta")?;
        let version = meta.get(META_PROTOCOL_VERSION)?.as_str()?.to_string();
        Some(ClientHello {
            version,
            stateless: true,
            client_info: meta.get(META_CLIENT_INFO).cloned().unwrap_or(json!({"name": "unknown", "version": "0"})),
            capabilities: meta.get(META_CLIENT_CAPABILITIES).cloned().unwrap_or(json!({})),
        })
    }

    /// Params for the gateway's own `initialize` to a 2025-11-25 upstream, on this client's behalf.
    pub fn initialize_params(&self) -> String {
        let version = if self.stateless { LATEST_STATEFUL } else { self.version.as_str() };
        json!({ "protocolVersion": version, "capabilities": self.capabilities, "clientInfo": self.client_info })
            .to_string()
    }

    /// The `_meta` a 2026-07-28 upstream needs on each request.
    pub fn stateless_meta(&self) -> Value {
        json!({
            META_PROTOCOL_VERSION: super::STATELESS_VERSION,
            META_CLIENT_INFO: self.client_info,
            META_CLIENT_CAPABILITIES: self.capabilities,
        })
    }
}

/// Adds the 2026-07-28 `_meta` fields to `params` where absent, keeping every other byte.
pub fn with_stateless_meta(params: Option<&str>, hello: &ClientHello) -> String {
    let mut obj = params.and_then(|p| RawObject::parse(p).ok()).unwrap_or_default();
    let mut meta: Map<String, Value> =
        obj.get("_meta").and_then(|m| serde_json::from_str(m.get()).ok()).unwrap_or_default();
    if let Value::Object(needed) = hello.stateless_meta() {
        for (k, v) in needed {
            meta.entry(k).or_insert(v);
        }
    }
    // The upstream must see the version it speaks even if the client declared another.
    meta.insert(META_PROTOCOL_VERSION.into(), json!(super::STATELESS_VERSION));
    obj.set("_meta", raw(&meta));
    obj.to_json()
}

/// Server info the gateway presents downstream.
pub fn gateway_info() -> Value {
    json!({ "name": "tollgate", "version": env!("CARGO_PKG_VERSION") })
}

/// Union of upstream capabilities, as the gateway advertises them.
pub fn merge_capabilities<'a>(hellos: impl IntoIterator<Item = &'a ServerHello>) -> Value {
    let mut merged = Map::new();
    for hello in hellos {
        let Some(caps) = hello.capabilities.as_object() else { continue };
        for (key, value) in caps {
            match (merged.get_mut(key), value) {
                (Some(Value::Object(have)), Value::Object(more)) => {
                    for (k, v) in more {
                        let keep_true = have.get(k) == Some(&Value::Bool(true));
                        if !keep_true {
                            have.insert(k.clone(), v.clone());
                        }
                    }
                }
                (None, v) => {
                    merged.insert(key.clone(), v.clone());
                }
                _ => {}
            }
        }
    }
    // The gateway always serves tools and tells clients when its merged list changes.
    let tools = merged.entry("tools").or_insert_with(|| json!({}));
    if let Value::Object(t) = tools {
        t.insert("listChanged".into(), json!(true));
    }
    Value::Object(merged)
}

fn instructions<'a>(hellos: impl IntoIterator<Item = &'a ServerHello>) -> Option<String> {
    let parts: Vec<&str> = hellos.into_iter().filter_map(|h| h.instructions.as_deref()).collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The gateway's `initialize` result for a 2025-11-25 (or older) client.
pub fn initialize_result<'a>(version: &str, hellos: impl IntoIterator<Item = &'a ServerHello> + Clone) -> String {
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": merge_capabilities(hellos.clone()),
        "serverInfo": gateway_info(),
    });
    if let Some(text) = instructions(hellos) {
        result["instructions"] = json!(text);
    }
    result.to_string()
}

/// The gateway's `server/discover` result for a 2026-07-28 client.
pub fn discover_result<'a>(hellos: impl IntoIterator<Item = &'a ServerHello> + Clone) -> String {
    let mut result = json!({
        "supportedVersions": super::SUPPORTED_VERSIONS,
        "capabilities": merge_capabilities(hellos.clone()),
        "ttlMs": 0,
        "cacheScope": "private",
        "resultType": "complete",
        "_meta": { META_SERVER_INFO: gateway_info() },
    });
    if let Some(text) = instructions(hellos) {
        result["instructions"] = json!(text);
    }
    result.to_string()
}

/// Reads an upstream's `server/discover` result; `None` if it does not offer 2026-07-28.
pub fn parse_discover(result: &str) -> Option<ServerHello> {
    let v: Value = serde_json::from_str(result).ok()?;
    let offers = v.get("supportedVersions")?.as_array()?.iter().any(|x| x == super::STATELESS_VERSION);
    if !offers {
        return None;
    }
    Some(ServerHello {
        version: super::STATELESS_VERSION.into(),
        stateless: true,
        server_info: v.pointer("/_meta/io.modelcontextprotocol~1serverInfo").cloned().unwrap_or(json!({})),
        capabilities: v.get("capabilities").cloned().unwrap_or(json!({})),
        instructions: v.get("instructions").and_then(Value::as_str).map(str::to_string),
    })
}

/// Reads an upstream's `initialize` result.
pub fn parse_initialize(result: &str) -> Result<ServerHello, String> {
    let v: Value = serde_json::from_str(result).map_err(|e| e.to_string())?;
    let version =
        v.get("protocolVersion").and_then(Value::as_str).ok_or("initialize result has no protocolVersion")?.to_string();
    Ok(ServerHello {
        version,
        stateless: false,
        server_info: v.get("serverInfo").cloned().unwrap_or(json!({})),
        capabilities: v.get("capabilities").cloned().unwrap_or(json!({})),
        instructions: v.get("instructions").and_then(Value::as_str).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(caps: Value) -> ServerHello {
        ServerHello {
            version: "2025-11-25".into(),
            stateless: false,
            server_info: json!({}),
            capabilities: caps,
            instructions: None,
        }
    }

    #[test]
    fn capabilities_merge_as_a_union() {
        let a = hello(json!({"tools":{"listChanged":false},"logging":{}}));
        let b = hello(json!({"resources":{"subscribe":true},"tools":{}}));
        let m = merge_capabilities([&a, &b]);
        assert_eq!(m["tools"]["listChanged"], json!(true));
        assert_eq!(m["resources"]["subscribe"], json!(true));
        assert!(m.get("logging").is_some());
    }

    #[test]
    fn old_versions_are_echoed_and_unknown_ones_get_latest() {
        let p = r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#;
        assert_eq!(ClientHello::from_initialize(Some(p)).unwrap().version, "2025-06-18");
        let p = r#"{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#;
        assert_eq!(ClientHello::from_initialize(Some(p)).unwrap().version, LATEST_STATEFUL);
    }

    #[test]
    fn stateless_meta_is_added_without_touching_other_params() {
        let h = ClientHello {
            version: "2025-11-25".into(),
            stateless: false,
            client_info: json!({"name":"c"}),
            capabilities: json!({}),
        };
        let out = with_stateless_meta(Some(r#"{"name":"t","arguments":{"x":1.50}}"#), &h);
        assert!(out.starts_with(r#"{"name":"t","arguments":{"x":1.50},"_meta":{"#), "{out}");
        assert!(out.contains("\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\""));
    }
}
