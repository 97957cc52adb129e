"""The HTTP front end: routes requests to HTTP-triggered functions, nothing else.

No sessions, CORS, CSRF or headers of its own: besides the function's headers a response carries
only Date, Server and Content-Length (framing). Unknown route → 404, known route with another
method → 405 with Allow (NOTE: Azure itself answers 404 for a wrong method,
https://github.com/Azure/azure-functions-host/issues/10098; 405 is the project's choice for
clearer local errors — never rely on the difference in app code). A function that raises → 500
with an empty body. Nothing runs after the response is written except logging.
"""
from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app_loader import FunctionSpec
from .http_translation import build_http_request, response_parts
from .invocation import Invoker
from .routing import MethodNotAllowed, RouteTable

logger = logging.getLogger("local_host.http")

_HTTP_REASON = "This function was programmatically called via the host APIs."


class InFlight:
    """Counts requests being handled, so shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *exc) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class FunctionsHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck function must not keep the process alive at exit
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of parallel clients (as the Functions
    # front end would accept) got connection resets instead of waiting their turn.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], routes: RouteTable, invoker: Invoker) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.invoker = invoker
        self.in_flight = InFlight()
        self.closing = False

    def handle_error(self, request, client_address) -> None:
        # Clients that hang up mid-response are normal (browsers, timeouts); not worth a traceback.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


def build_route_table(route_prefix: str, functions: list[FunctionSpec]) -> RouteTable:
    table = RouteTable(route_prefix)
    for spec in functions:
        if spec.trigger_type == "httpTrigger":
            # The decorators fill in the function name when no route is given; function.json
            # written by hand may still omit it.
            table.add(spec.trigger.get("route") or spec.name, spec.trigger.get("methods"), spec, spec.name)
    return table


# The standard library's limits for a request's header block.
_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100


class _NoHeaders:
    """Stands in for the connection while the standard library parses the request line: it then reads
    an empty header block (the real one is read by `_read_headers`)."""

    @staticmethod
    def readline(limit: int = -1) -> bytes:
        return b"\r\n"


class RequestHeaders:
    """A request's header lines in order, looked up case-insensitively (what the handler and
    `build_http_request` use of `email.message.Message`, which is much slower to build)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self._pairs:
            if key.lower() == wanted:
                return value
        return default

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


class _Handler(BaseHTTPRequestHandler):
    server: FunctionsHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive; every response is framed by Content-Length
    server_version = "local_host"
    timeout = 60  # idle keep-alive connections do not hold a thread forever
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed
    # ACK of the headers (about 40 ms per response on keep-alive connections).
    disable_nagle_algorithm = True

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; functions decide which methods exist.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def version_string(self) -> str:
        return self.server_version

    def parse_request(self) -> bool:
        """The standard library's checks of the request line, then a plain reader for the header block:
        its own goes through the e-mail parser, a good part of what a small request costs the host."""
        connection = self.rfile
        self.rfile = _NoHeaders()  # type: ignore[assignment]
        try:
            if not super().parse_request():
                return False
        finally:
            self.rfile = connection
        pairs: list[tuple[str, str]] = []
        while True:
            line = self.rfile.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(pairs) >= _MAX_HEADERS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
                return False
            text = line.decode("iso-8859-1")
            if text[:1] in (" ", "\t") and pairs:  # an obsolete folded continuation line
                name, value = pairs[-1]
                pairs[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if colon:
                pairs.append((name.strip(), value.strip()))
        self.headers = RequestHeaders(pairs)  # type: ignore[assignment]
        # What the standard library does with these two, on the real headers.
        connection_type = (self.headers.get("Connection") or "").lower()
        if connection_type == "close":
            self.close_connection = True
        elif connection_type == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if expect == "100-continue" and self.protocol_version >= "HTTP/1.1" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers are not passed on
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        # Head and body in one write (end_headers would flush the head alone): one packet for a small
        # response instead of two.
        # HTTP/0.9 has no head at all (send_response buffered nothing).
        parts: list[bytes] = getattr(self, "_headers_buffer", []) if self.request_version != "HTTP/0.9" else []
        if parts:
            parts.append(b"\r\n")
        data = b"".join([*parts, body] if self.command != "HEAD" else parts)
        parts.clear()
        self.wfile.write(data)

    def _handle(self) -> None:
        if self.server.closing:
            self.close_connection = True
            self._send(503, [("Connection", "close")], b"")
            return
        with self.server.in_flight:
            body = self._read_body()
            path = self.path.split("?", 1)[0]
            match = self.server.routes.match(self.command, path)
            if match is None:
                self._send(404, [], b"")
                return
            if isinstance(match, MethodNotAllowed):
                self._send(405, [("Allow", ", ".join(match.allowed))], b"")
                return
            host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
            request = build_http_request(
                self.command, f"http://{host}{self.path}", self.headers.items(), body, match.route_params,
            )
            spec: FunctionSpec = match.target
            try:
                result = self.server.invoker.invoke(spec, request, _HTTP_REASON)
            except Exception:  # the invoker logged the traceback; the client sees only a 500
                self._send(500, [], b"")
                return
            try:
                status, headers, response_body = response_parts(result)
            except TypeError as error:
                logger.error("Functions.%s: %s", spec.name, error)
                self._send(500, [], b"")
                return
            self._send(status, headers, response_body)
