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


def _edited(text: str, edits: tuple[tuple[str, str], ...]) -> str:
    """TEXT with each (old, new) replaced: a wrong answer made from the reference."""
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text


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


def _deployment_fails(namespace, says, *edits):
    assert_fails(checks.deployment(_edited(DEPLOYMENT, edits), namespace), says)


def test_deployment_misnamed_fails(app_ns):
    _deployment_fails(app_ns, "named orders-service", ("  name: orders-service\nspec:", "  name: orders\nspec:"))


def test_deployment_with_two_replicas_fails(app_ns):
    _deployment_fails(app_ns, "replicas is 2", ("replicas: 3", "replicas: 2"))


def test_deployment_pods_with_another_label_fails(app_ns):  # selector and pods agree, on the wrong label
    _deployment_fails(app_ns, "app.kubernetes.io/name", ("app.kubernetes.io/name: orders-service", "app: orders"))


def test_deployment_pods_not_carrying_the_label_fails(app_ns):
    _deployment_fails(app_ns, "app.kubernetes.io/name",
                      ("      labels:\n        app.kubernetes.io/name: orders-service",
                       "      labels:\n        app: orders"))


def test_deployment_selector_not_matching_the_pods_fails(app_ns):
    _deployment_fails(app_ns, "selector does not match",
                      ("    matchLabels:\n      app.kubernetes.io/name: orders-service",
                       "    matchLabels:\n      app: orders"))


def test_deployment_with_a_sidecar_fails(app_ns):
    _deployment_fails(app_ns, "expected one container",
                      ("              sleep: {seconds: 5}\n", "              sleep: {seconds: 5}\n"
                       "        - name: sidecar\n          image: localhost/orders-service:0.1.0\n"))


def test_deployment_wrong_image_fails(app_ns):
    _deployment_fails(app_ns, "not the image the exercise names",
                      ("image: localhost/orders-service:0.1.0", "image: orders:latest"))


def test_deployment_port_not_named_http_fails(app_ns):  # consistent, but not the port the exercise names
    _deployment_fails(app_ns, "8000 named http", ("- name: http", "- name: web"), ("port: http}", "port: web}"))


def test_deployment_wrong_container_port_fails(app_ns):
    _deployment_fails(app_ns, "8000 named http", ("containerPort: 8000", "containerPort: 8080"))


def test_deployment_without_the_configmap_fails(app_ns):
    _deployment_fails(app_ns, "configmap orders-config", ("name: orders-config", "name: orders"))


def test_deployment_liveness_on_the_readiness_endpoint_fails(app_ns):
    _deployment_fails(app_ns, "restart every pod", ("path: /health/live,", "path: /health/ready,"))


def test_deployment_readiness_on_the_liveness_endpoint_fails(app_ns):
    _deployment_fails(app_ns, "readiness should ask", ("path: /health/ready,", "path: /health/live,"))


def test_deployment_probe_on_a_path_the_app_does_not_serve_fails(app_ns):
    _deployment_fails(app_ns, "does not serve", ("path: /health/ready,", "path: /healthz,"))


def test_deployment_tcp_liveness_probe_fails(app_ns):
    _deployment_fails(app_ns, "no http livenessprobe",
                      ("httpGet: {path: /health/live, port: http}", "tcpSocket: {port: http}"))


def test_deployment_probe_on_another_port_fails(app_ns):
    _deployment_fails(app_ns, "port 8080",
                      ("port: http}\n            periodSeconds: 5", "port: 8080}\n            periodSeconds: 5"))


def test_deployment_wrong_cpu_request_fails(app_ns):
    _deployment_fails(app_ns, "cpu request is 100m", ("cpu: 200m,", "cpu: 100m,"))


def test_deployment_without_a_memory_request_fails(app_ns):
    _deployment_fails(app_ns, "requests and limits for memory",
                      ("requests: {cpu: 200m, memory: 192Mi}", "requests: {cpu: 200m}"))


def test_deployment_wrong_memory_limit_fails(app_ns):
    _deployment_fails(app_ns, "memory limit", ("memory: 384Mi}", "memory: 400Mi}"))


def test_deployment_wrong_cpu_limit_fails(app_ns):
    _deployment_fails(app_ns, "cpu limit is 2", ('limits: {cpu: "1",', 'limits: {cpu: "2",'))


def test_deployment_limit_below_request_fails(app_ns):
    _deployment_fails(app_ns, "above its limit",
                      ('limits: {cpu: "1", memory: 384Mi}', 'limits: {cpu: "1", memory: 128Mi}'))


def test_deployment_misspelt_field_fails(app_ns):  # the API server would reject it
    _deployment_fails(app_ns, "livenesProbe", ("livenessProbe:", "livenesProbe:"))


def test_deployment_not_a_quantity_fails(app_ns):
    _deployment_fails(app_ns, "not a kubernetes quantity", ("cpu: 200m,", "cpu: 0.2cores,"))


def test_deployment_short_prestop_sleep_fails(app_ns):
    _deployment_fails(app_ns, "preStop sleep is 1", ("sleep: {seconds: 5}", "sleep: {seconds: 1}"))


def test_deployment_without_prestop_fails(app_ns):
    _deployment_fails(app_ns, "preStop sleep is None",
                      ("          lifecycle:\n            preStop:\n              sleep: {seconds: 5}\n", ""))


def test_deployment_grace_period_of_the_lesson_fails(app_ns):  # 20 s covered a 10 s drain, not this 25 s one
    _deployment_fails(app_ns, "sigkill", ("terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 20"))


def test_deployment_grace_period_without_margin_fails(app_ns):  # 5 + 25 = 30 s, no margin
    _deployment_fails(app_ns, "sigkill", ("terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 30"))


def test_deployment_default_grace_period_fails(app_ns):
    _deployment_fails(app_ns, "terminationGracePeriodSeconds is 30", ("      terminationGracePeriodSeconds: 35\n", ""))


def test_deployment_grace_period_over_a_minute_fails(app_ns):
    _deployment_fails(app_ns, "hold a rollout",
                      ("terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 61"))


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


def _config_fails(says, *edits):
    assert_fails(checks.config_and_secret(_edited(CONFIG, edits)), says)


def test_config_without_the_secret_fails():
    assert_fails(checks.config_and_secret(CONFIG.split("---")[0]), "expected one secret")


def test_config_configmap_misnamed_fails():
    _config_fails("orders-config", ("name: orders-config", "name: config"))


def test_config_secret_misnamed_fails():
    _config_fails("orders-secrets", ("name: orders-secrets", "name: secrets"))


def test_config_loopback_host_fails():  # no other pod could reach it
    _config_fails("http_host", ('ORDERS_HTTP_HOST: "0.0.0.0"', 'ORDERS_HTTP_HOST: "127.0.0.1"'))


def test_config_wrong_port_fails():
    _config_fails("http_port", ('ORDERS_HTTP_PORT: "8000"', 'ORDERS_HTTP_PORT: "8080"'))


def test_config_port_the_app_refuses_fails():  # the app's own one-line message
    _config_fails("ORDERS_HTTP_PORT", ('ORDERS_HTTP_PORT: "8000"', 'ORDERS_HTTP_PORT: "80000"'))


def test_config_wrong_drain_fails():
    _config_fails("shutdown_grace_s", ('ORDERS_SHUTDOWN_GRACE_S: "25"', 'ORDERS_SHUTDOWN_GRACE_S: "10"'))


def test_config_wrong_postgres_host_fails():
    _config_fails("postgres.host", ("pg.data.svc", "postgres.data.svc"))


def test_config_wrong_postgres_user_fails():
    _config_fails("postgres.user", ("ORDERS_POSTGRES__USER: shop", "ORDERS_POSTGRES__USER: orders"))


def test_config_wrong_postgres_database_fails():
    _config_fails("postgres.database", ("ORDERS_POSTGRES__DATABASE: shop", "ORDERS_POSTGRES__DATABASE: orders"))


def test_config_wrong_redis_database_fails():
    _config_fails("redis_url", ("6379/1", "6379/0"))


def test_config_wrong_namespace_fails():
    _config_fails("namespace", ("ORDERS_NAMESPACE: shop", "ORDERS_NAMESPACE: orders"))


def test_config_log_level_the_app_refuses_fails():
    _config_fails("ORDERS_LOG_LEVEL", ("ORDERS_LOG_LEVEL: WARNING", "ORDERS_LOG_LEVEL: warn"))


def test_config_wrong_log_level_fails():
    _config_fails("log_level", ("ORDERS_LOG_LEVEL: WARNING", "ORDERS_LOG_LEVEL: INFO"))


def test_config_password_only_in_the_configmap_fails():
    _config_fails("holds the password", ("  ORDERS_SECRETS_DIR: /run/secrets/orders\n",
                                         "  ORDERS_POSTGRES__PASSWORD: s3cret\n"),
                  ("stringData:\n  ORDERS_POSTGRES__PASSWORD: s3cret", "stringData: {}"))


def test_config_password_also_in_the_configmap_fails():
    _config_fails("holds the password", ("  ORDERS_SECRETS_DIR: /run/secrets/orders\n",
                                         "  ORDERS_SECRETS_DIR: /run/secrets/orders\n  ORDERS_DB_PASSWORD: s3cret\n"))


def test_config_without_the_secrets_dir_fails():  # the Secret is mounted, but the app never reads the folder
    _config_fails("password is not the one", ("  ORDERS_SECRETS_DIR: /run/secrets/orders\n", ""))


def test_config_secrets_dir_elsewhere_fails():
    _config_fails("ORDERS_SECRETS_DIR", ("ORDERS_SECRETS_DIR: /run/secrets/orders", "ORDERS_SECRETS_DIR: /etc/orders"))


def test_config_secret_key_not_named_like_the_variable_fails():
    _config_fails("password is not the one", ("  ORDERS_POSTGRES__PASSWORD: s3cret", "  password: s3cret"))


def test_config_key_settings_does_not_read_fails():
    _config_fails("no variable named ORDERS_DEBUG",
                  ("ORDERS_NAMESPACE: shop", 'ORDERS_NAMESPACE: shop\n  ORDERS_DEBUG: "1"'))


def test_config_single_underscore_fails():  # Settings ignores the variable
    _config_fails("ORDERS_POSTGRES_HOST", ("ORDERS_POSTGRES__HOST", "ORDERS_POSTGRES_HOST"))


def test_config_without_the_prefix_fails():
    _config_fails("no variable named REDIS_URL", ("ORDERS_REDIS_URL", "REDIS_URL"))


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


def test_formula_rounding_fails():
    assert_fails(checks.hpa_formula(lambda c, m, t, lo, hi: max(lo, min(hi, round(c * m / t)))), "2.4 pods")


def test_formula_truncating_fails():
    def truncated(c, m, t, lo, hi):
        return max(lo, min(hi, int(c * m / t))) if abs(m / t - 1) > 0.1 else c

    assert_fails(checks.hpa_formula(truncated), "2.4 pods")


def test_formula_inverted_ratio_fails():
    def inverted(c, m, t, lo, hi):
        return max(lo, min(hi, math.ceil(c * t / m))) if abs(m / t - 1) > 0.1 else c

    assert_fails(checks.hpa_formula(inverted), "twice")


def test_formula_without_tolerance_fails():
    assert_fails(checks.hpa_formula(lambda c, m, t, lo, hi: max(lo, min(hi, math.ceil(c * m / t)))), "tolerance")


def test_formula_with_a_wider_tolerance_fails():
    def wide(c, m, t, lo, hi):
        return max(lo, min(hi, math.ceil(c * m / t))) if abs(m / t - 1) > 0.2 else c

    assert_fails(checks.hpa_formula(wide), "1.2 x the target")


def test_formula_without_max_fails():
    assert_fails(checks.hpa_formula(lambda c, m, t, lo, hi: max(lo, math.ceil(c * m / t))
                                    if abs(m / t - 1) > 0.1 else c), "12 pods")


def test_formula_without_min_fails():
    assert_fails(checks.hpa_formula(lambda c, m, t, lo, hi: min(hi, math.ceil(c * m / t))
                                    if abs(m / t - 1) > 0.1 else c), "1 pod")


def test_formula_returning_a_float_fails():
    assert_fails(checks.hpa_formula(lambda c, m, t, lo, hi: float(desired_replicas(c, m, t, lo, hi))), "an int")


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


def _query_fails(load, namespace, query, says):
    assert_fails(checks.hpa_from_prometheus(query, 3, namespace, load, 2), says)


def test_hpa_decision_counting_scrapes_fails(scraped_load, app_ns):  # Prometheus' own scrapes counted as load
    _query_fails(scraped_load, app_ns, 'avg(sum by (instance) (rate(http_requests_total{namespace="$namespace"}'
                                       '[$window])))', "not the per-pod")


def test_hpa_decision_total_not_per_pod_fails(scraped_load, app_ns):
    _query_fails(scraped_load, app_ns, 'sum(rate(http_requests_total{namespace="$namespace", '
                                       'endpoint="/products/{id}"}[$window]))', "not the per-pod")


def test_hpa_decision_busiest_pod_fails(scraped_load, app_ns):  # not the average the HPA uses
    _query_fails(scraped_load, app_ns, 'max(sum by (instance) (rate(http_requests_total{namespace="$namespace", '
                                       'endpoint="/products/{id}"}[$window])))', "not the per-pod")


def test_hpa_decision_fixed_window_fails(scraped_load, app_ns):
    _query_fails(scraped_load, app_ns, 'avg(rate(http_requests_total{namespace="$namespace", '
                                       'endpoint="/products/{id}"}[5s]))', "$window")


def test_hpa_decision_misspelt_metric_fails(scraped_load, app_ns):
    _query_fails(scraped_load, app_ns, 'avg(sum by (instance) (rate(http_requests_totl{namespace="$namespace"}'
                                       '[$window])))', "returned nothing")


def test_hpa_decision_every_namespace_fails(scraped_load, app_ns):
    _query_fails(scraped_load, app_ns, 'avg(sum by (instance) (rate(http_requests_total{endpoint="/products/{id}"}'
                                       '[$window])))', 'namespace="$namespace"')


def test_hpa_decision_without_ceil_fails(scraped_load, app_ns):
    def no_ceil(c, m, t, lo, hi):
        return max(lo, min(hi, int(c * m / t))) if abs(m / t - 1) > 0.1 else c

    desired = _decision(scraped_load, app_ns, no_ceil)
    assert_fails(checks.hpa_from_prometheus(PER_POD_RPS, desired, app_ns, scraped_load, 2), "would not choose")


def test_hpa_decision_with_the_target_for_all_pods_fails(scraped_load, app_ns):  # 40 a pod is 80 for both
    def total_target(c, m, t, lo, hi):
        return desired_replicas(c, m, t * c, lo, hi)

    desired = _decision(scraped_load, app_ns, total_target)
    assert_fails(checks.hpa_from_prometheus(PER_POD_RPS, desired, app_ns, scraped_load, 2), "would not choose")


def test_hpa_decision_with_swapped_bounds_fails(scraped_load, app_ns):
    def swapped(c, m, t, lo, hi):
        return desired_replicas(c, m, t, hi, lo)

    desired = _decision(scraped_load, app_ns, swapped)
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


def _pdb_fails(old, new, says):
    assert old in PDB
    assert_fails(checks.pod_disruption_budget(PDB.replace(old, new)), says)


def test_pdb_beta_api_fails():  # policy/v1beta1 is gone since Kubernetes 1.25
    _pdb_fails("policy/v1", "policy/v1beta1", "schema")


def test_pdb_selecting_another_label_fails():
    _pdb_fails("app.kubernetes.io/name: orders-service", "app: orders-service", "does not select")


def test_pdb_selecting_another_name_fails():
    _pdb_fails("app.kubernetes.io/name: orders-service", "app.kubernetes.io/name: orders", "does not select")


def test_pdb_keeping_one_fails():
    _pdb_fails("minAvailable: 2", "minAvailable: 1", "fewer than 2")


def test_pdb_allowing_two_evictions_fails():
    _pdb_fails("minAvailable: 2", "maxUnavailable: 2", "fewer than 2")


def test_pdb_keeping_all_three_fails():
    _pdb_fails("minAvailable: 2", "minAvailable: 3", "wait forever")


def test_pdb_allowing_no_eviction_fails():
    _pdb_fails("minAvailable: 2", 'maxUnavailable: "0%"', "wait forever")


def test_pdb_not_a_number_fails():
    _pdb_fails("minAvailable: 2", "minAvailable: two", "neither a number")


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


def _hpa_fails(says, *edits):
    assert_fails(checks.autoscaler(_edited(HPA, edits)), says)


def test_hpa_v1_fails():
    _hpa_fails("schema", ("autoscaling/v2", "autoscaling/v1"))


def test_hpa_targeting_a_replicaset_fails():
    _hpa_fails("must name the deployment", ("kind: Deployment", "kind: ReplicaSet"))


def test_hpa_targeting_another_name_fails():
    _hpa_fails("must name the deployment",
               ("    name: orders-service\n  minReplicas", "    name: orders\n  minReplicas"))


def test_hpa_minimum_fighting_the_budget_fails():  # at 2 pods a budget keeping 2 evicts none
    _hpa_fails("lets 0 be evicted", ("minReplicas: 3", "minReplicas: 2"))


def test_hpa_minimum_above_the_smallest_fails():
    _hpa_fails("a smaller minimum", ("minReplicas: 3", "minReplicas: 4"))


def test_hpa_wrong_maximum_fails():
    _hpa_fails("maxreplicas is 10", ("maxReplicas: 12", "maxReplicas: 10"))


def test_hpa_other_metric_fails():
    _hpa_fails("http_requests_per_second", ("name: http_requests_per_second", "name: http_requests_total"))


def test_hpa_with_a_second_metric_fails():
    _hpa_fails("one pods metric", ('averageValue: "40"\n', 'averageValue: "40"\n    - type: Resource\n'
                                   "      resource:\n        name: cpu\n        target:\n"
                                   "          type: Utilization\n          averageUtilization: 70\n"))


def test_hpa_wrong_target_fails():
    _hpa_fails("average of 40", ('averageValue: "40"', 'averageValue: "50"'))


def test_hpa_utilization_target_fails():
    _hpa_fails("average of 40", ("type: AverageValue", "type: Utilization"))


def test_hpa_default_scale_down_window_fails():
    _hpa_fails("window is 300", ("stabilizationWindowSeconds: 120", "stabilizationWindowSeconds: 300"))


def test_hpa_misspelt_window_fails():
    _hpa_fails("stabilisationWindowSeconds", ("stabilizationWindowSeconds: 120", "stabilisationWindowSeconds: 120"))


def test_hpa_four_pods_every_15_s_fails():
    _hpa_fails("4 pods a minute", ("periodSeconds: 60", "periodSeconds: 15"))


def test_hpa_two_scale_up_policies_fails():
    _hpa_fails("4 pods a minute", ("value: 4", "value: 100\n          periodSeconds: 15\n        - type: Pods\n"
                                   "          value: 4"))


def test_hpa_stub_is_not_done():
    assert_not_done(checks.autoscaler(...))


REQUIREMENTS = {
    "1": {
        "a Deployment named `orders-service`": "test_deployment_misnamed_fails",
        "with 3 replicas": "test_deployment_with_two_replicas_fails",
        "whose pods carry the label `app.kubernetes.io/name: orders-service`":
            ("test_deployment_pods_with_another_label_fails", "test_deployment_pods_not_carrying_the_label_fails"),
        "(and are selected by it)": "test_deployment_selector_not_matching_the_pods_fails",
        "One container": "test_deployment_with_a_sidecar_fails",
        "runs the image `localhost/orders-service:0.1.0`": "test_deployment_wrong_image_fails",
        "exposes port 8000 named `http`": ("test_deployment_port_not_named_http_fails",
                                           "test_deployment_wrong_container_port_fails"),
        "takes its environment from the ConfigMap `orders-config` above": "test_deployment_without_the_configmap_fails",
        "A liveness probe on the endpoint that touches no dependency":
            "test_deployment_liveness_on_the_readiness_endpoint_fails",
        "a readiness probe on the one that asks PostgreSQL and Redis":
            ("test_deployment_readiness_on_the_liveness_endpoint_fails",
             "test_deployment_probe_on_a_path_the_app_does_not_serve_fails"),
        "(both HTTP, on the port `http`)": ("test_deployment_tcp_liveness_probe_fails",
                                            "test_deployment_probe_on_another_port_fails"),
        "Requests of 200m CPU and 192Mi memory": ("test_deployment_wrong_cpu_request_fails",
                                                  "test_deployment_without_a_memory_request_fails"),
        "limits of 1 CPU and 384Mi": ("test_deployment_wrong_cpu_limit_fails",
                                      "test_deployment_wrong_memory_limit_fails",
                                      "test_deployment_limit_below_request_fails"),
        "A preStop hook that sleeps 5 s": ("test_deployment_short_prestop_sleep_fails",
                                           "test_deployment_without_prestop_fails"),
        "a `terminationGracePeriodSeconds` that covers the preStop sleep, the drain\n"
        "the ConfigMap sets and a 2 s margin":
            ("test_deployment_grace_period_of_the_lesson_fails", "test_deployment_grace_period_without_margin_fails",
             "test_deployment_default_grace_period_fails"),
        "without holding a stuck pod for more than a minute": "test_deployment_grace_period_over_a_minute_fails",
        "The check validates your manifest (strictly)": ("test_deployment_misspelt_field_fails",
                                                         "test_deployment_not_a_quantity_fails"),
    },
    "2": {
        "both objects in one text (separated by `---`)": "test_config_without_the_secret_fails",
        "takes its environment from the\nConfigMap `orders-config`": "test_config_configmap_misnamed_fails",
        "mounts the Secret `orders-secrets`": "test_config_secret_misnamed_fails",
        "at `/run/secrets/orders`": "test_config_secrets_dir_elsewhere_fails",
        "HTTP on all interfaces (`0.0.0.0`)": "test_config_loopback_host_fails",
        "port 8000": ("test_config_wrong_port_fails", "test_config_port_the_app_refuses_fails"),
        "a drain (`shutdown_grace_s`) of 25 s": "test_config_wrong_drain_fails",
        "PostgreSQL at host `pg.data.svc`": "test_config_wrong_postgres_host_fails",
        "as user `shop`": "test_config_wrong_postgres_user_fails",
        "database `shop`": "test_config_wrong_postgres_database_fails",
        "with the password `s3cret`": "test_config_secret_value_is_never_shown",
        "Redis at `redis://redis.data.svc:6379/1`": "test_config_wrong_redis_database_fails",
        "the namespace `shop`": "test_config_wrong_namespace_fails",
        "log level `WARNING`": ("test_config_log_level_the_app_refuses_fails", "test_config_wrong_log_level_fails"),
        "The password goes in the Secret": "test_config_password_only_in_the_configmap_fails",
        "read by the app as a file": ("test_config_without_the_secrets_dir_fails",
                                      "test_config_secret_key_not_named_like_the_variable_fails"),
        "and nowhere in the ConfigMap": "test_config_password_also_in_the_configmap_fails",
        "every key of the\nConfigMap must be a variable `Settings` reads":
            ("test_config_key_settings_does_not_read_fails", "test_config_single_underscore_fails",
             "test_config_without_the_prefix_fails"),
    },
    "3": {
        "the number of pods the\nHorizontalPodAutoscaler asks for, from one metric":
            ("test_formula_rounding_fails", "test_formula_truncating_fails", "test_formula_inverted_ratio_fails"),
        "with the controller's default tolerance of 0.1 (no change\nwhile the metric is within 10% of its target)":
            ("test_formula_without_tolerance_fails", "test_formula_with_a_wider_tolerance_fails"),
        "clamped to the replica bounds": ("test_formula_without_max_fails", "test_formula_without_min_fails"),
        "Return an `int`.": "test_formula_returning_a_float_fails",
    },
    "4": {
        "requests a second **per pod**, averaged over the pods": ("test_hpa_decision_total_not_per_pod_fails",
                                                                   "test_hpa_decision_busiest_pod_fails"),
        'with a target of `checks.HPA["target_rps"]`': "test_hpa_decision_with_the_target_for_all_pods_fails",
        'and bounds `checks.HPA["min"]` to `checks.HPA["max"]`': "test_hpa_decision_with_swapped_bounds_fails",
        "from `http_requests_total`": "test_hpa_decision_misspelt_metric_fails",
        "over `[$window]`": "test_hpa_decision_fixed_window_fails",
        "for this lab's series (`namespace=\"$namespace\"`)": "test_hpa_decision_every_namespace_fails",
        # the load sends no probe requests, so the check cannot tell a query that keeps /health/* apart
        "Prometheus' scrapes of\n`/metrics`": "test_hpa_decision_counting_scrapes_fails",
        "Set `DESIRED` to the number of pods the HPA would ask for": "test_hpa_decision_without_ceil_fails",
        "fed to exercise 3's function": "test_hpa_decision_without_ceil_fails",
    },
    "5": {
        "a PodDisruptionBudget (policy/v1)": "test_pdb_beta_api_fails",
        "for the pods of exercise 1's Deployment": ("test_pdb_selecting_another_label_fails",
                                                    "test_pdb_selecting_another_name_fails"),
        "a node drain never leaves fewer than 2 of them serving": ("test_pdb_keeping_one_fails",
                                                                   "test_pdb_allowing_two_evictions_fails"),
        "yet can always evict one": ("test_pdb_keeping_all_three_fails", "test_pdb_allowing_no_eviction_fails"),
    },
    "6": {
        "an autoscaling/v2 HorizontalPodAutoscaler": "test_hpa_v1_fails",
        "for the Deployment `orders-service`": ("test_hpa_targeting_a_replicaset_fails",
                                                "test_hpa_targeting_another_name_fails"),
        "a minimum that lets exercise 5's budget evict a pod even at that minimum":
            "test_hpa_minimum_fighting_the_budget_fails",
        "(the smallest such\nnumber)": "test_hpa_minimum_above_the_smallest_fails",
        "and 12 pods": "test_hpa_wrong_maximum_fails",
        "on one `Pods` metric, `http_requests_per_second`": ("test_hpa_other_metric_fails",
                                                             "test_hpa_with_a_second_metric_fails"),
        "with an average target of 40 a pod": ("test_hpa_wrong_target_fails", "test_hpa_utilization_target_fails"),
        "waits for 120 s of lower recommendations before scaling down": ("test_hpa_default_scale_down_window_fails",
                                                                         "test_hpa_misspelt_window_fails"),
        "adds at most 4 pods a minute when scaling up": "test_hpa_four_pods_every_15_s_fails",
        "(one scale-up policy)": "test_hpa_two_scale_up_policies_fails",
    },
}
