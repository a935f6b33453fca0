"""Build secrets for lesson 17's images: the host's CA bundle (this network may use its own CA) and a pip.conf with
the host's package-index settings, passed as `--secret` so that a Containerfile mounts them for one RUN
(`RUN --mount=type=secret,id=pipconf --mount=type=secret,id=cacert ...`) and no layer keeps them. No index is named
here: they are read from this machine's pip and uv configuration."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

from infracourse.paths import state_dir


def build_secrets() -> list[str]:
    """`--secret` arguments: the host's CA bundle (this network may use its own CA) and a pip.conf with the host's
    index settings (pip's environment, then pip's config files, then uv's environment). The Containerfile mounts
    them with RUN --mount=type=secret,id=pipconf / id=cacert."""
    folder = state_dir() / "containers"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "pip.conf"
    settings = {"cert": "/run/secrets/cacert", **index_settings()}
    conf.write_text("[global]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
    conf.chmod(0o600)
    return ["--secret", f"id=pipconf,src={conf}", "--secret", f"id=cacert,src={ca_bundle()}"]


def ca_bundle() -> str:
    candidates = [os.environ.get(v, "") for v in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")]
    return next((c for c in [*candidates, ssl.get_default_verify_paths().cafile or ""] if c and Path(c).is_file()),
                "/etc/ssl/certs/ca-certificates.crt")


def index_settings() -> dict[str, str]:
    """index-url, extra-index-url and trusted-host as this host's pip (or uv) uses them. Local file:// indexes and
    paths do not exist inside a build, so only network locations are passed on."""
    found: dict[str, str] = {}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=30).stdout
    for line in listed.splitlines():  # global.index-url='https://...'
        key, _, value = line.partition("=")
        found.setdefault(key.split(".")[-1], value.strip("'\""))
    for key, names in (("index-url", ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX")),
                       ("extra-index-url", ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL")),
                       ("trusted-host", ("PIP_TRUSTED_HOST",))):
        value = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if value:
            found[key] = value
    kept = {}
    for key in ("index-url", "extra-index-url", "trusted-host"):
        values = [v for v in found.get(key, "").split() if key == "trusted-host" or v.startswith(("http:", "https:"))]
        if values:
            kept[key] = " ".join(values)
    return kept
