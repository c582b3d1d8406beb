//! Throughput of the output-redaction engine (`Redactor::redact_json`), single thread, over what
//! upstreams really send back: ~2 KB tool results (text and structured content, mostly clean,
//! one in five carrying a secret) and 1 MB strings (clean prose and logs, a base64 image blob,
//! non-ASCII prose).
//!
//! `cargo bench --bench redaction` measures (release, about a second per row) and prints a
//! Markdown table in MB/s of serialized JSON; `cargo bench --bench redaction -- 2 KB` measures
//! only the rows whose name contains `2 KB`. `cargo test --all-targets` runs this file without
//! `--bench`, which does one tiny pass per row as a smoke test and exits 0.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate::policy::redaction::{RedactionConfig, Redactor, RuleSet};

/// A deterministic xorshift generator, so every run measures the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char).collect()
    }
}

const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

/// One line of the kind tools print: logs, listings, code, prose, diffs.
fn line(rng: &mut Rng) -> String {
    let sha = rng.chars(HEX, 40);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        rng.chars(HEX, 8),
        rng.chars(HEX, 4),
        rng.chars(HEX, 4),
        rng.chars(HEX, 4),
        rng.chars(HEX, 12)
    );
    let n = rng.next() % 100_000;
    match rng.next() % 8 {
        0 => format!("2026-11-26T20:17:{:02}.{n:06}Z INFO request_id={uuid} status=200 latency_ms={}", n % 60, n % 900),
        1 => format!(
            "-rw-r--r--  1 dev staff {n:>8} Nov 26 20:32 src/{}.rs",
            rng.pick(&["main", "lib", "config", "policy"])
        ),
        2 => format!("commit {sha}\nAuthor: Dev <dev@example.com>\n    Fix the token refresh race ({n})"),
        3 => format!(
            "    let {} = client.get(\"https://api.example.com/v1/items/{n}\").header(\"Accept\", \"application/json\");",
            rng.pick(&["resp", "reply", "items"])
        ),
        4 => "The quick brown fox jumps over the lazy dog; see the docs for the password policy and token lifetimes."
            .to_string(),
        5 => format!("| {uuid} | {} | {n} | active |", rng.pick(&["alice", "bob", "carol"])),
        6 => format!("@@ -{n},7 +{n},9 @@ fn handle(req: Request) -> Result<Response, Error> {{ // {}", &sha[..12]),
        _ => format!("const timeout = {n}; // ms, keep in sync with config.yaml ({})", rng.pick(&["prod", "dev"])),
    }
}

fn secret(rng: &mut Rng) -> String {
    match rng.next() % 5 {
        0 => format!("ghp_{}", rng.chars(B62, 36)),
        1 => format!("AKIA{}", rng.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        2 => format!("postgres://app:{}@db.internal:5432/app", rng.chars(B62, 20)),
        3 => format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}", rng.chars(B62, 40).replace('+', "-"), rng.chars(B62, 43)),
        _ => format!("api_key = \"{}\"", rng.chars(B62, 32)),
    }
}

/// A `tools/call` result of about 2 KB; every fifth one carries a secret.
fn tool_result(rng: &mut Rng, i: usize) -> Value {
    let mut text = String::new();
    while text.len() < 1500 {
        text.push_str(&line(rng));
        text.push('\n');
    }
    if i.is_multiple_of(5) {
        text.push_str(&format!("found: {}\n", secret(rng)));
    }
    let rows: Vec<Value> = (0..4)
        .map(|k| json!({"id": rng.next() % 10_000, "name": format!("item-{k}"), "sha": rng.chars(HEX, 40), "ok": k % 2 == 0}))
        .collect();
    json!({
        "jsonrpc": "2.0",
        "id": i,
        "result": {
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"rows": rows, "nextCursor": rng.chars(B62, 24), "total": 4},
            "isError": false
        }
    })
}

fn one_mb(mut make: impl FnMut() -> String) -> Value {
    let mut s = String::with_capacity(1 << 20);
    while s.len() < 1 << 20 {
        s.push_str(&make());
        s.push('\n');
    }
    Value::String(s)
}

/// MB/s of `redact_json` over `inputs` (each redacted from a fresh clone; clones are not timed).
fn measure(redactor: &Redactor, inputs: &[Value], budget: Duration) -> (f64, usize) {
    let bytes: usize = inputs.iter().map(|v| v.to_string().len()).sum();
    let (mut spent, mut done, mut redactions) = (Duration::ZERO, 0usize, 0usize);
    loop {
        let mut batch = inputs.to_vec();
        let start = Instant::now();
        for v in &mut batch {
            redactions += redactor.redact_json(v).total;
        }
        spent += start.elapsed();
        done += 1;
        if spent >= budget {
            break;
        }
    }
    ((bytes * done) as f64 / spent.as_secs_f64() / 1e6, redactions / done)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let filter = filter.join(" ");
    let budget = if full { Duration::from_secs(1) } else { Duration::ZERO };
    let default = Redactor::new(&RedactionConfig::default()).expect("default rules compile");
    let sets = vec![RuleSet::Secrets, RuleSet::Pii, RuleSet::Terminal, RuleSet::Invisible];
    let all = Redactor::new(&RedactionConfig { sets, ..RedactionConfig::default() }).expect("all rules compile");

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let results: Vec<Value> = (0..if full { 200 } else { 10 }).map(|i| tool_result(&mut rng, i)).collect();
    let avg = results.iter().map(|v| v.to_string().len()).sum::<usize>() / results.len();
    let clean = vec![one_mb(|| line(&mut rng))];
    let image = vec![json!({"type": "image", "mimeType": "image/png", "data": rng.chars(B64, 1 << 20)})];
    let intl = vec![one_mb(|| {
        "Résumé: “naïve” café – 日本語のテキストと記号 ✓ — Ελληνικά, русский текст; emoji 🎉👍🏽".to_string()
    })];

    let rows: [(&str, &Redactor, &[Value]); 6] = [
        ("~2 KB tool results, 1 in 5 with a secret (default sets)", &default, &results),
        ("1 MB clean text: logs, code, listings (default sets)", &default, &clean),
        ("1 MB base64 image `data` (default sets)", &default, &image),
        ("1 MB non-ASCII prose (default sets)", &default, &intl),
        ("~2 KB tool results (all sets incl. PII)", &all, &results),
        ("1 MB text, author emails in commit lines (all sets incl. PII)", &all, &clean),
    ];
    if full {
        println!("| input ({avg} B average result) | MB/s | redactions per pass |");
        println!("|---|---|---|");
    }
    for (name, redactor, inputs) in rows.into_iter().filter(|row| row.0.contains(&filter)) {
        let (mbps, redactions) = measure(redactor, inputs, budget);
        if full {
            println!("| {name} | {mbps:.0} | {redactions} |");
        }
    }
    if !full {
        // Smoke: the planted secrets are found, and clean megabytes stay clean.
        let (_, found) = measure(&default, &results, Duration::ZERO);
        assert!(found >= 2, "planted secrets not found: {found}");
        assert_eq!(measure(&default, &clean, Duration::ZERO).1, 0, "clean text was redacted");
        assert_eq!(measure(&default, &image, Duration::ZERO).1, 0, "an image blob was redacted");
        println!("redaction bench: smoke run ok (run `cargo bench --bench redaction` for numbers)");
    }
}
