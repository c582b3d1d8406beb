//! The official MCP conformance suite through the gateway: every server scenario that passes
//! against server-everything directly must pass through the gateway in front of it.
//! The direct baseline is recorded in tests/conformance/server-everything.expected-failures.yaml.

use crate::support::*;
use std::collections::BTreeSet;

/// Scenario names listed under `server:` in the expected-failures file.
fn baseline_failures() -> BTreeSet<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/server-everything.expected-failures.yaml"
    ))
    .expect("baseline file");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_gateway_matches_direct_baseline() {
    let gw =
        Listening::gateway(&stdio_upstream("ev", "node", &[&server_everything(), "stdio"], "tool_prefix = \"\"")).await;
    let out_dir = tempfile::tempdir().unwrap();
    let baseline = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/server-everything.expected-failures.yaml");
    let output = tokio::time::timeout(
        WAIT * 10,
        tokio::process::Command::new(node22())
            .arg(conformance())
            .args(["server", "--url", &gw.url, "--expected-failures", baseline, "-o"])
            .arg(out_dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("conformance suite finished in time")
    .expect("conformance suite ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenarios that pass directly failed through the gateway (baseline: {:?})\n{stdout}\n{stderr}",
        baseline_failures()
    );
}
