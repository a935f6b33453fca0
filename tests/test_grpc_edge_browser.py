"""A browser calls the gRPC service through lesson 12's REST/JSON gateway: a page from an allowed origin gets
the product (after a CORS preflight for its authorization header); the same page from another origin is blocked."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
from browser import chrome  # tests/ is on sys.path (rootdir conftest)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from infracourse.checking.grpc_harness import serving
from infracourse.lessons import edge_codegen
from infracourse.lessons.http_service import HttpService, Response
from infracourse.lessons.json_gateway import JsonGateway

edge_codegen.generate()
from infracourse.grpc_generated.edge import catalog_pb2, catalog_pb2_grpc  # noqa: E402

CATALOG = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"]
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>catalog</title></head><body>
<output id="result">loading</output>
<script>
fetch("GATEWAY/v1/products/p-1", {headers: {"authorization": "Bearer from-the-browser"}})
  .then(r => r.json()).then(j => { result.textContent = "sku=" + j.product.sku + " price=" + j.product.priceCents; })
  .catch(e => { result.textContent = "blocked: " + e.name; });
</script></body></html>"""


class Catalog(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self):
        self.tokens = []

    def GetProduct(self, request, context):
        self.tokens.append(dict(context.invocation_metadata()).get("authorization"))
        return catalog_pb2.GetProductResponse(product=catalog_pb2.Product(sku=request.sku, price_cents=1299))


def _result(driver, url: str) -> str:
    driver.get(url)
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "result").text != "loading")
    return driver.find_element(By.ID, "result").text


class Page:
    """Serves PAGE pointed at the gateway, from an origin of its own (its port)."""

    def __init__(self) -> None:
        self.gateway_url = ""
        self.service = HttpService({"GET /": self.serve})

    def serve(self, request) -> Response:
        return Response(200, PAGE.replace("GATEWAY", self.gateway_url), {"Content-Type": "text/html; charset=utf-8"})


def test_a_browser_calls_the_service_through_the_gateway(tmp_path):
    servicer, allowed, other = Catalog(), Page(), Page()
    with allowed.service, other.service, \
            serving(lambda s: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, s)) as port, \
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel, \
            JsonGateway(channel, CATALOG, origins=[allowed.service.url]) as gateway:
        allowed.gateway_url = other.gateway_url = gateway.url
        driver = chrome(tmp_path / "profile")
        try:
            assert _result(driver, allowed.service.url) == "sku=p-1 price=1299"
            assert _result(driver, other.service.url) == "blocked: TypeError"
        finally:
            driver.quit()
    assert servicer.tokens == ["Bearer from-the-browser"]  # the blocked page's request never reached the server
