"""Plumbing for checks and tests that run learner gRPC code inside a real server.

    with serving(lambda server: add_XServicer_to_server(servicer, server)) as port:
        ...                                       # a server on 127.0.0.1:<port>, stopped on exit

Learner code runs in the server's threads, where an exception would reach the client as a bare UNKNOWN
and a log line on stderr. `Trap` wraps servicer methods so the exception is kept for the check to report
("not done yet" for NotImplementedError, the error itself otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from infracourse.checking import CheckFailed, NotDone
from infracourse.lessons import grpc_handlers

T = TypeVar("T")
Behaviour = Callable[[Any, grpc.ServicerContext], Any]


@contextmanager
def serving(
    register: Callable[[grpc.Server], None],
    *,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    options: Sequence[tuple[str, Any]] = (),
    max_workers: int = 8,
) -> Iterator[int]:
    """A plaintext server on a free loopback port for the length of the with-block; yields the port."""
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), interceptors=interceptors, options=options)
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(timeout=5)


def _is_abort(exc: BaseException, context: grpc.ServicerContext) -> bool:
    """context.abort() ends a call by raising a bare Exception after setting the status code."""
    return type(exc) is Exception and not exc.args and context.code() is not None


class Trap:
    """Collects exceptions that learner code raises inside server threads; answers the call with INTERNAL."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def _caught(self, exc: Exception, context: grpc.ServicerContext) -> None:
        self.errors.append(exc)
        context.abort(grpc.StatusCode.INTERNAL, f"the code under test raised {type(exc).__name__}")

    def unary(self, method: Behaviour) -> Behaviour:
        """Wrap a method that returns one response (unary or client-streaming)."""

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return method(request, context)
            except Exception as exc:
                if _is_abort(exc, context):
                    raise
                self._caught(exc, context)

        return call

    def streaming(self, method: Behaviour) -> Behaviour:
        """Wrap a method that yields responses (server- or bidirectional-streaming)."""

        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(request, context)
            except Exception as exc:
                if _is_abort(exc, context):
                    raise
                self._caught(exc, context)

        return call

    def raise_first(self) -> None:
        """NotDone for a stub that still raises NotImplementedError; CheckFailed for any other error."""
        if not self.errors:
            return
        exc = self.errors[0]
        if isinstance(exc, NotImplementedError):
            raise NotDone
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckFailed(
            f"your code raised {type(exc).__name__}" + (f": {text}" if text else "") + " inside the server",
            hint="run the exercise cell on its own and read the error",
        )


def status_code(call: Callable[..., Any], *args: Any, timeout: float, **kwargs: Any) -> grpc.StatusCode:
    """The status a unary (or stream-unary) call ends with: OK, or the code of the RpcError it raised."""
    try:
        call(*args, timeout=timeout, **kwargs)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


class InterceptorTrap(Trap, grpc.ServerInterceptor):
    """Runs a learner's server interceptor and the handler it returns, keeping what they raise (a server would
    only answer UNKNOWN)."""

    def __init__(self, inner: grpc.ServerInterceptor) -> None:
        super().__init__()
        self.inner = inner

    def intercept_service(self, continuation, handler_call_details):
        try:
            handler = self.inner.intercept_service(continuation, handler_call_details)
        except Exception as exc:  # noqa: BLE001 - reported by raise_first
            self.errors.append(exc)
            return None
        if not isinstance(handler, grpc.RpcMethodHandler):
            return handler
        return grpc_handlers.wrap_behaviour(
            handler, lambda behaviour, streams: self.streaming(behaviour) if streams else self.unary(behaviour))
