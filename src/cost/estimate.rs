//! Token estimators: how many model tokens a payload is likely to be, without a tokenizer.
//!
//! The gateway does not know which model reads a tool's output, so it cannot count tokens
//! exactly; an estimate is enough to compare calls, sessions and principals and to price them.
//! Two estimators, chosen in `[cost] estimator`:
//!
//! - `bytes_per_token` (default): `ceil(bytes / bytes_per_token)`, 4 bytes per token unless
//!   configured. The usual rule of thumb for English text and JSON under BPE tokenizers; cheap.
//! - `char_classes`: counts runs of character classes the way BPE tokenizers split them:
//!   ASCII letters `ceil(run / 5)`, digits `ceil(run / 3)` (numbers split in groups of up to
//!   three), ASCII punctuation `ceil(run / 3)` (JSON's `":"`, `"},{"` merge), a single space free
//!   (it joins the next word), any other whitespace run 1, every other character 1 (CJK text is
//!   about a token per character, where bytes/4 would say 0.75). Closer than bytes/4 for
//!   non-Latin text and number-heavy output; still an estimate.
//!
//! A new estimator implements [`TokenEstimator`] and gets a name in [`EstimatorKind`].

use serde::Deserialize;

/// Estimates the tokens of a text. Implementations are pure and cheap (one pass, no allocation).
pub trait TokenEstimator: Send + Sync + std::fmt::Debug {
    /// The name used in config and shown to operators.
    fn name(&self) -> &'static str;
    /// Estimated tokens of `text` (0 for empty text).
    fn estimate(&self, text: &str) -> u64;
}

/// Which estimator `[cost] estimator` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimatorKind {
    #[default]
    BytesPerToken,
    CharClasses,
}

/// `ceil(bytes / n)`.
#[derive(Debug, Clone, Copy)]
pub struct BytesPerToken(pub u32);

impl TokenEstimator for BytesPerToken {
    fn name(&self) -> &'static str {
        "bytes_per_token"
    }
    fn estimate(&self, text: &str) -> u64 {
        (text.len() as u64).div_ceil(u64::from(self.0.max(1)))
    }
}

/// Runs of character classes (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct CharClasses;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Punct,
    Space,
    Other,
}

fn class(c: char) -> Class {
    match c {
        'a'..='z' | 'A'..='Z' => Class::Letter,
        '0'..='9' => Class::Digit,
        c if c.is_ascii_punctuation() => Class::Punct,
        c if c.is_whitespace() => Class::Space,
        _ => Class::Other,
    }
}

/// Tokens of one run of `len` characters of `class` (`single_space`: the run is exactly " ").
fn run_tokens(class: Class, len: u64, single_space: bool) -> u64 {
    match class {
        Class::Letter => len.div_ceil(5),
        Class::Digit | Class::Punct => len.div_ceil(3),
        Class::Space if single_space => 0,
        Class::Space => 1,
        Class::Other => len,
    }
}

impl TokenEstimator for CharClasses {
    fn name(&self) -> &'static str {
        "char_classes"
    }
    fn estimate(&self, text: &str) -> u64 {
        let mut tokens = 0u64;
        let mut run: Option<(Class, u64, bool)> = None;
        for c in text.chars() {
            let k = class(c);
            match &mut run {
                Some((current, len, only_space)) if *current == k => {
                    *len += 1;
                    *only_space = false;
                }
                _ => {
                    if let Some((current, len, only_space)) = run {
                        tokens = tokens.saturating_add(run_tokens(current, len, only_space));
                    }
                    run = Some((k, 1, c == ' '));
                }
            }
        }
        if let Some((current, len, only_space)) = run {
            tokens = tokens.saturating_add(run_tokens(current, len, only_space));
        }
        tokens
    }
}

/// The estimator a config names.
pub fn build(kind: EstimatorKind, bytes_per_token: u32) -> Box<dyn TokenEstimator> {
    match kind {
        EstimatorKind::BytesPerToken => Box::new(BytesPerToken(bytes_per_token)),
        EstimatorKind::CharClasses => Box::new(CharClasses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_token_rounds_up() {
        let four = BytesPerToken(4);
        assert_eq!(four.estimate(""), 0);
        assert_eq!(four.estimate("a"), 1);
        assert_eq!(four.estimate("abcd"), 1);
        assert_eq!(four.estimate("abcde"), 2);
        // Bytes, not characters: "é" is two bytes, "日本" six.
        assert_eq!(BytesPerToken(1).estimate("é"), 2);
        assert_eq!(four.estimate("日本"), 2);
        assert_eq!(BytesPerToken(3).estimate(r#"{"message":"hello"}"#), 7);
        // A zero divisor (not accepted by config) still cannot panic.
        assert_eq!(BytesPerToken(0).estimate("abc"), 3);
    }

    #[test]
    fn char_classes_counts_runs() {
        let e = CharClasses;
        assert_eq!(e.estimate(""), 0);
        // Nine short words (a free single space before each) and a full stop.
        assert_eq!(e.estimate("The quick brown fox jumps over the lazy dog."), 10);
        // Letters by fives, digits and punctuation by threes.
        assert_eq!(e.estimate("abcdef"), 2);
        assert_eq!(e.estimate("1234567"), 3);
        assert_eq!(e.estimate(r#"":""#), 1);
        assert_eq!(e.estimate(r#"{"message":"hello"}"#), 1 + 2 + 1 + 1 + 1);
        // Other whitespace runs count once; every non-ASCII character counts.
        assert_eq!(e.estimate("a\n\nb"), 3);
        assert_eq!(e.estimate("a  b"), 3);
        assert_eq!(e.estimate("日本語"), 3);
        assert_eq!(e.estimate("café"), 2);
    }

    #[test]
    fn both_named() {
        assert_eq!(build(EstimatorKind::BytesPerToken, 4).name(), "bytes_per_token");
        assert_eq!(build(EstimatorKind::CharClasses, 4).name(), "char_classes");
    }
}
