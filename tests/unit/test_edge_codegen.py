"""edge_codegen runs `buf generate` from buf.gen.yaml; the grpc_python plugin writes package-relative stubs."""

from __future__ import annotations

import sys

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from infracourse.lessons import edge_codegen, protoc_gen_grpc_python


def test_template_runs_this_interpreter_into_the_given_folder(tmp_path):
    config = edge_codegen.template(tmp_path)
    assert {p["out"] for p in config["plugins"]} == {str(tmp_path)}
    commands = [p.get("protoc_path") or p["local"] for p in config["plugins"]]
    assert all(command[0] == sys.executable for command in commands)


def test_generate_writes_an_importable_package():
    assert edge_codegen.generate() == ["__init__.py", "catalog_pb2.py", "catalog_pb2.pyi", "catalog_pb2_grpc.py"]
    from infracourse.grpc_generated.edge import catalog_pb2_grpc

    assert hasattr(catalog_pb2_grpc, "CatalogServiceStub")
    assert "from . import catalog_pb2 as" in (edge_codegen.OUT_DIR / "catalog_pb2_grpc.py").read_text()


def test_plugin_answers_a_code_generator_request():
    from google.api import annotations_pb2, http_pb2

    from infracourse.grpc_generated.edge import catalog_pb2

    files = []
    for module in (descriptor_pb2, http_pb2, annotations_pb2, catalog_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        files.append(proto)
    request = plugin_pb2.CodeGeneratorRequest(file_to_generate=["catalog.proto"], proto_file=files)
    response = protoc_gen_grpc_python.respond(request)
    assert not response.error
    assert [f.name for f in response.file] == ["catalog_pb2_grpc.py"]
    assert "class CatalogServiceStub" in response.file[0].content


def test_relative_imports_touch_only_generated_modules():
    source = "import catalog_pb2 as catalog__pb2\nimport grpc as g\n"
    assert protoc_gen_grpc_python.relative_imports(source, {"catalog_pb2"}) == (
        "from . import catalog_pb2 as catalog__pb2\nimport grpc as g\n")


def test_up_to_date_code_is_only_read(monkeypatch, tmp_path):
    """The grader's sandbox binds the package read-only and shows no services/: nothing may be written or run."""
    edge_codegen.generate()

    def refuse(*args, **kwargs):
        raise AssertionError("buf must not run")

    monkeypatch.setattr(edge_codegen.buf_cli, "run", refuse)
    monkeypatch.setattr("builtins.open", refuse)
    assert "catalog_pb2.py" in edge_codegen.generate()
    monkeypatch.setattr(edge_codegen, "PROTO_DIR", tmp_path / "missing")
    assert "catalog_pb2.py" in edge_codegen.generate()


def test_the_edge_protos_pass_buf_lint():
    lint = edge_codegen.buf_cli.run("lint", cwd=edge_codegen.PROTO_DIR)
    assert (lint.returncode, lint.stdout) == (0, "")
