//! MCP knowledge the gateway decides on: protocol versions, `_meta` keys, method names.
//!
//! Only what routing and bridging need is typed here; everything else stays raw JSON.

pub mod lifecycle;
pub mod names;

/// `initialize`-era versions a client may ask for, newest first.
pub const STATEFUL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The stateless generation (no initialize, `server/discover`, per-request `_meta`).
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Newest version with an initialize handshake; what the gateway offers old clients.
pub const LATEST_STATEFUL: &str = "2025-11-25";
/// Every version the gateway speaks, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// The protocol version a 2026-07-28 request declares in `params._meta`, if any.
pub fn declared_version(params: Option<&str>) -> Option<String> {
    meta_claims(params).version
}

/// What a request's `_meta` says about its sender, read in one pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MetaClaims {
    /// `io.modelcontextprotocol/protocolVersion` (2026-07-28 requests carry it).
    pub version: Option<String>,
    /// The gateway's conversation key for stateless clients (see `session::registry`).
    pub conversation: Option<String>,
    /// Whether `io.modelcontextprotocol/clientCapabilities` is there as an object (2026-07-28
    /// requests must carry it: capabilities are declared per request).
    pub capabilities: bool,
}

impl MetaClaims {
    /// The `_meta` members a 2026-07-28 request must carry and this one lacks.
    pub fn missing_for_stateless(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.version.is_none() {
            missing.push(META_PROTOCOL_VERSION);
        }
        if !self.capabilities {
            missing.push(META_CLIENT_CAPABILITIES);
        }
        missing
    }
}

/// `params._meta` read as `T` (only the members `T` names are kept; the rest of `params` is
/// skipped, never built into a value tree). `None` without params, without `_meta`, or when
/// they do not parse as `T`.
pub fn meta<'a, T: serde::Deserialize<'a>>(params: Option<&'a str>) -> Option<T> {
    #[derive(serde::Deserialize)]
    struct Params<T> {
        #[serde(rename = "_meta")]
        meta: Option<T>,
    }
    serde_json::from_str::<Params<T>>(params?).ok()?.meta
}

pub fn meta_claims(params: Option<&str>) -> MetaClaims {
    #[derive(serde::Deserialize)]
    struct M {
        #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
        version: Option<String>,
        #[serde(rename = "dev.tollgate/conversationId")]
        conversation: Option<String>,
        #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
        capabilities: Option<serde_json::Value>,
    }
    let Some(m) = meta::<M>(params) else { return MetaClaims::default() };
    MetaClaims {
        version: m.version,
        conversation: m.conversation,
        capabilities: m.capabilities.is_some_and(|c| c.is_object()),
    }
}

/// The tool/prompt name or resource uri a request targets (what `Mcp-Name` must mirror).
pub fn target_name(method: &str, params: Option<&str>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct P {
        name: Option<String>,
        uri: Option<String>,
    }
    let p: P = serde_json::from_str(params?).ok()?;
    match method {
        "tools/call" | "prompts/get" => p.name,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => p.uri,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_declared_version_and_target() {
        let p = r#"{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#;
        assert_eq!(declared_version(Some(p)).as_deref(), Some("2026-07-28"));
        assert_eq!(target_name("tools/call", Some(p)).as_deref(), Some("echo"));
        assert_eq!(declared_version(Some("{}")), None);
    }
}
