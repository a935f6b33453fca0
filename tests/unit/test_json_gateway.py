"""JsonGateway transcodes HTTP/1.1 + JSON to gRPC calls and back: routes, bodies, statuses, CORS, trace context."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
import httpx
import pytest
from opentelemetry import trace

from infracourse.checking.grpc_harness import serving
from infracourse.lessons import edge_codegen, http_rules
from infracourse.lessons.json_gateway import JsonGateway

edge_codegen.generate()
from infracourse.grpc_generated.edge import catalog_pb2, catalog_pb2_grpc  # noqa: E402

CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"]


class Catalog(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self):
        self.metadata = []

    def GetProduct(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        if request.sku != "p-1":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no product {request.sku}")
        return catalog_pb2.GetProductResponse(product=catalog_pb2.Product(sku="p-1", price_cents=2**60))

    def ListProducts(self, request, context):
        return catalog_pb2.ListProductsResponse(products=[catalog_pb2.Product(sku=str(i)) for i in range(
            request.page_size)])

    def CreateProduct(self, request, context):
        return catalog_pb2.CreateProductResponse(product=request.product)


@pytest.fixture
def gateway():
    servicer = Catalog()
    register = lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)  # noqa: E731
    with serving(register) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel, \
            JsonGateway(channel, CATALOG, origins=["http://page.test"], openapi={"openapi": "3.0.3"}) as running, \
            httpx.Client(base_url=running.url, timeout=5) as http:
        yield http, servicer


def test_get_post_and_query(gateway):
    http, servicer = gateway
    got = http.get("/v1/products/p-1", headers={"authorization": "Bearer t"})
    assert got.status_code == 200 and got.json() == {"product": {"sku": "p-1", "priceCents": str(2**60)}}
    assert servicer.metadata[-1]["authorization"] == "Bearer t"
    assert len(http.get("/v1/products", params={"pageSize": 3}).json()["products"]) == 3
    created = http.post("/v1/products", json={"sku": "n", "tags": ["a"]})
    assert created.json() == {"product": {"sku": "n", "tags": ["a"]}}


def test_errors_become_http_statuses(gateway):
    http, _ = gateway
    missing = http.get("/v1/products/nope")
    assert (missing.status_code, missing.json()["code"], missing.json()["message"]) == (404, 5, "no product nope")
    assert http.get("/v2/anything").status_code == 404
    assert http.delete("/v1/products/p-1").status_code == 501
    assert http.post("/v1/products", content=b"{not json").status_code == 400
    assert http.post("/v1/products", json={"price_cents": "many"}).status_code == 400


def test_cors_only_for_listed_origins(gateway):
    http, _ = gateway
    allowed = http.options("/v1/products/p-1", headers={"origin": "http://page.test"})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == "http://page.test"
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    other = http.options("/v1/products/p-1", headers={"origin": "https://evil.test"})
    assert "access-control-allow-origin" not in other.headers
    got = http.get("/v1/products/p-1", headers={"origin": "http://page.test"})
    assert got.headers["access-control-allow-origin"] == "http://page.test"


def test_serves_its_openapi_document(gateway):
    http, _ = gateway
    assert http.get("/openapi.json").json() == {"openapi": "3.0.3"}


def test_the_incoming_traceparent_is_the_context_of_the_call():
    seen = []

    class Spy(grpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, details, request):
            seen.append(trace.get_current_span().get_span_context())
            return continuation(details, request)

    servicer = Catalog()
    register = lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)  # noqa: E731
    with serving(register) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel, \
            JsonGateway(grpc.intercept_channel(channel, Spy()), CATALOG) as running:
        traceparent = f"00-{'ab' * 16}-{'cd' * 8}-01"
        httpx.get(f"{running.url}/v1/products/p-1", headers={"traceparent": traceparent}, timeout=5)
    assert (f"{seen[0].trace_id:032x}", f"{seen[0].span_id:016x}") == ("ab" * 16, "cd" * 8)


def test_a_matcher_that_raises_is_kept():
    def broken(template, path):
        raise ValueError("boom")

    with grpc.insecure_channel("127.0.0.1:1") as channel, JsonGateway(channel, CATALOG, match=broken) as running:
        assert httpx.get(f"{running.url}/v1/products/p-1", timeout=5).status_code == 500
    assert [type(e) for e in running.errors] == [ValueError]
    assert http_rules.match("/v1/products/{sku}", "/v1/products/p-1") == {"sku": "p-1"}
