//! The official MCP conformance suite through the gateway: every server scenario that passes
//! against server-everything directly must pass through the gateway in front of it, except the
//! documented vacuous passes (see tests/conformance/through-gateway.expected-failures.yaml).

use crate::support::*;
use std::collections::BTreeSet;

const DIRECT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/server-everything.expected-failures.yaml");
const THROUGH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/through-gateway.expected-failures.yaml");

/// Scenario names listed under `server:` in an expected-failures file.
fn failures(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("baseline file");
    text.lines().filter_map(|l| l.trim().strip_prefix("- ")).map(|s| s.trim().to_string()).collect()
}

#[test]
fn gateway_baseline_differs_from_direct_only_by_documented_cases() {
    let direct = failures(DIRECT);
    let through = failures(THROUGH);
    let newly_failing: BTreeSet<&str> = through.difference(&direct).map(String::as_str).collect();
    let newly_passing: BTreeSet<&str> = direct.difference(&through).map(String::as_str).collect();
    assert_eq!(newly_failing, BTreeSet::from(["tools-call-error", "tools-call-simple-text"]));
    assert_eq!(newly_passing, BTreeSet::from(["dns-rebinding-protection"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_gateway_matches_direct_baseline() {
    let gw =
        Listening::gateway(&stdio_upstream("ev", "node", &[&server_everything(), "stdio"], "tool_prefix = \"\"")).await;
    let out_dir = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        WAIT * 10,
        tokio::process::Command::new(node22())
            .arg(conformance())
            .args(["server", "--url", &gw.url, "--expected-failures", THROUGH, "-o"])
            .arg(out_dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("conformance suite finished in time")
    .expect("conformance suite ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.find("=== SUMMARY ===").map(|i| &stdout[i..]).unwrap_or(&stdout);
    assert!(output.status.success(), "conformance through the gateway differs from the baseline:\n{summary}");
}
