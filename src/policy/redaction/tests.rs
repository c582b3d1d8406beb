//! Unit tests per rule (realistic positives and negatives), configuration errors, JSON walking.
//! The property tests are in `proptests.rs`.

use super::*;
use serde_json::json;

pub(super) fn with_sets(sets: &[RuleSet]) -> Redactor {
    Redactor::new(&RedactionConfig { sets: sets.to_vec(), ..RedactionConfig::default() }).unwrap()
}

pub(super) fn default() -> &'static Redactor {
    static DEFAULT: std::sync::LazyLock<Redactor> =
        std::sync::LazyLock::new(|| Redactor::new(&RedactionConfig::default()).unwrap());
    &DEFAULT
}

pub(super) fn everything() -> &'static Redactor {
    static ALL: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| {
        with_sets(&[RuleSet::Secrets, RuleSet::Pii, RuleSet::Terminal, RuleSet::Invisible])
    });
    &ALL
}

fn pii() -> &'static Redactor {
    static PII: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(|| with_sets(&[RuleSet::Pii]));
    &PII
}

const GHP: &str = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";

/// Each text is redacted by `rule`, and `gone` no longer appears in the output.
fn assert_redacted(r: &Redactor, cases: &[(&str, &str, &str)]) {
    for &(text, rule, gone) in cases {
        let (out, report) = r.redact_str(text);
        assert!(report.by_rule.contains_key(rule), "{rule} not found in {text:?}: {report:?} -> {out}");
        assert!(out.contains(&format!("[REDACTED:{rule}]")), "{out}");
        assert!(!out.contains(gone), "{gone:?} survived: {out}");
    }
}

fn assert_untouched(r: &Redactor, texts: &[&str]) {
    for text in texts {
        let (out, report) = r.redact_str(text);
        assert_eq!(report.total, 0, "{text:?} redacted: {report:?} -> {out}");
        assert!(matches!(out, Cow::Borrowed(_)), "unchanged text must not be copied");
    }
}

#[test]
fn provider_tokens_are_redacted_whole() {
    let openai = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk";
    assert_redacted(
        default(),
        &[
            ("key AKIAIOSFODNN7EXAMPLE here", "aws-access-key", "AKIAIOSFODNN7EXAMPLE"),
            ("session ASIAY34FZKBOKMUTVV7A,", "aws-access-key", "ASIAY34FZKBOKMUTVV7A"),
            (GHP, "github-token", "aBcDeFgHiJkLmNoPq"),
            ("GITHUB_TOKEN=ghs_16C7e42F292c6912E7710c838347Ae178B4a", "github-token", "16C7e42F292c"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567",
                "github-token",
                "11ABCDEFG",
            ),
            ("CI_TOKEN: glpat-xYz12_AbCdEfGhIjKlMnOp", "gitlab-token", "xYz12_AbCdEfGhIjKlMnOp"),
            ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack-token", "AbCdEfGhIjKlMnOp"),
            ("stripe: sk_live_4eC39HqLyjWDarjtT1zdp7dc.", "stripe-key", "4eC39HqLyjWDarjtT1zdp7dc"),
            ("rk_live_51H8aBcDeFgHiJkLmNoPqRsTu", "stripe-key", "51H8aBcDeFg"),
            ("maps key=AIzaSyA1234567890abcdefghijklmnopqrstuv", "google-api-key", "SyA1234567890"),
            ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345-_AAAA", "anthropic-key", "abcdefghijklmnop"),
            (openai, "openai-key", "Ab3dEf6hIj9kLm2n"),
            ("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", "openai-key", "T3BlbkFJ"),
        ],
    );
}

#[test]
fn structured_secrets_are_redacted() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\nZ1BjP5CE8Wn5Ys9MXLm2dFQ==\n-----END RSA PRIVATE KEY-----";
    let escaped =
        r"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----";
    let truncated = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk\nMHcCAQEEIBkg4L";
    assert_redacted(
        default(),
        &[
            (pem, "private-key", "MIIEpAIBAAKCAQEA"),
            (escaped, "private-key", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU"),
            (truncated, "private-key", "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk"),
            ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF0AAAAB\n", "private-key", "BEGIN PGP"),
            (jwt, "jwt", "dozjgNryP4J3jVmNHl0w5N"),
            ("postgres://admin:s3cr3tP4ss@db.internal:5432/app", "connection-string", "s3cr3tP4ss"),
            ("mongodb+srv://svc:Zq8%40pw@cluster0.example.net/db", "connection-string", "Zq8%40pw"),
            ("redis://:hunter2hunter2@cache:6379/0", "connection-string", "hunter2hunter2"),
            ("amqp://guest:p@ss@rabbit:5672", "connection-string", "p@ss"),
            ("mysql://root:pw@localhost/db", "connection-string", "root:pw@"),
            ("Authorization: Bearer abcDEF123ghiJKL456mnoPQR789", "bearer-token", "abcDEF123ghiJKL456"),
            ("authorization: Basic dXNlcjpwYXNzd29yZA==", "basic-auth", "dXNlcjpwYXNzd29yZA"),
        ],
    );
    // The connection string keeps its user, host and database readable.
    let (out, _) = default().redact_str("postgres://admin:s3cr3tP4ss@db.internal:5432/app");
    assert_eq!(out, "postgres://admin:[REDACTED:connection-string]@db.internal:5432/app");
    let (out, _) = default().redact_str(pem);
    assert_eq!(out, "[REDACTED:private-key]");
}

#[test]
fn keyword_context_secrets_are_redacted_and_the_key_kept() {
    assert_redacted(
        default(),
        &[
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYzYxW9Ak3Q2", "aws-secret-key", "wJalrXUtnFEMI"),
            ("api_key = \"Zx9Qw8Er7Ty6Ui5Op4As3Df2\"", "generic-secret", "Zx9Qw8Er7Ty6Ui5Op4As3Df2"),
            ("DB_PASSWORD=Tr0ub4dor&3xQ9z!Lm2", "generic-secret", "Tr0ub4dor"),
            ("{\"client_secret\": \"8f2kQ9xLm3vT7wRz1pYb\"}", "generic-secret", "8f2kQ9xLm3vT7wRz1pYb"),
            ("token := 3f786850e387550fdab836ed7e6dc881de23001b", "generic-secret", "3f786850e387550f"),
            ("'x-api-key' => 'kJ8s_Qp2-xLm9Rt4vWz7'", "generic-secret", "kJ8s_Qp2-xLm9Rt4vWz7"),
        ],
    );
    let (out, _) = default().redact_str("export API_TOKEN=Zx9Qw8Er7Ty6Ui5Op4As3Df2 # prod");
    assert_eq!(out, "export API_TOKEN=[REDACTED:generic-secret] # prod");
    let (out, _) = default().redact_str("GET /cb?access_token=Zx9Qw8Er7Ty6Ui5Op4As3Df2&expires_in=3600");
    assert_eq!(out, "GET /cb?access_token=[REDACTED:generic-secret]&expires_in=3600");
}

#[test]
fn ordinary_output_is_left_alone() {
    assert_untouched(
        default(),
        &[
            "commit 3f786850e387550fdab836ed7e6dc881de23001b",
            "id 123e4567-e89b-12d3-a456-426614174000",
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
            "password: hunter2",
            "token = aaaaaaaaaaaaaaaaaaaaaaaa",
            "password = correcthorsebattery",
            "const apiKey = process.env.OPENAI_API_KEY;",
            "let token = getAccessTokenFromCache(user);",
            "SECRET_KEY = settings.DJANGO_SECRET_KEY",
            "secret_name: my-app-secret-name-prod-2024",
            "Authorization: Bearer YOUR_ACCESS_TOKEN_HERE",
            "api_key=<your-api-key>",
            "{\"nextPageToken\": \"CiAKGjBpNDd2Nmp3Zml6aTUzMTRwZ2w0Yjc2ZnVqEg\", \"max_tokens\": 4096}",
            "https://example.com/callback?code=abc&state=xyz&token_type=bearer",
            "The bearer of this letter is known to us. Asia and Akia are names.",
            "<div class=\"sk-loading-spinner-container-wrapper-element\">",
            "postgres://localhost:5432/app and https://user@example.com/path",
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
            "The sum of 1 and 2 is 3. Time 1700000000000 ms.",
            "caf\u{e9} \u{65e5}\u{672c} \u{2713} emoji \u{1f389} \u{201c}quoted\u{201d}",
        ],
    );
}

#[test]
fn pii_is_opt_in_and_conservative() {
    let text = "mail bob@example.com card 4111 1111 1111 1111 not 4111 1111 1111 1112 call +14155552671";
    assert_eq!(default().redact_str(text).1.total, 0, "PII is off by default");
    let (out, report) = pii().redact_str(text);
    assert_eq!(report.by_rule.get("email"), Some(&1));
    assert_eq!(report.by_rule.get("credit-card"), Some(&1), "{out}");
    assert!(out.contains("4111 1111 1111 1112"), "{out}");
    assert_eq!(report.by_rule.get("phone"), Some(&1), "{out}");
    assert_redacted(
        pii(),
        &[
            ("Amex 3782-822463-10005 on file", "credit-card", "822463"),
            ("5555555555554444", "credit-card", "5555555555554444"),
            ("call (415) 555-2671 today", "phone", "555-2671"),
            ("tel: 415-555-2671", "phone", "415-555-2671"),
            ("+1 415 555 2671", "phone", "415 555 2671"),
            ("first.last+tag@mail.example.co.uk", "email", "first.last"),
        ],
    );
    assert_untouched(
        pii(),
        &[
            "icon@2x.png and logo@3x.webp",
            "git clone git@github.com:org/repo.git",
            "npm i lodash@4.17.21 @types/node",
            "epoch 1700000000000 and 1700000000001 and 1234567890123",
            "build 1.0.0+20240101123",
            "id-415-555-2671 and 123-456-7890",
            "uuid 123e4567-e89b-12d3-a456-426614174000",
        ],
    );
}

#[test]
fn terminal_and_invisible_sets_strip_and_count() {
    let (out, report) = default().redact_str("\u{1b}[31mred\u{1b}[0m pay\u{200b}pal \u{202e}txt \u{e0041}");
    assert_eq!(out, "red paypal txt ");
    assert_eq!(report.by_rule.get(TERMINAL_ESCAPE), Some(&2));
    assert_eq!(report.by_rule.get(INVISIBLE_UNICODE), Some(&3));
    // Hidden characters cannot split a secret past the rules: stripping runs first.
    let split = "AKIA\u{200b}IOSFODNN7\u{1b}[0mEXAMPLE";
    let (out, report) = default().redact_str(split);
    assert_eq!(out, "[REDACTED:aws-access-key]");
    assert_eq!(report.total, 3);
    // Each set is independent.
    assert_eq!(with_sets(&[RuleSet::Secrets]).redact_str("\u{1b}[1mx\u{200b}").1.total, 0);
}

#[test]
fn custom_rules_apply_with_keywords_and_replacements() {
    let rule = |id: &str, pattern: &str, keywords: &[&str], replacement: Option<&str>| CustomRule {
        id: id.into(),
        pattern: pattern.into(),
        keywords: keywords.iter().map(|k| k.to_string()).collect(),
        replacement: replacement.map(Into::into),
    };
    let config = RedactionConfig {
        sets: vec![RuleSet::Secrets],
        custom: vec![
            rule("internal-host", r"\b[a-z0-9]+\.corp\.internal\b", &["corp.internal"], None),
            rule("ticket", r"\bTCK-[0-9]{4,}\b", &[], Some("<ticket>")),
        ],
        max_output_bytes: None,
    };
    let r = Redactor::new(&config).unwrap();
    let (out, report) = r.redact_str("see db1.CORP.internal and db1.corp.internal, TCK-12345");
    assert_eq!(out, "see db1.CORP.internal and [REDACTED:internal-host], <ticket>");
    assert_eq!(report.total, 2);
    assert!(r.rule_ids().contains(&"ticket"));
}

#[test]
fn bad_configs_are_refused_with_the_rule_named() {
    let one = |id: &str, pattern: &str, replacement: Option<&str>| RedactionConfig {
        custom: vec![CustomRule {
            id: id.into(),
            pattern: pattern.into(),
            keywords: vec![],
            replacement: replacement.map(Into::into),
        }],
        ..RedactionConfig::default()
    };
    for (config, needle) in [
        (one("x", "(", None), "\"x\": invalid pattern"),
        (one("bad id", "a", None), "\"bad id\": id must be"),
        (one("github-token", "a", None), "\"github-token\": id is already used"),
        (one("e", "a*", None), "\"e\": pattern matches the empty string"),
        (one("greedy", "REDACTED", None), "\"greedy\": the replacement"),
        (one("leaky", "foo", Some("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789")), "\"leaky\": the replacement"),
        (one("huge", "[a-z]{1000}{1000}", None), "\"huge\": invalid pattern"),
    ] {
        let err = Redactor::new(&config).unwrap_err();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
    let mut twice = one("dup", "a", None);
    twice.custom.push(twice.custom[0].clone());
    assert!(Redactor::new(&twice).unwrap_err().contains("\"dup\": id is already used"));
}

#[test]
fn config_reads_from_policy_toml() {
    let config: RedactionConfig = toml::from_str(
        "sets = [\"secrets\", \"pii\"]\nmax_output_bytes = 1000\n[[rule]]\nid = \"t\"\npattern = \"TCK-[0-9]+\"\nkeywords = [\"tck-\"]\n",
    )
    .unwrap();
    assert_eq!(config.sets, vec![RuleSet::Secrets, RuleSet::Pii]);
    assert_eq!(config.custom[0].keywords, vec!["tck-"]);
    let r = Redactor::new(&config).unwrap();
    assert!(r.check_size(1000).is_ok());
    assert!(r.check_size(1001).unwrap_err().contains("1001"));
    assert_eq!(toml::from_str::<RedactionConfig>("").unwrap(), RedactionConfig::default());
    assert!(Redactor::new(&RedactionConfig::default()).unwrap().check_size(usize::MAX).is_ok());
    assert!(toml::from_str::<RedactionConfig>("[[rule]]\nid = \"t\"\npattern = \"x\"\nkeyword = [\"x\"]\n").is_err());
    assert!(toml::from_str::<RedactionConfig>("sets = [\"secret\"]").is_err());
}

#[test]
fn json_keys_values_and_nesting_are_covered() {
    let mut v = json!({
        "content": [{"type": "text", "text": format!("token {GHP}")}],
        "structuredContent": {GHP: {"deep": [GHP, 1, true, null, 2.5]}},
        "isError": false
    });
    let report = default().redact_json(&mut v);
    assert_eq!(report.by_rule.get("github-token"), Some(&3));
    assert!(!v.to_string().contains("aBcDeFgHiJ"));
    assert_eq!(v["isError"], false);
    assert_eq!(v["structuredContent"]["[REDACTED:github-token]"]["deep"][4], 2.5);
}

#[test]
fn keys_that_redact_alike_stay_separate_members() {
    let other = "ghp_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    let mut v = json!({"a": 0, GHP: 1, other: 2, "[REDACTED:github-token]": 3});
    default().redact_json(&mut v);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a", "[REDACTED:github-token]", "[REDACTED:github-token] (2)", "[REDACTED:github-token] (3)"]);
    assert_eq!(v["[REDACTED:github-token] (3)"], 3);
}

#[test]
fn values_under_secret_keys_are_redacted_when_they_look_generated() {
    let mut v = json!({"Credentials": {
        "AccessKeyId": "ASIAY34FZKBOKMUTVV7A",
        "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzYxW9Ak3Q2",
        "SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6",
        "Expiration": "2026-11-26T21:17:40Z"
    }, "password": "hunter2", "nextPageToken": "CiAKGjBpNDd2Nmp3Zml6aTUzMTRwZ2w0", "token": "getTokenFromCache"});
    let report = default().redact_json(&mut v);
    let c = &v["Credentials"];
    assert_eq!(c["SecretAccessKey"], "[REDACTED:aws-secret-key]");
    assert_eq!(c["SessionToken"], "[REDACTED:generic-secret]");
    assert_eq!(c["AccessKeyId"], "[REDACTED:aws-access-key]");
    assert_eq!(c["Expiration"], "2026-11-26T21:17:40Z");
    assert_eq!(v["password"], "hunter2", "too short to tell from a word");
    assert_eq!(v["nextPageToken"], "CiAKGjBpNDd2Nmp3Zml6aTUzMTRwZ2w0", "cursors are not secrets");
    assert_eq!(v["token"], "getTokenFromCache");
    assert_eq!(report.total, 3);
}

#[test]
fn mcp_image_content_is_not_mistaken_for_secrets() {
    // A pseudo-random 64 KB base64 blob, as an image result carries.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data: String = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % 64) as usize] as char
        })
        .collect();
    let mut v = json!({"content": [{"type": "image", "mimeType": "image/png", "data": data}]});
    assert_eq!(everything().redact_json(&mut v).total, 0);
}

#[test]
fn redactor_is_shareable_and_reports_its_rules() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Redactor>();
    let ids = default().rule_ids();
    assert_eq!(ids[..2], [TERMINAL_ESCAPE, INVISIBLE_UNICODE]);
    assert!(ids.contains(&"generic-secret") && !ids.contains(&"email"));
    assert!(everything().rule_ids().contains(&"phone"));
}

/// Found by `redaction_is_idempotent_and_keeps_the_shape`: a key that only redaction turns into
/// something ending in a secret word must not make the second pass redact its value.
#[test]
fn a_redacted_key_does_not_change_what_its_value_is() {
    let mut v =
        json!({"token=aAbAB0B1cgho_aAa000aAAAaaAAAAaaaA0adab0ieA2Cb3D4j": "aghr_aaaaa0A0AAAaaAaaAaAaaAbbij1kBWHlC2DE"});
    let first = default().redact_json(&mut v);
    assert_eq!(first.by_rule.get("generic-secret"), Some(&1), "{v}");
    assert!(default().redact_json(&mut v).is_empty(), "{v}");
}

/// Found by `provider_tokens_are_redacted_whole`: `sk-` and `sk-ant-` start at the same place,
/// and the keyword search reports only one of them; both rules must still run.
#[test]
fn keywords_hidden_behind_other_keywords_still_run_their_rules() {
    let (out, report) = default().redact_str("sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345-_AAAA");
    assert_eq!(out, "[REDACTED:anthropic-key]");
    assert_eq!(report.total, 1);
    // A keyword starting inside another and running past it: `…_key` then `key…`.
    let (out, _) = default().redact_str("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG+bPxRfiCYzYxW9Ak3Q2");
    assert_eq!(out, "aws_secret_access_key=[REDACTED:aws-secret-key]");
}
