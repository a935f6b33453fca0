"""librdkafka logs to stderr by default; nbval compares stderr. Route its logs to a Python logger instead."""

from __future__ import annotations

import logging


def quiet_logger() -> logging.Logger:
    """A logger for confluent-kafka's 'logger' setting: warnings are kept in Python logging, not stderr."""
    logger = logging.getLogger("infracourse.kafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger
