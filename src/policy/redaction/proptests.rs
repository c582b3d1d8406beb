//! Property tests: no planted secret survives anywhere in arbitrary JSON; redaction is idempotent
//! (twice == once, the second report empty) and keeps the JSON shape; no string makes it panic;
//! random base64, hex digests and UUIDs are never taken for secrets.

use super::heuristics::{entropy, is_secret_value, looks_human};
use super::tests::{default, everything};
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn whole(s: String) -> (String, String) {
    (s.clone(), s)
}

/// A secret of every built-in kind as it appears in output, and the part that must not survive.
fn planted() -> impl Strategy<Value = (String, String)> {
    let mixed_case =
        |s: &String| s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase());
    prop_oneof![
        "(AKIA|ASIA)[A-Z0-9]{16}".prop_map(whole),
        "[A-Za-z0-9/+]{40}"
            .prop_filter("entropy", |v| entropy(v) >= 3.5)
            .prop_map(|v| (format!("aws_secret_access_key = {v}"), v)),
        "gh[pousr]_[A-Za-z0-9]{36,60}".prop_map(whole),
        "github_pat_[A-Za-z0-9_]{22,82}".prop_map(whole),
        "glpat-[A-Za-z0-9_-]{20,30}".prop_map(whole),
        "xox[abprs]-[0-9]{10,12}-[A-Za-z0-9]{24}".prop_map(whole),
        "[sr]k_live_[A-Za-z0-9]{24,99}".prop_map(whole),
        "AIza[0-9A-Za-z_-]{35}".prop_map(whole),
        "sk-ant-api03-[A-Za-z0-9_-]{40,95}".prop_map(whole),
        "sk-(proj-)?[A-Za-z0-9]{48}".prop_filter("mixed case", mixed_case).prop_map(whole),
        (prop::collection::vec("[A-Za-z0-9+/]{64}", 1..4), "(RSA |EC |OPENSSH |ENCRYPTED )?", any::<bool>()).prop_map(
            |(lines, kind, terminated)| {
                let end = if terminated { format!("\n-----END {kind}PRIVATE KEY-----") } else { String::new() };
                (format!("-----BEGIN {kind}PRIVATE KEY-----\n{}{end}", lines.join("\n")), lines[0].clone())
            }
        ),
        "eyJ[A-Za-z0-9_-]{10,40}\\.eyJ[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{20,43}".prop_map(whole),
        ("(postgres|postgresql|mysql|mongodb\\+srv|redis|amqp)", "[a-z]{0,8}", "[A-Za-z0-9]{12,24}")
            .prop_map(|(scheme, user, pass)| (format!("{scheme}://{user}:{pass}@db.internal:5432/app"), pass)),
        "[A-Za-z0-9._~+/-]{24,64}"
            .prop_filter("random-looking", |v| entropy(v) >= 3.0 && !looks_human(v))
            .prop_map(|v| (format!("Authorization: Bearer {v}"), v)),
        ("(api_key|password|client_secret|ACCESS_TOKEN|x-api-key)", "( = |: |=|\": \"| := )", "[A-Za-z0-9]{16,40}")
            .prop_filter("generated-looking", |(_, _, v)| is_secret_value(v, 3.5))
            .prop_map(|(key, sep, v)| (format!("{key}{sep}{v}"), v)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z ]{0,12}".prop_map(Value::String),
    ]
}

fn tree(leaf: impl Strategy<Value = Value> + 'static, key: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// `text` planted at one of several places in a random JSON tree: an object key, a value, a
/// string nested in arrays, or next to the tree.
fn json_with(text: String) -> impl Strategy<Value = Value> {
    (tree(leaf(), "[a-z]{1,6}".boxed()), 0..4usize, "[a-z ]{0,8}").prop_map(move |(mut v, place, pad)| {
        let planted = format!("{pad} {text} {pad}");
        match (&mut v, place) {
            (Value::Object(m), 0) => {
                m.insert(planted, json!(1));
            }
            (Value::Object(m), 1) => {
                m.insert("planted".into(), Value::String(planted));
            }
            (Value::Array(a), _) => a.push(json!({"nested": [[planted]]})),
            _ => v = json!({"wrapped": v, "s": {"deeper": planted}}),
        }
        v
    })
}

/// Text with every kind of trouble in it: escapes, invisible characters, secret prefixes, whole
/// secrets, markers from earlier redactions, and arbitrary characters.
fn messy() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        4 => "[a-zA-Z0-9 ]{0,12}",
        1 => any::<char>().prop_map(String::from),
        1 => planted().prop_map(|p| p.0),
        3 => prop::sample::select(vec![
            "\u{1b}[31m", "\u{1b}]8;;", "\u{7}", "\u{9b}", "\u{9c}", "\u{1b}", "\u{1b}\\", "\u{200b}", "\u{202e}",
            "\u{e0041}", "\u{1f3f4}", "\u{200d}", "AKIA", "ghp_", "sk-", "sk-ant-", "eyJ", "-----BEGIN PRIVATE KEY-----",
            "-----END PRIVATE KEY-----", "token=", "password: ", "Bearer ", "postgres://u:", "@", ".", ":", "&a=",
            "[REDACTED:github-token]", "4111", "+1", "\\n", "\n", "=", "\"", "nextPage",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(fragment, 0..16).prop_map(|v| v.concat())
}

/// The structure without string contents: same arrays, same member counts, same non-strings.
fn shape(v: &Value) -> Value {
    match v {
        Value::String(_) => json!("s"),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::Object(m) => json!({"members": m.values().map(shape).collect::<Vec<_>>()}),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_planted_secret_survives_anywhere(
        (secret, value) in planted().prop_flat_map(|(text, secret)| (Just(secret), json_with(text)))
    ) {
        let mut value = value;
        let report = default().redact_json(&mut value);
        prop_assert!(report.total >= 1);
        let out = value.to_string();
        prop_assert!(!out.contains(&secret), "{} survived in {}", secret, out);
        // Nor does any long piece of it.
        let piece = &secret[..secret.len().min(16)];
        prop_assert!(!out.contains(piece), "{} of {} survived in {}", piece, secret, out);
    }

    #[test]
    fn generated_values_under_secret_keys_do_not_survive(
        key in "(password|client_secret|SessionToken|x-api-key|SecretAccessKey|db_passwd)",
        secret in "[A-Za-z0-9+/=_-]{16,64}".prop_filter("generated-looking", |v| is_secret_value(v, 3.5)),
        tree in tree(leaf(), "[a-z]{1,6}".boxed()),
    ) {
        let mut value = json!({"result": {"data": [tree, {key: secret.clone()}]}});
        default().redact_json(&mut value);
        prop_assert!(!value.to_string().contains(&secret));
    }

    #[test]
    fn redaction_is_idempotent_and_keeps_the_shape(
        v in tree(messy().prop_map(Value::String), messy().boxed())
    ) {
        for redactor in [default(), everything()] {
            let mut once = v.clone();
            redactor.redact_json(&mut once);
            let mut twice = once.clone();
            let second = redactor.redact_json(&mut twice);
            prop_assert!(second.is_empty(), "second pass redacted {:?} in {}", second, once);
            prop_assert_eq!(&once, &twice);
            prop_assert_eq!(shape(&v), shape(&once));
        }
    }

    #[test]
    fn strings_are_idempotent_and_never_panic(s in messy()) {
        let r = everything();
        let (once, _) = r.redact_str(&s);
        let (twice, report) = r.redact_str(&once);
        prop_assert!(report.is_empty(), "not idempotent on {:?}: {:?}", s, report);
        prop_assert_eq!(once.as_ref(), twice.as_ref());
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let (once, _) = everything().redact_str(&s);
        prop_assert!(everything().redact_str(&once).1.is_empty());
    }

    #[test]
    fn blobs_digests_and_ids_are_not_secrets(
        blob in "[A-Za-z0-9+/]{100,3000}(|=|==)",
        sha in "[0-9a-f]{40}|[0-9a-f]{64}",
        uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ) {
        let mut v = json!({"content": [
            {"type": "image", "mimeType": "image/png", "data": blob},
            {"type": "text", "text": format!("commit {sha}\nrequest {uuid}")},
        ], "structuredContent": {"id": uuid, "sha": sha}});
        let report = default().redact_json(&mut v);
        prop_assert!(report.is_empty(), "{:?}", report);
    }
}
