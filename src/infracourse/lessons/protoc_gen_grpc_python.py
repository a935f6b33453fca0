"""A protoc plugin (`buf generate` calls it) that writes the gRPC modules (*_pb2_grpc.py) of the requested files.

grpcio-tools compiles gRPC stubs inside its own protoc and ships no protoc-gen-grpc_python binary, so this
plugin hands the request's already-parsed files back to that protoc as a descriptor set. protoc writes
`import catalog_pb2`; the generated folder is a package, so the import becomes relative.

    python -m infracourse.lessons.protoc_gen_grpc_python < CodeGeneratorRequest > CodeGeneratorResponse
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def relative_imports(source: str, modules: set[str]) -> str:
    """`import catalog_pb2 as x` -> `from . import catalog_pb2 as x` for the modules generated alongside."""
    return re.sub(r"^import (\w+) as", lambda m: f"from . import {m[1]} as" if m[1] in modules else m[0],
                  source, flags=re.MULTILINE)


def respond(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL)
    modules = {Path(name).stem + "_pb2" for name in request.file_to_generate}
    with tempfile.TemporaryDirectory(prefix="grpc-python-") as tmp:
        descriptors = Path(tmp) / "files.binpb"
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = Path(tmp) / "out"
        out.mkdir()
        code = protoc.main(["protoc", f"--descriptor_set_in={descriptors}", f"--grpc_python_out={out}",
                            *request.file_to_generate])
        if code != 0:
            response.error = f"grpc_tools.protoc exited with {code}"
            return response
        for path in sorted(out.rglob("*_pb2_grpc.py")):
            response.file.add(name=str(path.relative_to(out)), content=relative_imports(path.read_text(), modules))
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(respond(request).SerializeToString())


if __name__ == "__main__":
    main()
