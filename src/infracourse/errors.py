"""Errors meant for a learner: shown as one short red paragraph in a notebook, not as a traceback."""

from __future__ import annotations


class CourseError(Exception):
    """Base of the errors the course raises on purpose; the notebook shows only the message."""


class ServiceUnavailable(CourseError):
    pass


def install_short_errors() -> None:
    """In IPython, print CourseError as 'Name: message' instead of a full traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def show_short(shell, etype, value, tb, tb_offset=None):  # noqa: ARG001 - IPython's signature
        stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)  # recent IPython no longer displays what we return
        return stb

    shell.set_custom_exc((CourseError,), show_short)
