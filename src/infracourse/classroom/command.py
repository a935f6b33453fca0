"""`course classroom harden | provision ROSTER | revoke NAME... | list | grade SUBMISSIONS | bench`: a class on shared
services (docs/instructors.md, "Running a class")."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infracourse.classroom import credentials, kafka, provision, roster, users
from infracourse.paths import admin_secrets_file

SERVICES = ("postgres", "redis", "rabbitmq", "nats", "kafka")


def _print_reports(reports: list[provision.Report], secrets_shown: bool) -> None:
    unisolated = False
    for report in reports:
        who = report.learner
        print(f"  {who.name:<16} namespace {who.prefix:<18} {'ok' if report.ok else 'INCOMPLETE'}")
        for service, done in report.done.items():
            if service == "kafka" and done.startswith(kafka.NO_ACLS[:20]):
                unisolated, done = True, "NOT ISOLATED: namespaced only (Tansu has no ACLs, see below)"
            print(f"    {service:<9} {done}")
        env = credentials.load(who) if secrets_shown else None
        if env:
            shown = ", ".join(f"{s} {credentials.masked(p)}" for s, p in credentials.passwords(env).items())
            print(f"    secrets   {shown}")
    if unisolated:
        print("NOTE: " + kafka.NO_ACLS.format(prefix="<learner>__"))


def _warn_open_doors() -> None:
    doors = provision.open_doors()
    if doors:
        print(f"WARNING: {', '.join(doors)} still accept the repository's public login (or none): a learner can "
              "bypass their own credentials with it. Close them with `course classroom harden`.")


def cmd_harden(args: argparse.Namespace) -> int:
    from infracourse.classroom import harden

    harden.refuse_overrides()
    print(f"Replacing the public admin logins with secrets kept in {admin_secrets_file()} (0600):")
    report = harden.harden()
    for service, done in report.items():
        print(f"  {service:<9} {done}")
    return 1 if any(done.startswith("FAILED") for done in report.values()) else 0


def cmd_provision(args: argparse.Namespace) -> int:
    learners = roster.read(Path(args.roster))
    print(f"Provisioning {len(learners)} learner(s) on {', '.join(SERVICES)}; secrets in {credentials.folder()} "
          "(0600, shown masked):")
    reports = provision.provision(learners)
    if args.unix_users:
        for who in learners:
            print(f"  {who.name:<16} Unix account with a 0700 home: {users.ensure(who.name)}")
    _print_reports(reports, secrets_shown=True)
    _warn_open_doors()
    return 0 if all(r.ok for r in reports) else 1


def cmd_revoke(args: argparse.Namespace) -> int:
    reports = provision.revoke([roster.learner(name) for name in args.names])
    if args.unix_users:
        for name in args.names:
            users.remove(name)
            print(f"  {name:<16} Unix account and home removed")
    _print_reports(reports, secrets_shown=False)
    return 0 if all(r.ok for r in reports) else 1


def cmd_list(args: argparse.Namespace) -> int:
    stored = credentials.stored()
    found = provision.present()
    print(f"{len(stored)} learner(s) with secrets in {credentials.folder()}:")
    header = "  " + f"{'learner':<16} {'namespace':<18} " + " ".join(f"{s:<9}" for s in found)
    print(header)
    for who in stored:
        marks = [("yes" if who.principal in v else "MISSING") if isinstance(v, set) else "?" for v in found.values()]
        print("  " + f"{who.name:<16} {who.prefix:<18} " + " ".join(f"{m:<9}" for m in marks))
    orphans = sorted(set().union(*(v for v in found.values() if isinstance(v, set))) -
                     {w.principal for w in stored})
    if orphans:
        print(f"On the services but with no secret file (revoke them): {', '.join(orphans)}")
    for service, value in found.items():
        if isinstance(value, str):
            print(f"note: {service} {value}")
    return 0


@contextmanager
def learner_environment(env: dict[str, str]) -> Iterator[None]:
    """The grader's process runs with ENV on top (its kernels and its namespace clean-up use the learner's
    credentials), then gets its own back."""
    before = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cmd_grade(args: argparse.Namespace) -> int:
    from infracourse.classroom import grade

    return grade.main(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from infracourse.classroom import bench

    return bench.main(args)


def add_parser(sub: argparse._SubParsersAction) -> None:
    room = sub.add_parser("classroom", help="per-learner credentials on shared services, grading and a benchmark")
    actions = room.add_subparsers(dest="action", required=True)
    hard = actions.add_parser("harden", help="replace the public admin logins (course/course, or none) with secrets")
    hard.set_defaults(func=cmd_harden)
    prov = actions.add_parser("provision", help="credentials on every service for each learner of ROSTER")
    prov.add_argument("roster", help="a file with one learner name a line")
    prov.add_argument("--unix-users", action="store_true", help="also make each learner's Unix account (hub)")
    prov.set_defaults(func=cmd_provision)
    rev = actions.add_parser("revoke", help="drop learners' roles, ACL users, vhosts, accounts and secrets")
    rev.add_argument("names", nargs="+", metavar="NAME")
    rev.add_argument("--unix-users", action="store_true", help="also delete their Unix account AND home")
    rev.set_defaults(func=cmd_revoke)
    actions.add_parser("list", help="the provisioned learners and what each service knows of them").set_defaults(
        func=cmd_list)
    grd = actions.add_parser("grade", help="`course grade`, each learner's submission with their own credentials")
    grd.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="one folder a learner, named as on the roster")
    grd.add_argument("--lab", metavar="NN")
    grd.add_argument("--out", help="where the gradebook goes (default: SUBMISSIONS_DIR/_gradebook)")
    grd.add_argument("--hidden", metavar="DIR", help="instructor-only checks: DIR/labNN.py")
    grd.add_argument("--cell-timeout", type=int, default=60)
    grd.add_argument("--notebook-timeout", type=int, default=600)
    grd.add_argument("--memory-mb", type=int, default=2048)
    grd.set_defaults(func=cmd_grade)
    bench = actions.add_parser("bench", help="N learners on the hub run a lab's checks at the same moment")
    bench.add_argument("--learners", type=int, default=20)
    bench.add_argument("--lab", default="00", metavar="NN", help="the lab whose reference answers and checks run")
    bench.add_argument("--keep", action="store_true", help="leave the learners' users and credentials in place")
    bench.add_argument("--port", type=int, default=18000, help="the benchmark hub's port (+1, +2 are used too)")
    bench.add_argument("--spawn-parallel", type=int, default=4, help="servers starting at the same time")
    bench.set_defaults(func=cmd_bench)
