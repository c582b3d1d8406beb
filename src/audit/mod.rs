//! The audit trail: one JSON line per decision and per call outcome, hash-chained so that
//! `tollgate audit verify` detects edited, deleted and reordered records. The only audit I/O
//! in the gateway is in this module.
//!
//! Chain: `hash = SHA-256(prev ‖ body)`, hex. The body is the record as serde_json writes it
//! without `hash` (fields in declaration order, nested JSON as received, no whitespace); the
//! line on disk is that body with `,"hash":"…"` added as its last member. A verifier takes the
//! line's bytes, strips that last member and hashes `prev` and the rest: it never has to
//! re-serialize, so it can be written in any language. A hash chain detects edits, deletions
//! and reordering inside the log, not a truncated tail nor a rewrite of the whole chain by
//! someone who can write the file (keyed chains and signed checkpoints are future work).

pub mod calls;
pub mod read;
pub mod security;
pub mod sink;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record. Field order is the serialization order and is part of the format.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuditRecord {
    /// RFC 3339 UTC time with microseconds.
    #[serde(default)]
    pub ts: String,
    /// Position in the log, continuing across rotated files.
    #[serde(default)]
    pub seq: u64,
    /// "admitted" (before forwarding), "completed" (outcome), "denied" (never forwarded),
    /// "security" (a request refused before any session: see `security.rs`) or "config".
    pub phase: String,
    /// Digest of the session id (the id itself is a bearer-like handle and stays out of logs).
    pub session: String,
    /// Who the call is attributed to (authenticated identity, or the local user for stdio).
    pub principal: String,
    /// The roles the call was decided with (from the verified credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The client's self-reported `clientInfo` ({name, version}); untrusted, for attribution only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Value>,
    /// The upstream server the call was routed to.
    pub upstream: String,
    /// The name the client called (namespaced).
    pub tool: String,
    /// The upstream's own name for the tool.
    pub upstream_tool: String,
    /// The client's JSON-RPC id, as sent.
    pub jsonrpc_id: String,
    /// The client's `params._meta` (correlation: progressToken, traceparent, vendor keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// W3C trace context from `_meta.traceparent`: the link back to the LLM turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Hex SHA-256 of the canonical arguments (sorted keys, no whitespace): proves equality
    /// with arguments an investigator holds without the log holding them.
    pub args_digest: String,
    /// The arguments after redaction, size-capped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_redacted: Option<Value>,
    /// "allow", "deny" or "would_deny" (dry run).
    pub decision: String,
    /// Id of the rule that decided (allowed or stopped) the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The upstream's policy is in dry-run mode: denials are recorded as "would_deny" and not enforced.
    #[serde(default)]
    pub dry_run: bool,
    /// "ok", "tool_error", "error", "timeout", "denied", "withheld", "upstream_unavailable", "cancelled".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// JSON-RPC error code of the reply, when the call ended in an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// Time in the gateway from receiving the call to its reply, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Size of the reply sent to the client, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_bytes: Option<usize>,
    /// How many redactions were applied to the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redactions: Option<usize>,
    /// Digest of the tool definition the call was decided against (its pin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_digest: Option<String>,
    /// For a call refused because its tool changed (a rug pull): the digest of the definition
    /// that was pinned; `tool_digest` is the one the upstream lists now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_digest: Option<String>,
    /// For a call that needed a person: which approval, who decided, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::policy::trail::ApprovalTrail>,
    /// Hash of the compiled policy that decided the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Random per call: links its "admitted" record to its "completed" one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Whether policy classified the tool as writing, and the tool's own `readOnlyHint`
    /// annotation (what `tollgate sessions replay` classifies it from again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// Every decision taken on the call, in layer order; `rule` above is the deciding one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trail: Vec<crate::policy::trail::TrailStep>,
    /// Bytes and estimated tokens of the client's `arguments` and of the reply's `result`/`error`
    /// (see `crate::cost`; `result_bytes` is the whole reply). On the call's last record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    /// What the call cost, in micro-units of `currency`, and the price that applied
    /// (`cost.price[N]`); present only when a price matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// On a "security" record: how many events of its kind so far (records are written at
    /// 1, 2, 4, 8, … so a flood stays visible without flooding the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// `hash` of the previous record in the log (`GENESIS` for the first); filled by the sink.
    #[serde(default)]
    pub prev: String,
    /// Hex SHA-256 of `prev` followed by this line without `hash` (see the module doc); filled by the sink.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// Hex SHA-256 of `prev` followed by `body`.
pub fn chain_hash(prev: &str, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(body.as_bytes());
    crate::hex::encode(&h.finalize())
}

/// Fills `record.hash` (from `record.prev` and the body) and answers the line to write, without
/// its newline.
pub fn seal(record: &mut AuditRecord) -> Result<String, String> {
    record.hash.clear();
    let mut line = serde_json::to_string(record).map_err(|e| format!("cannot serialize audit record: {e}"))?;
    if !line.ends_with('}') {
        return Err("audit record did not serialize as an object".into());
    }
    record.hash = chain_hash(&record.prev, &line);
    // The body becomes the line in place: `}` gives way to the hash member (room for it and the
    // newline the sink adds reserved at once).
    line.pop();
    line.reserve(record.hash.len() + 12);
    line.push_str(",\"hash\":\"");
    line.push_str(&record.hash);
    line.push_str("\"}");
    Ok(line)
}

/// Splits a line into the hashed body and the stored hash.
pub fn unseal(line: &str) -> Option<(String, &str)> {
    let at = line.rfind(",\"hash\":\"")?;
    let hash = line[at + 9..].strip_suffix("\"}")?;
    Some((format!("{}}}", &line[..at]), hash))
}

/// A short, non-reversible handle for a session id.
pub fn session_handle(session_id: &str) -> String {
    chain_hash("session", session_id)[..16].to_string()
}

/// Below this, [`cap`] cannot describe what it removed and answers `null`.
pub const CAP_MIN: usize = 24;

/// Caps a JSON value (already redacted) for `args_redacted`: the answer serializes to at most
/// `max` bytes (for `max >= CAP_MIN`) and is the value itself when that fits. Otherwise it
/// keeps the shape as far as it can: long strings (keys too) are cut and marked
/// `…[N bytes]`, arrays and objects keep their first members and say how many were dropped,
/// deep nesting is cut; if even that is too big, the value becomes a string giving its size.
pub fn cap(value: &Value, max: usize) -> Value {
    let size = value.to_string().len();
    if size <= max {
        return value.clone();
    }
    fn cut(s: &str, keep: usize) -> String {
        if s.len() <= keep {
            return s.to_string();
        }
        let mut end = keep;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…[{} bytes]", &s[..end], s.len())
    }
    fn shorten(v: &Value, keep: usize, items: usize, depth: usize) -> Value {
        match v {
            Value::String(s) => Value::String(cut(s, keep)),
            Value::Array(_) | Value::Object(_) if depth == 0 => Value::String("…[nested]".into()),
            Value::Array(a) => {
                let mut out: Vec<Value> = a.iter().take(items).map(|i| shorten(i, keep, items, depth - 1)).collect();
                if a.len() > items {
                    out.push(Value::String(format!("…[{} more]", a.len() - items)));
                }
                Value::Array(out)
            }
            Value::Object(m) => {
                let mut out: serde_json::Map<String, Value> =
                    m.iter().take(items).map(|(k, v)| (cut(k, keep), shorten(v, keep, items, depth - 1))).collect();
                if m.len() > items {
                    out.insert("…".into(), Value::String(format!("{} more keys", m.len() - items)));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
    let (mut keep, mut items, mut depth) = (256, 32, 16);
    loop {
        let out = shorten(value, keep, items, depth);
        if out.to_string().len() <= max {
            return out;
        }
        if keep <= 8 && items <= 1 && depth <= 1 {
            break;
        }
        (keep, items, depth) = ((keep / 2).max(8), (items / 2).max(1), (depth / 2).max(1));
    }
    let summary = Value::String(format!("…[{size} bytes]"));
    if summary.to_string().len() <= max { summary } else { Value::Null }
}

/// RFC 3339 UTC with microseconds, from the system clock.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(now.as_secs() as i64, now.subsec_micros())
}

/// RFC 3339 UTC with microseconds for a time in milliseconds since the Unix epoch.
pub fn rfc3339_from_ms(ms: u64) -> String {
    format_rfc3339((ms / 1000) as i64, (ms % 1000) as u32 * 1000)
}

fn format_rfc3339(secs: i64, micros: u32) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as records carry it
/// (`2025-01-02T03:04:05.123456Z`; fraction optional, `Z` or `+00:00`). None for anything else,
/// including times before 1970: record times are evidence and are not guessed at.
pub fn parse_rfc3339_ms(ts: &str) -> Option<u64> {
    parse_rfc3339_us(ts).map(|us| us / 1000)
}

/// [`parse_rfc3339_ms`] in microseconds (the precision records are written with).
pub fn parse_rfc3339_us(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = ts.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &ts[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Six places: the first six digits, padded; finer digits are dropped.
        let first6: String = frac[..digits].chars().chain("000000".chars()).take(6).collect();
        micros = first6.parse().ok()?;
        rest = &frac[digits..];
    }
    if !matches!(rest, "Z" | "z" | "+00:00") {
        return None;
    }
    // Days since 1970-01-01 from a civil date (the inverse of `format_rfc3339`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let us = (days * 86_400 + hour * 3600 + minute * 60 + second).checked_mul(1_000_000)?.checked_add(micros)?;
    u64::try_from(us).ok()
}

/// Short name of a call's outcome, as audit records and session histories show it.
pub fn outcome_of(result: &Result<crate::jsonrpc::Frame, crate::error::Error>) -> &'static str {
    match result {
        Ok(frame) if frame.is_error() => "error",
        Ok(frame) if frame.result().is_some_and(|r| r.contains("\"resultType\":\"input_required\"")) => {
            "input_required"
        }
        Ok(frame) if frame.result().is_some_and(|r| r.contains("\"isError\":true")) => "tool_error",
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_lines_verify_and_edits_do_not() {
        let mut r =
            AuditRecord { phase: "completed".into(), tool: "t".into(), prev: GENESIS.into(), ..Default::default() };
        let line = seal(&mut r).unwrap();
        let (body, hash) = unseal(&line).unwrap();
        assert_eq!(chain_hash(GENESIS, &body), hash);
        let edited = line.replace("\"t\"", "\"u\"");
        let (body, hash) = unseal(&edited).unwrap();
        assert_ne!(chain_hash(GENESIS, &body), hash);
        let parsed: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed.hash, r.hash);
    }

    #[test]
    fn time_format() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 27, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }

    #[test]
    fn times_parse_back() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2000-03-01T00:00:01.5Z"), Some(951_868_801_500));
        assert_eq!(rfc3339_from_ms(951_868_801_500), "2000-03-01T00:00:01.500000Z");
        for ms in [0, 86_399_999, 951_782_400_000, 1_709_251_199_123, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_from_ms(ms)), Some(ms));
        }
        let now = now_rfc3339();
        let parsed = parse_rfc3339_ms(&now).unwrap();
        assert!(crate::session::store::now_ms().abs_diff(parsed) < 60_000, "{now}");
        for bad in ["", "yesterday", "2025-13-01T00:00:00Z", "2025-01-01T00:00:00", "2025-01-01T00:00:00+02:00"] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_rfc3339_ms("2025-01-01T00:00:00.Z"), None);
        assert_eq!(parse_rfc3339_us("1970-01-01T00:00:01.000002Z"), Some(1_000_002));
        assert_eq!(parse_rfc3339_us("1970-01-01T00:00:01.0000029Z"), Some(1_000_002));
        assert_eq!(parse_rfc3339_us("9999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("２025-01-01T00:00:00Z"), None, "no panic on multi-byte text");
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,300}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 400, 40, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..40).prop_map(Value::Array),
                prop::collection::vec((".{0,80}", inner), 0..40).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The bound holds for any value, and a value that fits is kept as it is.
        #[test]
        fn cap_bounds_any_value(v in arb_json(), max in CAP_MIN..3000) {
            let c = cap(&v, max);
            proptest::prop_assert!(c.to_string().len() <= max, "{} > {max}", c.to_string().len());
            if v.to_string().len() <= max {
                proptest::prop_assert_eq!(c, v);
            }
        }
    }

    #[test]
    fn cap_bounds_many_long_keys_and_deep_nesting() {
        // Before: 100 keys of 100 bytes came back at 3415 bytes for a 1024-byte cap.
        let wide: serde_json::Map<String, Value> =
            (0..100).map(|i| (format!("{}{i}", "k".repeat(100)), 1.into())).collect();
        let c = cap(&Value::Object(wide), 1024);
        assert!(c.to_string().len() <= 1024, "{}", c.to_string().len());
        assert!(c.get("…").is_some(), "says keys were dropped: {c}");
        let mut deep = Value::from("x".repeat(50));
        for _ in 0..100 {
            deep = Value::Array(vec![deep]);
        }
        assert!(cap(&deep, 100).to_string().len() <= 100);
        assert_eq!(cap(&Value::from("x".repeat(100)), 3), Value::Null);
    }

    #[test]
    fn cap_keeps_shape_and_bounds_size() {
        let v = serde_json::json!({"a": "x".repeat(10_000), "b": [1, "y".repeat(5000)]});
        let c = cap(&v, 1024);
        assert!(c.to_string().len() <= 1024, "{}", c.to_string().len());
        assert_eq!(c["b"][0], 1);
    }
}
