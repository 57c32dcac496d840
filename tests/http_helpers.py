"""A local HTTP server for tests that fetch links (tests/test_remote_video.py, tests/test_app_url.py): 127.0.0.1 on
a free port, one handler function per path, every request recorded; and ``free_port`` (also for the app's launches
and the DDP test's rendezvous). Not product code."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_error(404)
            return
        try:
            route(self)
        except (
            BrokenPipeError,
            ConnectionResetError,
        ):  # the client gave up, as several tests make it
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class Server:
    """A local HTTP server: ``routes[path] = handler_fn``; ``seen`` lists (path, headers) of every request."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes, self.httpd.seen = {}, []
        self.port = self.httpd.server_address[1]
        self.routes: dict[str, Route] = self.httpd.routes
        self.seen: list = self.httpd.seen
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving() -> Iterator[Server]:
    """A started ``Server``, stopped (and its port closed) when the block ends."""
    s = Server()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


Route = Callable[[BaseHTTPRequestHandler], None]


def send(
    body: bytes, headers: dict[str, str] | None = None, status: int = 200, length: int | None = None
) -> Route:
    """A route answering ``body`` with ``headers`` (Content-Length: ``length``, default the body's)."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        h.wfile.write(body)

    return route


def redirect(location: str, status: int = 302) -> Route:
    """A route answering ``status`` with ``Location: location``."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route
