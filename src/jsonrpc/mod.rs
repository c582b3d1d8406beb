//! JSON-RPC 2.0 frames as the gateway sees them: validated text plus where its parts are.
//!
//! Invariant: a [`Frame`] holds the exact bytes it was parsed from; everything the gateway does not
//! need to change is forwarded as those bytes. Changes (a new id, a renamed tool) are splices into
//! the text, so unknown fields, key order and number formats survive.

pub mod fuzz;
#[cfg(test)]
mod proptests;
pub mod raw_object;
mod strict;

pub use raw_object::RawObject;

use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// What kind of JSON-RPC message a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// One validated JSON-RPC 2.0 message.
#[derive(Debug, Clone)]
pub struct Frame {
    text: String,
    kind: Kind,
    method: Option<String>,
    id: Option<Range<usize>>,
    params: Option<Range<usize>>,
    result: Option<Range<usize>>,
    error: Option<Range<usize>>,
}

/// Why bytes are not a usable frame; maps to -32700 (parse) or -32600 (invalid request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Parse(String),
    Invalid { id: Option<String>, reason: String },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// A member that is present, even as `null` (plain `Option` would read `null` as absent, and
/// `"id": null` must be refused, not taken for a notification).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Byte range of `part` inside `whole`; `part` must borrow from `whole`.
fn range_in(whole: &str, part: &RawValue) -> Range<usize> {
    let start = part.get().as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.get().len()
}

fn valid_id(raw: &str) -> bool {
    // String or integer (MCP forbids null; JSON-RPC discourages fractions).
    raw.starts_with('"') || (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

impl FrameError {
    /// The id to answer with: the message's own when it could be read and is a valid id, so the
    /// client can tell which request was refused; `None` (sent as `null`) otherwise.
    pub fn id(&self) -> Option<&str> {
        match self {
            FrameError::Invalid { id, .. } => id.as_deref(),
            FrameError::Parse(_) => None,
        }
    }
}

impl Frame {
    /// One message as a transport received it (an HTTP body, a stdio line): the decoder every
    /// downstream transport uses, so each answers bad bytes the same way.
    pub fn decode(bytes: Vec<u8>) -> Result<Frame, FrameError> {
        let text = String::from_utf8(bytes).map_err(|e| {
            FrameError::Parse(format!(
                "the message is not UTF-8 (invalid byte at offset {}); send JSON text in UTF-8",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Frame::parse(text)
    }

    /// Parses and validates one message. Batches are refused: MCP removed them in 2025-06-18.
    pub fn parse(text: impl Into<String>) -> Result<Frame, FrameError> {
        let text = text.into();
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            strict::check(&text).map_err(FrameError::Parse)?;
            return Err(FrameError::Invalid {
                id: None,
                reason:
                    "JSON-RPC batches are not supported (MCP removed them in 2025-06-18); send one message per request"
                        .into(),
            });
        }
        strict::check(&text).map_err(FrameError::Parse)?;
        let env: Envelope = serde_json::from_str(&text).map_err(|e| FrameError::Invalid {
            id: None,
            reason: format!("a JSON-RPC message must be an object: {e}"),
        })?;
        let id_text = env.id.map(|i| i.get().to_string());
        let invalid = |reason: &str| FrameError::Invalid {
            id: id_text.clone().filter(|i| valid_id(i)),
            reason: reason.to_string(),
        };
        if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return Err(invalid("\"jsonrpc\" must be exactly \"2.0\""));
        }
        if let Some(id) = env.id
            && !valid_id(id.get())
        {
            return Err(invalid("\"id\" must be a string or an integer (not null, a fraction, an array or an object)"));
        }
        let method = match env.method {
            Some(m) => {
                Some(serde_json::from_str::<String>(m.get()).map_err(|_| invalid("\"method\" must be a string"))?)
            }
            None => None,
        };
        if let Some(p) = env.params {
            let first = p.get().as_bytes().first();
            if method.is_none() || !matches!(first, Some(b'{') | Some(b'[')) {
                return Err(invalid(
                    "\"params\" must be an object or array and only appear on requests and notifications",
                ));
            }
        }
        let kind = match (&method, env.id, env.result.is_some(), env.error.is_some()) {
            (Some(_), Some(_), false, false) => Kind::Request,
            (Some(_), None, false, false) => Kind::Notification,
            (None, Some(_), true, false) | (None, Some(_), false, true) => Kind::Response,
            (None, None, false, true) => Kind::Response,
            (None, _, true, true) => return Err(invalid("a response has exactly one of \"result\" and \"error\"")),
            (None, _, false, false) => {
                return Err(invalid(
                    "a message needs \"method\" (request/notification) or \"result\"/\"error\" (response)",
                ));
            }
            _ => return Err(invalid("a message cannot be both a request and a response")),
        };
        if kind == Kind::Response
            && method.is_none()
            && let Some(e) = env.error
        {
            #[derive(Deserialize)]
            struct ErrorShape {
                #[allow(dead_code)]
                code: i64,
                #[allow(dead_code)]
                message: String,
            }
            serde_json::from_str::<ErrorShape>(e.get()).map_err(|_| {
                invalid("\"error\" must be an object with an integer \"code\" and a string \"message\"")
            })?;
        }
        let id = env.id.map(|r| range_in(&text, r));
        let params = env.params.map(|r| range_in(&text, r));
        let result = env.result.map(|r| range_in(&text, r));
        let error = env.error.map(|r| range_in(&text, r));
        Ok(Frame { kind, method, id, params, result, error, text })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }
    /// The id exactly as sent (`1`, `"a"`), if any.
    pub fn id(&self) -> Option<&str> {
        self.id.clone().map(|r| &self.text[r])
    }
    pub fn params(&self) -> Option<&str> {
        self.params.clone().map(|r| &self.text[r])
    }
    pub fn result(&self) -> Option<&str> {
        self.result.clone().map(|r| &self.text[r])
    }
    pub fn error(&self) -> Option<&str> {
        self.error.clone().map(|r| &self.text[r])
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn into_string(self) -> String {
        self.text
    }
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    /// Parses `params` into a typed view; absent params read as `{}`.
    pub fn params_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.params().unwrap_or("{}"))
    }

    /// The same message with its id replaced by `new_id` (raw JSON), every other byte unchanged.
    pub fn with_id(&self, new_id: &str) -> Frame {
        let range = self.id.clone().expect("with_id on a message without id");
        self.splice(range, new_id)
    }

    /// The same message with its params replaced by `new_params` (raw JSON).
    pub fn with_params(&self, new_params: &str) -> Frame {
        match self.params.clone() {
            Some(range) => self.splice(range, new_params),
            None => {
                // Insert before the closing brace of the envelope.
                let end = self.text.rfind('}').expect("frame is an object");
                let mut text = self.text.clone();
                text.insert_str(end, &format!(",\"params\":{new_params}"));
                Frame::parse(text).expect("inserting params keeps a frame valid")
            }
        }
    }

    fn splice(&self, range: Range<usize>, with: &str) -> Frame {
        let mut text = String::with_capacity(self.text.len() + with.len());
        text.push_str(&self.text[..range.start]);
        text.push_str(with);
        text.push_str(&self.text[range.end..]);
        let delta = with.len() as isize - range.len() as isize;
        let shift = |r: &Option<Range<usize>>| {
            r.clone().map(|r| {
                if r.start >= range.end {
                    (r.start as isize + delta) as usize..(r.end as isize + delta) as usize
                } else if r == range {
                    r.start..(r.end as isize + delta) as usize
                } else {
                    r
                }
            })
        };
        Frame {
            kind: self.kind,
            method: self.method.clone(),
            id: shift(&self.id),
            params: shift(&self.params),
            result: shift(&self.result),
            error: shift(&self.error),
            text,
        }
    }
}

/// Builds a request text. `params` is raw JSON.
pub fn request(id: &str, method: &str, params: Option<&str>) -> String {
    let method = serde_json::to_string(method).expect("string serializes");
    match params {
        Some(p) => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{p}}}"#),
        None => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method}}}"#),
    }
}

/// Builds a notification text. `params` is raw JSON.
pub fn notification(method: &str, params: Option<&str>) -> String {
    let method = serde_json::to_string(method).expect("string serializes");
    match params {
        Some(p) => format!(r#"{{"jsonrpc":"2.0","method":{method},"params":{p}}}"#),
        None => format!(r#"{{"jsonrpc":"2.0","method":{method}}}"#),
    }
}

/// Builds a success response text. `id` and `result` are raw JSON.
pub fn result(id: &str, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// Builds an error response text; `id` is raw JSON or `None` when the id could not be read.
pub fn error(id: Option<&str>, code: i64, message: &str, data: Option<&serde_json::Value>) -> String {
    let mut err = serde_json::json!({ "code": code, "message": message });
    if let Some(d) = data {
        err["data"] = d.clone();
    }
    format!(r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#, id.unwrap_or("null"), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parts_are_found() {
        let f =
            Frame::parse(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","x-v":1.0}}"#).unwrap();
        assert_eq!(f.kind(), Kind::Request);
        assert_eq!(f.id(), Some("7"));
        assert_eq!(f.method(), "tools/call");
        assert_eq!(f.params(), Some(r#"{"name":"x","x-v":1.0}"#));
    }

    #[test]
    fn with_id_changes_only_the_id() {
        let text = r#"{ "params" : {"a":1.50}, "id":"abc","jsonrpc":"2.0","method":"m","x-extra":true}"#;
        let f = Frame::parse(text).unwrap().with_id("42");
        assert_eq!(f.as_str(), text.replace("\"abc\"", "42"));
        assert_eq!(f.id(), Some("42"));
        assert_eq!(f.params(), Some(r#"{"a":1.50}"#));
        let g = f.with_id("\"a-much-longer-id\"");
        assert_eq!(g.id(), Some("\"a-much-longer-id\""));
        assert_eq!(g.params(), Some(r#"{"a":1.50}"#));
    }

    #[test]
    fn with_params_inserts_when_absent() {
        let f = Frame::parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        let g = f.with_params(r#"{"_meta":{}}"#);
        assert_eq!(g.params(), Some(r#"{"_meta":{}}"#));
    }

    #[test]
    fn invalid_frames_are_explained() {
        let cases = [
            (r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#, "\"2.0\""),
            (r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#, "\"id\""),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#, "\"id\""),
            (r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#, "exactly one"),
            (r#"{"jsonrpc":"2.0","id":1}"#, "needs"),
            (r#"{"jsonrpc":"2.0","method":"m","params":3}"#, "params"),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"m"}]"#, "batches"),
            (r#""just a string""#, "object"),
        ];
        for (text, needle) in cases {
            match Frame::parse(text) {
                Err(FrameError::Invalid { reason, .. }) => assert!(reason.contains(needle), "{text}: {reason}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_frame_keeps_a_usable_id() {
        match Frame::parse(r#"{"jsonrpc":"1.0","id":"q","method":"m"}"#) {
            Err(FrameError::Invalid { id, .. }) => assert_eq!(id.as_deref(), Some("\"q\"")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_errors_and_duplicates() {
        assert!(matches!(Frame::parse("{not json"), Err(FrameError::Parse(_))));
        assert!(matches!(
            Frame::parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}"#),
            Err(FrameError::Parse(e)) if e.contains("duplicate")
        ));
    }
}
