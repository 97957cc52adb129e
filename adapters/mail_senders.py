"""Where rendered mail goes: Azure Communication Services, or the local outbox.

The outbox is only reachable in local development: settings refuse a missing ACS endpoint elsewhere.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from services.mail.render import RenderedMail
from services.settings import Settings

if TYPE_CHECKING:
    from azure.communication.email import EmailClient
    from azure.core.credentials import AzureKeyCredential, TokenCredential


log = logging.getLogger(__name__)

# ACS refuses an e-mail request larger than 10 MB, attachments (base64, so 4/3 of their size) included.
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class MailTooLarge(ValueError):
    """The mail with its attachments is larger than ACS accepts; sending it again cannot help."""


class MailThrottled(RuntimeError):
    """The provider refused the send for now (ACS: 429, the sender domain's per-minute or per-hour quota)
    and said when to try again; nothing was sent."""

    def __init__(self, retry_after: float):
        super().__init__(f"the mail provider is throttling sends; try again in {retry_after:g} s")
        self.retry_after = retry_after


# When ACS throttles without saying for how long.
DEFAULT_RETRY_AFTER = 60.0


def retry_after_seconds(headers: Any) -> float:
    """The wait a throttled response asks for: `retry-after-ms` / `x-ms-retry-after-ms`, or `Retry-After`
    in seconds; DEFAULT_RETRY_AFTER when none is readable."""
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        value = headers.get(name) if headers is not None else None
        try:
            if value is not None and float(value) >= 0:
                return float(value) / scale
        except ValueError:
            continue  # an HTTP date: rare for ACS; the default wait is as good
    return DEFAULT_RETRY_AFTER


class MailSender(Protocol):
    def send(self, mail: RenderedMail) -> str:
        """Send; return the provider's message id. Raise on failure so the queue retries."""


def acs_request(sender: str, mail: RenderedMail) -> dict[str, Any]:
    """The ACS send request (REST shape of `POST /emails:send`); MailTooLarge beyond ACS's limit, so
    the local outbox refuses what ACS would refuse."""
    request: dict[str, Any] = {
        "senderAddress": sender,
        "recipients": {"to": [{"address": mail.to}]},
        "content": {"subject": mail.subject, "plainText": mail.text, "html": mail.html},
    }
    if mail.attachments:
        request["attachments"] = [
            {"name": a.filename, "contentType": a.content_type,
             "contentInBase64": base64.b64encode(a.content).decode("ascii")}
            for a in mail.attachments
        ]
    size = len(json.dumps(request).encode("utf-8"))
    if size > MAX_REQUEST_BYTES:
        names = ", ".join(f"{a.filename} ({len(a.content)} bytes)" for a in mail.attachments) or "none"
        raise MailTooLarge(f"mail {mail.subject!r} is {size} bytes with its attachments ({names}); "
                           f"ACS accepts at most {MAX_REQUEST_BYTES} bytes per message")
    return request


class AcsMailSender:
    """Azure Communication Services e-mail (the SDK is imported on first use: it is heavy)."""

    # How long a send waits for ACS to report the accepted mail's final status.
    STATUS_WAIT_SECONDS = 60

    def __init__(self, endpoint: str, sender: str, access_key: str | None = None, client_id: str | None = None):
        self._endpoint = endpoint
        self._sender = sender
        self._access_key = access_key
        self._client_id = client_id
        self._client: EmailClient | None = None

    def _email_client(self) -> EmailClient:
        if self._client is None:
            from azure.communication.email import EmailClient

            credential: AzureKeyCredential | TokenCredential
            if self._access_key:
                from azure.core.credentials import AzureKeyCredential

                credential = AzureKeyCredential(self._access_key)
            else:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential(managed_identity_client_id=self._client_id)
            self._client = EmailClient(self._endpoint, credential)
        return self._client

    def send(self, mail: RenderedMail) -> str:
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.core.polling.base_polling import OperationFailed

        # The send's operation id is ours (ACS takes one: `Operation-Id`), so it is known even when the
        # operation's status cannot be read afterwards.
        operation_id = str(uuid.uuid4())
        try:
            # The client itself retries a 429 a few times (honouring Retry-After) before it gives up here.
            poller = self._email_client().begin_send(acs_request(self._sender, mail), operation_id=operation_id)
        except HttpResponseError as exc:
            if exc.status_code == 429:
                raise MailThrottled(retry_after_seconds(getattr(exc.response, "headers", None))) from exc
            raise
        # ACS has accepted the mail (202). From here on, only an operation ACS reports as failed is a failed
        # send: a status that cannot be read (throttled polling, a dropped connection) or is not final
        # within STATUS_WAIT_SECONDS counts as sent, because sending again would deliver the mail twice.
        try:
            result = poller.result(timeout=self.STATUS_WAIT_SECONDS)
        except AzureError as exc:
            if isinstance(exc.__cause__, OperationFailed):
                raise RuntimeError(f"ACS could not send mail operation {operation_id}: {exc.message}") from exc
            log.warning("ACS accepted mail operation %s; its status could not be read (%s): counted as sent",
                        operation_id, type(exc).__name__)
            return operation_id
        status = (result or {}).get("status")
        if status in ("Failed", "Canceled"):
            raise RuntimeError(f"ACS could not send mail operation {operation_id}: status {status}")
        if status != "Succeeded":
            log.warning("ACS mail operation %s is still %s after %d s: counted as sent", operation_id, status,
                        self.STATUS_WAIT_SECONDS)
        return operation_id


class OutboxMailSender:
    """Writes each mail as a JSON file a developer can read (`python -m standins.outbox`)."""

    def __init__(self, directory: Path, sender: str):
        self._directory = directory
        self._sender = sender

    def send(self, mail: RenderedMail) -> str:
        request = acs_request(self._sender, mail)  # refuses what ACS would refuse
        self._directory.mkdir(parents=True, exist_ok=True)
        message_id = uuid.uuid4().hex
        record = {
            "id": message_id,
            "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from": self._sender,
            "to": mail.to,
            "subject": mail.subject,
            "text": mail.text,
            "html": mail.html,
            "attachments": [{"name": sent["name"], "contentType": sent["contentType"], "size": len(file.content),
                             "contentInBase64": sent["contentInBase64"]}
                            for file, sent in zip(mail.attachments, request.get("attachments", []), strict=True)],
        }
        # Write then rename, so a reader never sees half a mail.
        target = self._directory / f"{time.time_ns()}-{message_id}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        tmp.replace(target)
        return message_id


def sender_for(settings: Settings) -> MailSender:
    if settings.acs_endpoint:
        return AcsMailSender(
            settings.acs_endpoint, settings.mail_sender, settings.acs_access_key, settings.storage_client_id
        )
    return OutboxMailSender(Path(settings.mail_outbox_dir), settings.mail_sender)
