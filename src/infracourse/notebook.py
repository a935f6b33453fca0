"""What a notebook's Setup cell calls: check the services it needs, then claim and reset its namespace.

    from infracourse import notebook
    ns = notebook.setup("pg01", "postgres")      # or notebook.require("postgres", "redis") alone
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from infracourse import config, errors
from infracourse.errors import ServiceUnavailable, install_short_errors
from infracourse.namespace import Namespace
from infracourse.services.probes import probe

install_short_errors()

START_HINT = (
    "Start the course services from a terminal at the repository root with `make lab` "
    "(or `course up`); `course status` shows what is running."
)


def require(*services: str) -> None:
    """Return when every service answers; otherwise raise one short ServiceUnavailable within ~3 s."""
    unknown = [s for s in services if s not in config.SERVICE_NAMES]
    if unknown:
        raise ServiceUnavailable(
            f"unknown service {', '.join(unknown)}; the course knows {', '.join(config.SERVICE_NAMES)}"
        )
    errors.REQUIRED.update(services)
    install_short_errors()  # again: the notebook has imported its client libraries by now
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        reasons = dict(zip(services, pool.map(probe, services), strict=True))
    refused = {s: r for s, r in reasons.items() if r and "authentication" in r}
    if refused:
        lines = [f"{s} at {config.endpoint(s).address} refused the login ({r})" for s, r in refused.items()]
        raise ServiceUnavailable("; ".join(lines) + ". The service runs but not with the course's credentials: "
                                 "check the COURSE_<SERVICE>_USER / _PASSWORD variables (README, Services).")
    down = {s: r for s, r in reasons.items() if r}
    if down:
        lines = [f"{s} at {config.endpoint(s).address}: {r}" for s, r in down.items()]
        raise ServiceUnavailable("not reachable: " + "; ".join(lines) + ". " + START_HINT)


def status():
    """A table of every course service: endpoint and health (what `course status` prints)."""
    import pandas as pd

    from infracourse.services import health

    rows = health.check_all()
    return pd.DataFrame({"service": [h.service for h in rows], "endpoint": [h.endpoint for h in rows],
                         "healthy": [h.healthy for h in rows]}).set_index("service")


def namespace(base: str) -> Namespace:
    """This notebook's namespace (lessons, solutions and labs get different ones)."""
    return Namespace.for_notebook(base)


def setup(base: str, *services: str) -> Namespace:
    """require(SERVICES), then claim this notebook's namespace (one kernel at a time), reset it in them and
    return it."""
    require(*services)
    ns = namespace(base)
    ns.claim()
    ns.reset(*services)
    return ns
