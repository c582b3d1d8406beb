//! Argument validation against a tool's JSON Schema (draft 2020-12 and older, auto-detected).
//!
//! Validators are compiled once per distinct schema and cached by the schema's digest. Remote
//! `$ref`s are never fetched (the `jsonschema` crate is built without `resolve-http`), so such a
//! schema fails to compile and the tool fails closed. Patterns use the linear-time `regex`
//! engine, so a hostile schema cannot make validation backtrack for ever.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One reason the arguments do not fit the schema, at a JSON pointer into the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(schema)
        .map_err(|e| format!("unusable input schema: {e}"))
}

/// Every violation of `schema` by `args` (empty when valid).
pub fn violations(validator: &jsonschema::Validator, args: &Value) -> Vec<Violation> {
    validator
        .iter_errors(args)
        .take(20)
        .map(|e| {
            let pointer = e.instance_path().to_string();
            Violation { pointer: if pointer.is_empty() { "/".into() } else { pointer }, message: e.to_string() }
        })
        .collect()
}

/// Compiled validators by schema digest. Bounded: a flood of distinct schemas cannot grow it
/// without limit (it is simply cleared when full).
#[derive(Default)]
pub struct SchemaCache {
    validators: Mutex<HashMap<String, Arc<Result<jsonschema::Validator, String>>>>,
}

const CACHE_LIMIT: usize = 4096;

impl SchemaCache {
    /// The validator for `schema`; `key` identifies it (the tool's definition digest, or the
    /// pinned schema's path), so the hot path does not hash the schema again.
    pub fn get_keyed(&self, key: &str, schema: &Value) -> Arc<Result<jsonschema::Validator, String>> {
        if let Some(v) = self.validators.lock().expect("schema cache lock").get(key) {
            return v.clone();
        }
        let compiled = Arc::new(compile(schema));
        let mut map = self.validators.lock().expect("schema cache lock");
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(key.to_string(), compiled.clone());
        compiled
    }

    pub fn get(&self, schema: &Value) -> Arc<Result<jsonschema::Validator, String>> {
        let key = super::tool::digest(schema);
        if let Some(v) = self.validators.lock().expect("schema cache lock").get(&key) {
            return v.clone();
        }
        let compiled = Arc::new(compile(schema));
        let mut map = self.validators.lock().expect("schema cache lock");
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(key, compiled.clone());
        compiled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_carry_pointers() {
        let schema = json!({
            "type": "object",
            "properties": {"path": {"type": "string", "pattern": "^/srv/"}, "n": {"type": "integer", "minimum": 0}},
            "required": ["path"],
            "additionalProperties": false
        });
        let v = compile(&schema).unwrap();
        assert!(violations(&v, &json!({"path": "/srv/a"})).is_empty());
        let errs = violations(&v, &json!({"path": "/etc/passwd", "n": -1, "x": 1}));
        let pointers: Vec<&str> = errs.iter().map(|e| e.pointer.as_str()).collect();
        assert!(pointers.contains(&"/path") && pointers.contains(&"/n"), "{errs:?}");
        assert!(errs.iter().any(|e| e.message.contains("x")), "{errs:?}");
        assert_eq!(violations(&v, &json!({}))[0].pointer, "/");
    }

    #[test]
    fn older_drafts_work() {
        let schema = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["a"]});
        let v = compile(&schema).unwrap();
        assert_eq!(violations(&v, &json!({})).len(), 1);
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        let schema = json!({"$ref": "http://169.254.169.254/latest/meta-data"});
        assert!(compile(&schema).is_err());
    }

    #[test]
    fn catastrophic_patterns_stay_linear() {
        let v = compile(&json!({"type": "string", "pattern": "^(a+)+$"})).unwrap();
        let evil = format!("{}!", "a".repeat(5000));
        assert!(!violations(&v, &json!(evil)).is_empty());
    }
}
