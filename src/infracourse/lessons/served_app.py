"""Plumbing for a lesson's app that labs and tests start and stop: serving it, and a record of traffic sent to it.

The lesson shows what the app does (`example_app`, generated from lesson 13); this module holds the life cycle
every such app repeats, so the lesson's cells stay about the app.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, Self

from prometheus_client import CollectorRegistry

from infracourse.lessons.http_service import HttpService


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class Traffic:
    """What was sent: (method, endpoint, status) -> requests, and when (Unix seconds)."""

    start: float
    end: float
    sent: Counter[tuple[str, str, int]] = field(default_factory=Counter)

    @property
    def duration_s(self) -> float:
        return self.end - self.start


class ServedApp:
    """An HttpService and the connections it owns: start() resets the app's data and serves, close() stops
    serving and closes the connections. Also a context manager."""

    def __init__(self, service: HttpService, *owned: Closeable) -> None:
        self.service = service
        self.owned = owned

    def reset(self) -> None:
        """Put the app's data back to a known state before serving; an app with data overrides it."""

    def start(self) -> Self:
        self.reset()
        self.service.start()
        return self

    def close(self) -> None:
        self.service.close()
        for resource in self.owned:
            resource.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def registry(self) -> CollectorRegistry:
        return self.service.registry

    @property
    def address(self) -> str:
        return self.service.address

    @property
    def url(self) -> str:
        return self.service.url
