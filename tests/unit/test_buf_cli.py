"""buf on the course's protos: lint passes, breaking catches a breaking change, curl calls a server via reflection."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # grpc's C core logs to stderr otherwise

import grpc
import pytest
from grpc_reflection.v1alpha import reflection

from infracourse.clients import buf_cli, protos

protos.generate()
from infracourse.grpc_generated import telemetry_pb2, telemetry_pb2_grpc

TELEMETRY = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"].full_name
GRPC = ("--protocol", "grpc", "--http2-prior-knowledge")


def test_executable_is_the_venvs_buf():
    assert buf_cli.executable().name == "buf"
    assert buf_cli.run("--version").stdout.strip()


def test_course_protos_pass_lint():
    result = buf_cli.run("lint", cwd=protos.PROTO_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_breaking_accepts_an_added_field_and_rejects_a_retyped_one(tmp_path: Path):
    proposed = tmp_path / "protos"
    shutil.copytree(protos.PROTO_DIR, proposed)
    telemetry = proposed / "telemetry.proto"
    original = telemetry.read_text()

    telemetry.write_text(original.replace("uint64 count = 1;", "uint64 count = 1;\n  uint64 rejected = 5;"))
    added = buf_cli.run("breaking", "--against", str(protos.PROTO_DIR), cwd=proposed)
    assert added.returncode == 0, added.stdout + added.stderr

    telemetry.write_text(original.replace("double value = 2;", "float value = 2;"))
    retyped = buf_cli.run("breaking", "--against", str(protos.PROTO_DIR), "--error-format", "json", cwd=proposed)
    assert retyped.returncode != 0
    assert [json.loads(line)["type"] for line in retyped.stdout.splitlines()] == ["FIELD_SAME_TYPE"]


class _Telemetry(telemetry_pb2_grpc.TelemetryServiceServicer):
    def RecordReading(self, request, context):
        return telemetry_pb2.RecordReadingResponse(sensor_count=7 if request.reading.sensor_id == "s1" else 0)


@pytest.fixture
def reflective_server_url():
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(_Telemetry(), server)
    reflection.enable_server_reflection([TELEMETRY, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop(grace=None).wait()


def test_curl_lists_services_through_reflection(reflective_server_url):
    result = buf_cli.run("curl", *GRPC, "--list-services", reflective_server_url, timeout_s=30)
    assert result.returncode == 0, result.stderr
    assert TELEMETRY in result.stdout.splitlines()


def test_curl_calls_a_method_with_json(reflective_server_url):
    body = json.dumps({"reading": {"sensorId": "s1", "value": 1.5}})
    result = buf_cli.run("curl", *GRPC, "-d", body, f"{reflective_server_url}/{TELEMETRY}/RecordReading",
                         timeout_s=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"sensorCount": "7"}
