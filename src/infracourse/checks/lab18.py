"""Checks of labs/18_kubernetes_manifests.ipynb: manifests validated offline against the Kubernetes schemas, then
judged by the course's semantic rules and against the running app (its probes hit, Redis cut behind a proxy),
Settings built from a ConfigMap and a Secret by the app's own code, and HPA decisions compared with the check's
own computation from live Prometheus data."""

from __future__ import annotations

import math
import re

from infracourse.checking import exercise, expect, time_limit
from infracourse.clients import promql
from infracourse.lessons import k8s_manifests, k8s_pods
from infracourse.lessons.faults import TcpProxy

LIMIT_S = 5
TOLERANCE = 0.1  # the HPA controller's default --horizontal-pod-autoscaler-tolerance
LAB_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: orders-config
data:
  ORDERS_HTTP_HOST: "0.0.0.0"
  ORDERS_HTTP_PORT: "8000"
  ORDERS_SHUTDOWN_GRACE_S: "25"
"""
LAB_LABELS = {"app.kubernetes.io/name": "orders-service"}
VALIDATE_HINT = f"`kubernetes-validate --strict -k {k8s_manifests.KUBERNETES_VERSION} FILE` says the same in a terminal"
HPA = {"target_rps": 40.0, "min": 2, "max": 5}  # exercise 4's HorizontalPodAutoscaler


def _load(text: object, kind: str, what: str) -> list[k8s_manifests.Resource]:
    expect(isinstance(text, str) and text.strip(), f"{what} should be the YAML text of the manifest")
    try:
        resources = k8s_manifests.load(text)
    except k8s_manifests.ManifestError as exc:
        expect(False, str(exc), hint="indent with spaces; separate documents with a line `---`")
    problems = k8s_manifests.validate(resources)
    expect(not problems, f"the schema rejects it: {problems[0] if problems else ''}", hint=VALIDATE_HINT)
    expect(k8s_manifests.find(resources, kind), f"no {kind} in {what}", hint=f"kind: {kind}")
    return resources


def _only(resources: list[k8s_manifests.Resource], kind: str) -> k8s_manifests.Resource:
    found = k8s_manifests.find(resources, kind)
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}",
           hint="one document a resource, separated by lines `---`")
    return found[0]


def lab_deployment() -> list[k8s_manifests.Resource]:
    """The course's Deployment (apps/orders_service/deploy/k8s/deployment.yaml), which exercise 2 configures."""
    return k8s_manifests.find(k8s_manifests.load(k8s_manifests.ORDERS_MANIFESTS / "deployment.yaml"), "Deployment")


# exercise 1 ----------------------------------------------------------------------------------------------
def _live_probes(live: str, ready: str, namespace: str) -> str:
    """Start the app with Redis behind a proxy, ask the probes' paths, cut Redis, ask again."""
    with TcpProxy.to("redis") as proxy:
        env = k8s_pods.local_env(namespace, redis_url=f"redis://{proxy.address}/0")
        with k8s_pods.LocalPod(env) as pod:
            for path in (live, ready):
                status, _ = pod.get(path)
                expect(status == 200, f"the running app answers GET {path} with {status or 'nothing'}",
                       hint="probe the paths the app serves (see the lesson's table)")
            proxy.cut()
            live_status, ready_status = pod.get(live)[0], pod.get(ready)[0]
    expect(live_status == 200, f"with Redis cut, GET {live} answers {live_status}: the liveness probe would "
                               "restart every pod while Redis blips", hint="liveness must touch no dependency")
    expect(ready_status != 200, f"with Redis cut, GET {ready} still answers 200: readiness would keep sending "
                                "traffic to pods that cannot serve it", hint="readiness asks the dependencies")
    return f"live {live} stays 200 and ready {ready} turns {ready_status} with Redis cut"


@exercise("1", "A Deployment whose probes and resources are right")
def deployment(deployment_yaml: str, namespace: str) -> str:
    resources = _load(deployment_yaml, "Deployment", "DEPLOYMENT_YAML")
    resources += k8s_manifests.load(LAB_CONFIGMAP)
    expect(not k8s_manifests.validate(resources), "the lab's ConfigMap no longer validates: re-run the Setup cell")
    dep = _only(resources, "Deployment")
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    expect(dep["metadata"].get("name") == "orders-service", "the Deployment should be named orders-service",
           hint="metadata.name")
    expect(spec.get("replicas") == 3, f"replicas is {spec.get('replicas', 1)}, the exercise asks for 3",
           hint="spec.replicas")
    labels = (dep["spec"]["template"].get("metadata") or {}).get("labels") or {}
    expect(labels.items() >= LAB_LABELS.items(), "the pods should carry the label "
                                                 "app.kubernetes.io/name: orders-service",
           hint="spec.template.metadata.labels")
    containers = pod["containers"]
    expect(len(containers) == 1, f"expected one container, found {len(containers)}",
           hint="the exercise's pods run the app alone: no sidecar")
    container = containers[0]
    expect(container.get("image") == "localhost/orders-service:0.1.0",
           f"the image is {container.get('image')!r}, not the image the exercise names",
           hint="the tag matters: a cluster runs exactly the image the manifest names")
    refs = [s.get("configMapRef", {}).get("name") for s in container.get("envFrom") or []]
    expect("orders-config" in refs, "the container does not get its environment from the ConfigMap orders-config",
           hint="envFrom: - configMapRef: name: orders-config")
    ports = {port.get("name"): port.get("containerPort") for port in container.get("ports") or []}
    expect(ports.get("http") == 8000, f"the container's ports are {ports}: the exercise asks for 8000 named http",
           hint="ports: - name: http, containerPort: 8000")
    problems = k8s_manifests.semantic_problems(resources)
    expect(not problems, problems[0] if problems else "", hint="the lesson's rules: one line each, shown above")
    wanted = {"requests": {"cpu": 0.2, "memory": 192 * 2**20}, "limits": {"cpu": 1.0, "memory": 384 * 2**20}}
    for kind, values in wanted.items():
        for what, number in values.items():
            got = container["resources"][kind][what]
            expect(math.isclose(k8s_manifests.quantity(got), number), f"the {what} {kind[:-1]} is {got}, not the "
                                                                      "exercise's value", hint="200m, 192Mi, 1, 384Mi")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    expect(grace <= 60, f"terminationGracePeriodSeconds is {grace}: a stuck pod would hold a rollout that long",
           hint="cover preStop + drain + a margin, no more than a minute")
    sleep = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds")
    expect(sleep == 5, f"the preStop sleep is {sleep}, the exercise asks for 5 s",
           hint="lifecycle: preStop: sleep: seconds: 5")
    path = {p: container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    return _live_probes(path["livenessProbe"], path["readinessProbe"], namespace)


# exercise 2 ----------------------------------------------------------------------------------------------
EXPECTED_SETTINGS = {"http_host": "0.0.0.0", "http_port": 8000, "postgres.host": "pg.data.svc",
                     "postgres.user": "shop", "postgres.database": "shop", "redis_url": "redis://redis.data.svc:6379/1",
                     "namespace": "shop", "log_level": "WARNING", "shutdown_grace_s": 25.0}
SECRET_VALUE = "s3cret"


def _field(settings: object, dotted: str) -> object:
    for part in dotted.split("."):
        settings = getattr(settings, part)
    return settings


@exercise("2", "A ConfigMap and a Secret that build the Settings")
def config_and_secret(config_yaml: str) -> str:
    resources = _load(config_yaml, "ConfigMap", "CONFIG_YAML")
    cm, secret = _only(resources, "ConfigMap"), _only(resources, "Secret")
    expect((cm["metadata"].get("name"), secret["metadata"].get("name")) == ("orders-config", "orders-secrets"),
           "name the ConfigMap orders-config and the Secret orders-secrets",
           hint="the Deployment refers to them by name: envFrom and volumes")
    data = {k: str(v) for k, v in (cm.get("data") or {}).items()}
    leaked = sorted(k for k, v in data.items() if "PASSWORD" in k.upper() or v == SECRET_VALUE)
    expect(not leaked, f"the ConfigMap holds the password ({', '.join(leaked)}): anyone who can read "
                       "ConfigMaps sees it", hint="passwords go in the Secret only")
    unknown = sorted(set(data) - k8s_pods.settings_variables())
    expect(not unknown, f"Settings reads no variable named {', '.join(unknown)}: the app would ignore it silently",
           hint="the prefix is ORDERS_ and a nested field is reached with __ (ORDERS_POSTGRES__HOST)")
    try:
        settings = k8s_pods.settings_from(lab_deployment() + resources)
    except k8s_pods.PodFailed as exc:
        expect(False, str(exc), hint="the app's own message names the variable")
    for dotted, wanted in EXPECTED_SETTINGS.items():
        got = _field(settings, dotted)
        expect(got == wanted, f"the app's Settings.{dotted} is {got!r}, not what the exercise asks",
               hint="one ORDERS_ variable a field, in the ConfigMap's data")
    expect(settings.postgres.password.get_secret_value() == SECRET_VALUE,
           "the app's PostgreSQL password is not the one the exercise gives",
           hint="a Secret key named like the variable it replaces (ORDERS_POSTGRES__PASSWORD), and "
                "ORDERS_SECRETS_DIR set to where the Deployment mounts the Secret")
    return f"{len(EXPECTED_SETTINGS) + 1} settings as asked, the password from a file"


# exercise 3 ----------------------------------------------------------------------------------------------
def reference_desired(current: int, metric: float, target: float, min_replicas: int, max_replicas: int) -> int:
    """The HPA controller's rule for one metric (what exercise 4's check compares with)."""
    ratio = metric / target
    desired = current if abs(ratio - 1.0) <= TOLERANCE else math.ceil(current * ratio)
    return max(min_replicas, min(max_replicas, desired))


HPA_CASES = [  # (current, metric, target, min, max), what the case is about
    ((2, 100.0, 50.0, 1, 10), "twice the target: twice the pods"),
    ((2, 60.0, 50.0, 2, 10), "1.2 x the target on 2 pods asks for 2.4 pods"),
    ((5, 54.0, 50.0, 2, 10), "8% above the target is within the tolerance"),
    ((6, 44.0, 50.0, 2, 10), "12% below the target is outside the tolerance"),
    ((3, 200.0, 50.0, 2, 10), "a spike asks for 12 pods"),
    ((3, 5.0, 50.0, 2, 10), "almost no traffic asks for 1 pod"),
]


@exercise("3", "The HPA's formula")
def hpa_formula(desired_replicas) -> str:
    for args, about in HPA_CASES:
        got = time_limit.call(LIMIT_S, desired_replicas, *args)
        wanted = reference_desired(*args)
        call = "desired_replicas({}, {:g}, {:g}, {}, {})".format(*args)
        expect(isinstance(got, int) and not isinstance(got, bool),
               f"{call} returned {got!r}: a number of pods is an int", hint="math.ceil returns an int")
        expect(got == wanted, f"{call} returned {got} ({about}): not what the HPA would do",
               hint="ceil(current * metric / target); no change within 10% of the target; then clamp to "
                    "[min, max]")
    return f"{len(HPA_CASES)} cases: ceil, tolerance, min and max"


# exercise 4 ----------------------------------------------------------------------------------------------
REFERENCE_PER_POD_RPS = ('avg(sum by (instance) (rate(http_requests_total{namespace="$namespace", '
                         'endpoint!~"/metrics|/health/.+"}[$window])))')


def _per_pod(expr: str, namespace: str, at: float, window: str) -> float:
    try:
        return promql.value(expr, at=at, namespace=namespace, window=window)
    except promql.PromQLError as exc:
        expect(False, f"Prometheus rejected the query: {exc}", hint="aggregate to one number: avg(...)")


@exercise("4", "An HPA decision from Prometheus")
def hpa_from_prometheus(per_pod_rps: str, desired: int, namespace: str, load, pods: int) -> str:
    expect(isinstance(per_pod_rps, str) and "$namespace" in per_pod_rps,
           'PER_POD_RPS should be a PromQL string selecting namespace="$namespace"',
           hint="other namespaces' pods share this Prometheus: select this lab's series")
    expect("$window" in per_pod_rps, "use [$window] as the range of rate(): the check evaluates with two windows",
           hint="rate(...[$window])")
    for window in ("3s", "5s"):
        got = _per_pod(per_pod_rps, namespace, load.end, window)
        wanted = _per_pod(REFERENCE_PER_POD_RPS, namespace, load.end, window)
        expect(not math.isnan(got), f"your query returned nothing with a {window} window",
               hint="check the metric name and the labels")
        expect(math.isclose(got, wanted, rel_tol=1e-6),
               f"your query gives {got:.2f} requests/s a pod with a {window} window: not the per-pod rate of "
               "user requests", hint="exclude Prometheus' scrapes and the probes (endpoint!~...), sum per "
                                     "instance, then average over the pods")
    rate = _per_pod(REFERENCE_PER_POD_RPS, namespace, load.end, "5s")
    expect(isinstance(desired, int) and not isinstance(desired, bool), f"DESIRED is {desired!r}, not an int",
           hint="exercise 3's desired_replicas returns an int")
    wanted = reference_desired(pods, rate, HPA["target_rps"], HPA["min"], HPA["max"])
    expect(desired == wanted, f"DESIRED is {desired}, but the HPA would not choose that for {rate:.1f} requests/s "
                              f"a pod on {pods} pods (target {HPA['target_rps']:g})",
           hint="feed the query's value at load.end with a 5s window to your desired_replicas")
    return f"the per-pod rate of user requests on {pods} pods -> {desired} replicas"


# exercise 5 ----------------------------------------------------------------------------------------------
def _scaled(value: int | str, replicas: int) -> int:
    """An IntOrString of a PDB at REPLICAS pods (percentages round up, as the disruption controller does)."""
    if isinstance(value, str) and re.fullmatch(r"\d+%", value):
        return math.ceil(replicas * int(value[:-1]) / 100)
    expect(isinstance(value, int), f"{value!r} is neither a number of pods nor a percentage: the API server "
                                   "would refuse this budget", hint="minAvailable: 2, or a string like \"60%\"")
    return value


def disruptions_allowed(pdb: k8s_manifests.Resource, replicas: int) -> int:
    spec = pdb["spec"]
    if "minAvailable" in spec:
        return max(0, replicas - _scaled(spec["minAvailable"], replicas))
    return _scaled(spec.get("maxUnavailable", 0), replicas)


@exercise("5", "A PodDisruptionBudget that keeps two pods")
def pod_disruption_budget(pdb_yaml: str) -> str:
    pdb = _only(_load(pdb_yaml, "PodDisruptionBudget", "PDB_YAML"), "PodDisruptionBudget")
    match = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
    expect(match and match.items() <= LAB_LABELS.items() and not pdb["spec"]["selector"].get("matchExpressions"),
           f"the selector {match or pdb['spec'].get('selector')} does not select the Deployment's pods",
           hint="use the label on the pods: app.kubernetes.io/name: orders-service")
    allowed = disruptions_allowed(pdb, 3)
    expect(allowed <= 1, f"with 3 pods running, this budget lets {allowed} be evicted at once: fewer than 2 would "
                         "serve", hint="minAvailable: 2 (or maxUnavailable: 1)")
    expect(allowed >= 1, "with 3 pods running, this budget lets none be evicted: a node drain would wait forever",
           hint="keep 2, not 3")
    return "3 pods: 1 may be evicted, 2 keep serving"


# exercise 6 ----------------------------------------------------------------------------------------------
@exercise("6", "An HPA that scales the Deployment without fighting the budget", stretch=True)
def autoscaler(hpa_yaml: str) -> str:
    hpa = _only(_load(hpa_yaml, "HorizontalPodAutoscaler", "HPA_YAML"), "HorizontalPodAutoscaler")
    expect(hpa["apiVersion"] == "autoscaling/v2", "use autoscaling/v2 (v1 scales on CPU only)",
           hint="apiVersion: autoscaling/v2")
    spec, ref = hpa["spec"], hpa["spec"]["scaleTargetRef"]
    expect((ref.get("apiVersion"), ref.get("kind"), ref.get("name")) == ("apps/v1", "Deployment", "orders-service"),
           f"scaleTargetRef is {ref.get('apiVersion')} {ref.get('kind')}/{ref.get('name')}: it must name the "
           "Deployment", hint="apiVersion: apps/v1, kind: Deployment, name: orders-service")
    low = spec.get("minReplicas", 1)
    expect(low >= 3, f"minReplicas is {low}: at that size the budget (2 pods kept) lets "
                     f"{max(0, low - 2)} be evicted", hint="one more than the budget keeps")
    expect(low == 3, f"minReplicas is {low}: a smaller minimum still lets the budget evict a pod",
           hint="the exercise asks for the smallest such minimum")
    expect(spec["maxReplicas"] == 12, f"maxReplicas is {spec['maxReplicas']}, the exercise asks for 12",
           hint="spec.maxReplicas")
    metrics = spec.get("metrics") or []
    pods = (metrics[0].get("pods") or {}) if len(metrics) == 1 and metrics[0].get("type") == "Pods" else {}
    expect((pods.get("metric") or {}).get("name") == "http_requests_per_second",
           f"the metrics are {[m.get('type') for m in metrics]}: scale on one Pods metric named "
           "http_requests_per_second", hint="metrics: - type: Pods, and no other metric")
    target = pods.get("target") or {}
    expect(target.get("type") == "AverageValue" and k8s_manifests.quantity(target.get("averageValue", 0)) == 40,
           f"the target is {target}: the exercise asks for an average of 40 a pod",
           hint="target: type: AverageValue, averageValue: ...")
    behavior = spec.get("behavior") or {}
    window = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds")
    expect(window == 120, f"the scale-down stabilization window is {window}, the exercise asks for 120 s",
           hint="behavior: scaleDown: stabilizationWindowSeconds")
    policies = (behavior.get("scaleUp") or {}).get("policies") or []
    expect(any(p == {"type": "Pods", "value": 4, "periodSeconds": 60} for p in policies) and len(policies) == 1,
           f"the scale-up policies are {policies}: the exercise allows 4 pods a minute",
           hint="behavior: scaleUp: policies: - type: Pods ...")
    return "targets the Deployment, 3-12 pods, 40 req/s a pod, paced up and down"
