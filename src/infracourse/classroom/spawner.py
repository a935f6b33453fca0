"""The hub's spawner for a single server: JupyterHub's LocalProcessSpawner (each learner's server runs as that
learner's Unix user) plus what a class on shared services needs: the learner's own COURSE_* credentials and
namespace prefix in the server's environment (never another learner's, never the instructor's secrets), a
folder in the home for what the learner's notebooks register with Prometheus (registrar.py), the course's one
installation on PATH, notebooks in the home, and kernel-enforced memory and CPU limits."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner

from infracourse.classroom import credentials, isolation, limits, registrar, roster, users
from infracourse.grading import network

# the service endpoints the hub was given pass to every learner; user names and passwords never do
ENDPOINT_SUFFIXES = ("_HOST", "_PORT")


def endpoints(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith("COURSE_") and k.endswith(ENDPOINT_SUFFIXES)}


class CourseSpawner(LocalProcessSpawner):
    def get_env(self) -> dict[str, str]:
        env = {k: v for k, v in super().get_env().items() if not k.startswith("COURSE_")}
        learned = credentials.load(roster.learner(self.user.name))
        if learned is None:
            raise RuntimeError(f"{self.user.name} has no course credentials: `course classroom provision` first")
        env.update(endpoints(dict(os.environ)))
        env.update(learned)
        env.update(network.registration_env(registrar.folder(users.home(self.user.name))))  # relayed by registrar
        env["PATH"] = f"{Path(sys.prefix) / 'bin'}:{env.get('PATH') or '/usr/bin:/bin'}"
        env["MPLBACKEND"] = "Agg"
        return env

    def make_preexec_fn(self, name: str):
        return None  # the server starts as root in bubblewrap, which leaves it as NAME (isolation.py)

    async def start(self) -> tuple[str, int]:
        home = users.ensure(self.user.name)
        memory, cpus = int(self.mem_limit or 0) or 2 << 30, self.cpu_limit or 1.0
        enter, how = limits.prepare(self.user.name, memory, cpus)
        self.log.info("%s: %s MiB, %s CPU: %s", self.user.name, memory >> 20, cpus, how)
        course_cmd = list(self.cmd)
        self.cmd = [*enter, *isolation.command(self.user.name, home), *course_cmd]
        try:
            return await super().start()
        finally:
            self.cmd = course_cmd
