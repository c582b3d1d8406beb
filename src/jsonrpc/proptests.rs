//! Property tests for the decoder every downstream transport uses: arbitrary bytes, arbitrary
//! nested JSON and near-miss JSON-RPC envelopes all get a frame or a classified error, never a
//! panic (the checks are `fuzz::check_decode`, the cargo-fuzz target's body).

use super::fuzz::check_decode;
use super::{Frame, FrameError, strict};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, nested up to a few levels, with keys that collide with JSON-RPC members.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["jsonrpc", "id", "method", "params", "result", "error", "code", "message"])
            .prop_map(str::to_string),
        any::<String>(),
    ]
}

/// Objects shaped like JSON-RPC messages, each member present or not and of any type.
fn envelope() -> impl Strategy<Value = Value> {
    let member = |strategy: BoxedStrategy<Value>| prop::option::of(strategy);
    let version = prop_oneof![Just(json!("2.0")), Just(json!("1.0")), json_value()].boxed();
    let id =
        prop_oneof![any::<i64>().prop_map(Value::from), any::<String>().prop_map(Value::from), json_value()].boxed();
    let method = prop_oneof![Just(json!("tools/call")), any::<String>().prop_map(Value::from), json_value()].boxed();
    let error =
        prop_oneof![(any::<i64>(), any::<String>()).prop_map(|(c, m)| json!({"code": c, "message": m})), json_value()]
            .boxed();
    (
        member(version),
        member(id),
        member(method),
        member(json_value().boxed()),
        member(json_value().boxed()),
        member(error),
    )
        .prop_map(|(jsonrpc, id, method, params, result, error)| {
            let mut object = Map::new();
            for (name, value) in [
                ("jsonrpc", jsonrpc),
                ("id", id),
                ("method", method),
                ("params", params),
                ("result", result),
                ("error", error),
            ] {
                if let Some(v) = value {
                    object.insert(name.to_string(), v);
                }
            }
            Value::Object(object)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_get_a_frame_or_a_classified_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&bytes);
    }

    #[test]
    fn arbitrary_json_gets_a_frame_or_a_classified_error(value in json_value()) {
        check_decode(value.to_string().as_bytes());
    }

    #[test]
    fn near_miss_envelopes_get_a_frame_or_a_classified_error(value in envelope()) {
        check_decode(value.to_string().as_bytes());
        check_decode(serde_json::to_string_pretty(&value).unwrap().as_bytes());
    }

    /// Truncations and single-byte edits of a valid request: what a broken client or a torn
    /// stdio line looks like.
    #[test]
    fn damaged_requests_get_a_frame_or_a_classified_error(
        value in envelope(), cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let text = value.to_string().into_bytes();
        check_decode(&text[..cut.index(text.len() + 1)]);
        let mut edited = text.clone();
        if !edited.is_empty() {
            let i = at.index(edited.len());
            edited[i] = byte;
        }
        check_decode(&edited);
    }

    /// Deep nesting anywhere is refused as a parse error naming the limit, never a stack overflow.
    #[test]
    fn deep_nesting_is_refused_whatever_the_shape(depth in strict::MAX_DEPTH + 1..20_000, objects in any::<bool>()) {
        let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
        let text = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":{}1{}}}}}"#, open.repeat(depth), close.repeat(depth));
        check_decode(text.as_bytes());
        match Frame::decode(text.into_bytes()) {
            Err(FrameError::Parse(reason)) => prop_assert!(reason.contains("nested deeper"), "{}", reason),
            other => prop_assert!(false, "{other:?}"),
        }
    }
}

#[test]
fn bytes_that_are_not_utf8_are_a_parse_error_that_says_so() {
    let mut bytes = br#"{"jsonrpc":"2.0","id":1,"method":"x"}"#.to_vec();
    bytes[30] = 0xff;
    match Frame::decode(bytes) {
        Err(FrameError::Parse(reason)) => assert!(reason.contains("not UTF-8"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lone_surrogate_escape_is_a_parse_error() {
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"\udc00":1}}"#,
    ] {
        check_decode(text.as_bytes());
        assert!(matches!(Frame::parse(text), Err(FrameError::Parse(_))), "{text}");
    }
}
