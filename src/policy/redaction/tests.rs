use super::*;
use proptest::prelude::*;
use serde_json::json;

fn default() -> &'static Redactor {
    static DEFAULT: std::sync::LazyLock<Redactor> =
        std::sync::LazyLock::new(|| Redactor::new(&RedactionConfig::default()).unwrap());
    &DEFAULT
}

fn everything() -> &'static Redactor {
    static ALL: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| {
        let sets = vec![RuleSet::Secrets, RuleSet::Pii, RuleSet::Terminal, RuleSet::Invisible];
        Redactor::new(&RedactionConfig { sets, custom: vec![] }).unwrap()
    });
    &ALL
}

const GHP: &str = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";

#[test]
fn known_secrets_are_redacted_with_their_rule() {
    let r = default();
    let cases = [
        ("key AKIAIOSFODNN7EXAMPLE here", "aws-access-key"),
        (GHP, "github-token"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
            "private-key",
        ),
        ("-----BEGIN RSA PRIVATE KEY----- (truncated)", "private-key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ("postgres://admin:s3cr3tP4ss@db.internal:5432/app", "connection-string"),
        ("xoxb-123456789012-abcdefghij", "slack-token"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "google-api-key"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "anthropic-key"),
        ("Authorization: Bearer abcDEF123ghiJKL456mnoPQR789", "bearer-token"),
        ("api_key = \"Zx9Qw8Er7Ty6Ui5Op4As3Df2\"", "generic-secret"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe-key"),
    ];
    for (text, rule) in cases {
        let (out, report) = r.redact_str(text);
        assert!(report.by_rule.contains_key(rule), "{rule} not found in {text:?}: {report:?} -> {out}");
        assert!(out.contains(&format!("[REDACTED:{rule}]")), "{out}");
    }
}

#[test]
fn ordinary_output_is_left_alone() {
    let r = default();
    for text in [
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "password: hunter2",
        "token = aaaaaaaaaaaaaaaaaaaaaaaa",
        "The sum of 1 and 2 is 3.",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "café 日本 ✓ emoji 🎉",
    ] {
        let (out, report) = r.redact_str(text);
        assert_eq!(report.total, 0, "{text:?} redacted: {report:?}");
        assert!(matches!(out, Cow::Borrowed(_)), "unchanged text must not be copied");
    }
}

#[test]
fn pii_is_opt_in_and_cards_need_luhn() {
    let text = "mail bob@example.com card 4111 1111 1111 1111 not 4111 1111 1111 1112 call +14155552671";
    assert_eq!(default().redact_str(text).1.total, 0);
    let r = Redactor::new(&RedactionConfig { sets: vec![RuleSet::Pii], custom: vec![] }).unwrap();
    let (out, report) = r.redact_str(text);
    assert_eq!(report.by_rule.get("email"), Some(&1));
    assert_eq!(report.by_rule.get("credit-card"), Some(&1), "{out}");
    assert!(out.contains("4111 1111 1111 1112"));
    assert_eq!(report.by_rule.get("phone"), Some(&1), "{out}");
}

#[test]
fn custom_rules_apply_and_bad_ones_are_named() {
    let config = RedactionConfig {
        sets: vec![],
        custom: vec![CustomRule {
            id: "internal-host".into(),
            pattern: r"[a-z0-9]+\.corp\.internal".into(),
            replacement: None,
        }],
    };
    let (out, _) = Redactor::new(&config).unwrap().redact_str("see db1.corp.internal");
    assert_eq!(out, "see [REDACTED:internal-host]");
    let bad = RedactionConfig {
        sets: vec![],
        custom: vec![CustomRule { id: "x".into(), pattern: "(".into(), replacement: None }],
    };
    assert!(Redactor::new(&bad).unwrap_err().contains("\"x\""));
}

#[test]
fn json_keys_values_and_nesting_are_covered() {
    let mut v = json!({"content":[{"type":"text","text":format!("token {GHP}")}],"structuredContent":{GHP:{"deep":[GHP, 1, true, null]}},"isError":false});
    let report = default().redact_json(&mut v);
    assert_eq!(report.by_rule.get("github-token"), Some(&3));
    assert!(!v.to_string().contains(GHP));
    assert_eq!(v["isError"], false);
    assert_eq!(v["structuredContent"]["[REDACTED:github-token]"]["deep"][1], 1);
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z0-9]{16}".prop_map(|s| format!("AKIA{s}")),
        "[A-Za-z0-9]{36}".prop_map(|s| format!("ghp_{s}")),
        "[A-Za-z0-9_]{22}".prop_map(|s| format!("github_pat_{s}")),
        "[A-Za-z0-9]{24}".prop_map(|s| format!("sk_live_{s}")),
        "[A-Za-z0-9_]{35}".prop_map(|s| format!("AIza{s}")),
        Just("-----BEGIN PRIVATE KEY-----".to_string()),
    ]
}

fn json_with(secret: String) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z ]{0,12}".prop_map(Value::String),
    ];
    let tree = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    (tree, 0..3usize, "[a-z ]{0,8}").prop_map(move |(mut v, place, pad)| {
        let planted = format!("{pad} {secret} {pad}");
        match (&mut v, place) {
            (Value::Object(m), 0) => {
                m.insert(planted, json!(1));
            }
            (Value::Object(m), _) => {
                m.insert("planted".into(), Value::String(planted));
            }
            (Value::Array(a), _) => a.push(json!({"nested": [planted]})),
            _ => v = json!({"wrapped": v, "s": planted}),
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_planted_secret_survives_anywhere(v in secret().prop_flat_map(|s| (Just(s.clone()), json_with(s)))) {
        let (secret, mut value) = v;
        let redactor = default();
        let report = redactor.redact_json(&mut value);
        prop_assert!(report.total >= 1);
        prop_assert!(!value.to_string().contains(&secret), "{} survived in {}", secret, value);
    }

    #[test]
    fn redaction_is_idempotent_and_keeps_the_shape(v in secret().prop_flat_map(json_with)) {
        let redactor = default();
        let mut once = v.clone();
        redactor.redact_json(&mut once);
        let mut twice = once.clone();
        let second = redactor.redact_json(&mut twice);
        prop_assert_eq!(second.total, 0);
        prop_assert_eq!(&once, &twice);
        fn shape(v: &Value) -> Value {
            match v {
                Value::String(_) => json!("s"),
                Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
                Value::Object(m) => Value::Array(m.values().map(shape).collect()),
                other => other.clone(),
            }
        }
        prop_assert_eq!(shape(&v), shape(&once));
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        let r = everything();
        let once = r.redact_str(&s).0.into_owned();
        let (twice, report) = r.redact_str(&once);
        prop_assert_eq!(report.total, 0, "not idempotent on {:?}", s);
        prop_assert_eq!(once.as_str(), twice.as_ref());
    }
}
