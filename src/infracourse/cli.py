"""The `course` command: services (up, down, status, logs, setup), labs (build, check), a learner's progress and
reset, run, site, grade."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from infracourse.classroom import command as classroom
from infracourse.config import SERVICE_NAMES
from infracourse.errors import CourseError
from infracourse.services import compose, health, native, system_packages
from infracourse.services.probes import probe


def print_status() -> bool:
    rows = [(h.service, h.endpoint, h.healthy, h.mode) for h in health.check_all()]
    header = ("service", "endpoint", "healthy", "mode")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    for problem in filter(None, map(native.record_problem, SERVICE_NAMES)):
        print(f"note: {problem}")
    return all(r[2] == "yes" for r in rows)


def cmd_up(args: argparse.Namespace) -> int:
    names = args.services or list(SERVICE_NAMES)
    mode = "compose" if args.compose else "native" if args.native else None
    if mode is None:
        mode = "compose" if compose.engine_answers() else "native"
    print(f"Starting {', '.join(names)} in {mode} mode ...", flush=True)
    began = time.monotonic()
    if mode == "compose":
        health.record_mode("compose")
        if compose.up() != 0:
            return 1
        deadline = time.monotonic() + 120
        while any(probe(n) for n in names) and time.monotonic() < deadline:
            time.sleep(1)
    else:
        health.record_mode("native")
        if system_packages.missing_services():
            code = system_packages.setup()
            if code != 0:
                return code
        done: list[str] = []
        lock = threading.Lock()
        width = max(map(len, names))

        def report(name: str, outcome: str) -> None:
            with lock:
                done.append(name)
                print(f"  [{len(done):>{len(str(len(names)))}}/{len(names)}] {name:<{width}} {outcome}  "
                      f"({time.monotonic() - began:.1f} s in)", flush=True)

        native.start(names, report)
    print(f"Services ready check after {time.monotonic() - began:.1f} s:")
    return 0 if print_status() else 1


def cmd_down(args: argparse.Namespace) -> int:
    if health.recorded_mode() == "compose" and not args.native:
        return compose.down()
    for name, outcome in native.stop(args.services or list(SERVICE_NAMES)).items():
        print(f"  {name:<11} {outcome}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return 0 if print_status() else 1


def cmd_logs(args: argparse.Namespace) -> int:
    if health.recorded_mode() == "compose":
        return compose.logs(args.service)
    log = native.dirs_of(args.service).log
    if not log.exists():
        print(f"No log yet at {log}: `course up` writes it.")
        return 1
    print("\n".join(log.read_text(errors="replace").splitlines()[-args.lines :]))
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    return system_packages.setup(print_only=args.print_only)


def cmd_labs(args: argparse.Namespace) -> int:
    from infracourse.authoring import labgen, lesson_code

    problems = labgen.registry_problems()
    if problems:
        print("Notebooks that disagree with the exercise registry (the @exercise declarations in checks/):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    if args.action == "build":
        for path in [*lesson_code.write_all(), *labgen.build_all()]:
            print(f"wrote {path}")
        return 0
    stale_code = lesson_code.stale()
    if stale_code:
        print("Modules out of sync with the lesson cells they are generated from (run `course labs build`):")
        for generated in stale_code:
            print(f"  {generated}")
    stale = labgen.stale_labs()
    if stale:
        print("Labs out of sync with their solutions (run `course labs build`):")
        for path in stale:
            print(f"  {path}")
    if stale_code or stale:
        return 1
    print("Labs are in sync with solutions and with the exercise registry; lesson modules with their lessons.")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from infracourse.authoring import lab_spec
    from infracourse.checking import progress
    from infracourse.checking.status import NOT_DONE, SYMBOL

    recorded = progress.read()
    print("Your last check results, per lab (from the checks you ran in labs/):")
    for spec in lab_spec.all_specs().values():
        results = recorded.get(spec.number, {})
        marks = "".join(SYMBOL[results[e.number]["status"]] if e.number in results else "·" for e in spec.exercises)
        counts = {s: sum(1 for e in spec.exercises if results.get(e.number, {}).get("status") == s)
                  for s in ("passed", "failed", NOT_DONE)}
        untried = len(spec.exercises) - sum(counts.values())
        title = spec.title if len(spec.title) <= 50 else spec.title[:49] + "…"
        print(f"  {title:<50} {marks:<8} {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts[NOT_DONE]} not done, {untried} not tried")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from infracourse.authoring import catalog
    from infracourse.namespace import Namespace, NamespaceBusy

    labs = {c.number: c.labs[0] for c in catalog.chapters() if c.labs}
    lab = labs.get(args.lab.zfill(2))
    if lab is None or not lab.slug:
        print(f"course reset: no lab {args.lab}; the labs are {', '.join(sorted(labs))}")
        return 2
    ns = Namespace(lab.slug + "_lab")
    try:
        ns.claim()  # never empty a namespace under a kernel that is using it
    except NamespaceBusy as exc:
        print(f"course reset: {exc}")
        return 1
    removed = ns.empty(*lab.services)
    print(f"Emptied lab {lab.number}'s namespace {ns.slug}: "
          + "; ".join(f"{service}: {what}" for service, what in removed.items() if what))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from infracourse.authoring import runner

    failed = 0
    for path in args.notebooks:
        seconds, error = runner.run_and_save(Path(path), timeout_s=args.timeout)
        print(f"{path}: {'ok' if error is None else 'FAILED'} in {seconds:.1f} s")
        if error:
            print(error)
            failed += 1
    return 1 if failed else 0


def cmd_site(args: argparse.Namespace) -> int:
    from infracourse.authoring import website

    result = website.build(out=Path(args.out).resolve() if args.out else None, jobs=args.jobs)
    verdict = "built" if result.status == 0 else "FAILED (warnings are errors; see above)"
    print(f"site {verdict}: {result.pages} pages in {result.seconds:.1f} s -> {result.out / 'index.html'}")
    return result.status


def cmd_grade(args: argparse.Namespace) -> int:
    from infracourse.grading import command

    return command.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the services (compose if Docker answers, else native)")
    up.add_argument("services", nargs="*", choices=[[], *SERVICE_NAMES], metavar="SERVICE")
    where = up.add_mutually_exclusive_group()
    where.add_argument("--native", action="store_true", help="start from installed packages")
    where.add_argument("--compose", action="store_true", help="start with Docker Compose")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the services the course started")
    down.add_argument("services", nargs="*", choices=[[], *SERVICE_NAMES], metavar="SERVICE")
    down.add_argument("--native", action="store_true", help="stop native services even in compose mode")
    down.set_defaults(func=cmd_down)

    sub.add_parser("status", help="a health table of every service").set_defaults(func=cmd_status)

    logs = sub.add_parser("logs", help="the last lines of a service's log")
    logs.add_argument("service", choices=SERVICE_NAMES)
    logs.add_argument("-n", "--lines", type=int, default=60)
    logs.set_defaults(func=cmd_logs)

    setup = sub.add_parser("setup", help="install the packages native mode needs")
    setup.add_argument("--print-only", action="store_true", help="print the commands, install nothing")
    setup.set_defaults(func=cmd_setup)

    labs = sub.add_parser("labs", help="generate labs from solutions, or check they are in sync")
    labs.add_argument("action", choices=["build", "check"])
    labs.set_defaults(func=cmd_labs)

    sub.add_parser("progress", help="your last check result of every exercise, per lab").set_defaults(
        func=cmd_progress)
    reset = sub.add_parser("reset", help="empty one lab's namespace in every service it uses")
    reset.add_argument("lab", metavar="NN", help="the lab's number, e.g. 05")
    reset.set_defaults(func=cmd_reset)
    run = sub.add_parser("run", help="execute notebooks top to bottom in a fresh kernel and save them")
    run.add_argument("notebooks", nargs="+")
    run.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    run.set_defaults(func=cmd_run)

    site = sub.add_parser("site", help="build the rendered course into _build/site (warnings are errors)")
    site.add_argument("--out", help="output folder (default: _build/site)")
    site.add_argument("-j", "--jobs", type=int, default=1, help="parallel Sphinx workers")
    site.set_defaults(func=cmd_site)

    grade = sub.add_parser("grade", help="grade a folder of submitted labs into a gradebook")
    grade.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="one folder a student, or NAME__NN_lab.ipynb")
    grade.add_argument("--lab", metavar="NN", help="grade only this lab (and treat unrecognised notebooks as it)")
    grade.add_argument("--out", help="where the gradebook goes (default: SUBMISSIONS_DIR/_gradebook)")
    grade.add_argument("--hidden", metavar="DIR", help="instructor-only checks: DIR/labNN.py (default: "
                       "$INFRACOURSE_HIDDEN_CHECKS)")
    grade.add_argument("--cell-timeout", type=int, default=60, help="seconds a cell may run")
    grade.add_argument("--notebook-timeout", type=int, default=600, help="seconds a whole submission may run")
    grade.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded at the same time")
    grade.add_argument("--memory-mb", type=int, default=2048, help="address space a kernel may use (MiB)")
    grade.add_argument("--trust-submissions", action="store_true", help="run kernels without the bubblewrap "
                       "sandbox (trusted code only; the gradebook says so)")
    grade.set_defaults(func=cmd_grade)
    classroom.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"course: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
