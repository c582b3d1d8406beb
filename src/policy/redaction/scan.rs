//! One redaction pass of the secret, PII and custom rules over one string.
//!
//! Cost follows keyword hits, not string size:
//! 1. Every rule's keywords are found in one search (ASCII case-insensitive): a packed (SIMD,
//!    Teddy) searcher over an ASCII-lowercased copy kept per thread, ~3x faster than a
//!    case-insensitive automaton on this machine; strings under [`SHORT`] bytes go to that
//!    automaton directly, as there the copy and setup cost more than they save.
//! 2. A rule whose matches start with its keyword (most built-ins) runs as an anchored search
//!    at each hit, which gives up within a few bytes where there is no secret. A rule whose
//!    match can start before its keyword (email: the `@`) runs unanchored in a window from
//!    `before` bytes ahead of the hit to [`WINDOW`] bytes past it; a match that reaches the
//!    window's end is searched again over the whole string, so it is never cut short. Custom
//!    rules run over the whole string when one of their keywords occurs.
//! 3. Rules without keywords run over the whole string when a `RegexSet` says they match.
//!
//! Matches of all rules are collected first; where two overlap, the earlier rule wins, and the
//! string is rebuilt once.

use super::Report;
use super::rules::{Check, Groups};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, packed};
use regex::RegexSet;
use regex_automata::{Anchored, Input, meta};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

/// Bytes searched past a keyword by window rules. Every built-in rule completes a match within it.
const WINDOW: usize = 256;
/// A window match ending this close to its window's end may have been cut short by it.
const MARGIN: usize = 64;
/// Strings up to this size are lowercased into a per-thread buffer that is kept.
const KEPT_BUFFER: usize = 64 * 1024;
/// Strings shorter than this are searched for keywords without the lowercased copy.
const SHORT: usize = 64;

/// Where a rule's regex runs, relative to its keywords.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    /// Its matches start with the keyword: an anchored search at each hit.
    AtKeyword,
    /// Its matches can start up to this many bytes before the keyword.
    Before(usize),
    /// Anywhere in a string that has one of its keywords, or (no keywords) that its regex matches.
    Anywhere,
}

pub struct Rule {
    pub id: String,
    pub pattern: String,
    pub regex: meta::Regex,
    pub check: Option<Check>,
    pub replacement: String,
    pub anchor: Anchor,
}

struct Finder {
    /// ASCII case-insensitive, leftmost-first: short strings, and every string when there are
    /// more keywords than the packed searcher takes.
    automaton: AhoCorasick,
    /// The same keywords lowercased, leftmost-first, over a lowercased copy: long strings.
    packed: Option<packed::Searcher>,
}

pub struct Scanner {
    pub rules: Vec<Rule>,
    finder: Option<Finder>,
    /// (rule, offset) pairs to try when keyword `i` is reported at `p`: the keyword's own rules
    /// at `p`, and the rules of every keyword a leftmost-first search can hide behind it, at the
    /// offset where that keyword would start: longer ones starting the same way (`sk-ant-`
    /// behind `sk-`), ones inside it, and ones starting inside it and running past its end.
    keyword_rules: Vec<Vec<(usize, usize)>>,
    max_keyword_len: usize,
    unkeyed_set: Option<RegexSet>,
    unkeyed: Vec<usize>,
    /// Strings shorter than this cannot match any rule.
    min_len: usize,
}

impl Scanner {
    /// `keywords`: (keyword, rule index) pairs; rules with none of them are "unkeyed".
    pub fn new(rules: Vec<Rule>, keywords: &[(String, usize)], min_len: usize) -> Result<Scanner, String> {
        let mut by_word: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (word, rule) in keywords {
            by_word.entry(word.to_ascii_lowercase()).or_default().push(*rule);
        }
        let words: Vec<&String> = by_word.keys().collect();
        let keyword_rules = words
            .iter()
            .map(|w| {
                let mut tries: Vec<(usize, usize)> = Vec::new();
                for o in &words {
                    let rules = &by_word[o.as_str()];
                    let mut offsets: Vec<usize> = w.match_indices(o.as_str()).map(|(i, _)| i).collect();
                    if o.starts_with(w.as_str()) {
                        offsets.push(0);
                    }
                    let (w, o) = (w.as_bytes(), o.as_bytes());
                    offsets.extend((1..w.len().min(o.len())).filter(|&n| w.ends_with(&o[..n])).map(|n| w.len() - n));
                    tries.extend(offsets.iter().flat_map(|&off| rules.iter().map(move |&r| (r, off))));
                }
                tries.sort_unstable();
                tries.dedup();
                tries
            })
            .collect();
        let finder = if words.is_empty() {
            None
        } else {
            let mut packed = packed::Config::new().match_kind(packed::MatchKind::LeftmostFirst).builder();
            words.iter().for_each(|w| {
                packed.add(w);
            });
            let automaton = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&words)
                .map_err(|e| format!("redaction keywords: {e}"))?;
            Some(Finder { automaton, packed: packed.build() })
        };
        let unkeyed: Vec<usize> = (0..rules.len()).filter(|&i| !keywords.iter().any(|k| k.1 == i)).collect();
        let unkeyed_set = if unkeyed.is_empty() {
            None
        } else {
            let set = RegexSet::new(unkeyed.iter().map(|&i| rules[i].pattern.as_str()));
            Some(set.map_err(|e| format!("redaction rules: {e}"))?)
        };
        let max_keyword_len = words.iter().map(|w| w.len()).max().unwrap_or(0);
        Ok(Scanner { rules, finder, keyword_rules, max_keyword_len, unkeyed_set, unkeyed, min_len })
    }

    /// One pass over `s`: `Some(new text)` when any rule replaced something.
    pub fn apply(&self, s: &str, report: &mut Report) -> Option<String> {
        if s.len() < self.min_len || self.rules.is_empty() {
            return None;
        }
        let mut starts: Vec<(usize, usize)> = Vec::new(); // (rule, anchored search start)
        let mut windows: Vec<(usize, usize, usize)> = Vec::new(); // (rule, start, end)
        self.keyword_hits(s, |word, start, end| {
            for &(rule, offset) in &self.keyword_rules[word] {
                match self.rules[rule].anchor {
                    Anchor::AtKeyword => starts.push((rule, start + offset)),
                    Anchor::Before(before) => {
                        let to = (end + self.max_keyword_len + WINDOW).min(s.len());
                        windows.push((
                            rule,
                            floor_boundary(s, (start + offset).saturating_sub(before)),
                            ceil_boundary(s, to),
                        ));
                    }
                    Anchor::Anywhere => windows.push((rule, 0, s.len())),
                }
            }
        });
        if let Some(set) = &self.unkeyed_set {
            windows.extend(set.matches(s).iter().map(|i| (self.unkeyed[i], 0, s.len())));
        }
        if starts.is_empty() && windows.is_empty() {
            return None;
        }
        let mut spans: Vec<(usize, Range<usize>)> = Vec::new();
        starts.sort_unstable();
        starts.dedup();
        let mut frontier = (usize::MAX, 0); // (rule, end of its last match)
        for &(rule, at) in &starts {
            if frontier.0 == rule && at < frontier.1 || !s.is_char_boundary(at) {
                continue;
            }
            let input = Input::new(s).range(at..).anchored(Anchored::Yes);
            if let Some(end) = self.confirm(rule, s, input, &mut spans) {
                frontier = (rule, end);
            }
        }
        windows.sort_unstable();
        let mut regions: Vec<Range<usize>> = Vec::new();
        for (i, &(rule, start, end)) in windows.iter().enumerate() {
            match regions.last_mut() {
                Some(last) if start <= last.end => last.end = last.end.max(end),
                _ => regions.push(start..end),
            }
            if windows.get(i + 1).is_none_or(|next| next.0 != rule) {
                self.search_regions(rule, s, &regions, &mut spans);
                regions.clear();
            }
        }
        self.replace(s, spans, report)
    }

    /// Calls `hit(keyword, start, end)` for each keyword occurrence (ASCII case-insensitive).
    fn keyword_hits(&self, s: &str, mut hit: impl FnMut(usize, usize, usize)) {
        let Some(finder) = &self.finder else { return };
        let Some(packed) = finder.packed.as_ref().filter(|_| s.len() >= SHORT) else {
            finder.automaton.find_iter(s).for_each(|m| hit(m.pattern().as_usize(), m.start(), m.end()));
            return;
        };
        let mut run =
            |lower: &[u8]| packed.find_iter(lower).for_each(|m| hit(m.pattern().as_usize(), m.start(), m.end()));
        thread_local! {
            static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        if s.len() <= KEPT_BUFFER {
            LOWER.with_borrow_mut(|buf| {
                buf.clear();
                buf.extend_from_slice(s.as_bytes());
                buf.make_ascii_lowercase();
                run(buf);
            });
        } else {
            run(&s.as_bytes().to_ascii_lowercase());
        }
    }

    /// Searches `input` with `rule`; a match its check confirms becomes a span. Returns the end
    /// of the match (confirmed or not), or `None` when there is none.
    fn confirm(&self, rule: usize, s: &str, input: Input<'_>, spans: &mut Vec<(usize, Range<usize>)>) -> Option<usize> {
        let r = &self.rules[rule];
        let found = r.regex.search(&input)?;
        let replace = match r.check {
            None => Some(found.range()),
            Some(check) => {
                // Capture groups only for an actual match (rare), from where it starts.
                let mut caps = r.regex.create_captures();
                r.regex.search_captures(&input.clone().range(found.start()..input.end()), &mut caps);
                caps.is_match().then(|| check(s, &Groups::new(s, &caps))).flatten()
            }
        };
        if let Some(range) = replace.filter(|r| !r.is_empty()) {
            spans.push((rule, range));
        }
        Some(found.end())
    }

    /// Unanchored search for `rule` inside `regions` (sorted, disjoint).
    fn search_regions(&self, rule: usize, s: &str, regions: &[Range<usize>], spans: &mut Vec<(usize, Range<usize>)>) {
        let r = &self.rules[rule];
        let mut at = 0;
        for region in regions {
            at = at.max(region.start);
            while at < region.end {
                let Some(found) = r.regex.search(&Input::new(s).range(at..region.end)) else { break };
                // A match this close to the window's end may continue past it: search on.
                let cut = region.end < s.len() && found.end() + MARGIN >= region.end;
                let end = if cut { s.len() } else { region.end };
                let Some(end) = self.confirm(rule, s, Input::new(s).range(found.start()..end), spans) else { break };
                at = if end == found.start() { ceil_boundary(s, end + 1) } else { end };
            }
        }
    }

    /// Replaces `spans` (grouped by rule, in rule order); an overlap goes to the earlier rule.
    fn replace(&self, s: &str, mut spans: Vec<(usize, Range<usize>)>, report: &mut Report) -> Option<String> {
        spans.sort_by_key(|(rule, _)| *rule);
        let mut kept: BTreeMap<usize, (usize, usize)> = BTreeMap::new(); // start -> (end, rule)
        for (rule, r) in spans {
            let clash_before = kept.range(..=r.start).next_back().is_some_and(|(_, &(end, _))| end > r.start);
            let clash_after = kept.range(r.start..).next().is_some_and(|(&start, _)| start < r.end);
            if !clash_before && !clash_after {
                kept.insert(r.start, (r.end, rule));
            }
        }
        if kept.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(s.len());
        let mut counts = vec![0usize; self.rules.len()];
        let mut copied = 0;
        for (start, (end, rule)) in kept {
            out.push_str(&s[copied..start]);
            out.push_str(&self.rules[rule].replacement);
            copied = end;
            counts[rule] += 1;
        }
        out.push_str(&s[copied..]);
        for (rule, n) in counts.into_iter().enumerate() {
            report.add(&self.rules[rule].id, n);
        }
        Some(out)
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}
