# JupyterHub for a class on one server: `course classroom provision ROSTER`, then, as root, from the repository:
#   .venv/bin/jupyterhub -f hub/jupyterhub_config.py
# Each learner logs in with their Unix account (PAM), gets a server running as that user with their own
# course credentials and namespace (infracourse.classroom.spawner), under memory and CPU limits, and loses it
# after an hour idle. The services are whatever COURSE_<SERVICE>_HOST/_PORT name (managed ones work too).
# Settings come from the environment so a test or the benchmark can run a second hub beside a real one.
import os
import sys
from pathlib import Path

from infracourse.classroom import credentials
from infracourse.paths import state_dir

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("INFRACOURSE_HUB_STATE") or state_dir() / "hub")
STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
PORT = int(os.environ.get("INFRACOURSE_HUB_PORT", "8000"))
VENV_BIN = Path(sys.prefix) / "bin"

c.JupyterHub.bind_url = f"http://{os.environ.get('INFRACOURSE_HUB_IP', '127.0.0.1')}:{PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{PORT + 1}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PORT + 2}"
# the proxy, from npm, in the repository (`make hub-proxy`)
c.ConfigurableHTTPProxy.command = [str(REPO / "hub" / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# who: the provisioned learners, logging in with their Unix password
c.JupyterHub.authenticator_class = os.environ.get("INFRACOURSE_HUB_AUTHENTICATOR", "pam")
c.Authenticator.allowed_users = {learner.name for learner in credentials.stored()}
c.Authenticator.admin_users = set(filter(None, os.environ.get("INFRACOURSE_HUB_ADMINS", "").split(",")))

# each learner's server: the course installed once (this venv), their credentials, their limits
c.JupyterHub.spawner_class = "infracourse.classroom.spawner.CourseSpawner"
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab/tree/labs"
c.Spawner.notebook_dir = "~"
c.Spawner.mem_limit = os.environ.get("INFRACOURSE_HUB_MEM_LIMIT", "1G")
c.Spawner.cpu_limit = float(os.environ.get("INFRACOURSE_HUB_CPU_LIMIT", "1"))
c.Spawner.start_timeout = 300  # many servers starting at once on two busy cores
c.Spawner.http_timeout = 300
c.JupyterHub.concurrent_spawn_limit = 50
# idle culling: kernels after 20 min idle, a server after 1 h without activity (also from the hub, below)
c.Spawner.args = ["--MappingKernelManager.cull_idle_timeout=1200", "--MappingKernelManager.cull_interval=60",
                  "--ServerApp.shutdown_no_activity_timeout=3600",
                  # kernels on Unix sockets in the 0700 home: no port another learner can knock on, and no
                  # race for random TCP ports when a class starts twenty kernels at once
                  "--KernelManager.transport=ipc"]

# services: the idle culler, and (when a token is given) the course's own client for tests and the benchmark
token = os.environ.get("INFRACOURSE_HUB_TOKEN")
c.JupyterHub.services = [
    {"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                                        f"--timeout={os.environ.get('INFRACOURSE_HUB_IDLE_S', '3600')}"]},
    # relays what learners' notebooks register with Prometheus (scrape targets, probes, their Alertmanager)
    {"name": "course-registrar", "command": [sys.executable, "-m", "infracourse.classroom.registrar"],
     "environment": {k: v for k, v in os.environ.items() if k.startswith(("COURSE_", "INFRACOURSE_"))}},
    *([{"name": "course", "api_token": token}] if token else []),
]
c.JupyterHub.load_roles = [
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
    *([{"name": "course", "services": ["course"],
        "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"]}] if token else []),
]
c.JupyterHub.log_level = os.environ.get("INFRACOURSE_HUB_LOG_LEVEL", "INFO")
