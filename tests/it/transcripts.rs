//! Golden transcripts (fixtures/transcripts/<case>/) replayed through the real binary: the
//! client's messages in, every reply and every audit record compared with what is on file.
//! `UPDATE_EXPECT=1` rewrites the expectations.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

/// Audit fields that differ on every run.
const VOLATILE: &[&str] = &["ts", "hash", "prev", "latency_us", "session", "principal", "policy_version", "call_id"];

fn normalise_audit(line: &str) -> String {
    let mut v: Value = serde_json::from_str(line).expect("audit line is JSON");
    if let Value::Object(map) = &mut v {
        for key in VOLATILE {
            map.shift_remove(*key);
        }
    }
    v.to_string()
}

async fn replay(case: &Path) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut args: Vec<String> = std::fs::read_to_string(case.join("args"))
        .map(|t| t.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    if case.join("policy.toml").exists() {
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        std::fs::copy(case.join("policy.toml"), policies.join("policy.toml")).unwrap();
        args.extend(["--policy".into(), policies.display().to_string()]);
    }
    args.extend(["--audit".into(), audit.display().to_string(), "--".into(), fixture_bin().into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut client = StdioClient::spawn(&args);
    let mut out = String::new();
    for line in std::fs::read_to_string(case.join("client.jsonl")).unwrap().lines().filter(|l| !l.is_empty()) {
        client.send_raw(line).await;
        let sent: Value = serde_json::from_str(line).unwrap();
        let (Some(id), Some(_)) = (sent.get("id"), sent.get("method")) else { continue };
        loop {
            let reply = client.recv_raw().await;
            out.push_str(&reply);
            out.push('\n');
            let v: Value = serde_json::from_str(&reply).unwrap();
            if v.get("id") == Some(id) && v.get("method").is_none() {
                break;
            }
        }
    }
    client.close().await;
    let audit_text = std::fs::read_to_string(&audit).unwrap_or_default();
    let audit_out: String = audit_text.lines().map(|l| normalise_audit(l) + "\n").collect();
    (out, audit_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_transcripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/transcripts");
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|v| v == "1");
    let mut cases: Vec<_> =
        std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(!cases.is_empty());
    for case in cases {
        let (replies, audit) = replay(&case).await;
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if update {
            std::fs::write(case.join("expected.jsonl"), &replies).unwrap();
            std::fs::write(case.join("audit.jsonl"), &audit).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(case.join("expected.jsonl")).unwrap_or_default();
        assert_eq!(replies, expected, "{name}: replies differ (UPDATE_EXPECT=1 to accept)");
        let expected = std::fs::read_to_string(case.join("audit.jsonl")).unwrap_or_default();
        assert_eq!(audit, expected, "{name}: audit records differ (UPDATE_EXPECT=1 to accept)");
    }
}
