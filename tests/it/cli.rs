//! The command line: config validation and usage errors exit 2 with a message that says what to fix.

use crate::support::*;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(tollgate_bin()).args(args).output().expect("run tollgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn example_config_is_valid() {
    let (code, stdout, _) = run(&["check-config", concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")]);
    assert_eq!(code, 0);
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn bad_configs_name_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
        ("[[upstream]]\nname = \"a\"\n", "set `command` (stdio upstream) or `url` (HTTP upstream)"),
        ("[[upstream]]\nname = \"a\"\nurl = \"ftp://x\"\n", "not an http(s) URL"),
        ("[gateway]\nseparator = \"/\"\n", "gateway.separator"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, _, stderr) = run(&["check-config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(&format!("bad{i}.toml")), "file not named: {stderr}");
        assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
        let (code, _, _) = run(&["serve", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "serve must refuse to start on a bad config");
    }
}

#[test]
fn stdio_without_an_upstream_is_a_usage_error() {
    let (code, _, stderr) = run(&["stdio"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("usage"), "{stderr}");
}

#[test]
fn policy_check_and_explain() {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let (code, stdout, _) = run(&["policy", "check", policies]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = run(&[
        "policy",
        "explain",
        "--policy",
        policies,
        "--upstream",
        "everything",
        "--tool",
        "toggle-subscriber-updates",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("=> DENY by everything.toml:everything:deny:toggle-*"), "{stdout}");
    let (_, stdout, _) = run(&[
        "policy",
        "explain",
        "--policy",
        policies,
        "--upstream",
        "everything",
        "--tool",
        "get-sum",
        "--read-only-hint",
        "true",
        "--args",
        r#"{"a":1,"b":2}"#,
    ]);
    assert!(stdout.contains("=> ALLOW"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[[upstream]]\nname = \"x\"\nallow = [\"a\"]\nread_only = \"no\"\n")
        .unwrap();
    let (code, _, stderr) = run(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml") && stderr.contains("read_only"), "{stderr}");
}
