//! Output redaction: secrets, optional PII and custom rules, terminal escapes, invisible Unicode,
//! and a size cap, for everything an upstream sends back (tool results, structured content,
//! resource contents, error messages and data) before it reaches a client or a log. Pure code:
//! no I/O; a [`Redactor`] is compiled once per policy and shared in an `Arc`.
//!
//! Per string: (1) escape sequences and invisible characters are removed first, so they cannot
//! split a secret into pieces no rule sees; (2) one packed (SIMD) search for every rule's
//! keywords (ASCII case-insensitive) finds where rules can match, and rules without keywords
//! are picked by a `RegexSet`; (3) only those rules' regexes run, near their keywords, each
//! match confirmed by the rule's check (entropy, Luhn, not-an-identifier) before it is replaced
//! by `[REDACTED:<rule-id>]` (see `scan`). A string nothing matched is returned borrowed.
//!
//! Rule ids (in reports and markers): secrets — `private-key`, `aws-access-key`, `github-token`,
//! `gitlab-token`, `slack-token`, `stripe-key`, `google-api-key`, `anthropic-key`, `openai-key`,
//! `jwt`, `connection-string` (the password only), `basic-auth`, `bearer-token`,
//! `aws-secret-key`, `generic-secret` (the value after `password=`, `api_key:`…, and string
//! values under such JSON keys, when ≥ 16 characters, ≥ 3.5 bits/char and not an identifier,
//! path or placeholder); PII — `email`, `credit-card`, `phone`; `terminal-escape` and
//! `invisible-unicode` (removed, not marked); custom rules under their own ids.
//!
//! Invariants (property-tested): redaction is idempotent (no replacement is matched again, and a
//! pass that changed something is repeated until nothing does), and `redact_json` keeps the
//! shape: same structure, same non-string values, same number of object members (two keys that
//! redact to the same text are told apart by a ` (2)` suffix).

mod heuristics;
mod rules;
mod scan;
pub mod strip;

use regex_automata::meta;
use scan::{Anchor, Rule, Scanner};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSet {
    /// Credentials: cloud and SaaS keys, tokens, private keys, JWTs, connection-string
    /// passwords, bearer tokens, high-entropy values after secret keywords. On by default.
    Secrets,
    /// Email addresses, payment card numbers (Luhn), phone numbers. Opt-in: false-positive prone.
    Pii,
    /// ANSI/VT escape sequences and C0/C1 controls other than `\t \n \r`. On by default.
    Terminal,
    /// Tag characters, zero-width and bidi controls. On by default.
    Invisible,
}

/// A policy-defined pattern (syntax of the `regex` crate: linear time, Unicode-aware unless the
/// pattern says `(?-u)`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Rule id in reports and in the default replacement: ASCII letters, digits, `-`, `_`.
    pub id: String,
    pub pattern: String,
    /// Optional prefilter: the pattern only runs on strings containing one of these
    /// (ASCII case-insensitive). Without keywords the rule runs on every string.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Replacement text; default `[REDACTED:<id>]`.
    pub replacement: Option<String>,
}

/// The `[redaction]` table of a policy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    #[serde(default = "default_sets")]
    pub sets: Vec<RuleSet>,
    #[serde(default, rename = "rule")]
    pub custom: Vec<CustomRule>,
    /// Output larger than this many bytes is withheld ([`Redactor::check_size`]).
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
}

fn default_sets() -> Vec<RuleSet> {
    vec![RuleSet::Secrets, RuleSet::Terminal, RuleSet::Invisible]
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig { sets: default_sets(), custom: Vec::new(), max_output_bytes: None }
    }
}

/// What one redaction pass removed, by rule id (never what the removed text was).
#[derive(Default, Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub total: usize,
    pub by_rule: BTreeMap<String, usize>,
}

impl Report {
    fn add(&mut self, rule: &str, n: usize) {
        if n > 0 {
            self.total += n;
            *self.by_rule.entry(rule.to_string()).or_default() += n;
        }
    }

    pub fn merge(&mut self, other: Report) {
        for (rule, n) in other.by_rule {
            self.add(&rule, n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

pub const TERMINAL_ESCAPE: &str = "terminal-escape";
pub const INVISIBLE_UNICODE: &str = "invisible-unicode";
/// At most this many rules (built-in and custom) in one policy.
const MAX_RULES: usize = 256;
/// A pass that changed a string is repeated (on its output) at most this often.
const MAX_PASSES: usize = 4;

pub struct Redactor {
    scanner: Scanner,
    secrets: bool,
    terminal: bool,
    invisible: bool,
    max_output_bytes: Option<usize>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.scanner.rules.iter().map(|r| r.id.as_str()).collect();
        f.debug_struct("Redactor")
            .field("rules", &ids)
            .field("terminal", &self.terminal)
            .field("invisible", &self.invisible)
            .field("max_output_bytes", &self.max_output_bytes)
            .finish()
    }
}

/// Every built-in rule id, whether or not its set is enabled (custom ids may not reuse them).
pub fn builtin_rule_ids() -> impl Iterator<Item = &'static str> {
    rules::SECRETS.iter().chain(rules::PII).map(|r| r.id).chain([TERMINAL_ESCAPE, INVISIBLE_UNICODE])
}

impl Redactor {
    /// Compiles `config`. Errors name the offending custom rule and say why.
    pub fn new(config: &RedactionConfig) -> Result<Redactor, String> {
        let has = |set| config.sets.contains(&set);
        if config.max_output_bytes == Some(0) {
            return Err("max_output_bytes must be at least 1".into());
        }
        let mut rules: Vec<Rule> = Vec::new();
        // (keyword, rule index); rules without keywords run when a `RegexSet` says they match.
        let mut keywords: Vec<(String, usize)> = Vec::new();
        let sets = [(RuleSet::Secrets, rules::SECRETS), (RuleSet::Pii, rules::PII)];
        for r in sets.iter().filter(|(set, _)| has(*set)).flat_map(|(_, list)| list.iter()) {
            // ASCII classes: as in Go RE2, and ~100x faster than Unicode ones for these patterns.
            let pattern = format!("(?-u:{})", r.pattern);
            let regex =
                meta::Regex::new(&pattern).unwrap_or_else(|e| panic!("built-in rule {} does not compile: {e}", r.id));
            keywords.extend(r.keywords.iter().map(|k| (k.to_string(), rules.len())));
            let anchor = if r.before == 0 { Anchor::AtKeyword } else { Anchor::Before(r.before) };
            let replacement = format!("[REDACTED:{}]", r.id);
            rules.push(Rule { id: r.id.into(), pattern, regex, check: r.check, replacement, anchor });
        }
        for c in &config.custom {
            let why = |reason: String| format!("redaction rule {:?}: {reason}", c.id);
            if c.id.is_empty() || !c.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(why("id must be non-empty ASCII letters, digits, - or _".into()));
            }
            if builtin_rule_ids().any(|b| b == c.id) || config.custom.iter().filter(|o| o.id == c.id).count() > 1 {
                return Err(why("id is already used by another rule".into()));
            }
            let limits = meta::Config::new().nfa_size_limit(Some(1 << 20)).hybrid_cache_capacity(4 << 20);
            let regex = meta::Regex::builder()
                .configure(limits)
                .build(&c.pattern)
                .map_err(|e| why(format!("invalid pattern: {e}")))?;
            if regex.is_match("") {
                return Err(why("pattern matches the empty string".into()));
            }
            if let Some(k) = c.keywords.iter().find(|k| k.is_empty() || k.len() > 64) {
                return Err(why(format!("keyword {k:?} must be 1 to 64 bytes")));
            }
            keywords.extend(c.keywords.iter().map(|k| (k.clone(), rules.len())));
            let replacement = c.replacement.clone().unwrap_or_else(|| format!("[REDACTED:{}]", c.id));
            let pattern = c.pattern.clone();
            rules.push(Rule { id: c.id.clone(), pattern, regex, check: None, replacement, anchor: Anchor::Anywhere });
        }
        if rules.len() > MAX_RULES {
            return Err(format!("redaction: at most {MAX_RULES} rules, got {}", rules.len()));
        }
        let min_len = if config.custom.is_empty() { rules::MIN_MATCH_LEN } else { 1 };
        let redactor = Redactor {
            scanner: Scanner::new(rules, &keywords, min_len)?,
            secrets: has(RuleSet::Secrets),
            terminal: has(RuleSet::Terminal),
            invisible: has(RuleSet::Invisible),
            max_output_bytes: config.max_output_bytes,
        };
        // A replacement that some rule redacts again would make redaction never settle.
        let is_custom = |id: &str| config.custom.iter().any(|c| c.id == id);
        for rule in &redactor.scanner.rules {
            let (_, report) = redactor.redact_str(&rule.replacement);
            if let Some(other) = report.by_rule.keys().next() {
                let culprit = if is_custom(other) { other.as_str() } else { rule.id.as_str() };
                return Err(format!(
                    "redaction rule {culprit:?}: the replacement {:?} of rule {:?} is itself redacted by {other:?}",
                    rule.replacement, rule.id
                ));
            }
        }
        Ok(redactor)
    }

    /// Output of `len` bytes may pass; `Err` says why it is withheld.
    pub fn check_size(&self, len: usize) -> Result<(), String> {
        match self.max_output_bytes {
            Some(max) if len > max => Err(format!("output of {len} bytes exceeds max_output_bytes ({max})")),
            _ => Ok(()),
        }
    }

    pub fn max_output_bytes(&self) -> Option<usize> {
        self.max_output_bytes
    }

    /// The ids of the rules that can appear in a [`Report`], in the order they run.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        ids.extend(self.terminal.then_some(TERMINAL_ESCAPE));
        ids.extend(self.invisible.then_some(INVISIBLE_UNICODE));
        ids.extend(self.scanner.rules.iter().map(|r| r.id.as_str()));
        ids
    }

    /// Redacts one string; borrows it back unchanged when nothing matched.
    pub fn redact_str<'a>(&self, s: &'a str) -> (Cow<'a, str>, Report) {
        let mut report = Report::default();
        let out = match self.redact_into(s, &mut report) {
            Some(owned) => Cow::Owned(owned),
            None => Cow::Borrowed(s),
        };
        (out, report)
    }

    /// Redacts every string in `v`, object keys included, in place; keeps the shape.
    pub fn redact_json(&self, v: &mut Value) -> Report {
        let mut report = Report::default();
        self.walk(v, &mut report);
        report
    }

    /// `Some(new text)` when anything was removed.
    fn redact_into(&self, s: &str, report: &mut Report) -> Option<String> {
        let mut text: Option<String> = None;
        if (self.terminal || self.invisible)
            && let Some((out, escapes, hidden)) = strip::strip(s, self.terminal, self.invisible)
        {
            report.add(TERMINAL_ESCAPE, escapes);
            report.add(INVISIBLE_UNICODE, hidden);
            text = Some(out);
        }
        for _ in 0..MAX_PASSES {
            match self.scanner.apply(text.as_deref().unwrap_or(s), report) {
                Some(next) => text = Some(next),
                None => break,
            }
        }
        text
    }

    /// Recursion is bounded: every frame was checked to nest at most `jsonrpc::strict::MAX_DEPTH` deep.
    fn walk(&self, v: &mut Value, report: &mut Report) {
        match v {
            Value::String(s) => {
                if let Some(out) = self.redact_into(s, report) {
                    *s = out;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.walk(i, report)),
            Value::Object(map) => {
                // Keys: rebuilt (in order) only when one changes, which is rare.
                let mut first_change = None;
                for (i, k) in map.keys().enumerate() {
                    if let Some(new) = self.redact_into(k, report) {
                        first_change = Some((i, new));
                        break;
                    }
                }
                match first_change {
                    None => {
                        for (k, val) in map.iter_mut() {
                            self.walk_member(k, val, report);
                        }
                    }
                    Some((first, new_key)) => {
                        let old = std::mem::take(map);
                        let mut new_key = Some(new_key);
                        for (i, (k, mut val)) in old.into_iter().enumerate() {
                            let key = match i.cmp(&first) {
                                std::cmp::Ordering::Less => k,
                                std::cmp::Ordering::Equal => new_key.take().expect("one first change"),
                                std::cmp::Ordering::Greater => self.redact_into(&k, report).unwrap_or(k),
                            };
                            // The key as it will be, so a second pass decides the same.
                            let key = unique_key(map, key);
                            self.walk_member(&key, &mut val, report);
                            map.insert(key, val);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// An object member: its value is walked; a string value under a key that names a secret
    /// (`"password"`, `"SecretAccessKey"`) is redacted whole when it looks generated.
    fn walk_member(&self, key: &str, val: &mut Value, report: &mut Report) {
        self.walk(val, report);
        if !self.secrets {
            return;
        }
        if let Value::String(s) = val
            && let Some(rule) = heuristics::secret_key_name(key)
            && heuristics::is_secret_value(s, 3.5)
        {
            report.add(rule, 1);
            *s = format!("[REDACTED:{rule}]");
        }
    }
}

/// `key`, or `key (2)`, `key (3)`… when `map` already has it: two members never merge.
fn unique_key(map: &serde_json::Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..).map(|n| format!("{key} ({n})")).find(|k| !map.contains_key(k)).expect("some suffix is free")
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
