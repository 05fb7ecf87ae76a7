"""The sandbox HTTP server: standard library only, in-memory state, one thread per connection."""

import json
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .attributes import DEFAULT_CATALOGUE, validate_catalogue
from .control import PREFIX as CONTROL_PREFIX
from .control import ControlApi
from .integration import IntegrationApi
from .management_api import PATHS as MANAGEMENT_PATHS
from .management_api import ManagementApi
from .responses import ApiError, Request, Response, error_response
from .state import Faults, SandboxState

DEFAULT_API_KEYS = ("sandbox-api-key",)
DEFAULT_MANAGEMENT_KEYS = ("sandbox-management-key",)
MAX_BODY_BYTES = 50 * 1024 * 1024
DEFAULT_LOG_LIMIT = 10_000


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(
        self,
        address: tuple[str, int],
        state: SandboxState,
        *,
        management_keys: Iterable[str] = DEFAULT_MANAGEMENT_KEYS,
        verbose: bool = False,
    ) -> None:
        super().__init__(address, SandboxHandler)
        self.state = state
        self.integration_api = IntegrationApi(state)
        self.management_api = ManagementApi(state, management_keys)
        self.control_api = ControlApi(state)
        self.verbose = verbose

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (e.g. a timed-out benchmark request) is not a sandbox error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    server_version = "TalonOneSandbox/1.0"
    timeout = 120  # close idle keep-alive connections

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        try:
            request = self._read_request()
        except ValueError as exc:
            self.close_connection = True
            self._send(
                error_response(400, [ApiError.at_resource(self.path, "Bad request", str(exc))])
            )
            return
        api: ControlApi | IntegrationApi | ManagementApi = self.server.integration_api
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            api = self.server.control_api
        elif request.path in MANAGEMENT_PATHS:
            api = self.server.management_api
        try:
            response = api.handle(request)
        except Exception:  # a sandbox bug: answer like a failing server, keep running
            traceback.print_exc(file=sys.stderr)
            response = error_response(
                500,
                [ApiError.at_resource(request.path, "Internal error", "sandbox error")],
            )
        self._send(response)

    def _read_request(self) -> Request:
        url = urlsplit(self.path)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise ValueError("chunked request bodies are not supported; send Content-Length")
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("invalid Content-Length")
        too_large = length > MAX_BODY_BYTES
        if too_large:
            self.close_connection = True  # the unread body would corrupt the stream
        return Request(
            method=self.command,
            path=url.path,
            query={
                name: values[0]
                for name, values in parse_qs(url.query, keep_blank_values=True).items()
            },
            authorization=self.headers.get("Authorization"),
            body=b"" if too_large else self.rfile.read(length),
            body_too_large=too_large,
        )

    def _send(self, response: Response) -> None:
        payload = (
            b""
            if response.body is None
            else json.dumps(response.body, separators=(",", ":")).encode()
        )
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:  # a 204 must not carry Content-Length
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_keys: Iterable[str] = DEFAULT_API_KEYS,
    management_keys: Iterable[str] = DEFAULT_MANAGEMENT_KEYS,
    attributes: Mapping[str, str] | None = None,
    latency_ms: int = 0,
    log_limit: int = DEFAULT_LOG_LIMIT,
    verbose: bool = False,
) -> SandboxServer:
    """Bind a sandbox (port 0 picks a free port); call serve_forever() to run it.

    Raises ValueError for an invalid catalogue or latency, OSError if it cannot bind.
    """
    state = SandboxState(
        catalogue=validate_catalogue(DEFAULT_CATALOGUE if attributes is None else attributes),
        api_keys=api_keys,
        faults=Faults().merged({"latency_ms": latency_ms}),
        log_limit=log_limit,
    )
    return SandboxServer((host, port), state, management_keys=management_keys, verbose=verbose)


@contextmanager
def running_sandbox(**options: Any) -> Iterator[SandboxServer]:
    """Run a sandbox in a background thread for the duration of the block (tests)."""
    server = make_server(**options)
    thread = threading.Thread(target=server.serve_forever, name="talon-sandbox", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
