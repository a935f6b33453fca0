"""http_rules reads google.api.http rules into routes, matches path templates and writes a valid OpenAPI document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from infracourse.lessons import edge_codegen, http_rules

edge_codegen.generate()
from infracourse.grpc_generated.edge import catalog_pb2  # noqa: E402

CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"]


def test_routes_follow_the_proto():
    assert [(r.verb, r.template, r.body, r.grpc_path) for r in http_rules.routes(CATALOG)] == [
        ("GET", "/v1/products/{sku}", "", "/course.edge.v1.CatalogService/GetProduct"),
        ("GET", "/v1/products", "", "/course.edge.v1.CatalogService/ListProducts"),
        ("POST", "/v1/products", "product", "/course.edge.v1.CatalogService/CreateProduct"),
    ]


@pytest.mark.parametrize(("template", "path", "fields"), [
    ("/v1/products/{sku}", "/v1/products/p-1", {"sku": "p-1"}),
    ("/v1/products/{sku}", "/v1/products/", None),
    ("/v1/products/{sku}", "/v1/products/p-1/reviews", None),
    ("/v1/products", "/v1/products", {}),
    ("/v1/items.json", "/v1/itemsXjson", None),
    ("/v1/shelves/{shelf.id}/books/{book}", "/v1/shelves/s/books/b", {"shelf": {"id": "s"}, "book": "b"}),
])
def test_match(template, path, fields):
    assert http_rules.match(template, path) == fields


def test_openapi_is_valid_and_says_what_the_json_mapping_does():
    document = http_rules.openapi(CATALOG, title="Catalog", version="1")
    validate(document)
    product = document["components"]["schemas"]["course.edge.v1.Product"]["properties"]
    assert product["priceCents"] == {"type": "string", "format": "int64"}
    assert product["tags"] == {"type": "array", "items": {"type": "string"}}
    listing = document["paths"]["/v1/products"]["get"]
    assert listing["parameters"] == [{"name": "pageSize", "in": "query",
                                      "schema": {"type": "integer", "format": "int32"}}]
    create = document["paths"]["/v1/products"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/course.edge.v1.Product"}
    assert document["paths"]["/v1/products/{sku}"]["get"]["parameters"][0]["in"] == "path"
