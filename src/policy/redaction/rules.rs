//! The built-in secret and PII rules, written for this project in the spirit of gitleaks: each
//! rule has literal keywords (a rule's regex only runs on text that contains one of them,
//! ASCII case-insensitively), a pattern compiled with Unicode off (ASCII classes, as in Go RE2:
//! measured ~100x faster on this kind of pattern), and, where the pattern alone would hit
//! ordinary output, a check that confirms the match and picks the span to replace.
//!
//! Order matters: where two rules' matches overlap, the earlier rule's wins, so the specific
//! rules (a JWT after `Bearer`, a GitHub token in `api_key = …`) come before the generic ones.
//! `before` bounds how far ahead of its keyword a match can start: rules only run near keywords.

use super::heuristics::{entropy, is_pagination, is_secret_value, looks_human, luhn, until_next_parameter};
use regex_automata::util::captures::Captures;
use std::ops::Range;

/// Confirms a match (given the whole string and the match's groups) and returns the byte range
/// to replace, or `None` to leave it.
pub type Check = fn(&str, &Groups<'_>) -> Option<Range<usize>>;

/// The capture groups of one match.
pub struct Groups<'a> {
    hay: &'a str,
    caps: &'a Captures,
}

impl<'a> Groups<'a> {
    pub fn new(hay: &'a str, caps: &'a Captures) -> Groups<'a> {
        Groups { hay, caps }
    }
    pub fn get(&self, i: usize) -> Option<Group<'a>> {
        self.caps.get_group(i).map(|span| Group { hay: self.hay, range: span.range() })
    }
}

pub struct Group<'a> {
    hay: &'a str,
    range: Range<usize>,
}

impl<'a> Group<'a> {
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }
    pub fn start(&self) -> usize {
        self.range.start
    }
    pub fn end(&self) -> usize {
        self.range.end
    }
    pub fn as_str(&self) -> &'a str {
        &self.hay[self.range.clone()]
    }
}

pub struct BuiltIn {
    pub id: &'static str,
    pub pattern: &'static str,
    pub keywords: &'static [&'static str],
    /// How far before the start of its keyword a match can begin (0: the keyword starts it,
    /// and the rule runs as an anchored search at each keyword).
    pub before: usize,
    /// `None`: every match is replaced whole.
    pub check: Option<Check>,
}

/// The shortest text any built-in rule can match (`a@b.co`); shorter strings skip the rules.
pub const MIN_MATCH_LEN: usize = 6;

/// A keyword-context pattern: the key's last word, a separator (`=`, `:`, `:=`, `=>`, JSON's
/// `": "`), an optional quote, then the value.
macro_rules! keyed {
    ($key:literal, $value:literal) => {
        concat!($key, r#"["']?\s{0,4}(?::=|=>|[:=])\s{0,4}["']?"#, $value)
    };
}

pub const SECRETS: &[BuiltIn] = &[
    BuiltIn {
        id: "private-key",
        // The whole block through END; unterminated (truncated output): the BEGIN line and
        // the base64 and header lines after it. `\\[rn]`: keys in double-encoded JSON text.
        pattern: concat!(
            r"-{4,5} ?BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}",
            r"(?:[A-Za-z0-9+/=\s:,.\\\-]*?-{4,5} ?END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}",
            r"|(?:(?:\s|\\[rn])*(?:[A-Za-z0-9+/=]{16,}|(?:Proc-Type|DEK-Info|Comment|Version): [ -~]*))*)"
        ),
        keywords: &["-----begin", "---- begin"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "aws-access-key",
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        keywords: &["akia", "asia", "abia", "acca"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "github-token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "gitlab-token",
        pattern: r"\bgl(?:pat|dt|rt|ptt)-[A-Za-z0-9_\-]{20,}",
        keywords: &["glpat-", "gldt-", "glrt-", "glptt-"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "slack-token",
        pattern: r"\bxox[abeprs]-[A-Za-z0-9\-]{10,}",
        keywords: &["xox"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "stripe-key",
        pattern: r"\b[sr]k_live_[A-Za-z0-9]{20,}",
        keywords: &["sk_live_", "rk_live_"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "google-api-key",
        pattern: r"\bAIza[0-9A-Za-z_\-]{35}",
        keywords: &["aiza"],
        before: 0,
        check: Some(|hay, c| {
            let m = c.get(0)?;
            ends_run(hay, m.end(), |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-').then(|| m.range())
        }),
    },
    BuiltIn {
        id: "anthropic-key",
        pattern: r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
        keywords: &["sk-ant-"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "openai-key",
        pattern: r"\bsk-(?:(?:proj|svcacct|admin)-)?([A-Za-z0-9_\-]{32,})",
        keywords: &["sk-"],
        before: 0,
        // Generated keys mix cases; `sk-loading-spinner-container-…` class names do not.
        check: Some(|_, c| {
            let body = c.get(1)?.as_str().as_bytes();
            (body.iter().any(u8::is_ascii_uppercase) && body.iter().any(u8::is_ascii_lowercase))
                .then(|| c.get(0).map(|m| m.range()))?
        }),
    },
    BuiltIn {
        id: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        keywords: &["eyj"],
        before: 0,
        check: None,
    },
    BuiltIn {
        id: "connection-string",
        // Only the password is replaced: user, host and database stay readable.
        pattern: concat!(
            r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver)://",
            r"[A-Za-z0-9._%~!$&'()*+,;=\-]*:([A-Za-z0-9._%~!$&'()*+,;=@\-]+)@"
        ),
        keywords: &["postgres", "mysql", "mariadb", "mongodb", "redis", "amqp", "mssql", "sqlserver"],
        before: 0,
        check: Some(|_, c| c.get(1).map(|m| m.range())),
    },
    BuiltIn {
        id: "basic-auth",
        pattern: r"(?i)\bauthorization\s{0,4}:\s{0,4}basic\s+([A-Za-z0-9+/]{8,}={0,2})",
        keywords: &["authorization"],
        before: 0,
        check: Some(|_, c| c.get(1).map(|m| m.range())),
    },
    BuiltIn {
        id: "bearer-token",
        pattern: r"(?i)\bbearer\s+([A-Za-z0-9._~+/\-]{16,}=*)",
        keywords: &["bearer"],
        before: 0,
        check: Some(|_, c| {
            let v = c.get(1)?;
            (entropy(v.as_str()) >= 3.0 && !looks_human(v.as_str())).then(|| v.range())
        }),
    },
    BuiltIn {
        id: "aws-secret-key",
        pattern: keyed!(r"(?i)aws[_\-. ]?(?:secret)?[_\-. ]?(?:access)?[_\-. ]?key", r"([A-Za-z0-9/+]{40})"),
        keywords: &["aws"],
        before: 0,
        check: Some(|hay, c| {
            let v = c.get(1)?;
            let alone = ends_run(hay, v.end(), |b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+');
            (alone && entropy(v.as_str()) >= 3.5).then(|| v.range())
        }),
    },
    BuiltIn {
        id: "generic-secret",
        pattern: keyed!(
            r"(?i)(password|passwd|secret|token|(?:api|access|auth|private|encryption|signing)[_\-]?key)",
            r"([A-Za-z0-9+/=_.!@#$%^&*~\-]{16,})"
        ),
        keywords: &[
            "password",
            "passwd",
            "secret",
            "token",
            "apikey",
            "api_key",
            "api-key",
            "accesskey",
            "access_key",
            "access-key",
            "authkey",
            "auth_key",
            "auth-key",
            "privatekey",
            "private_key",
            "private-key",
            "encryptionkey",
            "encryption_key",
            "encryption-key",
            "signingkey",
            "signing_key",
            "signing-key",
        ],
        before: 0,
        check: Some(|hay, c| {
            let (word, value) = (c.get(1)?, c.get(2)?);
            let key: Vec<u8> = key_before(hay, word.start())
                .bytes()
                .chain(word.as_str().bytes())
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| b.to_ascii_lowercase())
                .collect();
            let secret = until_next_parameter(value.as_str());
            let range = value.start()..value.start() + secret.len();
            (!is_pagination(&key) && is_secret_value(secret, 3.5)).then_some(range)
        }),
    },
];

pub const PII: &[BuiltIn] = &[
    BuiltIn {
        id: "email",
        pattern: r"\b([A-Za-z0-9._%+\-]{1,64})@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.([A-Za-z]{2,24})\b",
        keywords: &["@"],
        before: 72,
        // `icon@2x.png` is a file and `git@github.com` an SSH user, not a person's address.
        check: Some(|_, c| {
            const FILES: [&str; 12] =
                ["png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "css", "js", "json", "txt", "md"];
            let tld = c.get(2)?.as_str().to_ascii_lowercase();
            (c.get(1)?.as_str() != "git" && !FILES.contains(&tld.as_str())).then(|| c.get(0).map(|m| m.range()))?
        }),
    },
    BuiltIn {
        id: "credit-card",
        // Issuer ranges start with 2–6 (so epoch-millisecond timestamps do not qualify), then Luhn.
        pattern: r"\b[2-6][0-9]{3}(?:[ \-]?[0-9]){9,15}\b",
        keywords: &[],
        before: 0,
        check: Some(|_, c| c.get(0).filter(|m| luhn(m.as_str())).map(|m| m.range())),
    },
    BuiltIn {
        id: "phone",
        // E.164, and NANP with a valid area code and exchange: +1 415 555 2671, (415) 555-2671,
        // 415-555-2671. Not after letters, digits or `+./-_` (versions, ids, arithmetic).
        pattern: concat!(
            r"(?:\+[1-9][0-9]{7,14}|\+1[ .\-]?\(?[2-9][0-9]{2}\)?[ .\-]?[2-9][0-9]{2}[ .\-]?[0-9]{4}",
            r"|\([2-9][0-9]{2}\) ?[2-9][0-9]{2}-[0-9]{4}|\b[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4})\b"
        ),
        keywords: &[],
        before: 0,
        check: Some(|hay, c| {
            let m = c.get(0)?;
            let before = hay.as_bytes()[..m.start()].last().copied().unwrap_or(b' ');
            (!before.is_ascii_alphanumeric() && !b"+./-_".contains(&before)).then(|| m.range())
        }),
    },
];

/// Does the run of `class` bytes end at `end` (nothing of the class follows)?
fn ends_run(hay: &str, end: usize, class: impl Fn(u8) -> bool) -> bool {
    hay.as_bytes().get(end).is_none_or(|&b| !class(b))
}

/// The identifier characters just before `start` (at most 64): the rest of a key whose last
/// word a keyword matched, as `nextPage` before `Token`.
fn key_before(hay: &str, start: usize) -> &str {
    let b = hay.as_bytes();
    let mut i = start;
    while i > 0 && start - i < 64 && (b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b'-' | b'.')) {
        i -= 1;
    }
    &hay[i..start]
}
