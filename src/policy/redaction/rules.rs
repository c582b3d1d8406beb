//! The built-in secret and PII patterns. Written for this project in the spirit of gitleaks'
//! rules; ASCII-only classes throughout, compiled with Unicode off where it matters
//! (measured: Unicode classes are ~100× slower on this kind of pattern).

/// How a match is confirmed before it is replaced; cuts false positives, because a false
/// positive corrupts a tool's output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Confirm {
    Always,
    /// Capture group 1 must have at least this Shannon entropy (bits per char).
    Entropy(f64),
    /// The digits must pass the Luhn check (payment cards).
    Luhn,
}

pub struct BuiltIn {
    pub id: &'static str,
    pub pattern: &'static str,
    pub confirm: Confirm,
    /// Replace only capture group 1 (keep the keyword before it) instead of the whole match.
    pub group: bool,
}

const fn rule(id: &'static str, pattern: &'static str) -> BuiltIn {
    BuiltIn { id, pattern, confirm: Confirm::Always, group: false }
}

pub const SECRETS: &[BuiltIn] = &[
    rule(
        "private-key",
        r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY( BLOCK)?-----(?:[A-Za-z0-9+/=\s:,.\-]{0,20000}?-----END[ A-Z0-9]{0,40}PRIVATE KEY( BLOCK)?-----)?",
    ),
    rule("aws-access-key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    BuiltIn {
        id: "aws-secret-key",
        pattern: r#"(?i)aws[_\- ]?(?:secret)?[_\- ]?(?:access)?[_\- ]?key["']?\s{0,4}[:=]\s{0,4}["']?([A-Za-z0-9/+]{40})\b"#,
        confirm: Confirm::Entropy(3.5),
        group: true,
    },
    rule("github-token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"),
    rule("github-pat", r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    rule("gitlab-token", r"\bglpat-[A-Za-z0-9_\-]{20,}\b"),
    rule("slack-token", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}\b"),
    rule("stripe-key", r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b"),
    rule("google-api-key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    rule("anthropic-key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}\b"),
    rule("openai-key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{32,}\b"),
    rule("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    rule(
        "connection-string",
        r"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql)://[A-Za-z0-9._%~!$&'()*+,;=\-]*:[A-Za-z0-9._%~!$&'()*+,;=\-]+@",
    ),
    BuiltIn {
        id: "bearer-token",
        pattern: r"(?i)\bbearer\s+([A-Za-z0-9._~+/\-]{20,}=*)",
        confirm: Confirm::Entropy(3.0),
        group: true,
    },
    BuiltIn {
        id: "generic-secret",
        pattern: r#"(?i)(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|auth[_\-]?key|client[_\-]?secret|private[_\-]?key)["']?\s{0,4}[:=]\s{0,4}["']?([A-Za-z0-9+/=_\-.!@#$%^&*]{16,})"#,
        confirm: Confirm::Entropy(3.5),
        group: true,
    },
];

pub const PII: &[BuiltIn] = &[
    rule("email", r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}\b"),
    BuiltIn { id: "credit-card", pattern: r"\b\d(?:[ \-]?\d){12,18}\b", confirm: Confirm::Luhn, group: false },
    rule("phone", r"(?:\+[1-9][0-9]{7,14}\b|\(\d{3}\)\s?\d{3}-\d{4}\b|\b\d{3}-\d{3}-\d{4}\b)"),
];

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / len).map(|p| -p * p.log2()).sum()
}

pub fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}
