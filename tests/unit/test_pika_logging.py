import logging

from infracourse.clients import pika_logging


def test_pika_records_are_kept_not_printed(capsys):
    handler = pika_logging.quiet()
    assert pika_logging.quiet() is handler  # idempotent: one handler however often it is called
    handler.clear()
    logging.getLogger("pika.adapters.blocking_connection").error("Unexpected connection close detected")
    logging.getLogger("pika.channel").debug("too chatty to keep")
    assert handler.messages() == ["ERROR Unexpected connection close detected"]
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
