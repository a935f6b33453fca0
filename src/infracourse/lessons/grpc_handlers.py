"""Generated from notebooks/11_grpc_in_production.ipynb by `course labs build`; do not edit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def kind(handler: grpc.RpcMethodHandler) -> str:
    """'unary_unary', 'unary_stream', 'stream_unary' or 'stream_stream': the attribute holding the behaviour."""
    request = "stream" if handler.request_streaming else "unary"
    response = "stream" if handler.response_streaming else "unary"
    return f"{request}_{response}"


def wrap_behaviour(handler: grpc.RpcMethodHandler,
                   around: Callable[[Behaviour, bool], Behaviour]) -> grpc.RpcMethodHandler:
    """HANDLER with its behaviour replaced by around(behaviour, response_streams).

    When response_streams is True the behaviour returns an iterator of responses, and so must the wrapper."""
    attribute = kind(handler)
    return handler._replace(**{attribute: around(getattr(handler, attribute), handler.response_streaming)})


def refuse(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as HANDLER that ends every call with CODE and DETAILS, running nothing."""

    def deny(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    return wrap_behaviour(handler, lambda behaviour, response_streams: deny)
