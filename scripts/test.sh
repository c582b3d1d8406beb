#!/usr/bin/env bash
# The project's test command: ./scripts/test.sh [extra `cargo test` args, e.g. -- --nocapture]
#   1. installs/updates the external test peers into .test-deps/ (scripts/test-deps.sh),
#   2. cargo test --all-targets --no-fail-fast (unit + integration tests; extra args are passed through),
#   3. cargo clippy --all-targets -- -D warnings,
#   4. cargo fmt --check.
# Works from any directory.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (scripts/test-deps.sh)"
bash "$REPO/scripts/test-deps.sh"
# shellcheck source=/dev/null
. "$REPO/.test-deps/env"

# --no-fail-fast: a failing unit test must not hide the integration tests' results.
step "cargo test --all-targets --no-fail-fast $*"
cargo test --all-targets --no-fail-fast "$@"

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo fmt --check"
cargo fmt --check

step "all checks passed"
