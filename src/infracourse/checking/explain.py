"""What a learner reads when their code raised inside a check: the call the check made (the learner's function
with the arguments it received, shortened), the exception in one line, and the learner's own frames of the
traceback (where in their cell it happened), never the harness's frames."""

from __future__ import annotations

import reprlib
import sys
import traceback
from pathlib import Path
from types import TracebackType

_PACKAGE = Path(__file__).resolve().parents[1]
_LIBRARIES = tuple(str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
MAX_FRAMES = 3
_SHORT = reprlib.Repr()  # Python 3.11 takes no keyword arguments here
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 40, 40, 4, 4, 2


def one_line(exc: BaseException, limit: int = 160) -> str:
    """'TypeName: first line of the message' (just the type when the message is empty), at most LIMIT long."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


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


def _codes_of(given: tuple[object, ...]) -> set[object]:
    """The code objects of what a check was handed: functions, and the methods of objects and classes."""
    codes = set()
    for value in given:
        function = getattr(value, "__func__", value)
        if hasattr(function, "__code__"):
            codes.add(function.__code__)
        owner = value if isinstance(value, type) else type(value)
        if owner.__module__ not in ("builtins",) and not _is_library(owner):
            codes |= {f.__code__ for f in vars(owner).values() if hasattr(f, "__code__")}
    return codes


def _is_library(owner: type) -> bool:
    module = sys.modules.get(owner.__module__)
    path = getattr(module, "__file__", None)
    return path is None or not _is_learners(path)


def called(exc: BaseException, given: tuple[object, ...]) -> str:
    """The outermost call into what the check was GIVEN on EXC's way up, as 'name(arg=value, ...)', shortened."""
    codes = _codes_of(given)
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code not in codes:
        tb = tb.tb_next
    if tb is None:
        return ""
    code, values = tb.tb_frame.f_code, tb.tb_frame.f_locals
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    shown = ", ".join(f"{n}={_SHORT.repr(values[n])}" for n in names if n in values and n != "self")
    return f"{code.co_name}({shown})"


def raised(exc: BaseException, given: tuple[object, ...] = ()) -> tuple[str, str]:
    """(message, hint) for learner code that raised EXC in a check that was GIVEN these arguments."""
    frames = learner_frames(exc)
    call = called(exc, given)
    lines = [f"your code raised {one_line(exc)}", *([f"when the check called {call}"] if call else []), *frames]
    hint = ("the lines above are where, in your code, it happened" if frames
            else "read the error: it names what your code was missing or called wrongly")
    return "\n   ".join(lines), hint
