"""A small REST/JSON gateway in front of a gRPC service, driven by its google.api.http rules (what grpc-gateway
or Envoy's transcoder do): HTTP/1.1 + JSON in, a gRPC call on CHANNEL, JSON out, the gRPC status mapped to an
HTTP status. It also serves its OpenAPI document at /openapi.json and answers CORS preflights for ORIGINS.

    with JsonGateway(channel, catalog_service) as gateway:      # or gateway = JsonGateway(...).start(); .close()
        httpx.get(f"{gateway.url}/v1/products/p-1", headers={"authorization": "Bearer ..."})

The incoming W3C `traceparent` becomes the current OpenTelemetry context of the gRPC call, so a channel with
the OpenTelemetry client interceptor continues the caller's trace.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from opentelemetry import context, propagate

from infracourse.lessons import http_rules

# The mapping grpc-gateway uses (runtime.HTTPStatusFromCode).
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
}
FORWARDED = ("authorization",)  # request headers passed on as gRPC metadata
Matcher = Callable[[str, str], "dict[str, Any] | None"]
Reply = tuple[int, dict[str, str], bytes]


def _status(code: grpc.StatusCode, message: str) -> Reply:
    body = json.dumps({"code": code.value[0], "message": message, "details": []}).encode()
    return HTTP_STATUS[code.name], {"Content-Type": "application/json"}, body


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        into[key] = _merge(into.get(key) or {}, value) if isinstance(value, dict) else value
    return into


class JsonGateway:
    def __init__(self, channel: grpc.Channel, service: ServiceDescriptor, *, match: Matcher = http_rules.match,
                 origins: Sequence[str] = (), openapi: dict[str, Any] | None = None, timeout_s: float = 5) -> None:
        self.channel, self.match, self.origins, self.timeout_s = channel, match, set(origins), timeout_s
        self.routes = http_rules.routes(service)
        self.openapi = openapi
        self.errors: list[BaseException] = []  # what MATCH raised (a check reports it)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.gateway = self  # type: ignore[attr-defined]
        # a short poll: shutdown() waits for it, and checks start and stop a gateway every time
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="json-gateway",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> JsonGateway:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> JsonGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cors(self, headers: dict[str, str]) -> dict[str, str]:
        origin = headers.get("origin", "")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin in self.origins else {}

    def handle(self, verb: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """One HTTP request in, one reply (status, headers, body) out."""
        url = urlsplit(target)
        if verb == "OPTIONS":  # a browser's CORS preflight
            allow = {"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                     "Access-Control-Allow-Headers": "authorization, content-type, traceparent",
                     "Access-Control-Max-Age": "600"}
            return 204, {**self._cors(headers), **(allow if self._cors(headers) else {})}, b""
        if verb == "GET" and url.path == "/openapi.json" and self.openapi is not None:
            return 200, {"Content-Type": "application/json", **self._cors(headers)}, json.dumps(self.openapi).encode()
        status, extra, payload = self._call(verb, url.path, parse_qs(url.query), headers, body)
        return status, {**extra, **self._cors(headers)}, payload

    def _call(self, verb: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> Reply:
        verbs_here = []
        for route in self.routes:
            try:
                fields = self.match(route.template, path)
            except Exception as exc:  # noqa: BLE001 - learner code; kept for the check
                self.errors.append(exc)
                return _status(grpc.StatusCode.INTERNAL, f"matching {route.template} raised {type(exc).__name__}")
            if fields is None:
                continue
            if route.verb != verb:
                verbs_here.append(route.verb)
                continue
            return self._transcode(route, fields, query, headers, body)
        if verbs_here:
            return _status(grpc.StatusCode.UNIMPLEMENTED, f"{path} answers {', '.join(verbs_here)}, not {verb}")
        return _status(grpc.StatusCode.NOT_FOUND, f"no route for {verb} {path}")

    def _transcode(self, route: http_rules.Route, fields: dict[str, Any], query: dict[str, list[str]],
                   headers: dict[str, str], body: bytes) -> Reply:
        request_class = GetMessageClass(route.method.input_type)
        response_class = GetMessageClass(route.method.output_type)
        try:
            document = json.loads(body or b"{}") if route.body else {}
            if route.body == "*":
                fields = _merge(document, fields)
            elif route.body:
                fields = _merge({route.body: document}, fields)
            else:
                fields = {**{k: v[0] if len(v) == 1 else v for k, v in query.items()}, **fields}
            request = json_format.ParseDict(fields, request_class())
        except (ValueError, json_format.ParseError) as exc:
            return _status(grpc.StatusCode.INVALID_ARGUMENT, str(exc).splitlines()[0])
        metadata = [(name, headers[name]) for name in FORWARDED if name in headers]
        call = self.channel.unary_unary(route.grpc_path, request_serializer=request_class.SerializeToString,
                                        response_deserializer=response_class.FromString)
        token = context.attach(propagate.extract(headers))
        try:
            response = call(request, metadata=metadata, timeout=self.timeout_s)
        except grpc.RpcError as err:
            return _status(err.code(), err.details() or "")
        finally:
            context.detach(token)
        return 200, {"Content-Type": "application/json"}, json.dumps(json_format.MessageToDict(response)).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as browsers and HTTP clients expect
    # Headers and body leave in two writes; with Nagle's algorithm the second waits for the client's delayed
    # ACK, ~40 ms on every keep-alive request.
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.server.gateway.handle(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: http.server would write every request to stderr."""
