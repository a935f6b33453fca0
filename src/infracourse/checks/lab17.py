"""Checks of labs/17_containers_build_and_run.ipynb.

Every check builds and runs for real, in the lab's own names: hadolint on the learner's Containerfile, a build,
a run until healthy, /proc/1/status from inside, the build context seen from inside an image, a stop under load
with in-flight orders counted, the image's history and layers searched for a token. Static checks come first, so
most wrong answers fail in a second, before any build.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from infracourse import config, paths
from infracourse.checking import NotDone, exercise, expect
from infracourse.lessons.container_probes import context_files, copy_app, free_port, proc_status, stop_under_load
from infracourse.lessons.http_service import call
from infracourse.namespace import Namespace
from infracourse.services.containers import ContainerError, Runtime

# read by `course grade`: the sandbox (an unprivileged uid, no user namespaces) cannot host a container runtime
OUTSIDE_THE_SANDBOX = "builds and runs containers, which the grading sandbox cannot host"
CONTEXT_MUST_KEEP = ("pyproject.toml", "orders_service/__init__.py", "orders_service/__main__.py",
                     "orders_service/app.py", "orders_service/settings.py", "rootfs.py")
CONTEXT_DECOYS = {".env": "ORDERS_POSTGRES__PASSWORD=decoy\n", "orders_service/.env": "ORDERS_REDIS_URL=decoy\n",
                  ".venv/bin/python": "", ".venv/lib/site.py": "", ".git/config": "[core]\n"}
GRACE_S = 4  # ORDERS_SHUTDOWN_GRACE_S in the drain check
STOP_TIMEOUT_S = 10  # the runtime's grace period (stop -t): then SIGKILL
SLOW_HOLD_S = 12  # the slow case holds the orders past both: only a bounded wait exits before the SIGKILL


@dataclass
class Lab:
    """What the Setup cell prepares: the runtime, a private copy of the app, the reference image, the names."""

    rt: Runtime
    ns: Namespace
    work: Path
    app: Path
    image: str  # prefix of every image the lab builds
    container: str

    @property
    def reference(self) -> str:
        return f"{self.image}:reference"

    @property
    def install_step(self) -> str:
        """The app's RUN line that installs the pinned dependencies (with the build secrets), continuations kept."""
        text = (paths.repo_root() / "apps" / "orders_service" / "Containerfile").read_text()
        return re.search(r"^RUN --mount=type=secret.*?pip uninstall[^\n]*$", text, re.S | re.M)[0]  # type: ignore[index]

    def ready(self) -> None:
        """What the checks build from, made again if Clean up (or a reboot) removed it: seconds, from the cache."""
        if not (self.app / "Containerfile").exists():
            copy_app(paths.repo_root() / "apps" / "orders_service", self.app)
        if self.rt.run("image", "inspect", self.reference).returncode != 0:
            self.rt.build(self.app, self.reference)

    def env(self, port: int, **extra: str) -> list[str]:
        pg = config.endpoint("postgres")
        values = {"ORDERS_HTTP_HOST": "127.0.0.1", "ORDERS_HTTP_PORT": str(port), "ORDERS_NAMESPACE": self.ns.slug,
                  "ORDERS_POSTGRES__HOST": pg.host, "ORDERS_POSTGRES__PORT": str(pg.port),
                  "ORDERS_REDIS_URL": config.redis_url(), **extra}
        return [arg for key, value in values.items() for arg in ("-e", f"{key}={value}")]


def prepare(ns: Namespace, rt: Runtime) -> Lab:
    """Copy the app, build the reference image from its own Containerfile (cached after the first time), and
    remove containers a previous run left behind."""
    work = Path(tempfile.gettempdir()) / f"infracourse-{ns.slug}"
    lab = Lab(rt, ns, work, copy_app(paths.repo_root() / "apps" / "orders_service", work / "app"),
              f"localhost/{ns.slug}-lab", f"{ns.slug}-check")
    rt.remove(*[n for n in rt("ps", "-a", "--format", "{{.Names}}").split() if n.startswith(f"{ns.slug}-")])
    rt.build(lab.app, lab.reference)
    return lab


def _is_stub(fn: object) -> bool:
    """A function whose body is only `raise NotImplementedError` (what the lab's TODO leaves)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
    body = [node for node in tree.body[0].body if not isinstance(node, ast.Expr)]  # type: ignore[attr-defined]
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


def _stages(text: str) -> list[list[tuple[str, str]]]:
    """The Containerfile's instructions per stage: [[(INSTRUCTION, arguments), ...], ...] (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = [[]]
    for line in joined.splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        instruction, args = words[0].upper(), (words[1] if len(words) > 1 else "")
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, args))
    return stages[1:]


def _hadolint(text: str) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Containerfile"
        path.write_text(text)
        result = subprocess.run([str(Path(sys.executable).with_name("hadolint")), "--no-color", str(path)],
                                capture_output=True, text=True, timeout=60)
    return [line.replace(str(path), "Containerfile") for line in result.stdout.splitlines() if line.strip()]


def _build(lab: Lab, context: Path, text: str, tag: str, **options: object) -> None:
    file = lab.work / f"Containerfile.{tag.rsplit(':', 1)[-1]}"
    file.write_text(text)
    try:
        lab.rt.build(context, tag, file=file, **options)  # type: ignore[arg-type]
    except ContainerError as error:
        expect(False, f"the build failed: {str(error).split('failed: ', 1)[-1]}",
               hint="run the same build in a terminal to see every line (podman build -f FILE .)")


def _run_healthy(lab: Lab, image: str, *flags: str, port: int | None = None) -> int:
    """Run IMAGE as the lab's container on the host network; return its port once it reports healthy."""
    port = port or free_port()
    lab.rt.remove(lab.container)
    started = lab.rt.run("run", "-d", "--name", lab.container, "--network", "host", *flags,
                         *lab.env(port, ORDERS_SHUTDOWN_GRACE_S=str(GRACE_S)), image)
    if started.returncode != 0:
        lab.rt.remove(lab.container)
        expect(False, f"the container did not start: {_last_error(started.stderr)}",
               hint="is the CMD's program on the image's PATH? `run --rm IMAGE` in a terminal shows the same error")
    try:
        lab.rt.wait_healthy(lab.container, timeout_s=60)  # generous: a loaded 2-core machine starts slowly
    except ContainerError as error:
        lab.rt.remove(lab.container)
        expect(False, str(error).replace(lab.container, "the container"),
               hint="run it yourself and read `logs`; the HEALTHCHECK must ask the app on its port")
    return port


def _last_error(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "systemd" not in line]
    return lines[-1].strip()[-240:] if lines else "(no output)"


# 1 ---------------------------------------------------------------------------------------------------------------
def _static_containerfile(text: str) -> list[list[tuple[str, str]]]:
    expect(isinstance(text, str) and "FROM" in text.upper(), "CONTAINERFILE should be the text of a Containerfile")
    findings = _hadolint(text)
    expect(not findings, f"hadolint reports {len(findings)} finding(s), first: {findings[0] if findings else ''}",
           hint="each finding names its rule (DLxxxx); hadolint's wiki explains how to satisfy it")
    stages = _stages(text)
    expect(len(stages) >= 2, f"{len(stages)} stage: a build stage and a final stage are asked for",
           hint="FROM ... AS build creates the venv; a second FROM starts clean and COPY --from=build takes it")
    final = stages[-1]
    expect(any(i == "COPY" and "--from" in a for i, a in final),
           "the final stage copies nothing from an earlier stage", hint="COPY --from=build /opt/venv /opt/venv")
    users = [a.split()[0] for i, a in final if i == "USER"]
    expect(users and users[-1].split(":")[0] not in ("root", "0"),
           "the final stage runs as root" if users else "the final stage has no USER: it runs as root",
           hint="USER 10001:10001 (numeric: Kubernetes can then verify runAsNonRoot)")
    expect(any(i == "HEALTHCHECK" and not a.upper().startswith("NONE") for i, a in final),
           "the final stage has no HEALTHCHECK",
           hint="the app's own probe command asks /health/live: `python -m orders_service probe`")
    commands = [a for i, a in final if i == "CMD"]
    expect(commands and commands[-1].lstrip().startswith("["),
           "CMD is in shell form: /bin/sh becomes PID 1 and SIGTERM never reaches Python" if commands
           else "the final stage has no CMD", hint='exec form: CMD ["python", "-m", "orders_service"]')
    return stages


@exercise("1", "A Containerfile that passes hadolint, runs as non-root and turns healthy")
def containerfile(text: str, lab: Lab) -> str:
    _static_containerfile(text)
    lab.ready()
    tag = f"{lab.image}:exercise1"
    _build(lab, lab.app, text, tag)
    port = _run_healthy(lab, tag)
    try:
        uid = proc_status(lab.rt, lab.container, "Uid")["Uid"].split()
        product = call("GET", f"http://127.0.0.1:{port}/products/1", timeout_s=10).status
    finally:
        lab.rt.remove(lab.container)
    expect(uid[0] != "0", f"PID 1 runs as uid {uid[0]}", hint="USER must come after the steps that need root")
    expect(product == 200, f"the service answered GET /products/1 with {product}",
           hint="is the code copied where `python -m orders_service` finds it (WORKDIR)?")
    return f"uid {uid[0]}, healthy, serving"


# 2 ---------------------------------------------------------------------------------------------------------------
@exercise("2", "A .dockerignore that keeps secrets and the venv out")
def dockerignore(text: str, lab: Lab) -> str:
    expect(isinstance(text, str), "DOCKERIGNORE should be the text of a .dockerignore file")
    lab.ready()
    context = copy_app(lab.app, lab.work / "context2")
    for name, content in CONTEXT_DECOYS.items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(content)
    (context / ".dockerignore").write_text(text)
    shipped = context_files(lab.rt, context, f"{lab.image}-context:exercise2")
    leaked = [name for name in CONTEXT_DECOYS if name in shipped]
    expect(not leaked, f"the build context still contains {', '.join(leaked)}",
           hint="a pattern without **/ matches only at the top of the context; a folder name excludes all inside")
    missing = [name for name in CONTEXT_MUST_KEEP if name not in shipped]
    expect(not missing, f"the context lacks {', '.join(missing)}, which the Containerfile copies",
           hint="after excluding, let files back in with ! patterns")
    return f"{len(shipped)} files in the context"


# 3 ---------------------------------------------------------------------------------------------------------------
@exercise("3", "A shutdown handler that drains in-flight work")
def drain_handler(main: object, lab: Lab) -> str:
    expect(callable(main), "main should be the function that runs the service")
    if _is_stub(main):
        raise NotDone
    lab.ready()
    source = textwrap.dedent(inspect.getsource(main))  # type: ignore[arg-type]
    context = lab.work / "context3"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    (context / "main.py").write_text(f"{source}\n\n{main.__name__}()\n")  # type: ignore[attr-defined]
    tag = f"{lab.image}:exercise3"
    _build(lab, context, f'FROM {lab.reference}\nCOPY main.py /app/main.py\nCMD ["python", "/app/main.py"]\n', tag)
    drain, logs = _stop_run(lab, tag, hold_s=1.0)
    expect(drain["exit code"] != 137, "SIGTERM did not stop the process: it was killed when the grace period ended",
           hint="as PID 1, Python ignores SIGTERM unless it installs a handler: signal.signal(signal.SIGTERM, ...)")
    expect(drain["failed"] == 0, f"{drain['failed']} of {drain['in flight at stop']} in-flight orders failed during "
           "the stop", hint="stop accepting, then wait for the requests in flight before closing the pool and exiting")
    expect(not drain["accepting new requests during the stop"], "the service kept accepting new connections after "
           "SIGTERM", hint="server.shutdown() then server.server_close() closes the listening socket")
    expect(drain["exit code"] == 0, f"after draining, the process exited {drain['exit code']}, expected 0; its log "
           f"ends: {logs[-200:]}", hint="return normally (or sys.exit(0)) once drained")
    slow, _ = _stop_run(lab, tag, hold_s=SLOW_HOLD_S)
    expect(slow["exit code"] != 137, f"with an order stuck longer than shutdown_grace_s ({GRACE_S} s), the process "
           "was still waiting when the runtime's grace period ended, and was killed",
           hint="wait for the requests at most settings.shutdown_grace_s (service.wait_idle takes a timeout)")
    return f"{drain['completed (201)']}/{drain['in flight at stop']} in-flight orders completed, exit 0"


def _stop_run(lab: Lab, tag: str, hold_s: float) -> tuple[dict[str, object], str]:
    port = _run_healthy(lab, tag)
    try:
        outcome = stop_under_load(lab.rt, lab.container, f"http://127.0.0.1:{port}", lab.ns, inflight=6,
                                  stop_timeout_s=STOP_TIMEOUT_S, hold_s=hold_s)
        logs = lab.rt.run("logs", "--tail", "2", lab.container)
    finally:
        lab.rt.remove(lab.container)
    return outcome, (logs.stdout + logs.stderr).strip()


# 4 ---------------------------------------------------------------------------------------------------------------
@exercise("4", "A hardened run: read-only, no capabilities, no new privileges")
def hardened_run(flags: list[str], lab: Lab) -> str:
    lab.ready()
    expect(isinstance(flags, list | tuple) and all(isinstance(f, str) for f in flags),
           "RUN_FLAGS should be a list of strings, e.g. ['--read-only', ...]")
    port = _run_healthy(lab, lab.reference, *flags)
    try:
        status = proc_status(lab.rt, lab.container, "Uid", "CapEff", "CapBnd", "NoNewPrivs")
        read_only = lab.rt("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", lab.container)
        order = call("POST", f"http://127.0.0.1:{port}/orders", json={"product_id": 1}, timeout_s=10).status
    finally:
        lab.rt.remove(lab.container)
    expect(read_only == "true", "the root filesystem is writable", hint="--read-only")
    # a non-root process has no effective capabilities anyway: the bounding set says what it could still regain
    expect(status["CapEff"] == status["CapBnd"] == "0000000000000000", "the container keeps Linux capabilities "
           f"(bounding set {status['CapBnd']})", hint="--cap-drop=ALL, and no --cap-add or --privileged")
    expect(status["NoNewPrivs"] == "1", "the process could still gain privileges (NoNewPrivs 0)",
           hint="--security-opt=no-new-privileges")
    expect(status["Uid"].split()[0] != "0", "the flags made the container run as root", hint="leave --user out")
    expect(order == 201, f"hardened, the service answered POST /orders with {order}")
    return "read-only, no capabilities, NoNewPrivs 1, and it still takes orders"


# 5 ---------------------------------------------------------------------------------------------------------------
def _token_found(lab: Lab, tag: str, token: str) -> str:
    """Where TOKEN shows in image TAG: 'history', 'config', 'a layer', or '' (the base image's layers are skipped)."""
    if token in lab.rt("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag):
        return "history"
    if token in lab.rt("image", "inspect", tag):
        return "config"
    base_layers = len(json.loads(lab.rt("image", "inspect", lab.rt.base_image))[0]["RootFS"]["Layers"])
    archive = lab.work / "exercise5.tar"
    lab.rt("save", "--format", "docker-archive", "-o", str(archive), tag, timeout_s=300)
    try:
        with tarfile.open(archive) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
            for layer in manifest[0]["Layers"][base_layers:]:
                with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                    for member in inner:
                        data = inner.extractfile(member) if member.isfile() and member.size < 1_000_000 else None
                        if data is not None and token.encode() in data.read():
                            return "a layer"
    finally:
        archive.unlink(missing_ok=True)
    return ""


@exercise("5", "A build that uses a token and leaks it nowhere")
def token_build(text: str, lab: Lab) -> str:
    expect(isinstance(text, str) and "FROM" in text.upper(), "TOKEN_CONTAINERFILE should be a Containerfile's text")
    token = "tok-" + secrets.token_hex(12)
    context = lab.work / "context5"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    (context / "token.txt").write_text(token)
    tag = f"{lab.image}:exercise5"
    # --no-cache: a secret's content is not part of the layer cache's key, so a cached step would hash an old token
    _build(lab, context, text, tag, no_cache=True, extra=("--build-arg", f"TOKEN={token}", "--secret",
                                                          f"id=token,src={context / 'token.txt'}"))
    written = lab.rt.run("run", "--rm", "--network", "none", "--entrypoint", "cat", tag, "/token.sha256")
    expected = hashlib.sha256(token.encode()).hexdigest()
    expect(written.returncode == 0, "the image has no /token.sha256", hint="write it in the RUN that uses the token")
    expect(written.stdout.split()[:1] == [expected], "/token.sha256 does not hold the SHA-256 of the token the build "
           "was given", hint="sha256sum FILE > /token.sha256 hashes the file's bytes, with no trailing newline added")
    where = _token_found(lab, tag, token)
    expect(not where, f"the token can be read from the image's {where}",
           hint="a build argument is recorded in the history, a copied file stays in its layer even after rm: "
                "use RUN --mount=type=secret,id=token (it appears at /run/secrets/token)")
    return "the token was used and is in no layer, no history, no config"


# 6 ---------------------------------------------------------------------------------------------------------------
@exercise("6", "A distroless-style final stage", stretch=True)
def distroless(text: str, lab: Lab) -> str:
    stages = _static_containerfile(text)
    lab.ready()
    expect(stages[-1][0][1].split()[0].lower() == "scratch", "the final stage does not start FROM scratch",
           hint="FROM scratch, then COPY --from=... only the files the interpreter and the venv need")
    tag = f"{lab.image}:exercise6"
    _build(lab, lab.app, text, tag)
    size, slim = lab.rt.size_mb(tag), lab.rt.size_mb(lab.reference)
    expect(size < 0.7 * slim, f"the image is {size:.0f} MB, the slim one {slim:.0f} MB: not much was left out",
           hint="copy only the interpreter, its standard library, the venv and the libraries `ldd` lists")
    _run_healthy(lab, tag)
    try:
        shell = any(lab.rt.run("exec", lab.container, sh, "-c", "true").returncode == 0
                    for sh in ("/bin/sh", "/usr/bin/sh"))
        uid = proc_status(lab.rt, lab.container, "Uid")["Uid"].split()[0]
    finally:
        lab.rt.remove(lab.container)
    expect(not shell, "the image still has a shell (/bin/sh ran)", hint="copy no shell or coreutils into the stage")
    expect(uid != "0", "PID 1 runs as root")
    return "under 70% of the slim image, no shell, non-root, healthy"


def clean_up(lab: Lab) -> list[str]:
    """Remove the lab's containers and images (the base image stays) and its work folder."""
    lab.rt.remove(lab.container)
    removed = lab.rt.remove_images(lab.image)
    shutil.rmtree(lab.work, ignore_errors=True)
    return removed
