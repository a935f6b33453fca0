"""One fresh Jupyter kernel (nbclient underneath) running a submission cell by cell, under a per-cell and a
per-notebook time limit, plus the grader's own code run where the notebook does not keep it. The kernel starts
in the sandbox (sandbox.py) unless the grading policy trusts submissions."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import nbformat
from jupyter_client import AsyncKernelManager
from nbclient import NotebookClient

from infracourse.grading import network, sandbox
from infracourse.grading.outcomes import Limits
from infracourse.paths import repo_root, services_config
from infracourse.services import course_ca

TIMEOUT_ENAME = "GraderTimeout"  # the error nbclient reports for a cell it interrupted
RESPONSIVE_PROBE_S = 5


class _SandboxedKernelManager(AsyncKernelManager):
    """Launches the kernelspec's command wrapped by WRAP. Interrupts go over the control channel: SIGINT to
    bwrap's process group never reaches a kernel in a session of its own."""

    wrap: Callable[[list[str]], list[str]]

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return self.wrap(super().format_kernel_cmd(extra_arguments))

    def write_connection_file(self, **kwargs) -> None:
        super().write_connection_file(**kwargs)
        sandbox.hand_over(Path(self.connection_file))  # written 0600: the sandbox's group needs to read it


class Kernel:
    """A kernel for NB in WORKDIR, remembering each cell's execute reply; POLICY defaults to the grading run's
    (sandbox.use)."""

    def __init__(self, nb: nbformat.NotebookNode, workdir: Path, limits: Limits,
                 policy: sandbox.Policy | None = None) -> None:
        self.limits = limits
        self.workdir = workdir
        self.policy = policy or sandbox.active()
        self.deadline = time.monotonic() + limits.notebook_s
        self.replies: dict[int, dict] = {}
        self.last_limit_s = limits.cell_s
        self.log_path = workdir / "kernel.log"
        self.client = NotebookClient(
            nb, timeout=limits.cell_s, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "", "traceback": []},
            shutdown_kernel="immediate", iopub_timeout=2, record_timing=False,
            resources={"metadata": {"path": str(workdir)}},  # the kernel's working directory
        )
        self.client.on_cell_executed = self._remember

    def _remember(self, cell, cell_index: int, execute_reply: dict | None) -> None:
        self.replies[cell_index] = (execute_reply or {}).get("content", {})

    @contextmanager
    def started(self, env: dict[str, str]) -> Iterator[None]:
        """The kernel running with ENV; its own stderr (warnings, a crash's last words) goes to a log, not the
        instructor's terminal."""
        with self.log_path.open("w") as log, self._launcher(env) as kernel_env, \
                self.client.setup_kernel(env=kernel_env, stdout=log, stderr=log):
            yield

    @contextmanager
    def _launcher(self, env: Mapping[str, str]) -> Iterator[Mapping[str, str]]:
        """Give the client a kernel manager that starts the kernel in the sandbox, its connection file in a
        folder of its own (bound read-only), its network a namespace that reaches only the course services and
        ZMQ over Unix sockets in that namespace's bridge folder; yield the environment the kernel gets."""
        if not self.policy.sandboxed:
            yield env
            return
        with tempfile.TemporaryDirectory(prefix="infracourse-kernel-") as runtime:
            net = Path(runtime) / "net"
            net.mkdir()
            for inside in self._views():  # folders the views land in stay the kernel's to write in
                inside.parent.mkdir(parents=True, exist_ok=True)
            for path in (Path(runtime), self.workdir):
                sandbox.hand_over(path)
            km = _SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(net / "kernel"),
                                         connection_file=str(Path(runtime) / "kernel.json"))
            km.kernel_spec.interrupt_mode = "message"
            km.wrap = lambda argv: sandbox.command(argv, self.workdir, [Path(runtime)], env, self.policy,
                                                   cpu_s=self.limits.notebook_s, net=net, views=self._views())
            self.client.km = km
            with network.Outside(net, env.get("INFRACOURSE_NS_SUFFIX", "")):
                yield sandbox.minimal_env({**env, **network.kernel_env(net)})

    def _views(self) -> dict[Path, Path]:
        """What the kernel sees of the course beside its code, where it looks for it (its working folder is its
        repository root there): services/ (configuration lessons read), apps/ (the orders service, its
        Containerfile and manifests) and the course CA's certificate. Never solutions/ or labs/."""
        views = {self.workdir / "services": services_config()}
        if (repo_root() / "apps").is_dir():
            views[self.workdir / "apps"] = repo_root() / "apps"
        if course_ca.ca_cert_path().exists():
            views[self.workdir / ".services" / "tls" / "ca.crt"] = course_ca.ca_cert_path()
        return views

    def last_words(self, count: int = 3) -> list[str]:
        """The last lines the kernel wrote to stderr, without jupyter's own connection chatter."""
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return [line for line in lines if line.strip() and "without encryption" not in line][-count:]

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def execute(self, cell: nbformat.NotebookNode, index: int, limit_s: float | None = None,
                store_history: bool = True) -> dict:
        """Run CELL (nb.cells[INDEX]); return its execute reply content ({'status': 'error', ...} on failure)."""
        self.last_limit_s = max(1, int(min(limit_s or self.limits.cell_s, self.remaining_s())))
        self.client.timeout = self.last_limit_s
        self.replies.pop(index, None)
        self.client.execute_cell(cell, index, store_history=store_history)
        return self.replies.get(index, {})

    def quiet(self, source: str, limit_s: float | None = None) -> tuple[dict, str]:
        """Run grader code that is not part of the notebook; return its reply and what it printed.

        nbclient stores an executed cell at its index, so the cell sits at the end of the notebook while it
        runs and is taken out afterwards."""
        cells = self.client.nb.cells
        cells.append(nbformat.v4.new_code_cell(source))
        try:
            reply = self.execute(cells[-1], len(cells) - 1, limit_s, store_history=False)
        finally:
            cell = cells.pop()
        return reply, "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    @staticmethod
    def timed_out(reply: dict) -> bool:
        return reply.get("ename") == TIMEOUT_ENAME

    def responsive(self) -> bool:
        return not self.timed_out(self.quiet("pass", RESPONSIVE_PROBE_S)[0])


def error_text(reply: dict) -> str:
    """'ZeroDivisionError: division by zero': an error reply in one line."""
    evalue = (reply.get("evalue") or "").strip().splitlines()
    return f"{reply.get('ename', 'Error')}" + (f": {evalue[0]}" if evalue else "")
