#!/usr/bin/env python3
"""One-shot MCP client on the official Python SDK (PyPI `mcp` 2.3.0), for Tollgate's integration tests.

Usage:
    python mcp_client.py [OPTIONS] TARGET... [--call TOOL JSONARGS]

TARGET is an http(s) URL (Streamable HTTP) or a command and its arguments (stdio).
Options must come before TARGET; `--call TOOL JSONARGS`, if given, must be the last three tokens
(so a stdio command may itself take `--flags`).

Options:
    --mode auto|legacy|2026-07-28   protocol negotiation (default auto: probe server/discover, then
                                    fall back to initialize; legacy: initialize only; 2026-07-28:
                                    adopt that version with no probe)
    --header 'Name: value'          extra HTTP header (repeatable; URL targets only)
    --timeout SECONDS               overall deadline for the whole run (default 60)
    --sdk-env                       stdio: give the child only the SDK's default environment
                                    (HOME, PATH, ...). By default the child inherits ours, so
                                    RUST_LOG, TOLLGATE_* etc. reach it.

Output: one JSON line on stdout
    {"protocol": "...", "server": {"name": ..., "version": ...} | null, "tools": [names],
     "result": <CallToolResult as wire JSON (camelCase), None fields dropped> | null}
If the tool call fails with a JSON-RPC error, that line is still printed with
"result": null and "error": {"code", "message", "data"?}, and the exit code is 2.
Any other failure (cannot connect, handshake, tools/list, bad usage): message on stderr, exit 1.
A tool result with isError=true is a successful call (exit 0): check result.isError.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
from mcp import Client, MCPError, StdioServerParameters

USAGE = "usage: mcp_client.py [--mode auto|legacy|2026-07-28] [--header 'K: V']... [--timeout S] [--sdk-env] TARGET... [--call TOOL JSONARGS]"


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"mode": "auto", "headers": {}, "timeout": 60.0, "sdk_env": False, "call": None}
    if len(argv) >= 3 and argv[-3] == "--call":
        try:
            args = json.loads(argv[-1])
        except json.JSONDecodeError as e:
            raise UsageError(f"--call JSONARGS is not valid JSON: {e}") from e
        if not isinstance(args, dict):
            raise UsageError("--call JSONARGS must be a JSON object")
        opts["call"] = (argv[-2], args)
        argv = argv[:-3]
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        flag = argv[i]
        if flag == "--sdk-env":
            opts["sdk_env"] = True
            i += 1
            continue
        if flag == "--":
            i += 1
            break
        if i + 1 >= len(argv):
            raise UsageError(f"{flag} needs a value")
        value = argv[i + 1]
        if flag == "--mode":
            opts["mode"] = value
        elif flag == "--header":
            name, sep, val = value.partition(":")
            if not sep or not name.strip():
                raise UsageError(f"--header wants 'Name: value', got {value!r}")
            opts["headers"][name.strip()] = val.strip()
        elif flag == "--timeout":
            opts["timeout"] = float(value)
        elif flag == "--call":
            raise UsageError("--call TOOL JSONARGS must be the last three arguments")
        else:
            raise UsageError(f"unknown option {flag}")
        i += 2
    target = argv[i:]
    if not target:
        raise UsageError("missing TARGET")
    opts["target"] = target
    return opts


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run(opts: dict[str, Any]) -> tuple[dict[str, Any], int]:
    target = opts["target"]
    is_url = len(target) == 1 and target[0].startswith(("http://", "https://"))
    http_client = None
    if is_url:
        if opts["headers"]:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http_client = create_mcp_http_client(headers=opts["headers"])
            server: Any = streamable_http_client(target[0], http_client=http_client)
        else:
            server = target[0]
    else:
        if opts["headers"]:
            raise UsageError("--header only applies to URL targets")
        env = None if opts["sdk_env"] else dict(os.environ)
        server = StdioServerParameters(command=target[0], args=target[1:], env=env)

    out: dict[str, Any] = {"protocol": None, "server": None, "tools": [], "result": None}
    code = 0
    try:
        async with Client(server, mode=opts["mode"]) as client:
            out["protocol"] = client.protocol_version
            info = client.server_info
            out["server"] = None if info is None else {"name": info.name, "version": info.version}
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                out["tools"].extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            if opts["call"] is not None:
                name, arguments = opts["call"]
                try:
                    out["result"] = dump(await client.call_tool(name, arguments))
                except MCPError as e:
                    out["error"] = dump(e.error)
                    code = 2
    finally:
        if http_client is not None:
            await http_client.aclose()
    return out, code


def describe(exc: BaseException) -> str:
    """Flatten anyio's exception groups into the leaf errors' messages."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}" + (f" (data: {json.dumps(exc.data)})" if exc.data is not None else "")
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_with_deadline(opts: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with anyio.fail_after(opts["timeout"]):
        return await run(opts)


def main(argv: list[str]) -> int:
    try:
        opts = parse_args(argv)
    except (UsageError, ValueError) as e:
        print(f"mcp_client: {e}\n{USAGE}", file=sys.stderr)
        return 1
    try:
        out, code = anyio.run(run_with_deadline, opts)
    except TimeoutError:
        print(f"mcp_client: timed out after {opts['timeout']}s", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"mcp_client: {e}\n{USAGE}", file=sys.stderr)
        return 1
    except BaseException as e:  # noqa: BLE001 - report every failure as one line
        if isinstance(e, KeyboardInterrupt):
            raise
        print(f"mcp_client: {describe(e)}", file=sys.stderr)
        return 1
    print(json.dumps(out), flush=True)
    if code:
        err = out.get("error", {})
        print(f"mcp_client: tools/call failed: MCP error {err.get('code')}: {err.get('message')}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
