"""Queue triggers: poll a storage queue and invoke the function per message, like the host's
queue listener (Microsoft.Azure.WebJobs.Extensions.Storage.Queues).

- The queue is created when the runner starts, before the host reports itself ready (a poison
  queue when its first message arrives).
- Messages are fetched in batches of `batchSize`; the next batch is fetched once the number still
  running drops to `newBatchThreshold`. While a message runs it is invisible for 10 minutes (the
  host renews that lock; this host does not, so a function running longer than that may see its
  message delivered twice — at-least-once delivery, which functions must tolerate anyway).
- `messageEncoding` base64 (default): the body is decoded; a message that is not valid base64 is
  moved to the poison queue at once, as the host's MessageDecodingFailed handler does.
- Success → message deleted. Failure → visible again after `visibilityTimeout`; when the failed
  attempt was number `maxDequeueCount`, the original message text is copied to `<queue>-poison`
  and then deleted from the queue, so nothing is lost.
- An empty queue is polled with exponential back-off from 0.1 s up to `maxPollingInterval`, capped
  at 1 s locally so tests and the dashboard do not wait a minute for a message.
- Storage errors (Azurite down or frozen) are logged and retried with the same back-off.
"""
from __future__ import annotations

import base64
import binascii
import concurrent.futures
import logging
import math
import os
import threading

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient

from .app_loader import AppLoadError, FunctionSpec
from .host_config import QueueOptions
from .invocation import Invoker

logger = logging.getLogger("local_host.queues")

_MIN_POLL_SECONDS = 0.1
_LOCAL_MAX_POLL_SECONDS = 1.0
_INVISIBLE_WHILE_RUNNING_SECONDS = 600


def queue_client(spec: FunctionSpec, queue_name: str) -> QueueClient:
    setting = spec.trigger.get("connection") or "AzureWebJobsStorage"
    connection = os.environ.get(setting)
    if not connection:
        raise AppLoadError(
            f"function {spec.name!r}: app setting {setting!r} (the queue's connection string) is not set; "
            "put it in local.settings.json or the environment"
        )
    # Few SDK retries and short timeouts: the poll loop does its own back-off and must notice a
    # stop request promptly even when storage is unreachable.
    return QueueClient.from_connection_string(
        connection, queue_name, retry_total=1, connection_timeout=5, read_timeout=15,
    )


class QueueRunner:
    def __init__(self, spec: FunctionSpec, options: QueueOptions, invoker: Invoker) -> None:
        self.spec = spec
        self.options = options
        self.invoker = invoker
        self.queue_name = spec.trigger["queueName"]
        self.poison_name = f"{self.queue_name}-poison"
        self.queue = queue_client(spec, self.queue_name)
        self.poison = queue_client(spec, self.poison_name)
        self._stop = threading.Event()
        self._in_flight: set[concurrent.futures.Future] = set()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.batch_size + options.new_batch_threshold,
            thread_name_prefix=f"queue-{self.queue_name}",
        )
        self._queue_ready = False
        self._thread = threading.Thread(target=self._poll, name=f"poll-{self.queue_name}", daemon=True)

    @property
    def description(self) -> str:
        return f"queueTrigger: {self.queue_name}"

    def start(self) -> None:
        """Create the queue, then start polling: once `start()` returns, a producer can send.

        The Functions host logs "Host started" only after its queue listeners run; the local host
        prints its ready line after every runner's `start()`, so "ready" means ready for queues too.
        If storage is unreachable now, the poll loop keeps trying (and logs it)."""
        try:
            self._ensure_queue(self.queue)
            self._queue_ready = True
        except AzureError as error:
            logger.warning("Queue %r: cannot create it yet (%s); the listener keeps trying",
                           self.queue_name, type(error).__name__)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop fetching, let running invocations finish for up to `timeout` seconds."""
        self._stop.set()
        self._thread.join(timeout)
        with self._lock:
            running = set(self._in_flight)
        concurrent.futures.wait(running, timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- polling ---------------------------------------------------------------------------

    def _ensure_queue(self, client: QueueClient) -> None:
        try:
            client.create_queue()
        except ResourceExistsError:
            pass

    def _poll(self) -> None:
        delay = _MIN_POLL_SECONDS
        ceiling = max(_MIN_POLL_SECONDS, min(self.options.max_polling_interval.total_seconds(),
                                             _LOCAL_MAX_POLL_SECONDS))
        while not self._stop.is_set():
            try:
                if not self._queue_ready:
                    self._ensure_queue(self.queue)
                    self._queue_ready = True
                with self._lock:
                    running = len(self._in_flight)
                if running > self.options.new_batch_threshold:
                    self._stop.wait(0.05)
                    continue
                messages = list(self.queue.receive_messages(
                    max_messages=self.options.batch_size, visibility_timeout=_INVISIBLE_WHILE_RUNNING_SECONDS,
                ))
            except AzureError as error:
                logger.warning("Queue %r: storage not reachable (%s); retrying", self.queue_name,
                               type(error).__name__)
                messages = []
                delay = ceiling
            for message in messages:
                self._submit(message)
            if messages:
                delay = _MIN_POLL_SECONDS
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, ceiling)

    def _submit(self, message) -> None:
        future = self._pool.submit(self._process, message)
        with self._lock:
            self._in_flight.add(future)

        def done(f: concurrent.futures.Future) -> None:
            with self._lock:
                self._in_flight.discard(f)
        future.add_done_callback(done)

    # -- one message -----------------------------------------------------------------------

    def _decode(self, content: str) -> bytes | None:
        if self.options.message_encoding == "none":
            return content.encode("utf-8")
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _process(self, message) -> None:
        try:
            self._process_unguarded(message)
        except Exception:  # never let a storage hiccup kill the worker thread silently
            logger.exception("Queue %r: message %s could not be settled; it becomes visible again later",
                             self.queue_name, message.id)

    def _process_unguarded(self, message) -> None:
        if message.dequeue_count > self.options.max_dequeue_count:
            # Delivered more often than allowed (e.g. the process died mid-invocation): the host
            # moves such a message to the poison queue without invoking the function again.
            self._move_to_poison(message, "dequeue count exceeds maxDequeueCount")
            return
        body = self._decode(message.content)
        if body is None:
            self._move_to_poison(message, "the message is not valid base64 (host.json messageEncoding)")
            return
        trigger_value = QueueMessage(
            id=message.id, body=body, dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on, insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt,
        )
        logger.info("Trigger Details: MessageId: %s, DequeueCount: %s, InsertedOn: %s",
                    message.id, message.dequeue_count, message.inserted_on.isoformat())
        try:
            self.invoker.invoke(self.spec, trigger_value, f"New queue message detected on '{self.queue_name}'.")
        except Exception:
            if message.dequeue_count >= self.options.max_dequeue_count:
                self._move_to_poison(message, f"it failed {message.dequeue_count} times")
            else:
                # The queue API counts whole seconds; round up rather than retry sooner than asked.
                self.queue.update_message(
                    message, visibility_timeout=math.ceil(self.options.visibility_timeout.total_seconds()),
                )
            return
        self.queue.delete_message(message)

    def _move_to_poison(self, message, why: str) -> None:
        # Copy first, delete second: a crash in between duplicates the message, never loses it.
        self._ensure_queue(self.poison)
        self.poison.send_message(message.content)
        self.queue.delete_message(message)
        logger.warning("Message %s moved to poison queue '%s' because %s", message.id, self.poison_name, why)
