"""The HTTP layer shared by the emulated APIs: werkzeug routing and werkzeug's threaded WSGI server.

Each emulated API is a `Router` of handlers plus a `dispatch` function (auth, throttling, faults)
served by a `SandboxHTTPServer`. Every API answers errors as JSON, never as an HTML page or a
dropped handler, so every unexpected exception in a route becomes the API's JSON 500 and the server
keeps serving.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import ClientDisconnected, MethodNotAllowed, NotFound
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request as WerkzeugRequest

log = logging.getLogger(__name__)

# The environ key the app sets when the answer is a connection reset instead of a response.
_RESET = "amazon_optiply.sandbox.reset_connection"


@dataclass
class Request:
    method: str
    path: str  # as sent, not percent-decoded: an encoded "/" stays inside its path parameter
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
    """Handlers by method and path pattern; `{name}` in a pattern is one path segment, a path parameter."""

    def __init__(self) -> None:
        # No slash merging: a path the API does not know is a 404, never a redirect.
        self._map = Map(merge_slashes=False)
        self._handlers: list[Handler] = []
        self._adapter = self._map.bind("sandbox")

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        method = method.upper()
        rule = Rule(re.sub(r"\{(\w+)\}", r"<\1>", pattern), methods=[method], endpoint=len(self._handlers))
        # werkzeug answers HEAD with every GET rule; the emulated APIs route each method on its own.
        rule.methods = {method}
        self._handlers.append(handler)
        self._map.add(rule)

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """The handler for a request, its path parameters, and whether the path exists at all."""
        if not path.startswith("/") or path.startswith("//"):
            return None, {}, False  # werkzeug would strip the extra leading slashes and match
        try:
            endpoint, params = self._adapter.match(path, method=method)
        except MethodNotAllowed:
            return None, {}, True
        except (NotFound, RequestRedirect):
            return None, {}, False
        return self._handlers[endpoint], params, True


class SandboxHTTPServer:
    """Serves `dispatch` over HTTP/1.1 with keep-alive, in a thread per connection."""

    def __init__(
        self,
        host: str,
        port: int,
        dispatch: Callable[[Request], Response],
        error_response: Callable[[int, str, str], Response],
    ) -> None:
        self.dispatch = dispatch
        self.error_response = error_response
        self._server: BaseWSGIServer = make_server(
            host, port, self._wsgi_app, threaded=True, request_handler=_RequestHandler
        )
        # socketserver prints a stack trace for a request that failed outside the handler's own care
        # (a client gone before the handler started, say): a dropped client is no news here.
        self._server.handle_error = _quiet_handle_error

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.base_url}",
            daemon=True,
        )
        thread.start()
        return thread

    def shutdown(self) -> None:
        self._server.shutdown()

    def server_close(self) -> None:
        self._server.server_close()

    def _wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        incoming = WerkzeugRequest(environ)
        raw_uri = environ.get("RAW_URI")
        request = Request(
            method=incoming.method,
            path=urlsplit(raw_uri).path if raw_uri else incoming.path,
            query=incoming.args.to_dict(flat=False),
            headers={name.lower(): value for name, value in incoming.headers.items()},
            # Read whole before dispatching: the next request on this keep-alive connection follows it.
            body=incoming.get_data(),
        )
        try:
            response = self.dispatch(request)
        except Exception as exc:  # a sandbox bug must still answer like the API would
            log.exception("sandbox error on %s %s", request.method, request.path)
            response = self.error_response(500, "InternalFailure", f"sandbox error: {exc!r}")
        if response.reset_connection:
            # SO_LINGER with a zero timeout makes close() send RST: the client sees "connection reset".
            environ["werkzeug.socket"].setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            environ[_RESET] = True
            return []
        headers = [
            (name, value) for name, value in response.headers.items() if name.lower() != "content-length"
        ]
        headers.append(("Content-Length", str(len(response.body))))
        reason = HTTP_STATUS_CODES.get(response.status, "Unknown")
        start_response(f"{response.status} {reason}", headers)
        return [response.body]


def _quiet_handle_error(request: Any, client_address: Any) -> None:
    error = sys.exc_info()[1]
    if isinstance(error, OSError):
        log.debug("connection from %s dropped", client_address, exc_info=True)
    else:
        log.error("sandbox connection from %s failed", client_address, exc_info=True)


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, keeping connections alive and the answer's own Date header.

    werkzeug's dev server closes every connection (`Connection: close`, pallets/werkzeug#2397) since
    an app may leave a request body unread. The sandbox's app reads every body whole, so this handler
    answers without closing: a client's pooled connection carries many requests, as it does against
    Amazon and Optiply.
    """

    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY every keep-alive answer waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer[:] = [status, headers]

        try:
            body = b"".join(self.server.app(environ, start_response))
        except ClientDisconnected as error:  # gone before its request body was whole
            self.close_connection = True
            self.connection_dropped(error, environ)
            return
        if environ.get(_RESET):
            self.close_connection = True
            return
        status, headers = answer
        code, _, reason = status.partition(" ")
        self.send_response_only(int(code), reason)
        self.send_header("Server", self.version_string())
        if not any(name.lower() == "date" for name, _ in headers):
            # Only when the app gives none: it speaks for its own clock (the sandbox seller's time).
            self.send_header("Date", self.date_time_string())
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        log.debug("client dropped the connection: %r", error)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the sandbox keeps its own request log; stderr noise helps nobody

    def log(self, type: str, message: str, *args: Any) -> None:
        # Not werkzeug's logger: its first message would add a stderr handler to it for the whole process.
        log.debug(message, *args)
