"""PrivateNatsServer: starts on its own port with JetStream, keeps file-stored state across a crash, and
cleans up after itself."""

from __future__ import annotations

import asyncio
import shutil

import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from infracourse.lessons.private_nats import PrivateNatsServer

pytestmark = pytest.mark.skipif(
    shutil.which("nats-server") is None and shutil.which("nats-server", path="/usr/sbin") is None,
    reason="nats-server is not installed",
)


async def publish_then_count(url: str, publish: int) -> int:
    nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="kept", subjects=["kept"], storage=StorageType.FILE))
        for i in range(publish):
            await js.publish("kept", str(i).encode())
        return (await js.stream_info("kept")).state.messages
    finally:
        await nc.close()


def test_file_stream_survives_a_crash_and_close_removes_everything():
    server = PrivateNatsServer()
    try:
        server.start()
        assert server.running and server.starts == 1 and server.url.startswith("nats://127.0.0.1:")
        assert asyncio.run(publish_then_count(server.url, 5)) == 5
        server.restart(crash=True)
        assert server.running and server.starts == 2
        assert asyncio.run(publish_then_count(server.url, 0)) == 5
    finally:
        server.close()
    assert not server.running and not server.store_dir.exists()


def test_context_manager_stops_the_server():
    with PrivateNatsServer() as server:
        port = server.port
        assert server.running
    assert not server.running
    with pytest.raises(OSError):
        __import__("socket").create_connection(("127.0.0.1", port), timeout=0.5)


def test_missing_binary_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="not installed"):
        PrivateNatsServer(binary="no-such-nats-server")
