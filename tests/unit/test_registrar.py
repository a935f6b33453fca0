"""The hub's registrar relays a learner's registrations only when they are that learner's own: namespaces with
the learner's prefix, targets on a loopback port the learner's process listens on, no symbolic links."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from infracourse.classroom import registrar
from infracourse.grading import network
from infracourse.services import prometheus_targets


@pytest.fixture
def listening():
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_listening_uids_name_the_owner_of_the_port(listening: int) -> None:
    assert registrar.listening_uids(listening) == {os.geteuid()}


def test_a_target_passes_only_on_a_loopback_port_its_learner_serves(listening: int) -> None:
    mine, theirs = registrar.own_target(os.geteuid()), registrar.own_target(os.geteuid() + 4242)
    assert mine(f"127.0.0.1:{listening}") == f"127.0.0.1:{listening}"
    assert mine(f"http://localhost:{listening}/health") == f"http://localhost:{listening}/health"
    for target, check in [(f"127.0.0.1:{listening}", theirs), (f"10.0.0.1:{listening}", mine),
                          ("127.0.0.1:1", mine), ("no port here", mine)]:
        with pytest.raises(ValueError):
            check(target)


def test_only_the_learner_s_namespaces_and_real_files_are_relayed(tmp_path: Path, listening: int,
                                                                 monkeypatch) -> None:
    shared, home = tmp_path / "shared", tmp_path / "home"
    monkeypatch.setenv(prometheus_targets.FOLDER_ENV, str(shared / network.TARGETS))
    (home / network.TARGETS).mkdir(parents=True)
    group = [{"targets": [f"127.0.0.1:{listening}"], "labels": {"namespace": "anything"}}]
    for name in ("ada__obs13", "bob__obs13", "ada__other_port"):
        (home / network.TARGETS / f"{name}.json").write_text(json.dumps(group))
    (home / network.TARGETS / "ada__other_port.json").write_text(json.dumps([{"targets": ["127.0.0.1:1"]}]))
    (home / network.TARGETS / "ada__linked.json").symlink_to(home / network.TARGETS / "ada__obs13.json")
    relay = network.Registrations(home, lambda ns: ns.startswith("ada__"), registrar.own_target(os.geteuid()))
    relay.poll()
    assert sorted(prometheus_targets.registered()) == ["ada__obs13"]
    assert prometheus_targets.registered()["ada__obs13"] == [f"127.0.0.1:{listening}"]
    (home / network.TARGETS / "ada__obs13.json").unlink()
    relay.poll()
    assert prometheus_targets.registered() == {}
