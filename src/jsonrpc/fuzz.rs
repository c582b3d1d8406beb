//! The decoder's contract, checked on any input: the body of the cargo-fuzz target
//! (`fuzz/fuzz_targets/jsonrpc_decode.rs`) and of the property tests in `proptests.rs`, so what
//! the fuzzer checks also runs under `cargo test`.
//!
//! Whatever bytes a client sends, [`Frame::decode`] returns without panicking either a frame whose
//! parts are where it says they are, or an error a client can act on: -32700 (not JSON) or
//! -32600 (JSON, not a usable JSON-RPC message), answered with a valid id or `null`.

use super::{Frame, FrameError, Kind};
use crate::error::Error;
use serde::de::IgnoredAny;

/// Decodes `bytes` and panics if the outcome breaks the contract (a panic is what the fuzzer and
/// the property tests report).
pub fn check_decode(bytes: &[u8]) {
    match Frame::decode(bytes.to_vec()) {
        Ok(frame) => check_frame(bytes, &frame),
        Err(e) => check_refusal(&e),
    }
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

fn check_frame(bytes: &[u8], frame: &Frame) {
    assert_eq!(frame.as_str().as_bytes(), bytes, "a decoded frame keeps the exact bytes it came from");
    for part in [frame.id(), frame.params(), frame.result(), frame.error()].into_iter().flatten() {
        assert!(is_json(part), "a frame's part is not JSON on its own: {part:?}");
    }
    match frame.kind() {
        Kind::Request => assert!(frame.id().is_some() && frame.result().is_none() && frame.error().is_none()),
        Kind::Notification => assert!(frame.id().is_none() && frame.result().is_none() && frame.error().is_none()),
        Kind::Response => assert!(frame.params().is_none() && (frame.result().is_some() != frame.error().is_some())),
    }
    if let Some(id) = frame.id() {
        let digits = id.strip_prefix('-').unwrap_or(id);
        let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        assert!(id.starts_with('"') || integer, "an accepted id is a string or an integer: {id}");
        // The gateway's first edit of every forwarded request: it must leave a valid frame.
        let renumbered = frame.with_id("18446744073709551615");
        let reparsed = Frame::parse(renumbered.as_str().to_string()).expect("a renumbered frame parses");
        assert_eq!(reparsed.kind(), frame.kind());
        assert_eq!(reparsed.params(), frame.params(), "renumbering moved the params");
    }
}

fn check_refusal(e: &FrameError) {
    let error = Error::from(e.clone());
    let expected = match e {
        FrameError::Parse(_) => -32700,
        FrameError::Invalid { .. } => -32600,
    };
    assert_eq!(error.code(), expected, "{e:?}");
    let answer = error.to_jsonrpc(e.id());
    let reply: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|p| panic!("the error answer is not JSON: {answer} ({p})"));
    assert_eq!(reply["jsonrpc"], "2.0", "{answer}");
    assert_eq!(reply["error"]["code"], expected, "{answer}");
    let id = e.id().map(|i| serde_json::from_str(i).expect("a kept id is JSON")).unwrap_or(serde_json::Value::Null);
    assert!(id.is_null() || id.is_string() || id.is_i64() || id.is_u64(), "answered with an unusable id: {answer}");
    assert_eq!(reply["id"], id, "{answer}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error says why: {answer}");
}
