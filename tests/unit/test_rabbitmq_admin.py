import uuid

import pika
import pytest

from infracourse import config, notebook, waiting
from infracourse.clients import rabbitmq_admin


def test_close_connections_finds_a_connection_by_its_client_name_and_closes_it():
    notebook.require("rabbitmq")
    name = f"pytest-{uuid.uuid4().hex[:8]}"
    params = pika.URLParameters(config.amqp_url())
    params.client_properties = {"connection_name": name}
    connection = pika.BlockingConnection(params)
    assert rabbitmq_admin.close_connections(name, reason="unit test") == 1
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker, match="unit test"):
        connection.process_data_events(time_limit=2)
        connection.channel()
    # The management API drops a closed connection from its list on its next statistics event, not at once.
    waiting.wait_until(lambda: rabbitmq_admin.connections_named(name) == [], timeout_s=10, interval_s=0.2)


def test_close_connections_gives_up_when_none_is_named_so():
    notebook.require("rabbitmq")
    assert rabbitmq_admin.close_connections(f"nobody-{uuid.uuid4().hex[:8]}", timeout_s=0.3) == 0
