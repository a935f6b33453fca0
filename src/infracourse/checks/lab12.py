"""Checks of labs/12_grpc_at_the_edge.ipynb: JWT verification, a JWT interceptor with scopes per method, a path
matcher inside the REST/JSON gateway (called over plain HTTP), a traced client interceptor, and a JWKS key store
that follows a key rotation. Every server, gateway and identity provider runs on a free loopback port and is
stopped before the check returns; every token is minted by the check with keys it makes itself."""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from opentelemetry.instrumentation.grpc import server_interceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from infracourse.checking import NotDone, exercise, expect, time_limit
from infracourse.checking.grpc_harness import InterceptorTrap, serving, status_code
from infracourse.lessons import edge_codegen
from infracourse.lessons.http_service import HttpService, Response
from infracourse.lessons.json_gateway import JsonGateway

edge_codegen.generate()
from infracourse.grpc_generated.edge import catalog_pb2, catalog_pb2_grpc  # noqa: E402

ISSUER, AUDIENCE, LEEWAY_S = "https://id.course.internal", "catalog-api", 30
CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"]
SERVICE = CATALOG.full_name
GET, LIST, CREATE = (f"/{SERVICE}/{name}" for name in ("GetProduct", "ListProducts", "CreateProduct"))
CALL_TIMEOUT_S = 5
_KEYS = {kid: ec.generate_private_key(ec.SECP256R1()) for kid in ("k1", "k2", "attacker")}


def mint(scope: str = "catalog.read", *, kid: str = "k1", key: str | None = None, aud: str = AUDIENCE,
         iss: str = ISSUER, expires_in_s: float = 300, algorithm: str = "ES256", drop: tuple[str, ...] = ()) -> str:
    """A token as the lab's identity provider would issue it (KEY: the name of another key to sign with; DROP:
    claims to leave out)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "lab-client", "aud": aud, "iss": iss, "scope": scope, "iat": now,
                              "exp": int(now + expires_in_s)}
    claims = {name: value for name, value in claims.items() if name not in drop}
    signer = _KEYS[key or kid] if algorithm == "ES256" else "a-shared-secret-of-32-bytes-or-more!"
    return jwt.encode(claims, signer, algorithm=algorithm, headers={"kid": kid})


def public_keys(*kids: str) -> dict[str, Any]:
    return {kid: _KEYS[kid].public_key() for kid in kids}


def _jwk(kid: str) -> dict[str, Any]:
    return {**jwt.algorithms.ECAlgorithm.to_jwk(_KEYS[kid].public_key(), as_dict=True), "kid": kid, "alg": "ES256"}


class _Catalog(catalog_pb2_grpc.CatalogServiceServicer):
    """Products sku-1 .. sku-3 in memory; counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0
        self.metadata: list[dict[str, str]] = []

    def GetProduct(self, request, context):
        self.calls += 1
        self.metadata.append(dict(context.invocation_metadata()))
        if request.sku not in {"sku-1", "sku-2", "sku-3"}:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no product {request.sku}")
        return catalog_pb2.GetProductResponse(product=catalog_pb2.Product(sku=request.sku, price_cents=100))

    def ListProducts(self, request, context):
        self.calls += 1
        return catalog_pb2.ListProductsResponse(products=[catalog_pb2.Product(sku="sku-1")])

    def CreateProduct(self, request, context):
        self.calls += 1
        return catalog_pb2.CreateProductResponse(product=request.product)


def _register(servicer: _Catalog) -> Callable[[grpc.Server], None]:
    return lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)


def _raises_jwt_error(verify, token: str, keys: dict[str, Any]) -> tuple[bool, str]:
    """(True, '') when VERIFY refused TOKEN with a jwt.PyJWTError; (False, what happened) otherwise."""
    try:
        time_limit.bounded(5, verify, token, keys, what="verify()")
    except jwt.PyJWTError:
        return True, ""
    except (NotDone, NotImplementedError):
        raise
    except time_limit.TimedOut:
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the learner
        return False, f"raised {type(exc).__name__} instead of a jwt.PyJWTError"
    return False, "accepted it"


# --- Exercise 1 ----------------------------------------------------------------------------------------


@exercise("1", "Verify a token")
def verify_token(verify) -> str:
    keys = public_keys("k1", "k2")
    for name, token in {"a valid token": mint(), "a valid token signed with key k2": mint(kid="k2"),
                        f"a token expired 10 s ago (within the {LEEWAY_S} s leeway)": mint(expires_in_s=-10)}.items():
        try:
            claims = time_limit.bounded(5, verify, token, keys, what="verify()")
        except jwt.PyJWTError as exc:
            expect(False, f"verify() refused {name}: {type(exc).__name__}: {exc}",
                   hint="pick the key by the token's kid (jwt.get_unverified_header) and pass leeway=LEEWAY_S"
                   if "10 s" in name or "k2" in name else "pass audience=AUDIENCE and issuer=ISSUER to jwt.decode")
        expect(isinstance(claims, dict) and claims.get("sub") == "lab-client",
               f"verify() returned {claims!r} for {name}; it should return the token's claims (a dict)",
               hint="return what jwt.decode returns")
    refused = {
        "a token expired 2 minutes ago": (mint(expires_in_s=-120), "a leeway of LEEWAY_S seconds, not more"),
        "a token for another audience": (mint(aud="billing-api"), "pass audience=AUDIENCE"),
        "a token from another issuer": (mint(iss="https://evil.example"), "pass issuer=ISSUER"),
        "a token signed with another key under the kid k1": (
            mint(key="attacker"), "never turn off verify_signature; verify with keys[kid]"),
        "a token with an unknown kid": (mint(kid="attacker"), "raise jwt.InvalidKeyError for a kid not in keys"),
        "an HS256 token": (mint(algorithm="HS256"), "accept only algorithms=['ES256']"),
        "a token without exp": (mint(drop=("exp",)), "require exp: options={'require': ['exp', ...]}"),
        "a token without iat": (mint(drop=("iat",)), "require iat too: options={'require': [...]}"),
        "a token without sub": (mint(drop=("sub",)), "require sub too: options={'require': [...]}"),
    }
    for name, (token, hint) in refused.items():
        ok, what = _raises_jwt_error(verify, token, keys)
        expect(ok, f"verify() {what} for {name}", hint=hint)
    return "valid tokens and clock skew accepted; 9 kinds of bad token refused with a jwt.PyJWTError"


# --- Exercise 2 ----------------------------------------------------------------------------------------


def _reference_verify(token: str) -> dict:
    kid = jwt.get_unverified_header(token).get("kid")
    keys = public_keys("k1")
    if kid not in keys:
        raise jwt.InvalidKeyError(f"unknown kid {kid!r}")
    return jwt.decode(token, keys[kid], algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY_S)


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(f"{record.msg} {record.args}")
        with contextlib.suppress(Exception):
            self.text.append(record.getMessage())


@contextlib.contextmanager
def _everything_written() -> Iterator[list[str]]:
    """What was logged (any logger that reaches the root, at any level) or printed inside the block."""
    handler, root, out = _Everything(), logging.getLogger(), io.StringIO()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    written: list[str] = []
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield written
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        written.extend([*handler.text, out.getvalue()])


ASKED_SCOPES = {GET: "catalog.read", CREATE: "catalog.write"}  # ListProducts left out on purpose


@exercise("2", "A JWT interceptor with scopes per method")
def jwt_interceptor(interceptor_class) -> str:
    servicer = _Catalog()
    guard = InterceptorTrap(interceptor_class(_reference_verify, dict(ASKED_SCOPES)))
    get = catalog_pb2.GetProductRequest(sku="sku-1")
    create = catalog_pb2.CreateProductRequest(product=catalog_pb2.Product(sku="new"))
    leaked = mint()
    cases = {
        "a valid catalog.read token": ("GetProduct", get, leaked),
        "a catalog.write token creating": ("CreateProduct", create, mint("catalog.read catalog.write")),
        "no token": ("GetProduct", get, None),
        "a token that is not a JWT": ("GetProduct", get, "hello"),
        "an expired token": ("GetProduct", get, mint(expires_in_s=-120)),
        "a token for another audience": ("GetProduct", get, mint(aud="billing-api")),
        "a token signed with another key": ("GetProduct", get, mint(key="attacker")),
        "a catalog.read token creating": ("CreateProduct", create, mint("catalog.read")),
        "a token with scope catalog.reader": ("GetProduct", get, mint("catalog.reader")),
        "a valid token calling ListProducts, a method not in the table": (
            "ListProducts", catalog_pb2.ListProductsRequest(), mint("catalog.read catalog.write")),
    }
    with _everything_written() as written, serving(_register(servicer), interceptors=[guard]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        got = {}
        for name, (method, request, token) in cases.items():
            got[name] = status_code(getattr(stub, method), request, timeout=CALL_TIMEOUT_S,
                                    metadata=[("authorization", f"Bearer {token}")] if token else [])
            if got[name] == grpc.StatusCode.DEADLINE_EXCEEDED:
                break  # the interceptor hangs: one call is enough to say so
    guard.raise_first()
    expect(grpc.StatusCode.DEADLINE_EXCEEDED not in got.values(),
           f"a call with {name} did not finish within {CALL_TIMEOUT_S} s",
           hint="intercept_service must return a handler at once: look for a wait or a loop")
    for name in ("a valid catalog.read token", "a catalog.write token creating"):
        expect(got[name] == grpc.StatusCode.OK, f"a call with {name} was refused with {got[name].name}",
               hint="metadata keys are lowercase ('authorization'); the value is 'Bearer <token>'")
    for name in ("no token", "a token that is not a JWT", "an expired token", "a token for another audience",
                 "a token signed with another key"):
        expect(got[name] == grpc.StatusCode.UNAUTHENTICATED,
               f"a call with {name} got {got[name].name}; a missing or bad token is UNAUTHENTICATED",
               hint="catch jwt.PyJWTError around self.verify(token) and refuse with UNAUTHENTICATED")
    for name, hint in (("a catalog.read token creating", "look up self.scopes[method] and compare with the scopes"),
                       ("a token with scope catalog.reader", "split the scope claim on spaces; compare whole words"),
                       ("a valid token calling ListProducts, a method not in the table",
                        "fail closed: refuse a method missing from self.scopes")):
        expect(got[name] == grpc.StatusCode.PERMISSION_DENIED,
               f"a call with {name} got {got[name].name} instead of PERMISSION_DENIED", hint=hint)
    expect(not any(leaked in text for text in written), "the token appeared in a log line or printed output",
           hint="log the subject (claims['sub']) or the method, never the token or the authorization header")
    return "bad tokens UNAUTHENTICATED, missing scopes PERMISSION_DENIED (unlisted methods too), no token logged"


# --- Exercise 3 ----------------------------------------------------------------------------------------


@exercise("3", "The gateway's path matcher, over plain HTTP")
def path_matcher(match) -> str:
    direct = {  # (template, path): (expected, hint)
        ("/v1/shelves/{shelf.id}/books/{book}", "/v1/shelves/s1/books/b2"): (
            {"shelf": {"id": "s1"}, "book": "b2"}, "a variable a.b nests: {'a': {'b': value}}"),
        ("/v1/items.json", "/v1/itemsXjson"): (None, "escape the literal parts of the template (re.escape)"),
        ("/v1/products/{sku}", "/v1/products/"): (None, "a variable matches one non-empty segment ([^/]+)"),
        ("/v1/products/{sku}", "/v1/products/a/b"): (None, "a variable matches one segment: no '/' in it ([^/]+)"),
        ("/v1/products", "/v1/products"): ({}, "a template without variables matches only itself, giving {}"),
    }
    for (template, path), (wanted, hint) in direct.items():
        got = time_limit.bounded(5, match, template, path, what=f"match({template!r}, {path!r})")
        expect(got == wanted, f"match({template!r}, {path!r}) returned {got!r}, expected {wanted!r}", hint=hint)
    servicer = _Catalog()
    with serving(_register(servicer)) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel, \
            JsonGateway(channel, CATALOG, match=match) as gateway, \
            httpx.Client(base_url=gateway.url, timeout=5) as http:
        answers = {path: http.get(path) for path in ("/v1/products/sku-2", "/v1/products/sku-2/reviews",
                                                     "/v1/products", "/v1/products/nope")}
    if gateway.errors:
        raise gateway.errors[0]
    one = answers["/v1/products/sku-2"]
    expect(one.status_code == 200 and one.json().get("product", {}).get("sku") == "sku-2",
           f"GET /v1/products/sku-2 answered {one.status_code} {one.text[:80]}",
           hint="match('/v1/products/{sku}', '/v1/products/sku-2') should be {'sku': 'sku-2'}")
    expect(answers["/v1/products/sku-2/reviews"].status_code == 404,
           f"GET /v1/products/sku-2/reviews answered {answers['/v1/products/sku-2/reviews'].status_code}, not 404",
           hint="the whole path must match (re.fullmatch), and a variable is one segment")
    listed = answers["/v1/products"]
    expect(listed.status_code == 200 and "products" in listed.json(),
           f"GET /v1/products answered {listed.status_code} {listed.text[:80]}",
           hint="a template without variables matches only itself, and returns {}")
    expect(answers["/v1/products/nope"].status_code == 404, "GET /v1/products/nope did not answer 404")
    return "routes, nesting and whole-path matching right; the gateway answered over HTTP/1.1"


# --- Exercise 4 ----------------------------------------------------------------------------------------


@exercise("4", "A traced client interceptor")
def traced_client(interceptor_class) -> str:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("lab12.check")
    interceptor = interceptor_class(provider.get_tracer("lab12.learner"))
    servicer = _Catalog()
    with serving(_register(servicer), interceptors=[server_interceptor(tracer_provider=provider)]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
        stub = catalog_pb2_grpc.CatalogServiceStub(grpc.intercept_channel(plain, interceptor))

        def two_calls():  # in a worker thread with a deadline: the interceptor runs in the caller's thread
            with tracer.start_as_current_span("page") as page:
                ok = status_code(stub.GetProduct, catalog_pb2.GetProductRequest(sku="sku-1"),
                                 timeout=CALL_TIMEOUT_S, metadata=[("x-tenant", "acme")])
                missing = status_code(stub.GetProduct, catalog_pb2.GetProductRequest(sku="nope"),
                                      timeout=CALL_TIMEOUT_S)
            return page, ok, missing

        page, ok, missing = time_limit.bounded(2 * CALL_TIMEOUT_S, two_calls, what="two calls through the interceptor")
    expect(ok == grpc.StatusCode.OK, f"a call through the interceptor ended {ok.name}",
           hint="return what continuation(client_call_details, request) returns")
    expect(missing == grpc.StatusCode.NOT_FOUND, f"a call for a missing product ended {missing.name}, not NOT_FOUND")
    expect(servicer.metadata and servicer.metadata[0].get("x-tenant") == "acme",
           "the caller's own metadata (x-tenant) did not reach the server",
           hint="extend client_call_details.metadata (it may be None) instead of replacing it")
    spans = exporter.get_finished_spans()
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    servers = sorted((s for s in spans if s.kind is SpanKind.SERVER), key=lambda s: s.start_time or 0)
    expect(len(clients) == 2, f"{len(clients)} CLIENT spans for 2 calls",
           hint="start one span a call with kind=SpanKind.CLIENT")
    clients.sort(key=lambda s: s.start_time or 0)
    wanted_name = f"{SERVICE}/GetProduct"
    for span, code in zip(clients, (0, 5), strict=True):
        expect(span.name == wanted_name, f"the client span is named {span.name!r}, expected {wanted_name!r}",
               hint="the method path without its leading '/'")
        expect(span.parent is not None and span.parent.span_id == page.get_span_context().span_id,
               "the client span is not a child of the span that was current when the call was made",
               hint="tracer.start_as_current_span(...) inside intercept_unary_unary uses the current context")
        attributes = dict(span.attributes or {})
        wanted = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "GetProduct",
                  "rpc.grpc.status_code": code}
        wrong = {k: attributes.get(k) for k, v in wanted.items() if attributes.get(k) != v}
        expect(not wrong, f"client span attributes {wrong} differ from {wanted}",
               hint="rpc.grpc.status_code is the int of call.code() (call.code().value[0])")
    expect(clients[1].status.status_code is StatusCode.ERROR and clients[0].status.status_code is not StatusCode.ERROR,
           "the span of the NOT_FOUND call is not marked as an error (or the OK one is)",
           hint="span.set_status(Status(StatusCode.ERROR, ...)) when the code is not OK")
    expect(len(servers) == 2 and all(s.parent is not None and s.parent.span_id == c.context.span_id
                                     for s, c in zip(servers, clients, strict=False)),
           "the server's spans are not children of your client spans: the context did not travel in the metadata",
           hint="propagate.inject(carrier) into a dict, then add its items to the call's metadata")
    return "CLIENT spans with the rpc.* attributes, the right parent, and the context carried to the server"


# --- Exercise 5 ----------------------------------------------------------------------------------------


class _Provider:
    """A JWKS endpoint on a free port: publishes the kids in self.kids, counts fetches, can hang."""

    def __init__(self) -> None:
        self.kids, self.fetches, self.hang_s = ["k1"], 0, 0.0
        self.service = HttpService({"GET /jwks.json": self._serve})

    def _serve(self, request) -> Response:
        self.fetches += 1
        if self.hang_s:
            time.sleep(self.hang_s)
        return Response(200, {"keys": [_jwk(kid) for kid in self.kids]})


def _key_or_error(store, kid: str) -> tuple[Any, str]:
    try:
        return time_limit.bounded(4, store.key_for, kid, what=f"key_for({kid!r})",
                                  hint="fetch with a timeout (urllib.request.urlopen(url, timeout=1))"), ""
    except jwt.PyJWTError as exc:
        return None, type(exc).__name__
    except (NotDone, NotImplementedError, time_limit.TimedOut):
        raise
    except Exception as exc:  # noqa: BLE001 - reported to the learner
        return None, f"raised {type(exc).__name__}"


def _is_key(key: Any, kid: str) -> bool:
    public = getattr(key, "key", key)  # a PyJWK or the key itself
    numbers = getattr(public, "public_numbers", None)
    return numbers is not None and numbers() == _KEYS[kid].public_key().public_numbers()


@exercise("5", "A JWKS key store that follows a rotation", stretch=True)
def jwks_store(store_class) -> str:
    idp = _Provider()
    with idp.service:
        url = f"{idp.service.url}/jwks.json"
        store = time_limit.bounded(4, store_class, url, min_refresh_s=0.5, what="JwksKeys(url, min_refresh_s=0.5)")
        key, error = _key_or_error(store, "k1")
        expect(_is_key(key, "k1"), f"key_for('k1') gave {error or repr(key)[:60]} instead of the public key of k1")
        for _ in range(3):
            _key_or_error(store, "k1")
        expect(idp.fetches == 1, f"4 look-ups of a known kid fetched the JWKS {idp.fetches} times, not once",
               hint="keep the fetched keys and use them until a kid is missing")
        idp.hang_s = 0.2  # a slow first fetch, while 8 server threads ask a fresh store for the same key
        fresh = time_limit.bounded(4, store_class, url, min_refresh_s=0.5, what="JwksKeys(url, min_refresh_s=0.5)")
        keys = time_limit.in_threads(10, _key_or_error, [(fresh, "k1")] * 8, what="concurrent key_for('k1') calls")
        idp.hang_s = 0.0
        expect(all(_is_key(k, "k1") for k, _ in keys), "some of 8 concurrent key_for('k1') calls got no key",
               hint="hold a threading.Lock around the look-up and the fetch")
        expect(idp.fetches == 2, f"8 concurrent first look-ups fetched the JWKS {idp.fetches - 1} times, not once",
               hint="hold a threading.Lock around the look-up and the fetch, so one thread fetches and the rest wait")
        time.sleep(0.6)
        idp.kids = ["k2"]  # rotation: k2 published, k1 withdrawn
        key, error = _key_or_error(store, "k2")
        expect(_is_key(key, "k2"), f"after the rotation key_for('k2') gave {error or repr(key)[:60]}",
               hint="an unknown kid fetches the set again (once) before giving up")
        before = idp.fetches
        outcomes = [_key_or_error(store, secrets.token_hex(4))[1] for _ in range(10)]
        expect(all(o and not o.startswith("raised") for o in outcomes),
               f"an unknown kid gave {sorted(set(outcomes))}; it should raise a jwt.PyJWTError",
               hint="raise jwt.InvalidKeyError for a kid that is not in the fetched set")
        expect(idp.fetches - before <= 1, f"10 unknown kids within 0.5 s caused {idp.fetches - before} fetches",
               hint="refetch at most once every min_refresh_s seconds (time.monotonic())")
        key, error = _key_or_error(store, "k1")
        expect(key is None, "the withdrawn key k1 still works after the set was fetched again",
               hint="replace the old keys with the fetched set; do not merge them")
        time.sleep(0.6)
        idp.hang_s = 3.0  # the provider hangs: known keys go on working, unknown ones fail fast
        started = time.monotonic()
        _, error = _key_or_error(store, "k-new")
        expect(error and not error.startswith("raised"),
               f"with the provider hanging, an unknown kid {error or 'returned a key'}; expected a jwt.PyJWTError",
               hint="turn a failed or timed-out fetch into jwt.PyJWKClientError, keeping the last good set")
        expect(time.monotonic() - started < 2.5, "with the provider hanging, key_for took more than 2.5 s",
               hint="fetch with timeout=1")
        key, error = _key_or_error(store, "k2")
        expect(_is_key(key, "k2"), f"with the provider down, the known key k2 gave {error or repr(key)[:60]}",
               hint="keep the last good set when a fetch fails")
        idp.hang_s = 0.0
    return "cached, refetched on a new kid at most every min_refresh_s, withdrawn keys dropped, hangs survived"
