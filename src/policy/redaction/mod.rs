//! Output redaction: secrets, optional PII, terminal escapes, invisible Unicode, and a size cap,
//! applied to everything an upstream sends back before it reaches a client or a log.
//!
//! Cost stays flat as rules grow: one `RegexSet` pass finds which rules can match a string, and
//! only those rules run; a string no rule matches is not copied. Replacements are
//! `[REDACTED:<rule>]`, which no rule matches again, so redaction is idempotent.

mod rules;
pub mod strip;

use regex::{Regex, RegexSet};
use rules::{BuiltIn, Confirm};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSet {
    Secrets,
    Pii,
    Terminal,
    Invisible,
}

/// A policy-defined pattern (regex syntax of the `regex` crate, linear time).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    pub id: String,
    pub pattern: String,
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
}

fn default_sets() -> Vec<RuleSet> {
    vec![RuleSet::Secrets, RuleSet::Terminal, RuleSet::Invisible]
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig { sets: default_sets(), custom: Vec::new() }
    }
}

/// What one redaction pass removed, by rule id.
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
}

struct Rule {
    id: String,
    regex: Regex,
    confirm: Confirm,
    group: bool,
    replacement: String,
}

pub struct Redactor {
    set: RegexSet,
    rules: Vec<Rule>,
    terminal: bool,
    invisible: bool,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("rules", &self.rules.len()).finish()
    }
}

impl Redactor {
    pub fn new(config: &RedactionConfig) -> Result<Redactor, String> {
        let mut specs: Vec<(String, String, Confirm, bool, Option<String>)> = Vec::new();
        let mut add = |list: &[BuiltIn]| {
            for r in list {
                specs.push((r.id.into(), format!("(?-u){}", r.pattern), r.confirm, r.group, None));
            }
        };
        if config.sets.contains(&RuleSet::Secrets) {
            add(rules::SECRETS);
        }
        if config.sets.contains(&RuleSet::Pii) {
            add(rules::PII);
        }
        for c in &config.custom {
            if c.id.is_empty() || !c.id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                return Err(format!("redaction rule {:?}: id must be non-empty ASCII letters, digits, - or _", c.id));
            }
            Regex::new(&c.pattern).map_err(|e| format!("redaction rule {:?}: invalid pattern: {e}", c.id))?;
            specs.push((c.id.clone(), c.pattern.clone(), Confirm::Always, false, c.replacement.clone()));
        }
        let set = RegexSet::new(specs.iter().map(|s| s.1.as_str())).map_err(|e| format!("redaction rules: {e}"))?;
        let rules = specs
            .into_iter()
            .map(|(id, pattern, confirm, group, replacement)| {
                let regex = Regex::new(&pattern).map_err(|e| format!("redaction rule {id:?}: {e}"))?;
                let replacement = replacement.unwrap_or_else(|| format!("[REDACTED:{id}]"));
                Ok(Rule { id, regex, confirm, group, replacement })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Redactor {
            set,
            rules,
            terminal: config.sets.contains(&RuleSet::Terminal),
            invisible: config.sets.contains(&RuleSet::Invisible),
        })
    }

    /// Redacts one string; borrows it back unchanged when nothing matched.
    pub fn redact_str<'a>(&self, s: &'a str) -> (Cow<'a, str>, Report) {
        let mut report = Report::default();
        let mut text: Cow<'a, str> = Cow::Borrowed(s);
        if (self.terminal || self.invisible) && strip::needs_strip(&text, self.terminal, self.invisible) {
            let (out, escapes, hidden) = strip::strip(&text, self.terminal, self.invisible);
            report.add("terminal-escape", escapes);
            report.add("invisible-unicode", hidden);
            text = Cow::Owned(out);
        }
        if self.rules.is_empty() {
            return (text, report);
        }
        let matched = self.set.matches(&text);
        if !matched.matched_any() {
            return (text, report);
        }
        for index in matched.iter() {
            let rule = &self.rules[index];
            let mut count = 0;
            let replaced = rule.regex.replace_all(&text, |caps: &regex::Captures| {
                let whole = caps.get(0).expect("group 0").as_str();
                let target = if rule.group { caps.get(1).map(|m| m.as_str()).unwrap_or(whole) } else { whole };
                let confirmed = match rule.confirm {
                    Confirm::Always => true,
                    Confirm::Entropy(min) => rules::entropy(target) >= min,
                    Confirm::Luhn => rules::luhn(target),
                };
                if !confirmed {
                    return whole.to_string();
                }
                count += 1;
                if rule.group { whole.replacen(target, &rule.replacement, 1) } else { rule.replacement.clone() }
            });
            if count > 0 {
                report.add(&rule.id, count);
                text = Cow::Owned(replaced.into_owned());
            }
        }
        (text, report)
    }

    /// Redacts every string in `v`, object keys included, in place; the shape is kept.
    pub fn redact_json(&self, v: &mut Value) -> Report {
        let mut report = Report::default();
        self.walk(v, &mut report);
        report
    }

    /// Recursion is bounded: every frame was checked to nest at most `jsonrpc::strict::MAX_DEPTH` deep.
    fn walk(&self, v: &mut Value, report: &mut Report) {
        match v {
            Value::String(s) => {
                let (out, r) = self.redact_str(s);
                if let Cow::Owned(out) = out {
                    *s = out;
                }
                report.merge(r);
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.walk(i, report)),
            Value::Object(map) => {
                let keys_change = map.keys().any(|k| matches!(self.redact_str(k).0, Cow::Owned(_)));
                if keys_change {
                    let old = std::mem::take(map);
                    for (k, mut val) in old {
                        let (key, r) = self.redact_str(&k);
                        report.merge(r);
                        self.walk(&mut val, report);
                        map.insert(key.into_owned(), val);
                    }
                } else {
                    map.values_mut().for_each(|val| self.walk(val, report));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
