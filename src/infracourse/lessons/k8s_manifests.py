"""Kubernetes manifests checked without a cluster: schema validation against a pinned Kubernetes version
(kubernetes-validate's bundled schemas, strict: an unknown or misspelt field is an error) and the course's
semantic checks, which a schema cannot express (the probes, the resources, the grace period, the selectors).

    resources = k8s_manifests.load(k8s_manifests.ORDERS_MANIFESTS)   # a folder, a file or YAML text
    k8s_manifests.validate(resources)    # -> ["deployment/orders-service: spec...: 'x' is not valid ...", ...]
    k8s_manifests.semantic_problems(resources)   # -> the course's rules that do not hold, one line each
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from kubernetes_validate import utils as kubernetes_validate

from infracourse.errors import CourseError
from infracourse.paths import repo_root

KUBERNETES_VERSION = "1.33"  # the schemas the manifests are validated against (kubernetes-validate bundles them)
ORDERS_MANIFESTS = repo_root() / "apps" / "orders_service" / "deploy" / "k8s"
LIVE_PATH = "/health/live"  # the app's endpoints (apps/orders_service): live touches no dependency,
READY_PATH = "/health/ready"  # ready asks PostgreSQL and Redis
DEFAULT_PORT = 8000  # Settings.http_port's default
DEFAULT_DRAIN_S = 10.0  # Settings.shutdown_grace_s's default
MARGIN_S = 2.0  # after its drain the app closes its pool and exits: 0.5-1.2 s measured in lesson 18
Resource = dict[str, Any]


class ManifestError(CourseError):
    """A manifest that cannot be read (not YAML, not a Kubernetes object)."""


def load(source: str | Path) -> list[Resource]:
    """Every object in SOURCE: a folder (its *.yaml files, sorted), a file, or YAML text (documents split by ---)."""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".yaml")):
        path = Path(source)
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        return [r for f in files for r in _parse(f.read_text(encoding="utf-8"), f.name)]
    return _parse(source, "the YAML")


def _parse(text: str, where: str) -> list[Resource]:
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ManifestError(f"{where}{line} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    for document in documents:
        if not (isinstance(document, dict) and document.get("kind") and document.get("apiVersion")):
            raise ManifestError(f"{where}: every document needs apiVersion and kind (got {str(document)[:60]!r})")
    return documents


def name_of(resource: Resource) -> str:
    """kind/name, as kubectl prints it: deployment/orders-service."""
    return f"{resource['kind'].lower()}/{(resource.get('metadata') or {}).get('name', '?')}"


def validate(resources: list[Resource], version: str = KUBERNETES_VERSION) -> list[str]:
    """One readable line a schema violation: kind/name, the path to the field, what is wrong."""
    problems = []
    for resource in resources:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path).lstrip(".")
            problems.append(f"{name_of(resource)}: {where or '(top level)'}: {exc.message[:160]}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name_of(resource)}: {exc.message}")
    return problems


def find(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r.get("kind") == kind]


def quantity(value: object) -> float:
    """A Kubernetes quantity as a number: '250m' -> 0.25 (CPUs), '128Mi' -> 134217728 (bytes), 2 -> 2."""
    text = str(value).strip()
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", text)
    if not match:
        raise ManifestError(f"{text!r} is not a Kubernetes quantity (e.g. 250m, 1, 128Mi)")
    factor = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[match[2]]
    return float(match[1]) * factor


def config_env(resources: list[Resource]) -> dict[str, str]:
    """The ORDERS_* variables the ConfigMaps give (every ConfigMap's data, merged)."""
    return {k: str(v) for cm in find(resources, "ConfigMap") for k, v in (cm.get("data") or {}).items()}


def drain_s(resources: list[Resource]) -> float:
    """The app's drain after SIGTERM as the ConfigMap sets it (ORDERS_SHUTDOWN_GRACE_S) or the default."""
    return float(config_env(resources).get("ORDERS_SHUTDOWN_GRACE_S", DEFAULT_DRAIN_S))


def _probe_path(container: Resource, probe: str) -> str | None:
    return ((container.get(probe) or {}).get("httpGet") or {}).get("path")


def _container_problems(container: Resource, served: set[str]) -> list[str]:
    name = f"container {container.get('name', '?')}"
    live, ready = _probe_path(container, "livenessProbe"), _probe_path(container, "readinessProbe")
    problems = [f"{name}: a probe asks for {path}, which the app does not serve (it would fail forever)"
                for path in sorted({p for p in (live, ready) if p} - served)]
    if live is None:
        problems.append(f"{name} has no HTTP livenessProbe: a stuck process is never restarted")
    elif live != LIVE_PATH:
        touches = "touches PostgreSQL and Redis" if live == READY_PATH else "is not the app's liveness endpoint"
        problems.append(f"{name}: livenessProbe on {live} {touches}; a dependency's blip would restart "
                        f"every pod at once (liveness belongs on {LIVE_PATH})")
    if ready is None:
        problems.append(f"{name} has no HTTP readinessProbe: traffic reaches pods that cannot serve it")
    elif ready != READY_PATH:
        problems.append(f"{name}: readinessProbe on {ready}; readiness should ask the dependencies ({READY_PATH})")
    resources = container.get("resources") or {}
    for what in ("cpu", "memory"):
        request, limit = ((resources.get(k) or {}).get(what) for k in ("requests", "limits"))
        if request is None or limit is None:
            problems.append(f"{name}: set both requests and limits for {what}")
            continue
        try:
            above = quantity(request) > quantity(limit)
        except ManifestError as exc:
            problems.append(f"{name}: {what}: {exc}")
            continue
        if above:
            problems.append(f"{name}: the {what} request {request} is above its limit {limit} (requests <= limits)")
    return problems


def _ports(container: Resource) -> dict[str | int, int]:
    ports = {}
    for port in container.get("ports") or []:
        ports[port["containerPort"]] = port["containerPort"]
        if port.get("name"):
            ports[port["name"]] = port["containerPort"]
    return ports


def _port_problems(container: Resource, http_port: int) -> list[str]:
    ports = _ports(container)
    problems = [] if http_port in ports.values() else [
        f"container {container.get('name', '?')} exposes {sorted(set(ports.values()))}, but the app listens on "
        f"{http_port} (ORDERS_HTTP_PORT)"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
        if port is not None and ports.get(port) != http_port:
            problems.append(f"{probe} uses port {port}, not the app's port {http_port}")
    return problems


def _grace_problems(pod: Resource, drain: float) -> list[str]:
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = max([((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
                    for c in pod.get("containers") or []] or [0])
    needed = pre_stop + drain + MARGIN_S
    if grace >= needed:
        return []
    return [f"terminationGracePeriodSeconds is {grace}, shorter than preStop {pre_stop:g} s + drain {drain:g} s "
            f"+ margin {MARGIN_S:g} s = {needed:g} s: SIGKILL would cut requests still draining"]


def _selects(selector: Resource | None, labels: dict[str, str]) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def semantic_problems(resources: list[Resource], served: set[str] | None = None) -> list[str]:
    """The course's rules a schema cannot check, one line each a rule broken. SERVED: the paths the app answers
    (default: its two health endpoints; the lesson passes what the running app answered)."""
    served = {LIVE_PATH, READY_PATH} if served is None else served
    deployments = find(resources, "Deployment")
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"]
    deployment = deployments[0]
    template = deployment["spec"]["template"]
    pod, labels = template["spec"], (template.get("metadata") or {}).get("labels") or {}
    http_port = int(config_env(resources).get("ORDERS_HTTP_PORT", DEFAULT_PORT))
    problems = []
    for container in pod.get("containers") or []:
        problems += [f"{name_of(deployment)}: {p}" for p in _container_problems(container, served)]
        problems += [f"{name_of(deployment)}: {p}" for p in _port_problems(container, http_port)]
    problems += [f"{name_of(deployment)}: {p}" for p in _grace_problems(pod, drain_s(resources))]
    if not _selects(deployment["spec"].get("selector"), labels):
        problems.append(f"{name_of(deployment)}: spec.selector does not match the pod template's labels")
    for service in find(resources, "Service"):
        if not all(labels.get(k) == v for k, v in (service["spec"].get("selector") or {"": None}).items()):
            problems.append(f"{name_of(service)}: its selector matches no pod of {name_of(deployment)}")
    for hpa in find(resources, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref.get("kind"), ref.get("name")) != ("Deployment", deployment["metadata"]["name"]):
            problems.append(f"{name_of(hpa)}: scaleTargetRef is {ref.get('kind')}/{ref.get('name')}, not "
                            f"{name_of(deployment)}")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            problems.append(f"{name_of(hpa)}: minReplicas is above maxReplicas")
    for pdb in find(resources, "PodDisruptionBudget"):
        if not _selects(pdb["spec"].get("selector"), labels):
            problems.append(f"{name_of(pdb)}: its selector matches no pod of {name_of(deployment)}, so it "
                            "protects nothing")
    return problems
