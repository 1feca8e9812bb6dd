"""Pins the sandbox's HTTP layer (amazon_optiply/sandbox/http.py) over real sockets.

The emulated APIs rely on these: routing by exact method, keep-alive without the delayed-ACK wait, the
app's own Date header, connection resets on demand, JSON answers for the app's own bugs, and silence
when a client goes away.
"""

from __future__ import annotations

import logging
import socket
import statistics
import struct
import time
from collections.abc import Iterator

import httpx
import pytest

from amazon_optiply.sandbox.http import Request, Response, Router, SandboxHTTPServer

APP_DATE = "Mon, 01 Jan 2024 00:00:00 GMT"


def _boom(request: Request) -> Response:
    raise RuntimeError("a sandbox bug")


def _echo(request: Request) -> Response:
    return Response.json(
        200,
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "header": request.header("X-Custom"),
            "params": request.path_params,
            "body": request.json(),
        },
    )


def _router() -> Router:
    router = Router()
    router.add("GET", "/echo/{name}", _echo)
    router.add("POST", "/echo/{name}", _echo)
    router.add("GET", "/dated", lambda r: Response(200, b"ok", {"Date": APP_DATE}))
    router.add("GET", "/body", lambda r: Response(200, b"hello", {"Content-Type": "text/plain"}))
    router.add("HEAD", "/body", lambda r: Response(200, b"hello", {"Content-Type": "text/plain"}))
    router.add("GET", "/boom", _boom)
    router.add("GET", "/reset", lambda r: Response(0, reset_connection=True))
    return router


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxHTTPServer]:
    router = _router()

    def dispatch(request: Request) -> Response:
        handler, params, path_exists = router.match(request.method, request.path)
        if handler is None:
            return Response.json(405 if path_exists else 404, {"path": request.path})
        request.path_params = params
        return handler(request)

    server = SandboxHTTPServer(
        "127.0.0.1", 0, dispatch, lambda status, code, message: Response.json(status, {code: message})
    )
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(server: SandboxHTTPServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        yield client


def _connect(server: SandboxHTTPServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _read_answer(sock: socket.socket, buffer: bytearray, head: bool = False) -> tuple[str, list[str], bytes]:
    """One answer off a keep-alive connection: its status line, header lines and Content-Length body."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    head_bytes, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(head_bytes) + 4]
    status, *headers = head_bytes.decode("latin-1").split("\r\n")
    lengths = [h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-length:")]
    assert len(lengths) == 1, headers
    length = 0 if head else int(lengths[0])
    while len(buffer) < length:
        buffer += sock.recv(65536)
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, headers, body


def test_routes_by_exact_method_405_for_a_known_path_404_otherwise() -> None:
    router = _router()
    handler, params, exists = router.match("GET", "/echo/a%2Fb")
    assert handler is _echo and params == {"name": "a%2Fb"} and exists
    assert router.match("DELETE", "/echo/x") == (None, {}, True)
    assert router.match("HEAD", "/echo/x") == (None, {}, True)  # no HEAD route: not answered as a GET
    for unknown in ("/echo", "/echo/", "/echo/x/y", "//echo/x", "/nope", ""):
        assert router.match("GET", unknown) == (None, {}, False), unknown


def test_the_request_carries_path_query_headers_and_body_as_sent(client: httpx.Client) -> None:
    response = client.post(
        "/echo/a%2Fb",
        params=[("ids", "1,2"), ("ids", "3"), ("empty", "")],
        headers={"X-Custom": "v"},
        json={"k": 1},
    )
    assert response.status_code == 200
    assert response.json() == {
        "method": "POST",
        "path": "/echo/a%2Fb",
        "query": {"ids": ["1,2", "3"], "empty": [""]},
        "header": "v",
        "params": {"name": "a%2Fb"},
        "body": {"k": 1},
    }


def test_one_connection_carries_many_requests_without_the_delayed_ack_wait(server: SandboxHTTPServer) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            sock.sendall(b"GET /body HTTP/1.1\r\nHost: sandbox\r\n\r\n")
            status, headers, body = _read_answer(sock, buffer)
            timings.append(time.perf_counter() - started)
            assert status == "HTTP/1.1 200 OK" and body == b"hello"
            assert not any(h.lower().startswith("connection:") for h in headers), headers
    # Headers and body leave in two writes: with Nagle on, each answer would wait ~40 ms for an ACK.
    assert statistics.median(timings) < 0.02, timings


def test_the_apps_date_header_wins_over_the_servers(client: httpx.Client) -> None:
    assert client.get("/dated").headers.get_list("date") == [APP_DATE]
    assert len(client.get("/body").headers.get_list("date")) == 1


def test_head_answers_headers_and_content_length_without_a_body(server: SandboxHTTPServer) -> None:
    with _connect(server) as sock:
        buffer = bytearray()
        sock.sendall(
            b"HEAD /body HTTP/1.1\r\nHost: sandbox\r\n\r\nGET /body HTTP/1.1\r\nHost: sandbox\r\n\r\n"
        )
        status, headers, _ = _read_answer(sock, buffer, head=True)
        assert status == "HTTP/1.1 200 OK" and "Content-Length: 5" in headers
        # The next bytes on the connection are the GET's answer, not a HEAD body.
        status, _, body = _read_answer(sock, buffer)
        assert status == "HTTP/1.1 200 OK" and body == b"hello"


def test_a_reset_answer_closes_the_connection_without_a_response(client: httpx.Client) -> None:
    with pytest.raises(httpx.TransportError):
        client.get("/reset")
    assert client.get("/body").text == "hello"


def test_a_handlers_exception_is_the_apis_500_and_the_server_keeps_serving(client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"InternalFailure": "sandbox error: RuntimeError('a sandbox bug')"}
    assert int(response.headers["content-length"]) == len(response.content)
    assert client.get("/echo/after").json()["params"] == {"name": "after"}


def test_a_client_that_goes_away_is_logged_quietly(
    server: SandboxHTTPServer,
    client: httpx.Client,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="amazon_optiply.sandbox.http")
    requests = [
        b"POST /echo/x HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 100\r\n\r\n{",  # gone mid-body
        b"GET /body HTTP/1.1\r\nHost: sandbox\r\n\r\n",  # gone before its answer
    ]
    for raw in requests:
        sock = _connect(server)
        sock.sendall(raw)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, as a killed client leaves it
    deadline = time.monotonic() + 5
    while not any("dropped" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert client.get("/body").text == "hello"
    assert capfd.readouterr().err == ""
    loud = [r for r in caplog.records if r.name.startswith("amazon_optiply") and r.levelno >= logging.WARNING]
    assert loud == []
    assert any("dropped" in r.getMessage() for r in caplog.records)
