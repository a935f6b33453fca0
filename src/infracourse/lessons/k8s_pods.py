"""What a kubelet would do with the orders service's manifests, done here without a cluster: the environment and
secret files a container gets, the Settings the app builds from them, and local processes standing in for pods.

    env = k8s_pods.container_env(resources)            # ConfigMap (envFrom / valueFrom) -> ORDERS_* variables
    settings = k8s_pods.settings_from(resources)        # Settings, built by the app's own code in a fresh process
    with k8s_pods.LocalPod(k8s_pods.local_env(ns.slug)) as pod:   # `python -m orders_service` on a free port
        pod.get("/health/ready")                         # -> (200, {"postgres": "ok", ...})
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from infracourse import config
from infracourse.errors import CourseError
from infracourse.lessons.k8s_manifests import Resource, find

START_TIMEOUT_S = 20.0
_SETTINGS_SCRIPT = """
import json
from orders_service.settings import load_settings
settings = load_settings()
print(json.dumps(settings.model_dump(), default=lambda secret: secret.get_secret_value()))
"""


class PodFailed(CourseError):
    """The app refused its configuration or did not start."""


def _container(resources: list[Resource]) -> tuple[Resource, Resource]:
    deployments = find(resources, "Deployment")
    if len(deployments) != 1:
        raise PodFailed(f"expected one Deployment among the manifests, found {len(deployments)}")
    pod = deployments[0]["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def _named(resources: list[Resource], kind: str, name: str) -> Resource:
    for resource in find(resources, kind):
        if resource["metadata"]["name"] == name:
            return resource
    raise PodFailed(f"the Deployment refers to {kind} {name!r}, which is not among the manifests "
                    "(on a cluster the pod would stay in CreateContainerConfigError)")


def _secret_data(secret: Resource) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **{k: str(v) for k, v in (secret.get("stringData") or {}).items()}}


def container_env(resources: list[Resource]) -> dict[str, str]:
    """The environment the Deployment's first container gets: envFrom first, then env (which wins)."""
    _, container = _container(resources)
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            data = _named(resources, "ConfigMap", source["configMapRef"]["name"]).get("data") or {}
        else:
            data = _secret_data(_named(resources, "Secret", source["secretRef"]["name"]))
        env.update({source.get("prefix", "") + k: str(v) for k, v in data.items()})
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item.get("valueFrom") or {}
        if "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[item["name"]] = str(_named(resources, "ConfigMap", key["name"])["data"][key["key"]])
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            env[item["name"]] = _secret_data(_named(resources, "Secret", key["name"]))[key["key"]]
    return env


def secret_mounts(resources: list[Resource]) -> dict[str, dict[str, str]]:
    """mount path -> {file name: content} for every Secret volume the first container mounts."""
    pod, container = _container(resources)
    volumes = {v["name"]: v for v in pod.get("volumes") or [] if "secret" in v}
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] in volumes:
            volume = volumes[mount["name"]]["secret"]
            data = _secret_data(_named(resources, "Secret", volume["secretName"]))
            items = volume.get("items") or [{"key": k, "path": k} for k in data]
            mounts[mount["mountPath"]] = {item["path"]: data[item["key"]] for item in items}
    return mounts


def _run_settings(env: dict[str, str], folder: Path) -> dict[str, Any]:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin"), **env}  # only what the pod would have
    done = subprocess.run([sys.executable, "-c", _SETTINGS_SCRIPT], env=clean, cwd=folder, capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        raise PodFailed("the app refused this configuration: " + " | ".join(lines[-3:]))
    return json.loads(done.stdout)


def settings_from(resources: list[Resource]):
    """The Settings the app builds in the container these manifests describe: the secret volumes written to a
    temporary folder (ORDERS_SECRETS_DIR pointed there when it names a mount), the container's environment and
    nothing else, read by the app's own load_settings() in a fresh interpreter."""
    from orders_service.settings import Settings

    env, mounts = container_env(resources), secret_mounts(resources)
    with tempfile.TemporaryDirectory() as folder:
        for index, (mount_path, files) in enumerate(sorted(mounts.items())):
            local = Path(folder) / f"mount{index}"
            local.mkdir()
            for name, content in files.items():
                (local / name).write_text(content, encoding="utf-8")
            env = {k: str(local) if v.rstrip("/") == mount_path.rstrip("/") else v for k, v in env.items()}
        values = _run_settings(env, Path(folder))
    return Settings(**values)  # every field given: the kernel's own environment cannot change any


def settings_variables() -> set[str]:
    """Every environment variable Settings reads (ORDERS_HTTP_PORT, ORDERS_POSTGRES__HOST, ...): a ConfigMap key
    outside this set is silently ignored by the app, a typo nobody notices."""
    from orders_service.settings import ENV_PREFIX, NESTED_DELIMITER, Settings

    names = {"ORDERS_SECRETS_DIR"}
    for name, field_info in Settings.model_fields.items():
        nested = getattr(field_info.annotation, "model_fields", None)
        names.update(f"{ENV_PREFIX}{name}{NESTED_DELIMITER}{sub}".upper() for sub in nested or ())
        names.add(f"{ENV_PREFIX}{name}".upper())
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_env(namespace: str, redis_url: str | None = None) -> dict[str, str]:
    """ORDERS_* variables for a local copy of the app on the course's services, in NAMESPACE (schema, keys)."""
    pg = config.endpoint("postgres")
    return {"ORDERS_NAMESPACE": namespace, "ORDERS_POSTGRES__HOST": pg.host, "ORDERS_POSTGRES__PORT": str(pg.port),
            "ORDERS_POSTGRES__USER": pg.user, "ORDERS_POSTGRES__PASSWORD": pg.password,
            "ORDERS_POSTGRES__DATABASE": pg.database, "ORDERS_REDIS_URL": redis_url or config.redis_url(),
            "ORDERS_KAFKA_BOOTSTRAP": config.kafka_bootstrap(), "ORDERS_LOG_LEVEL": "WARNING"}


class LocalPod:
    """`python -m orders_service` as a local process on a free loopback port: what one pod runs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "ORDERS_HTTP_HOST": "127.0.0.1", "ORDERS_HTTP_PORT": str(self.port)}
        self._folder = tempfile.TemporaryDirectory()
        self.log_path = Path(self._folder.name) / "pod.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Run the app and wait until it answers /health/live (PodFailed with its last log line if it does not)."""
        return self.launch().wait_started()

    def launch(self) -> Self:
        clean = {"PATH": os.environ.get("PATH", "/usr/bin"), **self.env}
        with open(self.log_path, "wb") as log:  # the pod dies with the thread that launched it: launch from one
            self.process = subprocess.Popen([sys.executable, "-m", "orders_service"], env=clean, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self._folder.name,
                                            preexec_fn=_die_with_parent)  # that lives (the kernel's main thread)
        return self

    def wait_started(self) -> Self:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.get("/health/live")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PodFailed(f"the app did not start: {self.last_log_line()}")
            time.sleep(0.05)
        return self

    def get(self, path: str, timeout_s: float = 3.0) -> tuple[int, Any]:
        """(status, JSON body) of GET PATH; status 0 when nothing answered."""
        try:
            with urllib.request.urlopen(f"http://{self.address}{path}", timeout=timeout_s) as reply:
                return reply.status, _body(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _body(exc.read())
        except OSError:
            return 0, None

    def counted(self, endpoint: str) -> float:
        """How many requests to ENDPOINT the app's own http_requests_total counts (what Prometheus will scrape)."""
        from prometheus_client.parser import text_string_to_metric_families

        _, text = self.get("/metrics")
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "http_requests_total" and s.labels.get("endpoint") == endpoint)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far (from /proc; what cAdvisor reports on a node)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout_s: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM, as the kubelet sends; wait for the exit. Returns (exit code, seconds it took)."""
        if self.process is None or self.process.poll() is not None:
            return (self.process.returncode if self.process else None), 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()  # what the kubelet does when terminationGracePeriodSeconds runs out
            code = self.process.wait()
        return code, time.monotonic() - started

    def last_log_line(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "(no output)"

    def close(self) -> None:
        self.stop()
        self._folder.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _die_with_parent() -> None:
    """SIGTERM the pod when the kernel that launched it dies without its Clean up (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def _body(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


_RUNNING: dict[str, list[LocalPod]] = {}  # namespace -> its replicas, so a re-run cell stops the previous ones


def replicas(namespace: str, count: int, **env: str) -> list[LocalPod]:
    """COUNT local pods of the app in NAMESPACE (extra ORDERS_* variables in ENV), started in parallel; the
    replicas this call made before for NAMESPACE are stopped first."""
    stop_replicas(namespace)
    _RUNNING[namespace] = [LocalPod({**local_env(namespace), **env}).launch() for _ in range(count)]
    return [pod.wait_started() for pod in _RUNNING[namespace]]


def stop_replicas(namespace: str) -> None:
    for pod in _RUNNING.pop(namespace, []):
        pod.close()
