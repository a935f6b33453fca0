"""The classroom's pure parts: rosters, secrets shown masked, the namespace prefix a learner's environment adds
(and nothing without it), the NATS accounts file, the Redis ACL rules and the Kafka ACL commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infracourse.classroom import credentials, kafka, redis_acl, roster
from infracourse.namespace import Namespace
from infracourse.services import nats_config

REPO = Path(__file__).resolve().parents[2]


def test_a_roster_is_read_in_order_and_bad_names_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "roster.txt"
    good.write_text("name\nada  # first\n\nbob,Bob B.\n")
    assert [learner.name for learner in roster.read(good)] == ["ada", "bob"]
    for text, words in (("ada\nada\n", "twice"), ("Ada_1\n", "lowercase"), ("# none\n", "names no learner")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(roster.RosterError, match=words):
            roster.read(bad)


def test_no_learner_prefix_starts_another_s_or_a_lesson_slug() -> None:
    ada, adam = roster.learner("ada"), roster.learner("adam")
    assert not adam.prefix.startswith(ada.prefix) and not "ada_sol".startswith(ada.prefix)


def test_secrets_are_shown_masked() -> None:
    assert credentials.masked("Xk3qSECRETSECRET") == "Xk3q… (16 chars)"


def test_the_prefix_makes_every_name_the_learner_s_and_nothing_changes_without_it(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INFRACOURSE_NS_SUFFIX", raising=False)
    monkeypatch.delenv("COURSE_NAMESPACE_PREFIX", raising=False)
    plain = Namespace.for_notebook("nats08")
    assert (plain.slug, plain.subject("orders.>"), plain.key("a")) == ("nats08", "nats08.orders.>", "nats08:a")
    monkeypatch.setenv("COURSE_NAMESPACE_PREFIX", "ada__")
    ns = Namespace.for_notebook("nats08")
    assert (ns.slug, ns.key("a"), ns.queue("q"), ns.stream("s")) == (
        "ada__nats08", "ada__nats08:a", "ada__nats08.q", "ada__nats08-s")
    assert ns.subject("orders.>") == "ada__.ada__nats08.orders.>"  # NATS permissions match whole tokens


def test_the_accounts_file_isolates_learners_and_keeps_a_laptop_unauthenticated(monkeypatch) -> None:
    monkeypatch.delenv("COURSE_NATS_PASSWORD", raising=False)
    laptop = nats_config.accounts_conf()
    assert 'no_auth_user: "course"' in laptop and "jetstream: enabled" in laptop
    learner = nats_config.NatsLearner("learner_ada", "learner_ada", 'pw"x', "ada__.>")
    text = nats_config.accounts_conf([learner])
    assert '"learner_ada": {' in text and 'password: "pw\\"x"' in text and "max_streams: 50" in text
    assert '"ada__.>"' in text
    monkeypatch.setenv("COURSE_NATS_PASSWORD", "instructor")
    assert "no_auth_user" not in nats_config.accounts_conf([learner])


def test_redis_rules_confine_keys_and_channels_and_remove_the_dangerous_commands() -> None:
    rules = redis_acl.rules(roster.learner("ada"), "pw")
    assert rules[:5] == ["reset", "on", ">pw", "~ada__*", "&ada__*"]
    assert {"-@dangerous", "-keys", "-flushall", "-flushdb"} <= set(rules) and "+@all" in rules
    assert rules.index("-@dangerous") > rules.index("+@all")


def test_kafka_acls_are_prefixed_and_tansu_is_named_as_not_isolating() -> None:
    commands = kafka.commands(roster.learner("ada"), "pw")
    assert sum("--resource-pattern-type prefixed" in c and "ada__" in c for c in commands) == 3
    assert "no ACLs" in kafka.NO_ACLS


def test_the_helm_values_cull_limit_and_hand_out_credentials() -> None:
    values = yaml.safe_load((REPO / "hub" / "z2jh-values.yaml").read_text())
    assert values["cull"]["enabled"] is True
    assert values["singleuser"]["memory"]["limit"] and values["singleuser"]["cpu"]["limit"]
    assert "pre_spawn_hook" in values["hub"]["extraConfig"]["course-credentials"]
    assert not any("PASSWORD" in key for key in values["singleuser"]["extraEnv"])
