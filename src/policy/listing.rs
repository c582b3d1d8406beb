//! What a client (and its model) reads about a listed tool, prompt or resource: its `title`,
//! its `description` and the descriptions inside its schemas. Cleaned by the policy's
//! [`Redactor`] like tool output — terminal escapes and invisible Unicode removed, secrets
//! replaced — because a description reaches the model as text just as a result does. Names
//! and every other member are left as sent (names route calls; schemas are the upstream's
//! contract), and pins are taken from the upstream's own text, so a change is still caught.

use super::redaction::{Redactor, Report};
use serde_json::Value;

/// The members whose string values are prose for a person or a model.
const PROSE: [&str; 2] = ["title", "description"];

/// `item` with its prose cleaned, or `None` when nothing needed cleaning (the caller keeps the
/// upstream's exact text) or `item` is not a JSON object.
pub fn clean(redactor: &Redactor, item: &str) -> Option<(String, Report)> {
    let mut value: Value = serde_json::from_str(item).ok()?;
    let mut report = Report::default();
    clean_value(redactor, &mut value, &mut report);
    (!report.is_empty()).then(|| (value.to_string(), report))
}

fn clean_value(redactor: &Redactor, value: &mut Value, report: &mut Report) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                match member {
                    Value::String(text) if PROSE.contains(&key.as_str()) => {
                        let (cleaned, found) = redactor.redact_str(text);
                        if !found.is_empty() {
                            *text = cleaned.into_owned();
                            report.merge(found);
                        }
                    }
                    other => clean_value(redactor, other, report),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| clean_value(redactor, i, report)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::redaction::RedactionConfig;
    use serde_json::json;

    fn redactor() -> Redactor {
        Redactor::new(&RedactionConfig::default()).unwrap()
    }

    #[test]
    fn escapes_and_invisible_characters_leave_every_prose_member_and_nothing_else_changes() {
        let item = json!({
            "name": "read\u{200B}_file",
            "title": "Read\u{1b}[2J",
            "description": "Reads a file.\u{202E}\u{E0041}",
            "inputSchema": {"type": "object", "properties": {
                "path": {"type": "string", "description": "\u{1b}]8;;http://evil\u{7}where\u{1b}]8;;\u{7}"},
                "description": {"type": "string"}
            }}
        })
        .to_string();
        let (cleaned, report) = clean(&redactor(), &item).expect("something to clean");
        let v: Value = serde_json::from_str(&cleaned).unwrap();
        assert_eq!(v["title"], "Read");
        assert_eq!(v["description"], "Reads a file.");
        assert_eq!(v["inputSchema"]["properties"]["path"]["description"], "where");
        assert_eq!(v["name"], "read\u{200B}_file", "names route calls and are left alone");
        assert_eq!(v["inputSchema"]["properties"]["description"], json!({"type": "string"}));
        assert!(report.total >= 4, "{report:?}");
    }

    #[test]
    fn secrets_in_descriptions_are_replaced() {
        let item = json!({"name": "t", "description": "use key AKIAIOSFODNN7EXAMPLE"}).to_string();
        let (cleaned, _) = clean(&redactor(), &item).unwrap();
        assert!(!cleaned.contains("AKIAIOSFODNN7EXAMPLE"), "{cleaned}");
    }

    #[test]
    fn a_clean_item_is_left_as_sent() {
        assert!(clean(&redactor(), r#"{"name":"add","description":"Adds two numbers."}"#).is_none());
    }
}
