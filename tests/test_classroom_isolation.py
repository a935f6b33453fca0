"""A class on shared services isolates for real: learner A, with A's own credentials, tries to read, write,
delete, subscribe to or consume learner B's data on every service, and each attempt is refused by the service
itself (a permission error, not a naming convention); A's own work on the same services succeeds and A's lab,
graded in the sandbox with A's credentials, passes; A's Unix user can read neither B's secrets nor B's process
environment. Kafka on Tansu has no ACLs: provisioning says so instead of pretending."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infracourse import cli
from infracourse.classroom import credentials, kafka, provision, roster, users

ROOT = Path(__file__).resolve().parents[1]
A, B = "isoa", "isob"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a class's Unix users need root")

# run in a fresh interpreter with A's environment: each line of output is one attempt's verdict as JSON
ATTEMPTS = r'''
import asyncio, json, sys
import pika, psycopg, redis, nats
from psycopg.conninfo import make_conninfo
from infracourse import config
from infracourse.namespace import Namespace

B_PREFIX, B_DB = sys.argv[1], sys.argv[2]
mine = Namespace.for_notebook("iso")

def verdict(what, action, refused):
    try:
        action()
        print(json.dumps([what, "allowed", ""]))
    except refused as exc:
        print(json.dumps([what, "refused", str(exc)[:200]]))

# PostgreSQL: B's database is closed to A; the shared one gives A nothing to write
verdict("postgres connect to B's database", lambda: psycopg.connect(config.postgres_dsn(dbname=B_DB)).close(),
        psycopg.OperationalError)
with psycopg.connect(config.postgres_dsn(dbname="course"), autocommit=True) as shared:
    verdict("postgres create schema in the shared database", lambda: shared.execute("CREATE SCHEMA isoa_squat"),
            psycopg.errors.InsufficientPrivilege)
    verdict("postgres create table in public", lambda: shared.execute("CREATE TABLE public.isoa_t (x int)"),
            psycopg.errors.InsufficientPrivilege)
with psycopg.connect(config.postgres_dsn(), autocommit=True) as own:
    verdict("postgres drop B's database", lambda: own.execute(f'DROP DATABASE "{B_DB}"'),
            psycopg.errors.InsufficientPrivilege)
    # the lab-role functions (lab 02 makes login roles) act inside A's namespace only
    refused_here = psycopg.errors.InsufficientPrivilege
    verdict("postgres make a role named for B", lambda: own.execute(
        "SELECT course_roles.recreate_login(%s, 'x')", [B_PREFIX + "iso_reporter"]), refused_here)
    verdict("postgres drop B's login", lambda: own.execute(
        "SELECT course_roles.drop_login(%s)", [B_DB]), refused_here)
    verdict("postgres drop the admin", lambda: own.execute(
        "SELECT course_roles.drop_login(%s)", ["course"]), refused_here)
    from infracourse.lessons import pg_roles
    reporter = pg_roles.recreate(mine, "reporter")["reporter"]
    verdict("postgres A's lab role connects to B's database", lambda: psycopg.connect(
        make_conninfo(reporter.dsn, dbname=B_DB)).close(), psycopg.OperationalError)
    with psycopg.connect(reporter.dsn) as as_reporter:
        print(json.dumps(["postgres own lab role", "ok", as_reporter.info.user]))
    pg_roles.drop(mine, "reporter")
    own.execute(f'CREATE SCHEMA IF NOT EXISTS "{mine.schema}"')
    own.execute(f'CREATE TABLE IF NOT EXISTS "{mine.schema}".t (x int)')
    own.execute(f'INSERT INTO "{mine.schema}".t VALUES (1)')
    print(json.dumps(["postgres own table", "ok", mine.schema]))

# Redis: B's keys and channels, and the commands that would reach them wholesale
r = redis.Redis.from_url(config.redis_url())
denied = redis.exceptions.NoPermissionError
verdict("redis read B's key", lambda: r.get(f"{B_PREFIX}iso_lab:secret"), denied)
verdict("redis write B's key", lambda: r.set(f"{B_PREFIX}iso_lab:secret", "x"), denied)
verdict("redis delete B's key", lambda: r.delete(f"{B_PREFIX}iso_lab:secret"), denied)
verdict("redis publish on B's channel", lambda: r.publish(f"{B_PREFIX}news", "x"), denied)
def subscribe():
    p = r.pubsub()
    p.subscribe(f"{B_PREFIX}news")
    p.get_message(timeout=1)
verdict("redis subscribe to B's channel", subscribe, denied)
for command in ("FLUSHALL", "FLUSHDB", "KEYS", "CONFIG SET", "CLIENT LIST", "ACL", "MONITOR"):
    args = {"KEYS": ["*"], "CONFIG SET": ["maxmemory", "1"], "ACL": ["LIST"]}
    verdict(f"redis {command}", lambda c=command: r.execute_command(*c.split(), *args.get(c, [])), denied)
r.set(mine.key("secret"), "mine")
print(json.dumps(["redis own key", "ok", r.get(mine.key("secret")).decode()]))

# RabbitMQ: B's vhost (its queues and exchanges) is not open to A
b_vhost = config.amqp_url().rsplit("/", 1)[0] + "/" + B_DB
verdict("rabbitmq consume from B's vhost", lambda: pika.BlockingConnection(pika.URLParameters(b_vhost)),
        pika.exceptions.ProbableAccessDeniedError)
conn = pika.BlockingConnection(pika.URLParameters(config.amqp_url()))
conn.channel().queue_declare(mine.queue("jobs"), auto_delete=True)
conn.close()
print(json.dumps(["rabbitmq own queue", "ok", mine.queue("jobs")]))

# NATS: the server refuses subscriptions and publications outside A's subjects (its own account besides)
async def nats_attempts():
    errors = []
    async def on_error(exc):
        errors.append(str(exc))
    nc = await nats.connect(config.nats_url(), error_cb=on_error, max_reconnect_attempts=0)
    await nc.subscribe(f"{B_PREFIX}.{B_PREFIX}iso.orders.>")
    await nc.flush()
    await asyncio.sleep(0.3)
    print(json.dumps(["nats subscribe to B's subjects", "refused" if errors else "allowed", " ".join(errors)]))
    errors.clear()
    await nc.publish(f"{B_PREFIX}.{B_PREFIX}iso.orders.1", b"x")
    await nc.flush()
    await asyncio.sleep(0.3)
    print(json.dumps(["nats publish on B's subjects", "refused" if errors else "allowed", " ".join(errors)]))
    js = nc.jetstream()
    try:
        await js.stream_info(f"{B_PREFIX}iso-orders")
        print(json.dumps(["nats read B's stream", "allowed", ""]))
    except nats.js.errors.NotFoundError as exc:
        print(json.dumps(["nats read B's stream", "refused", f"not in A's account: {exc!r}"]))
    await js.add_stream(name=mine.stream("orders"), subjects=[mine.subject("orders.>")])
    await js.publish(mine.subject("orders.1"), b"mine")
    print(json.dumps(["nats own stream", "ok", mine.stream("orders")]))
    await js.delete_stream(mine.stream("orders"))
    await nc.close()
asyncio.run(nats_attempts())
'''


def _env(name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "INFRACOURSE_NS"))}
    return {**env, **credentials.load(roster.learner(name))}


@pytest.fixture(scope="module")
def two_learners():
    learners = [roster.learner(A), roster.learner(B)]
    reports = provision.provision(learners)
    assert all(r.ok for r in reports), [r.done for r in reports]
    for name in (A, B):
        users.ensure(name)
    yield reports
    revoked = provision.revoke(learners)
    for name in (A, B):
        users.remove(name)
    assert all(r.ok for r in revoked), [r.done for r in revoked]
    assert credentials.load(learners[0]) is None
    assert not any(w.principal in found for found in provision.present().values() for w in learners)


def test_every_attempt_on_b_is_refused_by_the_service(two_learners, tmp_path: Path) -> None:
    b = roster.learner(B)
    # B's data exists, so a refusal is not merely "nothing there"
    import redis

    from infracourse import config
    with redis.Redis.from_url(config.redis_url()) as admin:
        admin.set(f"{b.prefix}iso_lab:secret", "B's secret")
    done = subprocess.run([sys.executable, "-c", ATTEMPTS, b.prefix, b.principal], env=_env(A), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = [json.loads(line) for line in done.stdout.splitlines()]
    allowed = [what for what, outcome, _ in verdicts if outcome == "allowed"]
    assert allowed == [], f"A reached B's data: {allowed}"
    refused = {what: why for what, outcome, why in verdicts if outcome == "refused"}
    assert len(refused) == 24, verdicts
    # refused by the service's own access control, in its own words
    assert "CONNECT privilege" in refused["postgres connect to B's database"]
    assert "permission denied" in refused["postgres create schema in the shared database"]
    assert all("outside your namespace" in refused[what] for what in (
        "postgres make a role named for B", "postgres drop B's login", "postgres drop the admin"))
    assert "CONNECT privilege" in refused["postgres A's lab role connects to B's database"]
    assert all("no permissions" in why for what, why in refused.items() if what.startswith("redis"))
    assert "NOT_ALLOWED" in refused["rabbitmq consume from B's vhost"]
    assert "permissions violation" in refused["nats subscribe to B's subjects"].lower()
    assert "permissions violation" in refused["nats publish on B's subjects"].lower()
    assert {what for what, outcome, _ in verdicts if outcome == "ok"} == {
        "postgres own table", "postgres own lab role", "redis own key", "rabbitmq own queue", "nats own stream"}
    with redis.Redis.from_url(config.redis_url()) as admin:
        assert admin.get(f"{b.prefix}iso_lab:secret") == b"B's secret"
        # the ones too destructive to try for real: Redis's own dry run of A's rights
        for command in (["SHUTDOWN"], ["SWAPDB", "0", "1"], ["DEBUG", "SLEEP", "0"], ["SCRIPT", "FLUSH"]):
            answer = admin.execute_command("ACL", "DRYRUN", f"learner_{A}", *command)
            assert b"no permissions" in answer, (command, answer)


def test_a_cannot_read_b_s_credentials(two_learners) -> None:
    secrets_file = credentials.folder() / f"{B}.env"
    assert secrets_file.stat().st_mode & 0o777 == 0o600 and credentials.folder().stat().st_mode & 0o777 == 0o700
    as_a = [shutil.which("setpriv"), f"--reuid={A}", f"--regid={A}", "--init-groups", "--"]
    read = subprocess.run([*as_a, "cat", str(secrets_file)], capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    # nor B's process environment, where B's server keeps them
    b_process = subprocess.Popen([shutil.which("setpriv"), f"--reuid={B}", f"--regid={B}", "--init-groups", "--",
                                  "sleep", "30"], env=_env(B))
    try:
        peek = subprocess.run([*as_a, "cat", f"/proc/{b_process.pid}/environ"], capture_output=True, text=True)
        assert peek.returncode != 0 and "Permission denied" in peek.stderr
    finally:
        b_process.kill()
        b_process.wait()


def test_provisioning_shows_secrets_masked_and_says_kafka_is_not_isolated(two_learners, capsys) -> None:
    env = credentials.load(roster.learner(A))
    assert cli.main(["classroom", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"{A} " in listed and "MISSING" not in listed.split(f"{A} ", 1)[1].splitlines()[0]
    assert all(reports.done["kafka"].startswith("Kafka (Tansu, native) has no ACLs") for reports in two_learners)
    assert not kafka.enforced()
    shown = credentials.masked(env["COURSE_REDIS_PASSWORD"])
    assert shown.endswith("(32 chars)") and env["COURSE_REDIS_PASSWORD"] not in shown


def test_a_s_lab_graded_in_the_sandbox_with_a_s_credentials_passes(two_learners, tmp_path: Path, capsys) -> None:
    (tmp_path / A).mkdir()
    shutil.copy(ROOT / "solutions" / "00_start_here.ipynb", tmp_path / A)
    assert cli.main(["classroom", "grade", str(tmp_path), "--lab", "00"]) == 0
    out = capsys.readouterr().out
    assert "2/2" in out, out
    feedback = (tmp_path / "_gradebook" / "gradebook.csv").read_text()
    assert feedback.count(",passed,") == 2


def test_labs_that_make_roles_pass_and_those_needing_the_admin_say_not_run(two_learners, tmp_path: Path) -> None:
    """Lab 02 makes login roles (through A's course_roles functions); lab 03's first two exercises need the admin's
    PgBouncer login and a replica every learner shares, so a class server reports them not run, saying why."""
    (tmp_path / A).mkdir()
    for lab in ("02_postgres_in_production", "03_postgres_at_scale"):
        shutil.copy(ROOT / "solutions" / f"{lab}.ipynb", tmp_path / A)
    assert cli.main(["classroom", "grade", str(tmp_path)]) == 0
    with (tmp_path / "_gradebook" / "gradebook.csv").open() as f:
        rows = {(r["lab"][:2], r["exercise"]): r for r in csv.DictReader(f)}
    assert {key for key, r in rows.items() if r["status"] != "passed"} == {("03", "1"), ("03", "2")}, rows
    assert all(rows[("03", n)]["status"] == "not_run" and "not checked on a class server" in rows[("03", n)]["message"]
               for n in ("1", "2"))
    assert "PgBouncer" in rows[("03", "1")]["message"] and "replica" in rows[("03", "2")]["message"]
