"""The container-runtime plumbing of lesson 17: apt sources for mmdebstrap, index settings and CA bundle for
builds, and (live) the runtime, its base image, a build with the secrets, and a health-gated run."""

from __future__ import annotations

import sys

import pytest

from infracourse.lessons.container_probes import context_files
from infracourse.services import build_secrets, containers


def test_apt_sources_in_both_formats_keep_only_this_release(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# comment\ndeb http://mirror.example/debian bookworm main contrib\n"
                                           "deb-src http://mirror.example/debian bookworm main\n"
                                           "deb [arch=amd64] http://other.example/repo stable main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://deb.example/debian\nSuites: trixie\nComponents: main\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://off.example/\nSuites: bookworm\nComponents: main\n")
    (tmp_path / "sources.list.d" / "vendor.list.disabled").write_text("deb http://vendor.example bookworm main\n")
    assert containers.host_apt_sources("bookworm", tmp_path) == [
        "deb http://mirror.example/debian bookworm main contrib",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian "
        "bookworm-updates main",
        "deb http://deb.example/debian-security bookworm-security main",
    ]


def test_index_settings_pass_network_indexes_and_drop_local_paths(monkeypatch, tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nextra-index-url = file:///opt/local/simple https://index.example/simple\n"
                    "find-links = /opt/wheels\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UV_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PIP_TRUSTED_HOST", "mirror.example")
    assert build_secrets.index_settings() == {"index-url": "https://mirror.example/simple",
                                           "extra-index-url": "https://index.example/simple",
                                           "trusted-host": "mirror.example"}


def test_build_secrets_write_a_private_pip_conf_that_trusts_the_mounted_ca(monkeypatch, tmp_path):
    monkeypatch.setattr(build_secrets, "state_dir", lambda: tmp_path)
    monkeypatch.setattr(build_secrets, "index_settings", lambda: {"index-url": "https://mirror.example/simple"})
    args = build_secrets.build_secrets()
    conf = tmp_path / "containers" / "pip.conf"
    assert args == ["--secret", f"id=pipconf,src={conf}", "--secret", f"id=cacert,src={build_secrets.ca_bundle()}"]
    assert conf.read_text() == "[global]\ncert = /run/secrets/cacert\nindex-url = https://mirror.example/simple\n"
    assert conf.stat().st_mode & 0o077 == 0


def test_an_unknown_failure_is_one_readable_line():
    rt = containers.Runtime("podman", sys.executable)
    expected = r"^podman -c raise SystemExit\('SystemExit: boom'\) failed: SystemExit: boom$"
    with pytest.raises(containers.ContainerError, match=expected):
        rt("-c", "raise SystemExit('SystemExit: boom')")


@pytest.fixture(scope="module")
def rt():
    return containers.runtime()


def test_the_base_image_has_the_course_python(rt):
    version = rt("run", "--rm", "--network", "none", rt.base_image, "python3", "-c",
                 "import sys; print(sys.version_info[:2])")
    assert version == "(3, 11)"


def test_a_build_context_is_seen_from_inside(rt, tmp_path):
    (tmp_path / "kept.txt").write_text("x")
    (tmp_path / "secret.env").write_text("y")
    (tmp_path / ".dockerignore").write_text("*.env\n")
    assert context_files(rt, tmp_path, "localhost/pytest-containers-context:probe") == [".dockerignore", "kept.txt"]


def test_a_build_gets_the_secrets_and_a_run_turns_healthy(rt, tmp_path):
    (tmp_path / "Containerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nRUN --mount=type=secret,id=pipconf grep -q '^cert = ' /run/secrets/pipconf\n"
        'HEALTHCHECK --interval=5s CMD ["python3", "-c", "print(1)"]\nCMD ["python3", "-c", '
        '"import time; time.sleep(60)"]\n')
    tag, name = "localhost/pytest-containers:health", "pytest-containers-health"
    try:
        assert rt.build(tmp_path, tag) > 0
        rt("run", "-d", "--name", name, "--network", "none", tag)
        assert rt.wait_healthy(name, timeout_s=30) < 30
    finally:
        rt.remove(name)
        rt.run("rmi", "-f", tag)
