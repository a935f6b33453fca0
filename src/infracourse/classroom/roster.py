"""A class roster: one learner name a line (blank lines and `#` comments skipped; a CSV's first column works
too). A name is also the learner's Unix account on the hub, so it is kept to what every service accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from infracourse.errors import CourseError

NAME_RE = re.compile(r"[a-z][a-z0-9]{0,15}")  # no "_": the namespace prefix "<name>__" stays unambiguous


class RosterError(CourseError):
    """A roster that cannot be provisioned as it is."""


@dataclass(frozen=True)
class Learner:
    name: str

    @property
    def principal(self) -> str:
        """The learner's name in every service: role, database, ACL user, vhost, NATS account."""
        return f"learner_{self.name}"

    @property
    def prefix(self) -> str:
        """COURSE_NAMESPACE_PREFIX: no learner name contains "__", so no prefix starts another learner's, and
        no lesson slug contains it either, so no prefix matches the instructor's own namespaces."""
        return f"{self.name}__"


def learner(name: str) -> Learner:
    if not NAME_RE.fullmatch(name):
        raise RosterError(f"learner name {name!r}: use 1-16 lowercase letters and digits, starting with a letter")
    return Learner(name)


def read(path: Path) -> list[Learner]:
    """The learners of PATH, in order, each once; a bad or repeated name is refused with its line number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RosterError(f"cannot read the roster {path}: {exc.strerror}") from None
    found: dict[str, Learner] = {}
    for number, line in enumerate(lines, 1):
        name = line.split("#", 1)[0].split(",", 1)[0].strip()
        if not name or (number == 1 and name.lower() in ("name", "learner", "student")):
            continue
        try:
            one = learner(name)
        except RosterError as exc:
            raise RosterError(f"{path}:{number}: {exc}") from None
        if name in found:
            raise RosterError(f"{path}:{number}: {name} is on the roster twice")
        found[name] = one
    if not found:
        raise RosterError(f"the roster {path} names no learner")
    return list(found.values())
