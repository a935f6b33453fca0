"""grpc_handlers: wrap or refuse any kind of method handler, checked through a real server."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc

from infracourse.checking.grpc_harness import serving
from infracourse.clients import protos
from infracourse.lessons import grpc_handlers

protos.generate()
from infracourse.grpc_generated import market_pb2, market_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc


def test_kind_names_the_behaviour_attribute():
    unary = grpc.unary_unary_rpc_method_handler(lambda request, context: None)
    stream_in = grpc.stream_unary_rpc_method_handler(lambda requests, context: None)
    stream_out = grpc.unary_stream_rpc_method_handler(lambda request, context: iter(()))
    assert [grpc_handlers.kind(h) for h in (unary, stream_in, stream_out)] == [
        "unary_unary", "stream_unary", "unary_stream"]


class _Servicer(telemetry_pb2_grpc.TelemetryServiceServicer, market_pb2_grpc.MarketServiceServicer):
    def RecordReading(self, request, context):
        return telemetry_pb2.RecordReadingResponse(sensor_count=1)

    def WatchPrices(self, request, context):
        for sequence in (1, 2):
            yield market_pb2.WatchPricesResponse(symbol="A", sequence=sequence)


class _Interceptor(grpc.ServerInterceptor):
    """Counts every call through wrap_behaviour; refuses calls to MarketService."""

    def __init__(self) -> None:
        self.wrapped: list[tuple[str, bool]] = []

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if "MarketService" in handler_call_details.method and dict(handler_call_details.invocation_metadata).get(
                "refuse"):
            return grpc_handlers.refuse(handler, grpc.StatusCode.PERMISSION_DENIED, "not you")

        def around(behaviour, response_streams):
            def counted(request, context):
                self.wrapped.append((handler_call_details.method, response_streams))
                return behaviour(request, context)

            return counted

        return grpc_handlers.wrap_behaviour(handler, around)


def _register(server: grpc.Server) -> None:
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(_Servicer(), server)
    market_pb2_grpc.add_MarketServiceServicer_to_server(_Servicer(), server)


def test_wrap_and_refuse_through_a_server():
    interceptor = _Interceptor()
    with serving(_register, interceptors=[interceptor]) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        count = telemetry_pb2_grpc.TelemetryServiceStub(channel).RecordReading(
            telemetry_pb2.RecordReadingRequest(), timeout=5).sensor_count
        market = market_pb2_grpc.MarketServiceStub(channel)
        ticks = [t.sequence for t in market.WatchPrices(market_pb2.WatchPricesRequest(), timeout=5)]
        try:
            list(market.WatchPrices(market_pb2.WatchPricesRequest(), metadata=[("refuse", "1")], timeout=5))
            refused = None
        except grpc.RpcError as err:
            refused = (err.code(), err.details())
    assert count == 1 and ticks == [1, 2]
    assert interceptor.wrapped == [("/course.v1.TelemetryService/RecordReading", False),
                                   ("/course.v1.MarketService/WatchPrices", True)]
    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "not you")
