"""What a learner reads when their code raised inside a check: the exception in one line and the learner's own
frames of the traceback (where in their cell it happened), never the harness's frames."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]
_LIBRARIES = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
MAX_FRAMES = 3


def one_line(exc: BaseException) -> str:
    """'TypeName: first line of the message' (just the type when the message is empty)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_learners(filename: str) -> bool:
    path = Path(filename)
    if not path.is_absolute():  # "<string>", "<frozen ...>": not the learner's cell
        return False
    resolved = str(path.resolve())
    return not resolved.startswith(str(_PACKAGE)) and not resolved.startswith(_LIBRARIES)


def learner_frames(exc: BaseException, limit: int = MAX_FRAMES) -> list[str]:
    """The last LIMIT frames of EXC's traceback that are the learner's code: 'in NAME, line N: SOURCE'."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learners(f.filename)]
    return [f"in {f.name}, line {f.lineno}: {(f.line or '').strip()}" for f in frames[-limit:]]


def raised(exc: BaseException) -> tuple[str, str]:
    """(message, hint) for learner code that raised EXC."""
    frames = learner_frames(exc)
    message = f"your code raised {one_line(exc)}"
    if frames:
        return message + "\n   " + "\n   ".join(frames), "the lines above are where, in your code, it happened"
    return message, "read the error: it names what your code was missing or called wrongly"
