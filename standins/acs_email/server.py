"""ACS e-mail stand-in: `POST /emails:send` with HMAC-SHA256 auth, then the operation to poll."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# ACS rejects requests whose x-ms-date is further off than this.
MAX_CLOCK_DIFFERENCE = timedelta(minutes=15)
# ACS limits an e-mail request, attachments included, to 10 MB.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# The part of ACS's list of allowed attachment types this service may send (ACS refuses types outside its
# list, e.g. executables).
ALLOWED_ATTACHMENT_TYPES = frozenset({
    "application/pdf", "application/xml", "text/xml", "text/plain", "text/csv", "application/json",
    "application/zip", "image/png", "image/jpeg", "image/gif",
})


class Rejected(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class AcsEmailEndpoint:
    """Start with `start()`; `messages` holds every accepted send request's JSON payload (attachments
    as sent, base64: `attachments()` decodes them)."""

    cert_file: Path
    key_file: Path
    access_key: str = field(default_factory=lambda: base64.b64encode(b"local-acs-access-key-0123456789").decode())
    messages: list[dict] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    # The next this many send requests are throttled as ACS does past the domain's quota: 429 with
    # Retry-After (`throttle()`); `throttled` counts the requests that were.
    throttle_remaining: int = 0
    throttle_retry_after: str = "1"
    throttled: int = 0

    # The next this many reads of an operation's status are throttled (429) as well (`unreadable_status()`),
    # and the next this many accepted sends end as a failed operation (`failing_operations()`).
    status_throttle_remaining: int = 0
    failing_remaining: int = 0
    # Each accepted send's operation id (the client's `Operation-Id` if it sent one) and its final status.
    operations: dict[str, str] = field(default_factory=dict)

    def throttle(self, requests: int, retry_after: str = "1") -> None:
        self.throttle_remaining, self.throttle_retry_after = requests, retry_after

    def unreadable_status(self, reads: int) -> None:
        self.status_throttle_remaining = reads

    def failing_operations(self, sends: int) -> None:
        self.failing_remaining = sends

    def start(self) -> AcsEmailEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: tests read `messages`/`rejections` instead
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    endpoint._verify(self, body)
                    payload = endpoint._validate_payload(body)
                    if endpoint.throttle_remaining > 0:
                        endpoint.throttle_remaining -= 1
                        endpoint.throttled += 1
                        return self._reply(429, {"error": {"code": "TooManyRequests", "message":
                                                           "The sender domain's send quota is used up."}},
                                           {"Retry-After": endpoint.throttle_retry_after})
                except Rejected as exc:
                    endpoint.rejections.append(exc.message)
                    return self._reply(exc.status, {"error": {"code": exc.code, "message": exc.message}})
                operation_id = self.headers.get("Operation-Id") or str(uuid.uuid4())
                endpoint.operations[operation_id] = "Succeeded"
                if endpoint.failing_remaining > 0:
                    endpoint.failing_remaining -= 1
                    endpoint.operations[operation_id] = "Failed"
                endpoint.messages.append(payload)
                location = f"https://{self.headers['Host']}/emails/operations/{operation_id}?api-version=2025-09-01"
                headers = {"Operation-Location": location, "Retry-After": "0"}
                self._reply(202, {"id": operation_id, "status": "Running"}, headers)

            def do_GET(self):
                path = urlsplit(self.path).path
                if path.startswith("/emails/operations/"):
                    operation_id = path.rsplit("/", 1)[-1]
                    if endpoint.status_throttle_remaining > 0:
                        endpoint.status_throttle_remaining -= 1
                        return self._reply(429, {"error": {"code": "TooManyRequests", "message": "Slow down."}},
                                           {"Retry-After": "0"})
                    status = endpoint.operations.get(operation_id)
                    if status is None:
                        return self._reply(404, {"error": {"code": "NotFound", "message": "no such operation"}})
                    error = {"code": "EmailDroppedAllRecipientsSuppressed",
                             "message": "Message failed to send."} if status == "Failed" else None
                    return self._reply(200, {"id": operation_id, "status": status, "error": error})
                self._reply(404, {"error": {"code": "NotFound", "message": "no such resource"}})

            def _reply(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def attachments(self, index: int = -1) -> list[tuple[str, str, bytes]]:
        """(name, contentType, content) of each attachment of an accepted message (default: the last)."""
        return [(a["name"], a["contentType"], base64.b64decode(a["contentInBase64"]))
                for a in self.messages[index].get("attachments") or []]

    @property
    def url(self) -> str:
        return f"https://localhost:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what ACS checks --------------------------------------------------------------------------

    def _verify(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = request.headers
        date = headers.get("x-ms-date")
        content_hash = headers.get("x-ms-content-sha256")
        auth = headers.get("Authorization")
        if not (date and content_hash and auth):
            raise Rejected(401, "Denied", "missing x-ms-date, x-ms-content-sha256 or Authorization")
        try:
            sent_at = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise Rejected(401, "Denied", "x-ms-date is not an RFC 1123 date") from None
        if abs(datetime.now(UTC) - sent_at) > MAX_CLOCK_DIFFERENCE:
            raise Rejected(401, "Denied", "x-ms-date is too far from the server's clock")
        if base64.b64encode(hashlib.sha256(body).digest()).decode() != content_hash:
            raise Rejected(401, "Denied", "x-ms-content-sha256 does not match the body")
        prefix = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
        if not auth.startswith(prefix):
            raise Rejected(
                401, "Denied", "Authorization is not an HMAC-SHA256 signature over x-ms-date;host;x-ms-content-sha256"
            )
        string_to_sign = f"{request.command}\n{request.path}\n{date};{headers.get('Host')};{content_hash}"
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self.access_key), string_to_sign.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, auth[len(prefix):]):
            raise Rejected(401, "Denied", "signature does not match")
        if not request.path.startswith("/emails:send?") or "api-version=" not in request.path:
            raise Rejected(404, "NotFound", "expected POST /emails:send?api-version=...")

    @staticmethod
    def _validate_payload(body: bytes) -> dict:
        if len(body) > MAX_REQUEST_BYTES:
            raise Rejected(413, "RequestEntityTooLarge",
                           f"the request is {len(body)} bytes; at most {MAX_REQUEST_BYTES} with attachments")
        try:
            payload = json.loads(body)
        except ValueError:
            raise Rejected(400, "BadRequest", "body is not JSON") from None
        if not isinstance(payload, dict) or not payload.get("senderAddress"):
            raise Rejected(400, "BadRequest", "senderAddress is required")
        recipients = (payload.get("recipients") or {}).get("to") or []
        if not recipients or not all(isinstance(r, dict) and "@" in str(r.get("address", "")) for r in recipients):
            raise Rejected(400, "BadRequest", "recipients.to needs at least one address")
        content = payload.get("content") or {}
        if not content.get("subject") or not (content.get("plainText") or content.get("html")):
            raise Rejected(400, "BadRequest", "content needs a subject and plainText or html")
        AcsEmailEndpoint._validate_attachments(payload.get("attachments"))
        return payload

    @staticmethod
    def _validate_attachments(attachments: object) -> None:
        if attachments is None:
            return
        if not isinstance(attachments, list):
            raise Rejected(400, "BadRequest", "attachments must be a list")
        for number, attachment in enumerate(attachments, 1):
            if not isinstance(attachment, dict):
                raise Rejected(400, "BadRequest", f"attachment {number} is not an object")
            missing = [key for key in ("name", "contentType", "contentInBase64")
                       if not isinstance(attachment.get(key), str) or not attachment[key]]
            if missing:
                raise Rejected(400, "BadRequest", f"attachment {number} needs {', '.join(missing)}")
            if attachment["contentType"].lower() not in ALLOWED_ATTACHMENT_TYPES:
                raise Rejected(400, "InvalidAttachmentType",
                               f"attachment {number} has a content type ACS does not send: "
                               f"{attachment['contentType']}")
            try:
                base64.b64decode(attachment["contentInBase64"], validate=True)
            except ValueError:
                raise Rejected(400, "BadRequest", f"attachment {number}: contentInBase64 is not base64") from None
