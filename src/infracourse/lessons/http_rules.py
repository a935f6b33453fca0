"""The google.api.http rules of a gRPC service read from its descriptors: routes for a transcoding gateway, and
the OpenAPI 3 document that describes them. Generated from the proto, so the REST face never drifts from it.

    table = http_rules.routes(catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"])
    http_rules.match("/v1/products/{sku}", "/v1/products/p-1")   # {'sku': 'p-1'}
    document = http_rules.openapi(service, title="Catalog", version="1")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

VERBS = ("get", "put", "post", "delete", "patch")
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


@dataclass(frozen=True)
class Route:
    verb: str  # GET, POST ...
    template: str  # /v1/products/{sku}
    body: str  # "" (no body), "*" (the whole request) or the name of one request field
    method: MethodDescriptor

    @property
    def grpc_path(self) -> str:
        """/course.edge.v1.CatalogService/GetProduct: what a gRPC client puts on the wire."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def rule_of(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    options = method.GetOptions()
    return options.Extensions[annotations_pb2.http] if options.HasExtension(annotations_pb2.http) else None


def routes(service: ServiceDescriptor) -> list[Route]:
    """One route per google.api.http rule (additional_bindings included), in the order of the proto."""
    found = []
    for method in service.methods:
        rule = rule_of(method)
        for binding in ([rule, *rule.additional_bindings] if rule else []):
            verb = binding.WhichOneof("pattern")
            if verb in VERBS:
                found.append(Route(verb.upper(), getattr(binding, verb), binding.body, method))
    return found


def match(template: str, path: str) -> dict[str, Any] | None:
    """The request fields that PATH fills in by TEMPLATE ({a.b} nests), or None when it does not match.
    A variable stands for one non-empty path segment."""
    pattern = "".join(
        f"(?P<v{i // 2}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(_VARIABLE.split(template)))
    found = re.fullmatch(pattern, path)
    if found is None:
        return None
    fields: dict[str, Any] = {}
    for index, name in enumerate(_VARIABLE.findall(template)):
        *parents, leaf = name.split(".")
        target = fields
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = found[f"v{index}"]
    return fields


# --- OpenAPI ----------------------------------------------------------------------------------------------

_SCALARS = {
    FieldDescriptor.TYPE_STRING: {"type": "string"}, FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64"},
    # 64-bit integers are strings in protobuf's JSON mapping: a JSON number loses precision above 2**53
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
STATUS_SCHEMA = {"type": "object", "properties": {
    "code": {"type": "integer", "format": "int32"}, "message": {"type": "string"},
    "details": {"type": "array", "items": {"type": "object"}}}}


def _field_schema(field: FieldDescriptor) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        schema: dict[str, Any] = {"$ref": f"#/components/schemas/{field.message_type.full_name}"}
    elif field.type == FieldDescriptor.TYPE_ENUM:
        schema = {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    else:
        schema = dict(_SCALARS[field.type])
    return {"type": "array", "items": schema} if field.is_repeated else schema


def _schemas(message: Descriptor, into: dict[str, Any]) -> None:
    if message.full_name in into:
        return
    into[message.full_name] = {"type": "object", "properties": {
        f.json_name: _field_schema(f) for f in message.fields}}
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            _schemas(field.message_type, into)


def _field_at(message: Descriptor, dotted: str) -> FieldDescriptor:
    """The field a path variable such as `product.sku` names."""
    *parents, leaf = dotted.split(".")
    for parent in parents:
        message = message.fields_by_name[parent].message_type
    return message.fields_by_name[leaf]


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    request, response = route.method.input_type, route.method.output_type
    _schemas(response, schemas)
    in_path = {name.split(".")[0] for name in _VARIABLE.findall(route.template)}
    parameters = [{"name": name, "in": "path", "required": True, "schema": _field_schema(_field_at(request, name))}
                  for name in _VARIABLE.findall(route.template)]
    operation: dict[str, Any] = {"operationId": route.method.name, "responses": {
        "200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{response.full_name}"}}}},
        "default": {"description": "An error: the gRPC status as JSON", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}}}}
    if route.body:
        body_message = request if route.body == "*" else request.fields_by_name[route.body].message_type
        _schemas(body_message, schemas)
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body_message.full_name}"}}}}
    else:  # GET and DELETE: the fields the path does not name come from the query string
        parameters += [{"name": f.json_name, "in": "query", "schema": _field_schema(f)} for f in request.fields
                       if f.name not in in_path and f.type != FieldDescriptor.TYPE_MESSAGE]
    if parameters:
        operation["parameters"] = parameters
    return operation


def openapi(service: ServiceDescriptor, *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.0 document for SERVICE's http rules: paths, parameters, bodies and message schemas."""
    schemas: dict[str, Any] = {"google.rpc.Status": STATUS_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes(service):
        paths.setdefault(route.template, {})[route.verb.lower()] = _operation(route, schemas)
    return {"openapi": "3.0.3", "info": {"title": title, "version": version}, "paths": paths,
            "components": {"schemas": dict(sorted(schemas.items()))}}
