//! What the gateway knows about one upstream tool, from its `tools/list` entry.

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct ToolDefinition {
    /// The upstream's own name (not the namespaced public one).
    pub name: String,
    pub read_only_hint: Option<bool>,
    pub input_schema: Option<Value>,
    /// What `structuredContent` must fit, if the tool declares it.
    pub output_schema: Option<Value>,
    /// SHA-256 of the tool's definition as listed (name, description, schemas, annotations).
    pub digest: String,
    /// What `policy::description::scan` found in the definition's text (empty: nothing).
    pub flags: Vec<&'static str>,
}

impl ToolDefinition {
    pub fn new(name: &str, read_only_hint: Option<bool>, input_schema: Option<Value>, digest: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            read_only_hint,
            input_schema,
            output_schema: None,
            digest: digest.into(),
            flags: Vec::new(),
        }
    }

    /// From the raw JSON of one `tools/list` entry.
    pub fn from_listing(raw: &str) -> Option<ToolDefinition> {
        let v: Value = serde_json::from_str(raw).ok()?;
        let name = v.get("name")?.as_str()?.to_string();
        let read_only_hint = v.pointer("/annotations/readOnlyHint").and_then(Value::as_bool);
        let input_schema = v.get("inputSchema").cloned();
        let output_schema = v.get("outputSchema").cloned();
        let flags = crate::policy::description::scan_definition(&v);
        let digest = crate::policy::tool::digest(&v);
        Some(ToolDefinition { name, read_only_hint, input_schema, output_schema, digest, flags })
    }
}

/// Hex SHA-256 of a JSON value in canonical form (sorted keys, no whitespace), so a tool's
/// digest does not change with an upstream's key order.
pub fn digest(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    canonical(v, &mut h);
    crate::hex::encode(&h.finalize())
}

fn canonical(v: &Value, h: &mut sha2::Sha256) {
    use sha2::Digest;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                h.update(serde_json::to_string(k).expect("string serializes").as_bytes());
                h.update(b":");
                canonical(&map[*k], h);
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    h.update(b",");
                }
                canonical(item, h);
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"name":"t","inputSchema":{"b":1,"a":2}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"inputSchema":{"a":2,"b":1},"name":"t"}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
        let c: Value = serde_json::from_str(r#"{"inputSchema":{"a":3,"b":1},"name":"t"}"#).unwrap();
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn reads_annotations_and_schema() {
        let t = ToolDefinition::from_listing(
            r#"{"name":"x","annotations":{"readOnlyHint":true},"inputSchema":{"type":"object"}}"#,
        )
        .unwrap();
        assert_eq!(t.read_only_hint, Some(true));
        assert!(t.input_schema.is_some());
    }
}
