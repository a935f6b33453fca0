"""Environment variables for one block: what lessons and checks of configuration set, they put back.

    with scoped_env("ORDERS_", ORDERS_HTTP_PORT="9000"):   # every other ORDERS_* variable hidden meanwhile
        settings = Settings()
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scoped_env(hide_prefix: str = "", **values: str | None) -> Iterator[None]:
    """Inside the block: the variables whose names start with HIDE_PREFIX are unset (when one is given), then
    VALUES are set (None unsets). After it, the environment is exactly what it was, whatever the block did."""
    saved = dict(os.environ)
    try:
        for name in [name for name in os.environ if hide_prefix and name.startswith(hide_prefix)]:
            del os.environ[name]
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
