"""Where a lesson's notifications land, all on loopback: an HTTP inbox that plays webhook, Slack and Telegram
endpoints and records every POST, and an SMTP sink (aiosmtpd) that keeps every e-mail.

    inbox = Inbox().start()
    inbox.url("pager")              # http://127.0.0.1:PORT/pager, a webhook_configs url
    inbox.wait(1, "pager")          # the notifications received on /pager, once there is one
    with SmtpSink() as smtp:        # smtp.address is an email_configs smarthost
        ...
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from infracourse.lessons.http_service import HttpService, Request, Response
from infracourse.services.probes import free_port
from infracourse.waiting import poll


@dataclass(frozen=True)
class Delivery:
    channel: str  # the first path segment: "pager", "slack", "telegram" ...
    at: float  # monotonic seconds when it arrived
    body: Any  # the JSON Alertmanager sent


class Inbox:
    """Records what Alertmanager POSTs to /<channel>/... and answers as the real service would (200, and
    Telegram's {"ok": true}), so Alertmanager counts it delivered and does not retry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Delivery] = []
        self.started_at = time.monotonic()
        self.service = HttpService({"POST /{channel}": self._record, "POST /{channel}/{rest}": self._record,
                                    "POST /{channel}/{bot}/{method}": self._record})

    def _record(self, request: Request) -> Response:
        with self._lock:
            self._received.append(Delivery(request.params["channel"], time.monotonic(), request.json()))
        if request.params["channel"] == "telegram":  # Alertmanager 0.25 crashes on a reply without the chat
            chat = {"id": int(request.json().get("chat_id", 0)), "type": "private"}
            return Response(200, {"ok": True, "result": {"message_id": len(self._received), "date": 0, "chat": chat}})
        return Response(200, "ok")

    def start(self) -> Self:
        self.service.start()
        return self

    def close(self) -> None:
        self.service.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, channel: str) -> str:
        return f"{self.service.url}/{channel}"

    def received(self, channel: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self._received if channel in (None, d.channel)]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
        self.started_at = time.monotonic()

    def wait(self, count: int, channel: str | None = None, timeout_s: float = 20.0) -> list[Delivery]:
        """The deliveries on CHANNEL once there are at least COUNT (StillWaiting after TIMEOUT_S)."""
        return poll(lambda: self.received(channel), lambda got: len(got) >= count, timeout_s,
                    what=f"{count} notification(s) on /{channel or '*'}", interval_s=0.1)

    def alerts(self, channel: str | None = None) -> list[tuple[str, str, str]]:
        """(channel, status, alertname) of every alert in every notification received, in arrival order."""
        return [(d.channel, a["status"], a["labels"].get("alertname", "")) for d in self.received(channel)
                for a in d.body.get("alerts", [])]


class SmtpSink:
    """An SMTP server on a free loopback port that keeps each message (aiosmtpd), for email_configs."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._controller.start()
        return self

    def close(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, count: int, timeout_s: float = 20.0) -> list[EmailMessage]:
        return poll(lambda: list(self.messages), lambda got: len(got) >= count, timeout_s,
                    what=f"{count} e-mail(s)", interval_s=0.1)
