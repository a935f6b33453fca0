"""A JupyterHub run from hub/jupyterhub_config.py, driven through its REST API, and code run in a learner's
kernel through their server (the same path a browser takes: proxy, hub auth, Jupyter Server, kernel
websocket). Used by the hub test and the benchmark; an instructor runs the hub itself with `jupyterhub -f`."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from infracourse.paths import repo_root
from infracourse.services import processes

CONFIG = Path("hub") / "jupyterhub_config.py"
PROXY = Path("hub") / "proxy"  # configurable-http-proxy, pinned in its package-lock.json


def ensure_proxy() -> Path:
    """JupyterHub's proxy, installed from npm into the repository (`npm ci`: exactly the locked versions)."""
    folder = repo_root() / PROXY
    binary = folder / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("the hub's proxy needs npm: `apt-get install nodejs npm`, then "
                               "`npm ci --prefix hub/proxy`")
        subprocess.run([npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund", "--silent"], check=True)
    return binary


def _end(tree: list[processes.Process], grace_s: float = 5.0) -> None:
    """SIGTERM what of TREE still runs (what a hub that was killed, or slow to stop, left behind), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in tree:
            processes.signal_tree(process, sig)
        deadline = time.monotonic() + grace_s
        while any(processes.still_running(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)


class Hub:
    def __init__(self, state: Path, port: int) -> None:
        self.state, self.port = state, port
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_hex(32)
        self.proc: subprocess.Popen | None = None
        self.log = state / "hub.log"

    async def __aenter__(self) -> Hub:
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        ensure_proxy()
        env = {**os.environ, "INFRACOURSE_HUB_PORT": str(self.port), "INFRACOURSE_HUB_STATE": str(self.state),
               "INFRACOURSE_HUB_TOKEN": self.token, "INFRACOURSE_HUB_LOG_LEVEL": "WARN"}
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "jupyterhub"), "-f",
                                          str(repo_root() / CONFIG)], cwd=self.state, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                await self.api("GET", "")
                return self
            except (OSError, HTTPClientError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the hub did not start: {self.log.read_text()[-600:]}") from None
                await asyncio.sleep(0.3)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            # the proxy, the services and the servers run in sessions of their own: remembered before the hub goes
            tree = processes.descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)  # the hub stops the proxy and the servers it spawned
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            _end(tree)

    async def request(self, method: str, url: str, body: object | None = None, timeout_s: float = 60) -> object:
        data = json.dumps(body) if body is not None else (None if method in ("GET", "DELETE") else "{}")
        response = await AsyncHTTPClient().fetch(HTTPRequest(
            url, method=method, body=data, headers={"Authorization": f"token {self.token}"},
            request_timeout=timeout_s, allow_nonstandard_methods=True))
        return json.loads(response.body) if response.body else None

    async def api(self, method: str, path: str, body: object | None = None) -> object:
        return await self.request(method, f"{self.url}/hub/api/{path}", body)

    async def spawn(self, name: str, timeout_s: float = 330) -> float:
        """Start NAME's server; the seconds until it answers."""
        began = time.monotonic()
        try:
            await self.api("POST", f"users/{name}")
        except HTTPClientError as exc:
            if exc.code != 409:  # 409: the user exists
                raise
        await self.api("POST", f"users/{name}/server")
        while not ((await self.api("GET", f"users/{name}"))["servers"].get("", {}).get("ready")):
            if time.monotonic() - began > timeout_s:
                raise TimeoutError(f"{name}'s server did not start in {timeout_s} s")
            await asyncio.sleep(0.5)
        return time.monotonic() - began

    async def kernel(self, name: str, path: str = "labs", timeout_s: float = 300) -> Kernel:
        """A new kernel in NAME's server, its working directory PATH (labs/: the lab's own namespace)."""
        base = f"{self.url}/user/{name}/api/kernels"
        made = await self.request("POST", base, {"name": "python3", "path": path}, timeout_s=timeout_s)
        ws_url = f"ws://127.0.0.1:{self.port}/user/{name}/api/kernels/{made['id']}/channels"
        # the server answers once the kernel does: twenty kernels starting together on two cores take a while
        socket = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {self.token}"},
                                                     connect_timeout=timeout_s, request_timeout=timeout_s))
        return Kernel(socket, lambda: self.request("DELETE", f"{base}/{made['id']}"))


class Kernel:
    """Executes code over a kernel websocket (Jupyter's JSON message protocol) and gathers what it printed."""

    def __init__(self, socket, shutdown: Callable[[], Awaitable[object]]) -> None:
        self.socket = socket
        self.session = uuid.uuid4().hex
        self._shutdown = shutdown
        # read every frame as it comes: tornado queues one message at a time, and a socket left unread stops
        # answering the server's pings, which then closes it (twenty busy kernels leave long gaps)
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._pump = asyncio.ensure_future(self._read_all())

    async def _read_all(self) -> None:
        while True:
            raw = await self.socket.read_message()
            await self._inbox.put(raw)
            if raw is None:
                return

    async def run(self, code: str, timeout_s: float = 120) -> tuple[str, str | None]:
        """(text printed, the error's `ename: evalue`, or None)."""
        msg_id = uuid.uuid4().hex
        await self.socket.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "course", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        printed, error = [], None
        deadline = time.monotonic() + timeout_s
        while True:
            raw = await asyncio.wait_for(self._inbox.get(), max(0.1, deadline - time.monotonic()))
            if raw is None:
                self._inbox.put_nowait(None)  # closed for good: every later call sees it too
                raise ConnectionError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                printed.append(content.get("data", {}).get("text/plain", ""))
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed), error

    async def close(self) -> None:
        """Shut the kernel down (its namespace claim goes with it)."""
        self.socket.close()
        self._pump.cancel()
        try:
            await self._shutdown()
        except HTTPClientError as exc:
            if exc.code != 404:  # 404: the kernel is gone already (it died, and that was reported)
                raise
