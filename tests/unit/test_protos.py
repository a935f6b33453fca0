"""protos.generate(): compiles services/protos into an importable package, and only when a .proto changed."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from infracourse.clients import protos


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the course protos and an output folder that does not exist yet."""
    proto_dir = tmp_path / "protos"
    shutil.copytree(protos.PROTO_DIR, proto_dir)
    return proto_dir, tmp_path / "gen"


def test_generates_one_module_set_per_proto(workspace):
    proto_dir, out_dir = workspace
    names = protos.generate(proto_dir, out_dir)
    for proto in proto_dir.glob("*.proto"):
        assert {f"{proto.stem}_pb2.py", f"{proto.stem}_pb2.pyi", f"{proto.stem}_pb2_grpc.py"} <= set(names)
    assert "__init__.py" in names
    assert protos.stale_protos(proto_dir, out_dir) == []


def test_generated_service_module_imports_its_messages_relatively(workspace):
    proto_dir, out_dir = workspace
    protos.generate(proto_dir, out_dir)
    source = (out_dir / "users_pb2_grpc.py").read_text()
    assert "from . import users_pb2 as" in source and "\nimport users_pb2" not in source


def test_course_package_is_importable():
    protos.generate()
    users_pb2 = importlib.import_module("infracourse.grpc_generated.users_pb2")
    users_pb2_grpc = importlib.import_module("infracourse.grpc_generated.users_pb2_grpc")
    user = users_pb2.User(email="ada@example.com", role=users_pb2.ROLE_ADMIN)
    assert users_pb2.User.FromString(user.SerializeToString()) == user
    assert hasattr(users_pb2_grpc, "UserServiceStub")


def test_regenerates_only_when_a_proto_is_newer(workspace):
    proto_dir, out_dir = workspace
    protos.generate(proto_dir, out_dir)
    module = out_dir / "market_pb2.py"
    before = module.stat().st_mtime_ns
    protos.generate(proto_dir, out_dir)
    assert module.stat().st_mtime_ns == before, "an up-to-date package was regenerated"

    proto = proto_dir / "market.proto"
    proto.write_text(proto.read_text().replace("uint32 max_ticks = 2;", "uint32 max_ticks = 2;\n  bool delayed = 5;"))
    future = module.stat().st_mtime + 10
    os.utime(proto, (future, future))
    assert protos.stale_protos(proto_dir, out_dir) == ["market.proto"]
    protos.generate(proto_dir, out_dir)
    assert "delayed" in (out_dir / "market_pb2.pyi").read_text()


def test_removes_modules_of_a_deleted_proto(workspace):
    proto_dir, out_dir = workspace
    protos.generate(proto_dir, out_dir)
    (proto_dir / "chat.proto").unlink()
    names = protos.generate(proto_dir, out_dir, force=True)
    assert not any(name.startswith("chat_") for name in names)


def test_a_broken_proto_raises_protocs_message(workspace):
    proto_dir, out_dir = workspace
    (proto_dir / "broken.proto").write_text('syntax = "proto3";\nmessage Broken { string name = 1 }\n')
    with pytest.raises(protos.ProtocError, match="broken.proto"):
        protos.generate(proto_dir, out_dir)


def test_protoc_command_uses_this_interpreter(workspace):
    proto_dir, out_dir = workspace
    command = protos.protoc_command(proto_dir, out_dir)
    assert command[:3] == [sys.executable, "-m", "grpc_tools.protoc"]
    assert sorted(arg for arg in command if arg.endswith(".proto")) == sorted(
        p.name for p in proto_dir.glob("*.proto")
    )
