"""The poison-queue depth line that the "poison queue not empty" alert (infra/alerts.bicep) parses."""

import logging
import re

from azure.storage.queue import QueueClient

from services import bootstrap


def test_poison_queue_depth_is_logged_per_queue(stack, monkeypatch, caplog):
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    try:
        bootstrap.storage().send("outbound-email-poison", b'{"broken": true}')
        from handlers.operations import poison_queue_depth

        with caplog.at_level(logging.INFO, logger="handlers.operations"):
            poison_queue_depth(None)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("poison_queue_depth ")]
        matches = [re.match(r"poison_queue_depth queue=(\S+) depth=(\d+)", line) for line in lines]
        depths = {match.group(1): match.group(2) for match in matches}
        assert set(depths) == {"stripe-events-poison", "outbound-email-poison", "assignment-jobs-poison"}
        assert int(depths["outbound-email-poison"]) >= 1
        QueueClient.from_connection_string(stack.azurite.connection_string, "outbound-email-poison").clear_messages()
    finally:
        bootstrap.reset()
