"""The offline Kubernetes plumbing of lesson 18: loading, schema validation, the course's semantic rules, and what a
kubelet would hand the container (environment, secret files, the Settings the app builds from them)."""

from __future__ import annotations

import copy

import pytest

from infracourse.lessons import k8s_load, k8s_manifests, k8s_pods
from infracourse.lessons.k8s_manifests import ManifestError


@pytest.fixture(scope="module")
def shipped():
    return k8s_manifests.load(k8s_manifests.ORDERS_MANIFESTS)


@pytest.fixture
def resources(shipped):
    return copy.deepcopy(shipped)


def _container(resources):
    return k8s_manifests.find(resources, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]


def test_the_shipped_manifests_validate_and_follow_every_rule(shipped):
    assert sorted(k8s_manifests.name_of(r) for r in shipped) == [
        "configmap/orders-config", "deployment/orders-service", "horizontalpodautoscaler/orders-service",
        "poddisruptionbudget/orders-service", "secret/orders-secrets", "service/orders-service"]
    assert k8s_manifests.validate(shipped) == []
    assert k8s_manifests.semantic_problems(shipped) == []


def test_load_reads_text_with_several_documents_and_a_single_file():
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
            "apiVersion: v1\nkind: Secret\nmetadata: {name: b}\n")
    assert [r["kind"] for r in k8s_manifests.load(text)] == ["ConfigMap", "Secret"]
    one = k8s_manifests.load(k8s_manifests.ORDERS_MANIFESTS / "pdb.yaml")
    assert [r["kind"] for r in one] == ["PodDisruptionBudget"]


@pytest.mark.parametrize(("text", "says"), [
    ("kind: Deployment\n  bad: [", "line 2 is not valid YAML"),
    ("just a string", "apiVersion and kind"),
    ("apiVersion: v1\nmetadata: {}\n", "apiVersion and kind"),
])
def test_load_says_what_is_wrong_in_one_line(text, says):
    with pytest.raises(ManifestError, match=says):
        k8s_manifests.load(text)


def test_validate_names_the_object_and_the_field(resources):
    container = _container(resources)
    container["livenesProbe"] = container.pop("livenessProbe")
    problems = k8s_manifests.validate(resources)
    assert len(problems) == 1 and problems[0].startswith("deployment/orders-service: spec.template.spec.containers[0]")
    assert "livenesProbe" in problems[0]
    container["livenessProbe"] = container.pop("livenesProbe")
    container["ports"][0]["containerPort"] = "8000"
    assert k8s_manifests.validate(resources) == ["deployment/orders-service: spec.template.spec.containers[0]"
                                                 ".ports[0].containerPort: '8000' is not of type 'integer'"]


def test_validate_reports_an_unknown_api_version():
    problems = k8s_manifests.validate(k8s_manifests.load("apiVersion: policy/v1beta9\nkind: PodDisruptionBudget\n"
                                                         "metadata: {name: x}\nspec: {}\n"))
    assert problems and "Couldn't find schema" in problems[0]


@pytest.mark.parametrize(("text", "number"), [("250m", 0.25), ("1", 1.0), (2, 2.0), ("128Mi", 128 * 2**20),
                                              ("1G", 1e9), ("0.5", 0.5)])
def test_quantity(text, number):
    assert k8s_manifests.quantity(text) == number


def test_quantity_refuses_what_kubernetes_refuses():
    with pytest.raises(ManifestError, match="not a Kubernetes quantity"):
        k8s_manifests.quantity("half a CPU")


def _break(resources, change):
    change(resources)
    return "\n".join(k8s_manifests.semantic_problems(resources))


def test_each_semantic_rule_says_what_breaks(resources):
    container = _container(resources)
    pod = k8s_manifests.find(resources, "Deployment")[0]["spec"]["template"]["spec"]
    assert "restart every pod" in _break(resources, lambda _: container["livenessProbe"]["httpGet"].update(
        path="/health/ready"))
    container["livenessProbe"]["httpGet"]["path"] = "/health/live"
    assert "does not serve" in _break(resources, lambda _: container["readinessProbe"]["httpGet"].update(
        path="/ready"))
    container["readinessProbe"]["httpGet"]["path"] = "/health/ready"
    assert "above its limit" in _break(resources, lambda _: container["resources"]["limits"].update(cpu="100m"))
    container["resources"]["limits"]["cpu"] = "1"
    assert "= 17 s" in _break(resources, lambda _: pod.update(terminationGracePeriodSeconds=16))
    pod["terminationGracePeriodSeconds"] = 20
    assert k8s_manifests.semantic_problems(resources) == []


def test_the_drain_comes_from_the_configmap(resources):
    config = k8s_manifests.find(resources, "ConfigMap")[0]
    config["data"]["ORDERS_SHUTDOWN_GRACE_S"] = "30"
    assert k8s_manifests.drain_s(resources) == 30.0
    assert "drain 30 s" in "\n".join(k8s_manifests.semantic_problems(resources))


def test_selectors_ports_and_the_autoscaler_target_are_checked(resources):
    labels = k8s_manifests.find(resources, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    labels["app.kubernetes.io/name"] = "other"
    text = "\n".join(k8s_manifests.semantic_problems(resources))
    assert "spec.selector does not match" in text and "service/orders-service: its selector" in text
    assert "protects nothing" in text
    labels["app.kubernetes.io/name"] = "orders-service"
    k8s_manifests.find(resources, "HorizontalPodAutoscaler")[0]["spec"]["scaleTargetRef"]["name"] = "orders"
    k8s_manifests.find(resources, "ConfigMap")[0]["data"]["ORDERS_HTTP_PORT"] = "9000"
    text = "\n".join(k8s_manifests.semantic_problems(resources))
    assert "scaleTargetRef is Deployment/orders" in text and "listens on 9000" in text


def test_the_course_semantic_rules_use_what_the_app_serves(resources):
    problems = k8s_manifests.semantic_problems(resources, served={"/health/live"})
    assert problems == ["deployment/orders-service: container orders: a probe asks for /health/ready, which the "
                        "app does not serve (it would fail forever)"]


# what the kubelet hands the container ----------------------------------------------------------------------
def test_container_env_merges_env_from_and_value_from(resources):
    container = _container(resources)
    container["env"] = [{"name": "ORDERS_LOG_LEVEL", "value": "DEBUG"},
                        {"name": "ORDERS_POSTGRES__PASSWORD",
                         "valueFrom": {"secretKeyRef": {"name": "orders-secrets", "key": "ORDERS_POSTGRES__PASSWORD"}}},
                        {"name": "ORDERS_NAMESPACE",
                         "valueFrom": {"configMapKeyRef": {"name": "orders-config", "key": "ORDERS_HTTP_PORT"}}}]
    env = k8s_pods.container_env(resources)
    assert env["ORDERS_LOG_LEVEL"] == "DEBUG" and env["ORDERS_POSTGRES__PASSWORD"] == "change-me"
    assert env["ORDERS_NAMESPACE"] == "8000" and env["ORDERS_HTTP_HOST"] == "0.0.0.0"


def test_a_missing_configmap_is_what_a_cluster_would_refuse(resources):
    missing = [r for r in resources if r["kind"] != "ConfigMap"]
    with pytest.raises(k8s_pods.PodFailed, match="CreateContainerConfigError"):
        k8s_pods.container_env(missing)


def test_secret_mounts_decode_data_and_follow_items(resources):
    secret = k8s_manifests.find(resources, "Secret")[0]
    secret.pop("stringData")
    secret["data"] = {"pw": "czNjcmV0"}
    pod = k8s_manifests.find(resources, "Deployment")[0]["spec"]["template"]["spec"]
    pod["volumes"][0]["secret"]["items"] = [{"key": "pw", "path": "ORDERS_POSTGRES__PASSWORD"}]
    assert k8s_pods.secret_mounts(resources) == {"/run/secrets/orders": {"ORDERS_POSTGRES__PASSWORD": "s3cret"}}


def test_settings_from_the_shipped_manifests(shipped):
    settings = k8s_pods.settings_from(shipped)
    assert (settings.http_host, settings.http_port, settings.namespace) == ("0.0.0.0", 8000, "orders")
    assert settings.postgres.host == "postgres.data.svc.cluster.local"
    assert settings.postgres.password.get_secret_value() == "change-me" and "change-me" not in repr(settings)


def test_settings_from_reports_the_apps_own_line(resources):
    k8s_manifests.find(resources, "ConfigMap")[0]["data"]["ORDERS_HTTP_PORT"] = "70000"
    with pytest.raises(k8s_pods.PodFailed, match="ORDERS_HTTP_PORT: must be between 1 and 65535"):
        k8s_pods.settings_from(resources)


def test_settings_variables_name_nested_fields_with_the_delimiter():
    names = k8s_pods.settings_variables()
    assert {"ORDERS_HTTP_PORT", "ORDERS_POSTGRES__HOST", "ORDERS_SECRETS_DIR"} <= names
    assert "ORDERS_POSTGRES_HOST" not in names


class _FakePod:
    def __init__(self, address, status):
        self.address, self.status, self.paths = address, status, []

    def get(self, path):
        self.paths.append(path)
        return self.status, None


def test_drive_sends_each_pod_its_rate_on_a_schedule():
    fast, failing = _FakePod("127.0.0.1:1", 200), _FakePod("127.0.0.1:2", 503)
    load = k8s_load.drive([fast, failing], [40, 10], seconds=0.5)
    assert load.sent == {"127.0.0.1:1": 20, "127.0.0.1:2": 5} and load.failed == 5
    assert sorted(fast.paths, key=lambda p: int(p.rsplit("/", 1)[1])) == [f"/products/{k}" for k in range(1, 21)]
    assert 0.4 < load.end - load.start < 5
