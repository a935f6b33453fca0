"""The hub's registrar (a JupyterHub managed service, root's): a learner's server cannot write the shared folders
Prometheus reads (the course is read-only in its view), so a learner's notebooks register scrape targets, probe
URLs and their own Alertmanager in their home (`~/.course-targets/`, see spawner.py), and this process relays
them to the shared folders, as the grader relays a sandboxed kernel's (grading/network.py). It relays only what
is the learner's own: namespaces with that learner's prefix, and targets on a loopback port a process of that
learner listens on (read from /proc/net/tcp), so no learner can make Prometheus scrape or alert another's app.

    python -m infracourse.classroom.registrar
"""

from __future__ import annotations

import pwd
import time
from pathlib import Path

from infracourse.classroom import credentials
from infracourse.classroom.roster import Learner
from infracourse.grading import network

FOLDER = ".course-targets"
POLL_S = 0.5
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def folder(home: Path) -> Path:
    return home / FOLDER


def listening_uids(port: int) -> set[int]:
    """The uids of the sockets listening on PORT (IPv4 and IPv6), as the kernel reports them."""
    uids = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                uids.add(int(fields[7]))
    return uids


def own_target(uid: int):
    """A target check for the learner with UID: a loopback address whose port that learner's process serves."""

    def check(target: str) -> str:
        parts = network.parse_target(target)
        if parts["host"] not in LOOPBACK_HOSTS or uid not in listening_uids(int(parts["port"])):
            raise ValueError(f"{target}: not a loopback port of this learner's")
        return target

    return check


class Registrar:
    def __init__(self) -> None:
        self.relays: dict[str, network.Registrations] = {}  # learner name -> their registrations

    def poll(self) -> None:
        learners = {who.name: who for who in credentials.stored()}
        for gone in set(self.relays) - set(learners):  # revoked: what they registered goes too
            self.relays.pop(gone).unregister_all()
        for name, who in learners.items():
            relay = self.relays.get(name) or self._relay_for(who)
            if relay is not None:
                relay.poll()

    def _relay_for(self, who: Learner) -> network.Registrations | None:
        try:
            account = pwd.getpwnam(who.name)
        except KeyError:  # provisioned, no Unix account yet (made at first spawn)
            return None
        prefix = who.prefix
        relay = network.Registrations(folder(Path(account.pw_dir)), lambda namespace: namespace.startswith(prefix),
                                      own_target(account.pw_uid))
        self.relays[who.name] = relay
        return relay


def main() -> None:
    registrar = Registrar()
    while True:
        registrar.poll()
        time.sleep(POLL_S)


if __name__ == "__main__":
    main()
