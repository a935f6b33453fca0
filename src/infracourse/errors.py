"""Errors meant for a learner: shown as one short red paragraph in a notebook, not as a traceback.

Two kinds: the course's own (CourseError, raised on purpose), and a client library's error that means a
service went away or refused the course's login after start-up (psycopg, redis-py, confluent-kafka, pika,
nats-py). The second kind is shown as one line naming the service, what the client said, and where to look
(`course status`, `course logs NAME`); any other error of those libraries keeps its full traceback. A cell that
names what no cell has defined yet (a check run before its exercise) gets one line saying which cell to run. A client
that only times out (a Kafka future, say) says nothing about why: a TimeoutError is shortened when one of the
services the notebook required has stopped answering its probe.
"""

from __future__ import annotations

import sys

LOST_HINT = "`course status` shows what runs and `course logs {service}` why; once it is back, run the Setup cell again"
LOGIN_HINT = "the service answers but refuses the course's credentials: check the COURSE_{upper}_* variables"


class CourseError(Exception):
    """Base of the errors the course raises on purpose; the notebook shows only the message."""


class ServiceUnavailable(CourseError):
    pass


REQUIRED: set[str] = set()  # the services this kernel's notebook required (notebook.require adds to it)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_CONNECTION_WORDS = ("connection", "server closed", "terminating", "refused", "broken pipe", "reset by peer",
                     "unexpected eof", "ssl syscall")  # the last two: a TLS connection cut (lesson 03's server)
_LOGIN_WORDS = ("authentication", "password", "access_refused", "not authorized", "noauth", "wrongpass")


def _classes(module: str, *names: str) -> tuple[type[BaseException], ...]:
    """The exception classes NAMES of MODULE, if the notebook has imported it (never imported here)."""
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, n) for n in names if loaded is not None and hasattr(loaded, n))


def _client_errors() -> dict[str, tuple[type[BaseException], ...]]:
    return {
        "postgres": _classes("psycopg", "OperationalError"),
        "redis": _classes("redis.exceptions", "ConnectionError", "TimeoutError"),
        "kafka": _classes("confluent_kafka", "KafkaException"),
        "rabbitmq": _classes("pika.exceptions", "AMQPConnectionError", "ConnectionWrongStateError",
                             "ChannelWrongStateError"),
        "nats": _classes("nats.errors", "ConnectionClosedError", "NoServersError", "StaleConnectionError"),
    }


def service_failure(exc: BaseException) -> str | None:
    """One line for EXC if it says a course service went away or refused the login, else None."""
    text = str(exc).lower()
    for service, classes in _client_errors().items():
        if not (classes and isinstance(exc, classes)):
            continue
        if any(word in text for word in _LOGIN_WORDS):
            return f"{service} refused the login ({_first_line(exc)}): {LOGIN_HINT.format(upper=service.upper())}"
        if service == "kafka" and not any(c in text for c in ("_transport", "all_brokers_down", "_timed_out")):
            return None  # a Kafka error about a topic, an offset or a transaction: the traceback says more
        if service == "postgres" and not any(word in text for word in _CONNECTION_WORDS):
            return None  # a cancelled query or a lock timeout the lesson may show on purpose
        return f"{service} connection lost ({_first_line(exc)}): {LOST_HINT.format(service=service)}"
    return None


def timeout_explained(exc: BaseException) -> str | None:
    """One line for a TimeoutError while a service the notebook required is down, else None."""
    from concurrent.futures import ThreadPoolExecutor

    from infracourse import config
    from infracourse.services.probes import probe

    services = sorted(REQUIRED)
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        down = [(s, r) for s, r in zip(services, pool.map(probe, services), strict=True) if r]
    if not down:
        return None
    service, reason = down[0]
    return (f"{service} at {config.endpoint(service).address} stopped answering ({reason}), so "
            f"{_first_line(exc)}: {LOST_HINT.format(service=service)}")


def undefined_in_cell(exc: BaseException) -> str | None:
    """One line for a NameError raised by a cell's own top level (a check run before the cell that defines its
    argument), else None: a NameError inside a function is the learner's bug, and keeps its traceback."""
    if not isinstance(exc, NameError):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or tb.tb_frame.f_code.co_name != "<module>":
        return None
    return (f"{exc}: run the cell that defines it first (the exercise cell above this one, "
            "or the Setup cell after a kernel restart)")


def install_short_errors() -> None:
    """In IPython, print CourseError, and client errors that mean a lost service, as one line instead of a
    traceback. Called again by notebook.require(), once the notebook has imported its client libraries."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def show_short(shell, etype, value, tb, tb_offset=None):  # noqa: ARG001 - IPython's signature
        if isinstance(value, CourseError):
            line = f"{value}"
        else:
            line = (service_failure(value) or undefined_in_cell(value)
                    or (timeout_explained(value) if isinstance(value, TimeoutError) else None))
        if line is None:  # not ours to shorten: the traceback IPython would have shown
            stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
        else:
            name = etype.__name__ if isinstance(value, CourseError | NameError) else "ServiceLost"
            stb = [f"\x1b[0;31m{name}\x1b[0m: {line}"]
        shell._showtraceback(etype, value, stb)  # recent IPython no longer displays what we return
        return stb

    handled: tuple[type[BaseException], ...] = (CourseError, TimeoutError, NameError)
    for classes in _client_errors().values():
        handled += classes
    shell.set_custom_exc(handled, show_short)
