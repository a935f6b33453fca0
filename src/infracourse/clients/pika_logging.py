"""pika logs through Python logging; with no handler configured, Python prints warnings and errors to
stderr (logging.lastResort), which nbval compares. Keep pika's records in memory instead, where a notebook
can show them on purpose."""

from __future__ import annotations

import logging


class RecordingHandler(logging.Handler):
    """Keeps every record it receives (a lesson shows what pika said during a connection drop)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, min_level: int = logging.WARNING) -> list[str]:
        return [f"{r.levelname} {r.getMessage()}" for r in self.records if r.levelno >= min_level]

    def clear(self) -> None:
        self.records.clear()


def quiet() -> RecordingHandler:
    """Route the 'pika' logger (WARNING and above) to one in-memory handler, never to stderr; idempotent."""
    logger = logging.getLogger("pika")
    for handler in logger.handlers:
        if isinstance(handler, RecordingHandler):
            return handler
    handler = RecordingHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    return handler
