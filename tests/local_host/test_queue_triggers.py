"""Queue-triggered functions through the local host against Azurite."""
from __future__ import annotations

import base64
import threading
import time
import uuid

from .conftest import peek, queue, read_records, send_base64, wait_for


def test_message_is_processed_once_and_deleted(sample_host, azurite):
    work = queue(azurite, f"{sample_host.queue_prefix}-work")
    message_id = send_base64(work, "hello queue")

    records = wait_for(lambda: [r for r in read_records(sample_host.output_dir / "work.log") if r["id"] == message_id],
                       message="the work function to see the message")
    assert records == [{"id": message_id, "body": "hello queue", "dequeue_count": 1}]
    time.sleep(1.5)  # a second delivery would have happened by now
    assert len([r for r in read_records(sample_host.output_dir / "work.log") if r["id"] == message_id]) == 1
    assert peek(work) == []
    assert f"Executing 'Functions.work' (Reason='New queue message detected on '{sample_host.queue_prefix}-work'.'" \
        in sample_host.logs()


def test_failing_message_is_retried_then_moved_to_poison_queue(sample_host, azurite):
    failing = queue(azurite, f"{sample_host.queue_prefix}-fail")
    poison = queue(azurite, f"{sample_host.queue_prefix}-fail-poison")
    original = base64.b64encode(b'{"order": 42}').decode()
    message_id = failing.send_message(original).id

    poisoned = wait_for(lambda: peek(poison), timeout=25,
                        message="the message in the poison queue")
    assert [m.content for m in poisoned] == [original]  # the original text, nothing lost
    attempts = [r["dequeue_count"] for r in read_records(sample_host.output_dir / "fail.log") if r["id"] == message_id]
    assert attempts == [1, 2, 3, 4, 5]  # maxDequeueCount in host.json
    assert peek(failing) == []


def test_message_that_is_not_base64_goes_to_poison_without_invocation(sample_host, azurite):
    work = queue(azurite, f"{sample_host.queue_prefix}-work")
    poison = queue(azurite, f"{sample_host.queue_prefix}-work-poison")
    message_id = work.send_message("not base64 {!}").id

    poisoned = wait_for(lambda: peek(poison), message="the poison message")
    assert [m.content for m in poisoned] == ["not base64 {!}"]
    assert not [r for r in read_records(sample_host.output_dir / "work.log") if r["id"] == message_id]
    assert peek(work) == []


def test_processing_resumes_after_storage_was_unreachable(sample_host, azurite):
    """Azurite frozen (SIGSTOP) for a few seconds: the poller logs, backs off and carries on."""
    work = queue(azurite, f"{sample_host.queue_prefix}-work")
    azurite.pause()
    try:
        time.sleep(3)
    finally:
        azurite.resume()
    message_id = send_base64(work, "after the outage")
    wait_for(lambda: [r for r in read_records(sample_host.output_dir / "work.log") if r["id"] == message_id],
             timeout=30, message="processing after the outage")


def test_queue_exists_once_the_runner_has_started(azurite, monkeypatch):
    """The host prints its ready line after every runner's start(): start() itself must create the
    queue, so a producer sending right after "ready" never meets QueueNotFound. The poll thread is
    kept from running, so only start() can have created it."""
    from local_host.app_loader import FunctionSpec
    from local_host.host_config import QueueOptions
    from local_host.queue_runner import QueueRunner

    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    name = f"r{uuid.uuid4().hex[:8]}-work"
    spec = FunctionSpec(name="work", trigger_type="queueTrigger",
                        trigger={"name": "msg", "queueName": name, "connection": "AzureWebJobsStorage"},
                        user_function=lambda msg: None, is_async=False, wants_context=False)
    runner = QueueRunner(spec, QueueOptions(), invoker=None)  # type: ignore[arg-type]  # never invoked
    runner._thread = threading.Thread(target=lambda: None)  # no poller: start() alone is under test
    runner.start()
    try:
        send_base64(queue(azurite, name), "right after start")
    finally:
        runner.stop(1)
