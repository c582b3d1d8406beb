//! A tool that declares an `outputSchema` promises `structuredContent` that fits it (MCP: the
//! server MUST, the client SHOULD check). Checked on the upstream's own output, before
//! redaction changes any string: a result that breaks the promise is an upstream protocol
//! error (-31005), never handed to a client that would trust its shape. Only the first few
//! violations' JSON pointers are reported: validator messages quote the values, which are the
//! upstream's untrusted text.

use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::ToolDefinition;
use crate::policy::redaction::Redactor;
use crate::policy::schema::{self, SchemaCache};
use serde_json::Value;
use std::sync::LazyLock;

/// Output validators by tool digest (bounded, like the argument schemas' cache).
static OUTPUT_SCHEMAS: LazyLock<SchemaCache> = LazyLock::new(SchemaCache::default);

/// `Err` when `reply` is a successful result whose `structuredContent` breaks the tool's
/// `outputSchema`, or the schema is unusable (fail closed).
pub fn check(upstream: &str, tool: &ToolDefinition, reply: &Frame, redactor: &Redactor) -> Result<(), Error> {
    let Some(output_schema) = &tool.output_schema else { return Ok(()) };
    let Some(result) = reply.result() else { return Ok(()) };
    #[derive(serde::Deserialize)]
    struct Structured {
        #[serde(rename = "structuredContent")]
        structured: Option<Value>,
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    let Ok(Structured { structured: Some(content), is_error: false }) = serde_json::from_str(result) else {
        return Ok(()); // tool errors carry no structured promise; absent content is not checked
    };
    let key = format!("output:{}", tool.digest);
    let compiled = if tool.digest.is_empty() {
        OUTPUT_SCHEMAS.get(output_schema)
    } else {
        OUTPUT_SCHEMAS.get_keyed(&key, output_schema)
    };
    let problems: Vec<String> = match compiled.as_ref() {
        Ok(validator) => schema::violations(validator, &content).into_iter().take(5).map(|v| v.pointer).collect(),
        Err(e) => vec![format!("the tool's outputSchema cannot be used ({e})")],
    };
    if problems.is_empty() {
        return Ok(());
    }
    let detail =
        format!("{}'s structuredContent does not match its outputSchema at {}", tool.name, problems.join(", "));
    Err(Error::UpstreamProtocol { upstream: upstream.into(), detail: redactor.redact_str(&detail).0.into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc;
    use serde_json::json;

    fn tool() -> ToolDefinition {
        let listing = json!({"name": "weather", "outputSchema": {"type": "object", "required": ["temp"],
                             "properties": {"temp": {"type": "number"}}}});
        ToolDefinition::from_listing(&listing.to_string()).unwrap()
    }

    fn reply(result: Value) -> Frame {
        Frame::parse(jsonrpc::result("1", &result.to_string())).unwrap()
    }

    #[test]
    fn structured_content_must_fit_the_declared_output_schema() {
        let r = Redactor::new(&Default::default()).unwrap();
        assert!(check("up", &tool(), &reply(json!({"structuredContent": {"temp": 21.5}})), &r).is_ok());
        let bad = reply(json!({"structuredContent": {"temp": "AKIAIOSFODNN7EXAMPLE"}}));
        let e = check("up", &tool(), &bad, &r).unwrap_err();
        assert_eq!(e.code(), -31005);
        let text = e.to_string();
        assert!(text.contains("/temp") && !text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
        assert!(check("up", &tool(), &reply(json!({"structuredContent": {}, "isError": true})), &r).is_ok());
        assert!(check("up", &tool(), &reply(json!({"content": []})), &r).is_ok(), "absent content is not checked");
        let plain = ToolDefinition::new("t", None, None, "d");
        assert!(check("up", &plain, &bad, &r).is_ok(), "no outputSchema, no promise");
    }
}
