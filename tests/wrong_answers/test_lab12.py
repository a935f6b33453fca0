"""Lab 12 checks fail plausible wrong answers with a message that helps, and pass the reference answers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import urllib.request

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
import jwt
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab12 as checks
from infracourse.lessons import grpc_handlers, http_rules

# --- Exercise 1: verify ---------------------------------------------------------------------------------


def make_verify(*, algorithms=("ES256",), audience=checks.AUDIENCE, issuer=checks.ISSUER, leeway=checks.LEEWAY_S,
                require=("exp", "iat", "sub", "aud", "iss"), by_kid=True, unknown=jwt.InvalidKeyError, **options):
    def verify(token, keys):
        kid = jwt.get_unverified_header(token).get("kid") if by_kid else next(iter(keys))
        if kid not in keys:
            raise unknown(f"unknown kid {kid}")
        return jwt.decode(token, keys[kid], algorithms=list(algorithms), audience=audience, issuer=issuer,
                          leeway=leeway, options={"require": list(require), **options})

    return verify


def test_verify_reference_passes():
    assert_passes(checks.verify_token(make_verify()))


def test_verify_stub_is_not_done():
    def stub(token, keys):
        raise NotImplementedError

    assert_not_done(checks.verify_token(stub))


def test_verify_without_leeway_fails():
    assert_fails(checks.verify_token(make_verify(leeway=0)), "expired 10 s ago", in_hint=("leeway",))


def test_verify_with_a_huge_leeway_fails():
    assert_fails(checks.verify_token(make_verify(leeway=600)), "expired 2 minutes ago", "accepted")


def test_verify_ignoring_the_audience_fails():
    assert_fails(checks.verify_token(make_verify(audience=None, verify_aud=False)), "another audience")


def test_verify_ignoring_the_issuer_fails():
    assert_fails(checks.verify_token(make_verify(issuer=None)), "another issuer")


def test_verify_without_checking_the_signature_fails():
    assert_fails(checks.verify_token(make_verify(
        verify_signature=False, verify_exp=True, verify_aud=True, verify_iss=True)), "another key")


def test_verify_with_the_first_key_only_fails():
    assert_fails(checks.verify_token(make_verify(by_kid=False)), "signed with key k2", in_hint=("kid",))


def test_verify_raising_key_error_for_an_unknown_kid_fails():
    assert_fails(checks.verify_token(make_verify(unknown=KeyError)), "unknown kid", "KeyError")


def test_verify_accepting_hmac_fails():
    def accepts_hs256(token, keys):
        if jwt.get_unverified_header(token)["alg"] == "HS256":
            return jwt.decode(token, "a-shared-secret-of-32-bytes-or-more!", algorithms=["HS256"],
                              audience=checks.AUDIENCE, issuer=checks.ISSUER)
        return make_verify()(token, keys)

    assert_fails(checks.verify_token(accepts_hs256), "HS256", in_hint=("ES256",))


def test_verify_not_requiring_exp_fails():
    assert_fails(checks.verify_token(make_verify(require=())), "without exp")


def test_verify_requiring_only_exp_fails():
    assert_fails(checks.verify_token(make_verify(require=("exp",))), "without iat", in_hint=("require",))


def test_verify_returning_nothing_fails():
    def silent(token, keys):
        make_verify()(token, keys)

    assert_fails(checks.verify_token(silent), "returned None")


# --- Exercise 2: the interceptor ------------------------------------------------------------------------


class ReferenceJwt(grpc.ServerInterceptor):
    denied = grpc.StatusCode.PERMISSION_DENIED
    bad_token = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, verify, scopes):
        self.verify, self.scopes = verify, scopes

    def granted(self, needed, claims):
        return needed is not None and needed in claims.get("scope", "").split()

    def intercept_service(self, continuation, handler_call_details):
        handler, method = continuation(handler_call_details), handler_call_details.method
        if handler is None:
            return None
        scheme, _, token = dict(handler_call_details.invocation_metadata).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return grpc_handlers.refuse(handler, grpc.StatusCode.UNAUTHENTICATED, "missing")
        try:
            claims = self.verify(token)
        except jwt.PyJWTError:
            self.log(token)
            return grpc_handlers.refuse(handler, self.bad_token, "invalid")
        if not self.granted(self.scopes.get(method), claims):
            return grpc_handlers.refuse(handler, self.denied, "scope")
        return handler

    def log(self, token):
        logging.getLogger("lab12.test").info("refused a token")


def test_interceptor_reference_passes():
    assert_passes(checks.jwt_interceptor(ReferenceJwt))


def test_interceptor_stub_is_not_done():
    class Stub(ReferenceJwt):
        def intercept_service(self, continuation, handler_call_details):
            raise NotImplementedError

    assert_not_done(checks.jwt_interceptor(Stub))


def test_interceptor_answering_permission_denied_for_a_bad_token_fails():
    class Denied(ReferenceJwt):
        bad_token = grpc.StatusCode.PERMISSION_DENIED

    assert_fails(checks.jwt_interceptor(Denied), "PERMISSION_DENIED", "UNAUTHENTICATED")


def test_interceptor_answering_unauthenticated_for_a_missing_scope_fails():
    class Unauth(ReferenceJwt):
        denied = grpc.StatusCode.UNAUTHENTICATED

    assert_fails(checks.jwt_interceptor(Unauth), "catalog.read token creating", "PERMISSION_DENIED")


def test_interceptor_with_a_substring_scope_check_fails():
    class Substring(ReferenceJwt):
        def granted(self, needed, claims):
            return needed is not None and needed in claims.get("scope", "")

    assert_fails(checks.jwt_interceptor(Substring), "catalog.reader", in_hint=("split",))


def test_interceptor_open_for_unlisted_methods_fails():
    class FailOpen(ReferenceJwt):
        def granted(self, needed, claims):
            return needed is None or needed in claims.get("scope", "").split()

    assert_fails(checks.jwt_interceptor(FailOpen), "not in the table", in_hint=("fail closed",))


def test_interceptor_logging_the_token_fails():
    class Leaky(ReferenceJwt):
        def intercept_service(self, continuation, handler_call_details):
            logging.getLogger("lab12.test").debug("metadata %s", handler_call_details.invocation_metadata)
            return super().intercept_service(continuation, handler_call_details)

    assert_fails(checks.jwt_interceptor(Leaky), "token appeared", in_hint=("never the token",))


def test_interceptor_printing_the_token_fails():
    class Printer(ReferenceJwt):
        def log(self, token):
            print("refused", token)

    class PrintsAll(Printer):
        def intercept_service(self, continuation, handler_call_details):
            self.log(dict(handler_call_details.invocation_metadata).get("authorization"))
            return super().intercept_service(continuation, handler_call_details)

    assert_fails(checks.jwt_interceptor(PrintsAll), "token appeared")


def test_interceptor_that_hangs_is_reported_after_one_call():
    class Hangs(ReferenceJwt):
        def intercept_service(self, continuation, handler_call_details):
            time.sleep(checks.CALL_TIMEOUT_S + 1)
            return super().intercept_service(continuation, handler_call_details)

    started = time.monotonic()
    assert_fails(checks.jwt_interceptor(Hangs), "did not finish within", in_hint=("at once",))
    assert time.monotonic() - started < 4 * checks.CALL_TIMEOUT_S


def test_interceptor_raising_inside_the_server_is_reported():
    class Crashes(ReferenceJwt):
        def intercept_service(self, continuation, handler_call_details):
            raise ValueError("boom")

    assert_fails(checks.jwt_interceptor(Crashes), "ValueError")


# --- Exercise 3: the path matcher -------------------------------------------------------------------------


def test_matcher_reference_passes():
    assert_passes(checks.path_matcher(http_rules.match))


def test_matcher_stub_is_not_done():
    def stub(template, path):
        raise NotImplementedError

    assert_not_done(checks.path_matcher(stub))


def flat(template, path, *, segment="[^/]+", escape=True, whole=True):
    names = re.findall(r"\{([^}]+)\}", template)
    pattern = re.escape(template) if escape else template
    for name in names:
        pattern = pattern.replace(re.escape("{" + name + "}") if escape else "{" + name + "}", f"({segment})")
    found = (re.fullmatch if whole else re.match)(pattern, path)
    return None if found is None else dict(zip(names, found.groups(), strict=True))


def test_matcher_without_nesting_fails():
    assert_fails(checks.path_matcher(flat), "shelf.id", in_hint=("nests",))


def nested(fields):
    out = {}
    for name, value in fields.items():
        *parents, leaf = name.split(".")
        target = out
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return out


def test_matcher_without_escaping_fails():
    def unescaped(template, path):
        found = flat(template, path, escape=False)
        return None if found is None else nested(found)

    assert_fails(checks.path_matcher(unescaped), "itemsXjson", in_hint=("re.escape",))


def test_matcher_accepting_empty_segments_fails():
    def empty_ok(template, path):
        found = flat(template, path, segment="[^/]*")
        return None if found is None else nested(found)

    assert_fails(checks.path_matcher(empty_ok), "/v1/products/'", in_hint=("non-empty",))


def test_matcher_matching_a_prefix_fails():
    def prefix(template, path):
        found = flat(template, path, whole=False)
        return None if found is None else nested(found)

    assert_fails(checks.path_matcher(prefix), "/v1/products/a/b", "expected None")


def test_matcher_returning_none_without_variables_fails():
    def falsy(template, path):
        return http_rules.match(template, path) or None

    assert_fails(checks.path_matcher(falsy), "'/v1/products'", "expected {}")


def test_matcher_crossing_slashes_fails():
    def greedy(template, path):
        found = flat(template, path, segment=".+")
        return None if found is None else nested(found)

    assert_fails(checks.path_matcher(greedy), "/v1/products/a/b", in_hint=("one",))


# --- Exercise 4: the traced client ------------------------------------------------------------------------


class ReferenceTracing(grpc.UnaryUnaryClientInterceptor):
    kind = SpanKind.CLIENT
    inject = True

    def __init__(self, tracer):
        self.tracer = tracer

    def attributes(self, service, method):
        return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

    def record(self, span, call):
        span.set_attribute("rpc.grpc.status_code", call.code().value[0])
        if call.code() != grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, call.details()))

    def start(self, name, service, method):
        return self.tracer.start_as_current_span(name, kind=self.kind, attributes=self.attributes(service, method))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        name = client_call_details.method.lstrip("/")
        service, method = name.split("/")
        with self.start(name, service, method) as span:
            carrier = {}
            if self.inject:
                propagate.inject(carrier)
            details = client_call_details._replace(metadata=[*(client_call_details.metadata or []), *carrier.items()])
            call = continuation(details, request)
            self.record(span, call)
            return call


def test_tracing_reference_passes():
    assert_passes(checks.traced_client(ReferenceTracing))


def test_tracing_stub_is_not_done():
    class Stub(ReferenceTracing):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            raise NotImplementedError

    assert_not_done(checks.traced_client(Stub))


def test_tracing_internal_spans_fail():
    class Internal(ReferenceTracing):
        kind = SpanKind.INTERNAL

    assert_fails(checks.traced_client(Internal), "0 CLIENT spans", in_hint=("SpanKind.CLIENT",))


def test_tracing_that_hangs_is_stopped():
    class Hangs(ReferenceTracing):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            time.sleep(3 * checks.CALL_TIMEOUT_S)

    assert_fails(checks.traced_client(Hangs), "did not return within")


def test_tracing_with_the_leading_slash_fails():
    class Slash(ReferenceTracing):
        def start(self, name, service, method):
            return super().start("/" + name, service, method)

    assert_fails(checks.traced_client(Slash), "named '/course.edge.v1")


def test_tracing_as_a_new_root_fails():
    class Root(ReferenceTracing):
        def start(self, name, service, method):
            from opentelemetry import context

            return self.tracer.start_as_current_span(name, context=context.Context(), kind=SpanKind.CLIENT,
                                                     attributes=self.attributes(service, method))

    assert_fails(checks.traced_client(Root), "not a child")


def test_tracing_without_the_status_code_fails():
    class NoCode(ReferenceTracing):
        def record(self, span, call):
            if call.code() != grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR))

    assert_fails(checks.traced_client(NoCode), "rpc.grpc.status_code")


def test_tracing_the_code_as_a_name_fails():
    class Named(ReferenceTracing):
        def record(self, span, call):
            span.set_attribute("rpc.grpc.status_code", call.code().name)

    assert_fails(checks.traced_client(Named), "rpc.grpc.status_code", in_hint=("int",))


def test_tracing_without_rpc_system_fails():
    class NoSystem(ReferenceTracing):
        def attributes(self, service, method):
            return {"rpc.service": service, "rpc.method": method}

    assert_fails(checks.traced_client(NoSystem), "rpc.system")


def test_tracing_without_error_status_fails():
    class NoError(ReferenceTracing):
        def record(self, span, call):
            span.set_attribute("rpc.grpc.status_code", call.code().value[0])

    assert_fails(checks.traced_client(NoError), "not marked as an error")


def test_tracing_without_propagation_fails():
    class NoInject(ReferenceTracing):
        inject = False

    assert_fails(checks.traced_client(NoInject), "did not travel", in_hint=("propagate.inject",))


def test_tracing_with_the_full_path_as_rpc_method_fails():
    class FullPath(ReferenceTracing):
        def attributes(self, service, method):
            return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": f"{service}/{method}"}

    assert_fails(checks.traced_client(FullPath), "rpc.method")


def test_tracing_replacing_the_callers_metadata_fails():
    class Replaces(ReferenceTracing):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            return super().intercept_unary_unary(continuation, client_call_details._replace(metadata=None), request)

    assert_fails(checks.traced_client(Replaces), "x-tenant", in_hint=("extend",))


# --- Exercise 5: the JWKS store ---------------------------------------------------------------------------


class ReferenceJwks:
    timeout_s = 1
    replace = True
    keep_on_failure = True

    def __init__(self, url, min_refresh_s):
        self.url, self.min_refresh_s = url, min_refresh_s
        self.lock = threading.Lock()
        self.keys = {}
        self.fetched_at = None

    def may_fetch(self):
        return self.fetched_at is None or time.monotonic() - self.fetched_at >= self.min_refresh_s

    def fetch(self):
        with urllib.request.urlopen(self.url, timeout=self.timeout_s) as answer:
            fetched = {k.key_id: k for k in jwt.PyJWKSet.from_dict(json.load(answer)).keys}
        self.keys = fetched if self.replace else {**self.keys, **fetched}

    def key_for(self, kid):
        with self.lock:
            if kid not in self.keys and self.may_fetch():
                self.fetched_at = time.monotonic()
                try:
                    self.fetch()
                except (OSError, ValueError, jwt.PyJWTError) as exc:
                    if not self.keep_on_failure:
                        self.keys = {}
                    raise jwt.PyJWKClientError(str(exc)) from exc
            if kid not in self.keys:
                raise jwt.InvalidKeyError(kid)
            return self.keys[kid]


def test_jwks_reference_passes():
    assert_passes(checks.jwks_store(ReferenceJwks))


def test_jwks_stub_is_not_done():
    class Stub(ReferenceJwks):
        def key_for(self, kid):
            raise NotImplementedError

    assert_not_done(checks.jwks_store(Stub))


def test_jwks_pyjwkclient_with_a_cooldown_passes():
    class Client:
        def __init__(self, url, min_refresh_s):
            self.client = jwt.PyJWKClient(url, lifespan=3600, cooldown_duration=min_refresh_s, timeout=1)

        def key_for(self, kid):
            return self.client.get_signing_key(kid)

    result = checks.jwks_store(Client)
    assert result.status in {"passed", "failed"}  # an allowed approach: whatever it does is reported, never a crash


def test_jwks_fetching_every_time_fails():
    class NoCache(ReferenceJwks):
        def key_for(self, kid):
            with self.lock:
                self.fetch()
                if kid not in self.keys:
                    raise jwt.InvalidKeyError(kid)
                return self.keys[kid]

    assert_fails(checks.jwks_store(NoCache), "fetched the JWKS 4 times", in_hint=("keep",))


def test_jwks_without_a_lock_fails():
    class Unlocked(ReferenceJwks):
        def __init__(self, url, min_refresh_s):
            super().__init__(url, min_refresh_s)
            self.lock = contextlib.nullcontext()

    assert_fails(checks.jwks_store(Unlocked), "8 concurrent", in_hint=("threading.Lock",))


def test_jwks_never_refetching_fails():
    class FetchOnce(ReferenceJwks):
        def may_fetch(self):
            return self.fetched_at is None

    assert_fails(checks.jwks_store(FetchOnce), "after the rotation", in_hint=("unknown kid",))


def test_jwks_without_a_cooldown_fails():
    class NoCooldown(ReferenceJwks):
        def may_fetch(self):
            return True

    assert_fails(checks.jwks_store(NoCooldown), "10 unknown kids", in_hint=("min_refresh_s",))


def test_jwks_merging_sets_fails():
    class Merges(ReferenceJwks):
        replace = False

    assert_fails(checks.jwks_store(Merges), "withdrawn key k1", in_hint=("replace",))


def test_jwks_raising_key_error_fails():
    class KeyErrors(ReferenceJwks):
        def key_for(self, kid):
            try:
                return super().key_for(kid)
            except jwt.InvalidKeyError as exc:
                raise KeyError(kid) from exc

    assert_fails(checks.jwks_store(KeyErrors), "unknown kid", "KeyError")


def test_jwks_without_a_timeout_fails():
    class Patient(ReferenceJwks):
        timeout_s = None

    assert_fails(checks.jwks_store(Patient), "key_for took more than 2.5 s", in_hint=("timeout",))


def test_jwks_forgetting_keys_when_the_provider_is_down_fails():
    class Forgets(ReferenceJwks):
        keep_on_failure = False

    assert_fails(checks.jwks_store(Forgets), "provider down", "k2", in_hint=("last good set",))


def test_jwks_leaking_url_errors_fails():
    class Leaks(ReferenceJwks):
        def key_for(self, kid):
            with self.lock:
                if kid not in self.keys and self.may_fetch():
                    self.fetched_at = time.monotonic()
                    self.fetch()
                if kid not in self.keys:
                    raise jwt.InvalidKeyError(kid)
                return self.keys[kid]

    assert_fails(checks.jwks_store(Leaks), "provider hanging", "raised")


# --- The audit: every sentence of an exercise's text and the wrong answers that break only it -------------

REQUIREMENTS = {
    "1": {
        "Return the token's claims when it is valid": "test_verify_returning_nothing_fails",
        "otherwise raise a `jwt.PyJWTError` (any of its subclasses)":
            "test_verify_raising_key_error_for_an_unknown_kid_fails",
        "The key is `keys[kid]`, with `kid` from the token's header": (
            "test_verify_with_the_first_key_only_fails", "test_verify_without_checking_the_signature_fails"),
        "an unknown `kid` raises `jwt.InvalidKeyError`.": "test_verify_raising_key_error_for_an_unknown_kid_fails",
        "Accept only the algorithm `ES256`.": "test_verify_accepting_hmac_fails",
        "The audience must be `AUDIENCE` and the issuer `ISSUER`.": (
            "test_verify_ignoring_the_audience_fails", "test_verify_ignoring_the_issuer_fails"),
        "Allow `LEEWAY_S` seconds of clock skew, no more.": (
            "test_verify_without_leeway_fails", "test_verify_with_a_huge_leeway_fails"),
        "Require the claims `exp`, `iat`, `sub`, `aud` and `iss`.": (
            "test_verify_not_requiring_exp_fails", "test_verify_requiring_only_exp_fails"),
    },
    "2": {
        "No `authorization: Bearer <token>` metadata, or a token that `self.verify` refuses: `UNAUTHENTICATED`.":
            "test_interceptor_answering_permission_denied_for_a_bad_token_fails",
        "The `scope` claim is a space-separated list of scopes.": "test_interceptor_with_a_substring_scope_check_fails",
        "Without the method's scope in it: `PERMISSION_DENIED`.":
            "test_interceptor_answering_unauthenticated_for_a_missing_scope_fails",
        "A method missing from `self.scopes` is refused with `PERMISSION_DENIED` (fail closed).":
            "test_interceptor_open_for_unlisted_methods_fails",
        "Never log or print the token.": (
            "test_interceptor_logging_the_token_fails", "test_interceptor_printing_the_token_fails"),
    },
    "3": {
        "A variable `{name}` matches exactly one non-empty path segment (no `/`)": (
            "test_matcher_accepting_empty_segments_fails", "test_matcher_crossing_slashes_fails"),
        "everything else in the template matches literally": "test_matcher_without_escaping_fails",
        "and the whole path must match.": "test_matcher_matching_a_prefix_fails",
        'A variable `{a.b}` fills a nested field: `{"a": {"b": value}}`.': "test_matcher_without_nesting_fails",
        "A template without variables gives `{}` for its own path.":
            "test_matcher_returning_none_without_variables_fails",
    },
    "4": {
        "a span of kind `CLIENT`": "test_tracing_internal_spans_fail",
        "named like the method without its leading `/`": "test_tracing_with_the_leading_slash_fails",
        "child of the span current when the call is made": "test_tracing_as_a_new_root_fails",
        'attributes `rpc.system` = `"grpc"`': "test_tracing_without_rpc_system_fails",
        "`rpc.service` (`course.edge.v1.CatalogService`), `rpc.method` (`GetProduct`)":
            "test_tracing_with_the_full_path_as_rpc_method_fails",
        "`rpc.grpc.status_code`, the call's status as an int (0 for OK)": (
            "test_tracing_without_the_status_code_fails", "test_tracing_the_code_as_a_name_fails"),
        "status `ERROR` when the call did not end `OK`": "test_tracing_without_error_status_fails",
        "the span's context sent in the call's metadata (`traceparent`)": "test_tracing_without_propagation_fails",
        "next to the caller's own metadata": "test_tracing_replacing_the_callers_metadata_fails",
    },
    "5": {
        "Fetch the JWKS from `url` on first use and keep it: known `kid`s cause no further fetch.":
            "test_jwks_fetching_every_time_fails",
        "An unknown `kid` fetches the set again, at most once every `min_refresh_s` seconds": (
            "test_jwks_never_refetching_fails", "test_jwks_without_a_cooldown_fails"),
        "the fetched set replaces the old one, so a withdrawn key stops working.": "test_jwks_merging_sets_fails",
        "A `kid` still unknown raises a `jwt.PyJWTError`.": "test_jwks_raising_key_error_fails",
        "Fetch with a 1 s timeout.": "test_jwks_without_a_timeout_fails",
        "When a fetch fails or times out, keep the last good set (known keys go on working)":
            "test_jwks_forgetting_keys_when_the_provider_is_down_fails",
        "raise a `jwt.PyJWTError` for the unknown `kid`.": "test_jwks_leaking_url_errors_fails",
        "Several server threads may call `key_for` at once.": "test_jwks_without_a_lock_fails",
    },
}
