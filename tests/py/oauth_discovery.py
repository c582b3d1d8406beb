#!/usr/bin/env python3
"""The official Python SDK's OAuth client against a Tollgate endpoint, for the integration tests.

Usage:
    python oauth_discovery.py MCP_URL AS_PORT TOKEN

Serves a fake OAuth authorization server on 127.0.0.1:AS_PORT (metadata, dynamic client
registration, token endpoint) whose token endpoint hands out TOKEN, then connects to MCP_URL
with `OAuthClientProvider`: the SDK meets the gateway's 401, reads the Protected Resource
Metadata it points to, discovers the authorization server there, registers, "authorizes"
(the redirect is answered in-process), fetches the token and retries.

Output: one JSON line on stdout
    {"requests": ["GET http://…/.well-known/oauth-protected-resource/mcp -> 200", …],
     "as_requests": ["GET /.well-known/oauth-authorization-server", …],
     "tools": [names]}
Any failure: message on stderr, exit 1.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

AS_REQUESTS: list[str] = []


def fake_authorization_server(port: int, token: str) -> ThreadingHTTPServer:
    issuer = f"http://127.0.0.1:{port}"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep stderr for real failures
            pass

        def reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            AS_REQUESTS.append(f"GET {urlparse(self.path).path}")
            if self.path == "/.well-known/oauth-authorization-server":
                self.reply(200, {
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/authorize",
                    "token_endpoint": f"{issuer}/token",
                    "registration_endpoint": f"{issuer}/register",
                    "response_types_supported": ["code"],
                    "grant_types_supported": ["authorization_code"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["none"],
                })
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            AS_REQUESTS.append(f"POST {urlparse(self.path).path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            if self.path == "/register":
                metadata = json.loads(body)
                metadata.update({"client_id": "tollgate-test-client", "token_endpoint_auth_method": "none"})
                self.reply(201, metadata)
            elif self.path == "/token":
                form = parse_qs(body)
                if form.get("code") != ["test-code"]:
                    self.reply(400, {"error": "invalid_grant"})
                    return
                self.reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})
            else:
                self.reply(404, {"error": "not_found"})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def run(url: str, port: int, token: str) -> dict[str, Any]:
    state: dict[str, str | None] = {"state": None}

    async def redirect_handler(authorization_url: str) -> None:
        # A person would log in here; the fake server approves at once.
        state["state"] = parse_qs(urlparse(authorization_url).query).get("state", [None])[0]

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code="test-code", state=state["state"])

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="tollgate-it",
            redirect_uris=["http://127.0.0.1:9/callback"],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    requests: list[str] = []

    async def log_response(response: httpx2.Response) -> None:
        requests.append(f"{response.request.method} {response.request.url} -> {response.status_code}")

    http_client = create_mcp_http_client(auth=provider)
    http_client.event_hooks = {"request": [], "response": [log_response]}
    out: dict[str, Any] = {"requests": requests, "as_requests": AS_REQUESTS, "tools": []}
    try:
        async with Client(streamable_http_client(url, http_client=http_client), mode="auto") as client:
            out["tools"] = [t.name for t in (await client.list_tools()).tools]
    finally:
        await http_client.aclose()
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 1
    url, port, token = argv[0], int(argv[1]), argv[2]
    server = fake_authorization_server(port, token)
    try:
        out = anyio.run(run, url, port, token)
    except BaseException as e:  # noqa: BLE001 - one line for the test to show
        if isinstance(e, KeyboardInterrupt):
            raise
        print(f"oauth_discovery: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
