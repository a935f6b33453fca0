"""`python -m orders_service` serves HTTP; `... relay` runs the outbox relay (the worker); `... probe` asks the
local service's /health/live (the image's HEALTHCHECK: no curl in a slim image)."""

from __future__ import annotations

import sys
import urllib.request

from orders_service.settings import Settings, load_settings


def probe(settings: Settings, path: str = "/health/live") -> int:
    """Exit 0 when the service on this host answers PATH with 200. It imports only the settings, not the app's
    clients: a health check runs every few seconds and must stay cheap."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.http_port}{path}", timeout=2) as reply:
            return 0 if reply.status == 200 else 1
    except OSError:
        return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "serve"
    if command not in ("serve", "relay", "probe"):
        print(f"usage: python -m orders_service [serve|relay|probe] (got {command!r})", file=sys.stderr)
        return 2
    settings = load_settings()
    if command == "probe":
        return probe(settings)
    from orders_service import app

    return app.serve(settings) if command == "serve" else app.relay(settings)


if __name__ == "__main__":
    sys.exit(main())
