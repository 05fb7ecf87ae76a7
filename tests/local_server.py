"""A one-purpose local HTTP(S) server for tests that need answers the sandbox
does not give (redirects, TLS, hangs, a 400 without pointers, odd headers, an
answer that quotes the key)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Answers one PUT, POST or GET, given the request and its body.
Handler = Callable[[BaseHTTPRequestHandler, bytes], None]
Answer = tuple[int, dict[str, str], dict[str, Any] | None]


@contextmanager
def local_server(
    handle: Handler, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1; yields its URL and the paths requested."""
    paths: list[str] = []

    class RequestHandler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            paths.append(self.path)
            handle(self, self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        do_GET = do_POST = do_PUT

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def scripted_talon(
    script: Callable[[dict[str, Any]], Answer],
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Answers each JSON request body from a script; yields the URL and the bodies received."""
    received: list[dict[str, Any]] = []

    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        data = json.loads(body)
        received.append(data)
        send_json(request, *script(data))

    with local_server(handle) as (url, _paths):
        yield url, received


def send_json(
    request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any
) -> None:
    """Answers with status, headers and body as JSON (None: no body)."""
    payload = json.dumps(body).encode() if body is not None else b""
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    request.wfile.write(payload)
