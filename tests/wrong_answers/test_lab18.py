"""Lab 18 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

import math
import uuid

import psycopg
import pytest
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse import config, notebook
from infracourse.checks import lab18 as checks
from infracourse.clients import promql
from infracourse.lessons import k8s_load, k8s_pods
from infracourse.namespace import Namespace
from infracourse.services import prometheus_targets


def _drop_schema(namespace: str) -> None:
    with psycopg.connect(config.postgres_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


@pytest.fixture(scope="module")
def app_ns():
    notebook.require("postgres", "redis", "prometheus")
    ns = Namespace("pytest_lab18_" + uuid.uuid4().hex[:6])
    yield ns.slug
    _drop_schema(ns.schema)


# exercise 1 ---------------------------------------------------------------------------------------------
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders-service
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: orders-service
  template:
    metadata:
      labels:
        app.kubernetes.io/name: orders-service
    spec:
      terminationGracePeriodSeconds: 35
      containers:
        - name: orders
          image: localhost/orders-service:0.1.0
          ports:
            - name: http
              containerPort: 8000
          envFrom:
            - configMapRef:
                name: orders-config
          resources:
            requests: {cpu: 200m, memory: 192Mi}
            limits: {cpu: "1", memory: 384Mi}
          livenessProbe:
            httpGet: {path: /health/live, port: http}
            periodSeconds: 10
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /health/ready, port: http}
            periodSeconds: 5
          lifecycle:
            preStop:
              sleep: {seconds: 5}
"""


def test_deployment_reference_passes(app_ns):
    assert_passes(checks.deployment(DEPLOYMENT, app_ns))


@pytest.mark.parametrize(("old", "new", "says"), [
    # liveness on the endpoint that asks PostgreSQL and Redis
    ("path: /health/live,", "path: /health/ready,", "restart every pod"),
    # limits below requests
    ("limits: {cpu: \"1\", memory: 384Mi}", "limits: {cpu: \"1\", memory: 128Mi}", "above its limit"),
    ("requests: {cpu: 200m, memory: 192Mi}", "requests: {cpu: 200m}", "requests and limits for memory"),
    # the grace period of the lesson (20 s) does not cover this ConfigMap's 25 s drain
    ("terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 20", "sigkill"),
    ("      terminationGracePeriodSeconds: 35\n", "", "terminationGracePeriodSeconds is 30"),
    ("terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 600", "hold a rollout"),
    # a probe on a path the app does not serve
    ("path: /health/ready,", "path: /healthz,", "does not serve"),
    ("port: http}\n            periodSeconds: 5", "port: 8080}\n            periodSeconds: 5", "port 8080"),
    # a selector that does not match the pods
    ("    matchLabels:\n      app.kubernetes.io/name: orders-service", "    matchLabels:\n      app: orders",
     "selector does not match"),
    ("      labels:\n        app.kubernetes.io/name: orders-service", "      labels:\n        app: orders",
     "app.kubernetes.io/name"),
    # a misspelt field the API server would reject
    ("livenessProbe:", "livenesProbe:", "livenesProbe"),
    ("cpu: 200m,", "cpu: 0.2cores,", "not a kubernetes quantity"),
    ("replicas: 3", "replicas: 2", "replicas is 2"),
    ("sleep: {seconds: 5}", "sleep: {seconds: 1}", "preStop sleep is 1"),
    ("name: orders-config", "name: orders", "configmap orders-config"),
    ("image: localhost/orders-service:0.1.0", "image: orders:latest", "not the image the exercise names"),
    ("memory: 384Mi}", "memory: 400Mi}", "memory limit"),
])
def test_deployment_wrong_answers_fail(app_ns, old, new, says):
    assert old in DEPLOYMENT
    assert_fails(checks.deployment(DEPLOYMENT.replace(old, new), app_ns), says)


def test_deployment_not_yaml_fails(app_ns):
    assert_fails(checks.deployment("kind: Deployment\n  bad: [", app_ns), "not valid yaml")


def test_deployment_stub_is_not_done(app_ns):
    assert_not_done(checks.deployment(..., app_ns))


# exercise 2 ---------------------------------------------------------------------------------------------
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: orders-config
data:
  ORDERS_HTTP_HOST: "0.0.0.0"
  ORDERS_HTTP_PORT: "8000"
  ORDERS_POSTGRES__HOST: pg.data.svc
  ORDERS_POSTGRES__USER: shop
  ORDERS_POSTGRES__DATABASE: shop
  ORDERS_REDIS_URL: redis://redis.data.svc:6379/1
  ORDERS_NAMESPACE: shop
  ORDERS_LOG_LEVEL: WARNING
  ORDERS_SHUTDOWN_GRACE_S: "25"
  ORDERS_SECRETS_DIR: /run/secrets/orders
---
apiVersion: v1
kind: Secret
metadata:
  name: orders-secrets
stringData:
  ORDERS_POSTGRES__PASSWORD: s3cret
"""


def test_config_reference_passes():
    assert_passes(checks.config_and_secret(CONFIG))


def test_config_with_base64_data_passes():
    assert_passes(checks.config_and_secret(CONFIG.replace("stringData:\n  ORDERS_POSTGRES__PASSWORD: s3cret",
                                                          "data:\n  ORDERS_POSTGRES__PASSWORD: czNjcmV0")))


@pytest.mark.parametrize(("old", "new", "says"), [
    # the password in the ConfigMap instead of the Secret
    ("  ORDERS_SECRETS_DIR: /run/secrets/orders\n", "  ORDERS_POSTGRES__PASSWORD: s3cret\n", "holds the password"),
    # a single underscore: Settings ignores the variable
    ("ORDERS_POSTGRES__HOST", "ORDERS_POSTGRES_HOST", "ORDERS_POSTGRES_HOST"),
    ("ORDERS_REDIS_URL", "REDIS_URL", "no variable named REDIS_URL"),
    # values the app refuses: its own one-line message
    ('ORDERS_HTTP_PORT: "8000"', 'ORDERS_HTTP_PORT: "80000"', "ORDERS_HTTP_PORT"),
    ("ORDERS_LOG_LEVEL: WARNING", "ORDERS_LOG_LEVEL: warn", "ORDERS_LOG_LEVEL"),
    # the secrets folder not set, or not where the Deployment mounts the Secret
    ("  ORDERS_SECRETS_DIR: /run/secrets/orders\n", "", "password is not the one"),
    ("ORDERS_SECRETS_DIR: /run/secrets/orders", "ORDERS_SECRETS_DIR: /etc/orders", "ORDERS_SECRETS_DIR"),
    # the Secret key not named like the variable
    ("  ORDERS_POSTGRES__PASSWORD: s3cret", "  password: s3cret", "password is not the one"),
    ("ORDERS_NAMESPACE: shop", "ORDERS_NAMESPACE: orders", "namespace"),
    ('ORDERS_HTTP_HOST: "0.0.0.0"', 'ORDERS_HTTP_HOST: "127.0.0.1"', "http_host"),
    ("name: orders-secrets", "name: secrets", "orders-secrets"),
])
def test_config_wrong_answers_fail(old, new, says):
    assert old in CONFIG
    assert_fails(checks.config_and_secret(CONFIG.replace(old, new)), says)


def test_config_secret_value_is_never_shown():
    result = checks.config_and_secret(CONFIG.replace("s3cret", "wrong-one"))
    assert_fails(result, "password")
    assert "wrong-one" not in result.message + result.hint and "s3cret" not in result.message + result.hint


def test_config_stub_is_not_done():
    assert_not_done(checks.config_and_secret(...))


# exercise 3 ---------------------------------------------------------------------------------------------
def desired_replicas(current, metric, target, min_replicas, max_replicas):
    ratio = metric / target
    desired = current if abs(ratio - 1) <= 0.1 else math.ceil(current * ratio)
    return max(min_replicas, min(max_replicas, desired))


def test_formula_reference_passes():
    assert_passes(checks.hpa_formula(desired_replicas))


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda c, m, t, lo, hi: max(lo, min(hi, round(c * m / t))), "2.4 pods"),  # no ceil
    (lambda c, m, t, lo, hi: max(lo, min(hi, int(c * m / t)))
     if abs(m / t - 1) > 0.1 else c, "2.4 pods"),  # truncated
    (lambda c, m, t, lo, hi: max(lo, min(hi, math.ceil(c * m / t))), "tolerance"),  # no tolerance
    (lambda c, m, t, lo, hi: max(lo, math.ceil(c * m / t)) if abs(m / t - 1) > 0.1 else c, "12 pods"),  # no max
    (lambda c, m, t, lo, hi: min(hi, math.ceil(c * m / t)) if abs(m / t - 1) > 0.1 else c, "1 pod"),  # no min
    (lambda c, m, t, lo, hi: float(desired_replicas(c, m, t, lo, hi)), "an int"),
    (lambda c, m, t, lo, hi: max(lo, min(hi, math.ceil(c * t / m))) if abs(m / t - 1) > 0.1 else c, "twice"),
])
def test_formula_wrong_answers_fail(wrong, says):
    assert_fails(checks.hpa_formula(wrong), says)


def test_formula_stub_is_not_done():
    def stub(current, metric, target, min_replicas, max_replicas):
        raise NotImplementedError

    assert_not_done(checks.hpa_formula(stub))


# exercise 4 ---------------------------------------------------------------------------------------------
PER_POD_RPS = ('avg(sum by (instance) (rate(http_requests_total{namespace="$namespace", '
               'endpoint="/products/{id}"}[$window])))')


@pytest.fixture(scope="module")
def scraped_load(app_ns):
    pods = k8s_pods.replicas(app_ns, 2)
    prometheus_targets.register(app_ns, *(pod.address for pod in pods))
    try:
        promql.wait_for('count(up{namespace="$namespace"} == 1) == 2', namespace=app_ns)
        load = k8s_load.drive(pods, [30, 70], seconds=6)
        promql.wait_for('sum(http_requests_total{namespace="$namespace", endpoint="/products/{id}"})',
                        namespace=app_ns, until=lambda res: res and res[0]["value"] == sum(load.sent.values()))
        yield load
    finally:
        prometheus_targets.unregister(app_ns)
        k8s_pods.stop_replicas(app_ns)


def _decision(load, namespace, formula=desired_replicas, expr=PER_POD_RPS):
    rate = promql.value(expr, at=load.end, namespace=namespace, window="5s")
    return formula(2, rate, checks.HPA["target_rps"], checks.HPA["min"], checks.HPA["max"])


def test_hpa_decision_reference_passes(scraped_load, app_ns):
    assert_passes(checks.hpa_from_prometheus(PER_POD_RPS, _decision(scraped_load, app_ns), app_ns, scraped_load, 2))


@pytest.mark.parametrize(("wrong", "says"), [
    # Prometheus' own scrapes counted as load
    ('avg(sum by (instance) (rate(http_requests_total{namespace="$namespace"}[$window])))', "not the per-pod"),
    # the total over both pods, not per pod
    ('sum(rate(http_requests_total{namespace="$namespace", endpoint="/products/{id}"}[$window]))', "not the per-pod"),
    # the busiest pod, not the average the HPA uses
    ('max(sum by (instance) (rate(http_requests_total{namespace="$namespace", endpoint="/products/{id}"}[$window])))',
     "not the per-pod"),
    ('avg(rate(http_requests_total{namespace="$namespace", endpoint="/products/{id}"}[5s]))', "$window"),
    ('avg(sum by (instance) (rate(http_requests_totl{namespace="$namespace"}[$window])))', "returned nothing"),
])
def test_hpa_decision_wrong_queries_fail(scraped_load, app_ns, wrong, says):
    assert_fails(checks.hpa_from_prometheus(wrong, 3, app_ns, scraped_load, 2), says)


def test_hpa_decision_without_ceil_fails(scraped_load, app_ns):
    def no_ceil(c, m, t, lo, hi):
        return max(lo, min(hi, int(c * m / t))) if abs(m / t - 1) > 0.1 else c

    desired = _decision(scraped_load, app_ns, no_ceil)
    assert_fails(checks.hpa_from_prometheus(PER_POD_RPS, desired, app_ns, scraped_load, 2), "would not choose")


def test_hpa_decision_stub_is_not_done(scraped_load, app_ns):
    assert_not_done(checks.hpa_from_prometheus(PER_POD_RPS, ..., app_ns, scraped_load, 2))


# exercise 5 ---------------------------------------------------------------------------------------------
PDB = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: orders-service
spec:
  minAvailable: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: orders-service
"""


def test_pdb_reference_passes():
    assert_passes(checks.pod_disruption_budget(PDB))


@pytest.mark.parametrize("equivalent", ["maxUnavailable: 1", 'minAvailable: "60%"'])
def test_pdb_equivalent_budgets_pass(equivalent):
    assert_passes(checks.pod_disruption_budget(PDB.replace("minAvailable: 2", equivalent)))


@pytest.mark.parametrize(("old", "new", "says"), [
    ("app.kubernetes.io/name: orders-service", "app: orders-service", "does not select"),  # wrong selector
    ("app.kubernetes.io/name: orders-service", "app.kubernetes.io/name: orders", "does not select"),
    ("minAvailable: 2", "minAvailable: 1", "fewer than 2"),
    ("minAvailable: 2", "maxUnavailable: 2", "fewer than 2"),
    ("minAvailable: 2", "minAvailable: 3", "wait forever"),
    ("minAvailable: 2", 'maxUnavailable: "0%"', "wait forever"),
    ("minAvailable: 2", "minAvailable: two", "neither a number"),
])
def test_pdb_wrong_answers_fail(old, new, says):
    assert_fails(checks.pod_disruption_budget(PDB.replace(old, new)), says)


def test_pdb_stub_is_not_done():
    assert_not_done(checks.pod_disruption_budget(...))


# exercise 6 ---------------------------------------------------------------------------------------------
HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: orders-service
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: orders-service
  minReplicas: 3
  maxReplicas: 12
  metrics:
    - type: Pods
      pods:
        metric:
          name: http_requests_per_second
        target:
          type: AverageValue
          averageValue: "40"
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 120
    scaleUp:
      policies:
        - type: Pods
          value: 4
          periodSeconds: 60
"""


def test_hpa_reference_passes():
    assert_passes(checks.autoscaler(HPA))


@pytest.mark.parametrize(("old", "new", "says"), [
    ("kind: Deployment", "kind: ReplicaSet", "must name the deployment"),  # HPA not targeting the Deployment
    ("    name: orders-service\n  minReplicas", "    name: orders\n  minReplicas", "must name the deployment"),
    ("minReplicas: 3", "minReplicas: 2", "lets 0 be evicted"),  # fights the budget at its minimum
    ("minReplicas: 3", "minReplicas: 4", "a smaller minimum"),
    ("maxReplicas: 12", "maxReplicas: 10", "maxreplicas is 10"),
    ('averageValue: "40"', 'averageValue: "50"', "average of 40"),
    ("type: AverageValue", "type: Utilization", "average of 40"),
    ("stabilizationWindowSeconds: 120", "stabilizationWindowSeconds: 300", "window is 300"),
    ("value: 4", "value: 100\n          periodSeconds: 15\n        - type: Pods\n          value: 4",
     "4 pods a minute"),
    ("autoscaling/v2", "autoscaling/v1", "schema"),
    ("stabilizationWindowSeconds: 120", "stabilisationWindowSeconds: 120", "stabilisationWindowSeconds"),
])
def test_hpa_wrong_answers_fail(old, new, says):
    assert old in HPA
    assert_fails(checks.autoscaler(HPA.replace(old, new)), says)


def test_hpa_stub_is_not_done():
    assert_not_done(checks.autoscaler(...))
