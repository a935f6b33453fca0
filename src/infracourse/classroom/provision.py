"""Provision, revoke and list a class: for each learner, stored secrets (credentials.py) and, through each
service's own access control, a PostgreSQL role and database, a Redis ACL user, a RabbitMQ vhost and user, a
NATS account, and on Kafka whatever the broker can enforce (kafka.py). One service failing is reported on the
learner's line; the others are still done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from infracourse.classroom import credentials, harden, kafka, nats_accounts, postgres_roles, rabbitmq_vhosts, redis_acl
from infracourse.classroom.roster import Learner

# the services whose access control is a per-learner call (NATS is one file for the class, Kafka a note)
PER_LEARNER = {"postgres": postgres_roles, "redis": redis_acl, "rabbitmq": rabbitmq_vhosts}


@dataclass
class Report:
    learner: Learner
    done: dict[str, str] = field(default_factory=dict)  # service -> what was done, or "FAILED: why"

    @property
    def ok(self) -> bool:
        return not any(v.startswith("FAILED") for v in self.done.values())


def _attempt(report: Report, service: str, action: Callable[..., object], *args: object) -> None:
    try:
        report.done[service] = str(action(*args))
    except Exception as exc:  # noqa: BLE001 - one service down must not stop the class
        report.done[service] = f"FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"


def provision(learners: list[Learner]) -> list[Report]:
    reports = []
    for who in learners:
        secret = credentials.passwords(credentials.create(who))  # stored 0600 before any service learns them
        report = Report(who)
        for service, module in PER_LEARNER.items():
            _attempt(report, service, module.create, who, secret[service])
        reports.append(report)
    reloaded = Report(learners[0]) if learners else None
    if reloaded is not None:
        _attempt(reloaded, "nats", nats_accounts.sync)  # one accounts file for the whole class
    for report in reports:
        who, secret = report.learner, credentials.passwords(credentials.load(report.learner) or {})
        if reloaded.done["nats"].startswith("FAILED"):
            report.done["nats"] = reloaded.done["nats"]
        elif nats_accounts.reachable(who, secret["nats"]):
            report.done["nats"] = f"account {who.principal}, subjects {who.prefix}.>"
        else:
            report.done["nats"] = "FAILED: the account refuses its user after the reload (not our nats-server?)"
        report.done["kafka"] = kafka.create(who, secret["kafka"])
    return reports


def revoke(learners: list[Learner]) -> list[Report]:
    reports = []
    for who in learners:
        report = Report(who)
        env = credentials.load(who)
        if env is None:
            report.done["secrets"] = "not provisioned"
        else:
            _attempt(report, "nats", nats_accounts.wipe, who, env["COURSE_NATS_PASSWORD"])
            report.done["nats"] += "" if report.done["nats"].startswith("FAILED") else " streams deleted"
        for service, module in PER_LEARNER.items():
            _attempt(report, service, module.drop, who)
        report.done["kafka"] = kafka.drop(who)
        if credentials.delete(who):
            report.done["secrets"] = "secret file deleted"
        reports.append(report)
    account = Report(learners[0]) if learners else None
    if account is not None:
        _attempt(account, "nats", nats_accounts.sync)
        for report in reports:
            report.done["nats"] = f"{report.done.get('nats', 'no streams')}; {account.done['nats']}"
    return reports


def present() -> dict[str, set[str] | str]:
    """service -> the learner principals it knows (or why it could not be asked)."""
    found: dict[str, set[str] | str] = {}
    for service, module in [*PER_LEARNER.items(), ("nats", nats_accounts)]:
        try:
            found[service] = module.present()
        except Exception as exc:  # noqa: BLE001 - list what can be listed
            found[service] = f"unreachable ({type(exc).__name__})"
    return found


def open_doors() -> list[str]:
    """Services whose public login (the repository's course/course, or none) still opens them: with it a learner
    could bypass their own credentials (`course classroom harden` closes them)."""
    doors = []
    for service in harden.APPLY:
        try:
            if harden.public_login_works(service):
                doors.append(service)
        except Exception:  # noqa: BLE001 - a service that is down is reported by provision itself
            pass
    return doors
