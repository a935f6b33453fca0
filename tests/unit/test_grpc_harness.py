"""grpc_harness: a server for the length of a with-block, learner exceptions trapped, coroutines run off-loop."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
import pytest

from infracourse.checking import CheckFailed, NotDone
from infracourse.checking.grpc_harness import Trap, serving
from infracourse.clients import protos

protos.generate()
from infracourse.grpc_generated import telemetry_pb2, telemetry_pb2_grpc


def _serve(behaviour, trap: Trap):
    class Servicer(telemetry_pb2_grpc.TelemetryServiceServicer):
        RecordReading = staticmethod(trap.unary(behaviour))

    return serving(lambda server: telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(Servicer(), server))


def _call(port: int) -> grpc.RpcError | telemetry_pb2.RecordReadingResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return telemetry_pb2_grpc.TelemetryServiceStub(channel).RecordReading(
                telemetry_pb2.RecordReadingRequest(), timeout=5)
        except grpc.RpcError as err:
            return err


def test_serving_answers_then_stops():
    trap = Trap()
    with _serve(lambda request, context: telemetry_pb2.RecordReadingResponse(sensor_count=3), trap) as port:
        assert _call(port).sensor_count == 3
    assert isinstance(_call(port), grpc.RpcError)
    trap.raise_first()  # nothing trapped: no error


def test_an_abort_passes_through_untouched():
    trap = Trap()

    def refuse(request, context):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    with _serve(refuse, trap) as port:
        err = _call(port)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and not trap.errors


def test_not_implemented_becomes_not_done():
    trap = Trap()

    def stub(request, context):
        raise NotImplementedError

    with _serve(stub, trap) as port:
        assert _call(port).code() == grpc.StatusCode.INTERNAL
    with pytest.raises(NotDone):
        trap.raise_first()


def test_other_exceptions_become_a_check_failure_naming_them():
    trap = Trap()

    def broken(request, context):
        raise KeyError("sensor")

    with _serve(broken, trap) as port:
        _call(port)
    with pytest.raises(CheckFailed, match="raised KeyError"):
        trap.raise_first()
