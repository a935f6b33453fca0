"""Where the course lives on disk: the repository root, its services/ config and the git-ignored state."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The course repository (INFRACOURSE_HOME overrides; the package is installed editable from src/)."""
    if "INFRACOURSE_HOME" in os.environ:
        return Path(os.environ["INFRACOURSE_HOME"]).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "services").is_dir():
            return parent
    return Path.cwd()


def services_config() -> Path:
    """Configuration shared by docker-compose and native mode."""
    return repo_root() / "services"


def state_dir() -> Path:
    """Data, logs and pid files of natively started services (git-ignored)."""
    return repo_root() / ".services"


def classroom_dir() -> Path:
    """Secrets of a class: each learner's and the instructor's (INFRACOURSE_CLASSROOM_DIR overrides it: a hub
    whose repository is read-only)."""
    return Path(os.environ.get("INFRACOURSE_CLASSROOM_DIR") or state_dir() / "classroom")


def admin_secrets_file() -> Path:
    """The admin passwords `course classroom harden` generated, readable by the instructor only."""
    return classroom_dir() / "admin.secrets"
