"""A tiny HTTP service and client for lessons that instrument an HTTP app (metrics, health, logs, traces).

The service listens on an ephemeral port of 127.0.0.1 (lessons, labs and graded submissions run side by
side), runs in a background thread and stops cleanly. Routes are templates ("GET /products/{id}"): a
handler gets a Request whose `route` is the template, the label a metric should use (never the raw path).
Middleware wraps the whole dispatch, so unmatched paths (route "unmatched") and handler crashes pass through
it too. With a registry, GET /metrics serves it in the format the scraper asks for (text or OpenMetrics).

    app = HttpService({"GET /hello/{name}": hello}, middleware=[timed], registry=registry).start()
    get(app.url + "/hello/ada").json()
    app.close()
"""

from __future__ import annotations

import json as jsonlib
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UNMATCHED = "unmatched"


@dataclass
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    route: str = UNMATCHED
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return jsonlib.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list (sent as JSON), str or bytes
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return jsonlib.dumps(self.body).encode(), "application/json"


Handler = Callable[[Request], Response]
Middleware = Callable[[Handler], Handler]


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


class HttpService:
    def __init__(
        self,
        routes: Mapping[str, Handler],
        middleware: Sequence[Middleware] = (),
        registry: Any = None,
    ) -> None:
        self._routes: list[tuple[str, str, re.Pattern[str]]] = []
        self._handlers: dict[tuple[str, str], Handler] = {}
        for key, handler in routes.items():
            method, template = key.split(" ", 1)
            self._routes.append((method.upper(), template, _compile(template)))
            self._handlers[(method.upper(), template)] = handler
        self.registry = registry
        dispatch: Handler = self._dispatch
        for wrap in reversed(middleware):  # the first middleware listed is the outermost
            dispatch = wrap(dispatch)
        self._handle = dispatch
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # life cycle ------------------------------------------------------------------------------------
    def start(self) -> HttpService:
        service = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
                service._serve(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

            def log_message(self, *args: object) -> None:  # access logs are the lessons' job, not stderr's
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = False  # close() waits for requests in progress
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-service", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> HttpService:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the service is not started: call .start()")
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # requests --------------------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Response:
        handler = self._handlers.get((request.method, request.route))
        return handler(request) if handler else Response(404, {"error": "not found"})

    def _route_of(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        for route_method, template, pattern in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                return template, match.groupdict()
        return UNMATCHED, {}

    def _serve(self, raw: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(raw.path)
        if parsed.path == "/metrics" and raw.command == "GET" and self.registry is not None:
            from prometheus_client.exposition import choose_encoder

            encoder, content_type = choose_encoder(raw.headers.get("Accept", ""))
            self._send(raw, Response(200, encoder(self.registry), {"Content-Type": content_type}))
            return
        length = int(raw.headers.get("Content-Length") or 0)
        request = Request(
            method=raw.command,
            path=parsed.path,
            headers=raw.headers,
            body=raw.rfile.read(length) if length else b"",
            query=dict(urllib.parse.parse_qsl(parsed.query)),
        )
        # the route is known before middleware runs, so metrics and spans can label by it
        request.route, request.params = self._route_of(request.method, request.path)
        try:
            response = self._handle(request)
        except Exception:  # noqa: BLE001 - a crashing handler is a 500, as in any web framework
            response = Response(500, {"error": "internal server error"})
        self._send(raw, response)

    @staticmethod
    def _send(raw: BaseHTTPRequestHandler, response: Response) -> None:
        body, content_type = response.encode()
        headers = {"Content-Type": content_type, **response.headers, "Content-Length": str(len(body))}
        try:
            raw.send_response(response.status)
            for name, value in headers.items():
                raw.send_header(name, value)
            raw.end_headers()
            raw.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout): nothing to do
            pass


# client --------------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body or b"null")


def call(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    timeout_s: float = 5.0,
) -> Reply:
    """One HTTP request; 4xx and 5xx come back as a Reply like any other status (no exception)."""
    data = None if json is None else jsonlib.dumps(json).encode()
    all_headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method.upper(), headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return Reply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers.items()), exc.read())


def get(url: str, **kwargs: Any) -> Reply:
    return call("GET", url, **kwargs)


def drive(base_url: str, requests: Iterable[tuple[str, str]], concurrency: int = 4) -> list[int]:
    """Send (method, path) requests from CONCURRENCY threads; return the statuses in request order."""
    def one(item: tuple[str, str]) -> int:
        method, path = item
        return call(method, base_url + path, json={} if method in ("POST", "PUT") else None).status

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, requests))
