"""Kafka. The native broker, Tansu, has no ACLs and no SASL: on it a learner's topics and consumer groups are
namespaced (`ada__...`) and nothing more: any learner's code can read, write or delete any topic. `provision`
says so for every class. On Apache Kafka (the compose profile, or a managed broker) the same names are made
enforceable: a SCRAM user per learner and ACLs on the PREFIXED resource pattern `ada__` for its topics, groups
and transactional ids. commands() gives the admin commands; the broker needs a SASL_SCRAM listener and an
authorizer (docs/instructors.md, "Running a class")."""

from __future__ import annotations

import os
import shlex

from infracourse.classroom import credentials
from infracourse.classroom.roster import Learner
from infracourse.services import health

NO_ACLS = ("Kafka (Tansu, native) has no ACLs or SASL: learners' topics and consumer groups are only namespaced "
           "({prefix}...); any learner can read, write or delete any topic. Use Apache Kafka with SASL/SCRAM for "
           "isolation (docs/instructors.md, Running a class).")


def enforced() -> bool:
    """Whether the broker the course uses can enforce ACLs: Apache Kafka in compose mode, not native Tansu."""
    return health.recorded_mode() == "compose"


def commands(who: Learner, password: str, bootstrap: str = "kafka:9093",
             admin_config: str = "/etc/kafka/admin.properties") -> list[str]:
    """kafka-configs / kafka-acls invocations for WHO on an Apache Kafka broker (run inside the broker's
    container; the password is on the command line, so run them there, not on a shared shell)."""
    principal = f"User:{who.principal}"
    base = f"--bootstrap-server {bootstrap} --command-config {admin_config}"
    acl = f"kafka-acls.sh {base} --add --allow-principal {principal} --resource-pattern-type prefixed"
    return [
        f"kafka-configs.sh {base} --alter --entity-type users --entity-name {who.principal} "
        f"--add-config {shlex.quote(f'SCRAM-SHA-512=[password={password}]')}",
        f"{acl} --operation All --topic {who.prefix}",
        f"{acl} --operation All --group {who.prefix}",
        f"{acl} --operation All --transactional-id {who.prefix}",
    ]


def create(who: Learner, password: str) -> str:
    """On Tansu: say plainly there is no isolation. On Apache Kafka: write the admin commands to a 0600 script
    in the state folder (they carry the password) for the instructor to run in the broker's container."""
    if not enforced():
        return NO_ACLS.format(prefix=who.prefix)
    script = credentials.folder() / f"kafka-{who.name}.sh"
    with os.fdopen(os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("#!/bin/sh\nset -e\n" + "\n".join(commands(who, password)) + "\n")
    return f"SCRAM user and prefixed ACLs on {who.prefix}: run {script} in the broker's container"


def drop(who: Learner) -> str:
    (credentials.folder() / f"kafka-{who.name}.sh").unlink(missing_ok=True)
    if not enforced():
        return "nothing to revoke on Tansu (no ACLs)"
    return (f"on Apache Kafka, run: kafka-acls.sh --remove --principal User:{who.principal} ... and "
            f"kafka-configs.sh --alter --delete-config SCRAM-SHA-512 --entity-type users --entity-name "
            f"{who.principal}")
