//! The checks that confirm a candidate before it is replaced. A false positive corrupts a tool's
//! output (a cursor that no longer pages, a code listing that no longer reads), so keyword-context
//! rules only fire on values that look random, not on identifiers, paths or placeholders.

/// Shannon entropy in bits per byte.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / len).map(|p| -p * p.log2()).sum()
}

/// 13–19 digits (separators ignored) that pass the Luhn checksum.
pub fn luhn(candidate: &str) -> bool {
    let digits = candidate.bytes().filter(u8::is_ascii_digit).map(|b| u32::from(b - b'0'));
    let (mut sum, mut n) = (0, 0);
    for (i, d) in digits.rev().enumerate() {
        sum += if i % 2 == 1 { [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][d as usize] } else { d };
        n += 1;
    }
    (13..=19).contains(&n) && sum % 10 == 0
}

/// Characters a keyword-context secret value may contain (the rules' value class): no
/// whitespace, quotes, brackets, `:`, `,`, `;` or `\`, so `[REDACTED:…]` never qualifies again.
pub fn is_value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/=_-.!@#$%^&*~".contains(&b)
}

/// `value` up to a query string's next parameter (`abc&state=x` → `abc`): a raw `&` may be
/// part of a password, but `&name=` starts the next parameter of a URL.
pub fn until_next_parameter(value: &str) -> &str {
    let b = value.as_bytes();
    for (i, _) in value.match_indices('&') {
        let name = b[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        if name > 0 && b.get(i + 1 + name) == Some(&b'=') {
            return &value[..i];
        }
    }
    value
}

/// Text a human put there rather than a generated secret: a placeholder (`your-token-here`,
/// `xxxx`, `${VAR}`), an identifier or member path (`process.env.OPENAI_API_KEY`,
/// `getApiKeyFromEnvironment`, `my-app-secret-name`), or a file path (`/home/runner/work`).
pub fn looks_human(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    const PLACEHOLDERS: [&str; 8] = ["example", "placeholder", "changeme", "your", "xxxx", "****", "${", "{{"];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    let segments: Vec<&str> = value.split(['.', '_', '-', '/']).filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => true,
        [one] => is_camel_case(one),
        many => many.iter().all(|s| is_word(s)),
    }
}

/// `lower`, `UPPER`, `Capitalized`, `camelCase`, or a short number (`v2`, `2024`).
fn is_word(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().all(u8::is_ascii_lowercase)
        || b.iter().all(u8::is_ascii_uppercase)
        || (b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_lowercase))
        || (b.len() <= 4 && b.iter().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()))
        || is_camel_case(s)
}

/// Letters only, starting with at least two lowercase, with capitals, each followed by a
/// lowercase letter (`getApiKeyFromEnv`, `nextPageToken`): how identifiers look, and random
/// strings rarely do.
fn is_camel_case(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[..2].iter().all(u8::is_ascii_lowercase)
        && b.iter().any(u8::is_ascii_uppercase)
        && b.iter().all(u8::is_ascii_alphabetic)
        && b.windows(2).all(|w| !w[0].is_ascii_uppercase() || w[1].is_ascii_lowercase())
        && !b[b.len() - 1].is_ascii_uppercase()
}

/// The rule a JSON object key names, when its string value is presumably a secret:
/// `aws-secret-key` for AWS secret access keys, `generic-secret` for keys ending in a secret
/// word (`password`, `client_secret`, `SessionToken`, `x-api-key`). Pagination keys
/// (`nextPageToken`, `continuation_token`, `cursor`) are not secrets.
pub fn secret_key_name(key: &str) -> Option<&'static str> {
    // Letters and digits only, lowercased, in a stack buffer: this runs for every object member.
    let mut buf = [0u8; 64];
    let mut len = 0;
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() {
            *buf.get_mut(len)? = b.to_ascii_lowercase();
            len += 1;
        } else if !b"_-. ".contains(&b) {
            return None;
        }
    }
    let norm = &buf[..len];
    const ENDINGS: [&[u8]; 9] = [
        b"password",
        b"passwd",
        b"secret",
        b"token",
        b"apikey",
        b"accesskey",
        b"authkey",
        b"privatekey",
        b"signingkey",
    ];
    if !ENDINGS.iter().any(|e| norm.ends_with(e)) || is_pagination(norm) {
        return None;
    }
    let aws = norm.windows(3).any(|w| w == b"aws") || norm.ends_with(b"secretaccesskey");
    Some(if aws { "aws-secret-key" } else { "generic-secret" })
}

/// Does a normalized (lowercase letters and digits) key name a pagination cursor?
pub fn is_pagination(normalized_key: &[u8]) -> bool {
    [&b"page"[..], b"next", b"cursor", b"continuation"].iter().any(|w| normalized_key.windows(w.len()).any(|x| x == *w))
}

/// A keyword-context value that should be redacted: long enough, all value characters,
/// random-looking (entropy), and not [`looks_human`].
pub fn is_secret_value(value: &str, min_entropy: f64) -> bool {
    (16..=4096).contains(&value.len())
        && value.bytes().all(is_value_byte)
        && entropy(value) >= min_entropy
        && !looks_human(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_and_luhn() {
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
        assert!(luhn("4111 1111 1111 1111") && luhn("4111-1111-1111-1111") && luhn("378282246310005"));
        assert!(!luhn("4111 1111 1111 1112") && !luhn("4111") && !luhn("41111111111111111111111"));
    }

    #[test]
    fn query_parameters_end_a_value() {
        assert_eq!(until_next_parameter("Zx9Qw8Er7Ty6&state=1&x=2"), "Zx9Qw8Er7Ty6");
        assert_eq!(until_next_parameter("Tr0ub4dor&3xQ9z!Lm2"), "Tr0ub4dor&3xQ9z!Lm2");
        assert_eq!(until_next_parameter("a&&b&=c&"), "a&&b&=c&");
    }

    #[test]
    fn human_text_is_told_from_generated_secrets() {
        for human in [
            "process.env.OPENAI_API_KEY",
            "settings.SECRET_KEY",
            "getApiKeyFromEnvironment",
            "YOUR_ACCESS_TOKEN_HERE",
            "my-app-secret-name-prod-2024",
            "/home/runner/work/project",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "xxxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(looks_human(human), "{human}");
        }
        for secret in [
            "Zx9Qw8Er7Ty6Ui5Op4As3Df2",
            "3f786850e387550fdab836ed7e6dc881de23001b",
            "123e4567-e89b-12d3-a456-426614174000",
            "kJ8s_Qp2-xLm9Rt4vWz7",
            "abcdefghkmnpqrstuvwxyzab",
        ] {
            assert!(!looks_human(secret), "{secret}");
        }
    }

    #[test]
    fn secret_key_names() {
        for (key, rule) in [
            ("password", "generic-secret"),
            ("client_secret", "generic-secret"),
            ("SessionToken", "generic-secret"),
            ("x-api-key", "generic-secret"),
            ("SecretAccessKey", "aws-secret-key"),
            ("aws_secret_access_key", "aws-secret-key"),
        ] {
            assert_eq!(secret_key_name(key), Some(rule), "{key}");
        }
        for key in [
            "nextPageToken",
            "continuation_token",
            "max_tokens",
            "token_count",
            "AccessKeyId",
            "key",
            "text",
            "token=[REDACTED:generic-secret]",
        ] {
            assert_eq!(secret_key_name(key), None, "{key}");
        }
    }
}
