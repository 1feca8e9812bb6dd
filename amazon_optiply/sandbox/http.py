"""A small threaded HTTP server with regex routing, shared by the Amazon and Optiply sandboxes.

Both emulated APIs answer errors as JSON, never as an HTML page or a dropped handler, so every
unexpected exception in a route becomes a JSON 500 and the server keeps serving.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def param_list(self, *names: str) -> list[str]:
        """A list parameter sent repeated (`a=1&a=2`) or comma-joined (`a=1,2`), as Amazon accepts both."""
        out: list[str] = []
        for name in names:
            for value in self.query.get(name, []):
                out.extend(v for v in value.split(",") if v)
        return out

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Close the TCP connection with a reset instead of answering: a fault Amazon's edge produces.
    reset_connection: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json"}
        merged.update(headers or {})
        return cls(status, json.dumps(payload).encode("utf-8"), merged)


Handler = Callable[[Request], Response]


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
        self._routes.append((method, regex, handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """The handler for a request, its path parameters, and whether the path exists at all."""
        path_exists = False
        for route_method, regex, handler in self._routes:
            m = regex.match(path)
            if m:
                path_exists = True
                if route_method == method:
                    return handler, m.groupdict(), True
        return None, {}, path_exists


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        dispatch: Callable[[Request], Response],
        error_response: Callable[[int, str, str], Response],
    ) -> None:
        self.dispatch = dispatch
        self.error_response = error_response
        super().__init__((host, port), _RequestHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.base_url}",
            daemon=True,
        )
        thread.start()
        return thread


class _RequestHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY every keep-alive answer waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the sandbox keeps its own request log; stderr noise helps nobody

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.dispatch(request)
        except Exception as exc:  # a sandbox bug must still answer like the API would
            traceback.print_exc()
            response = self.server.error_response(500, "InternalFailure", f"sandbox error: {exc!r}")
        if response.reset_connection:
            # SO_LINGER with a zero timeout makes close() send RST: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if any(name.lower() == "date" for name in response.headers):
            # The app speaks for its own clock (the sandbox seller's time), so it sets Date itself.
            self.log_request(response.status)
            self.send_response_only(response.status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle
