"""Logs an operator can follow and that never carry secrets.

- Correlation: inside `with correlation(context, stripe_event_id=..., subscription_id=...)` every log record,
  from any module's logger, carries those ids as record attributes (custom dimensions when an
  OpenTelemetry exporter is active) and as a ` [key=value ...]` suffix of the message. The suffix matters:
  the Functions host's built-in Application Insights integration forwards only the message text (plus its
  own InvocationId), so the ids must be in the text to be found with KQL.
- Redaction: bearer tokens, JWTs, Stripe secrets, private keys, OAuth parameters in URLs and the local part
  of e-mail addresses are scrubbed from every message and formatted exception. E-mail bodies cannot be
  recognised after the fact: never log them.
- Telemetry: `configure_telemetry()` starts the Azure Monitor OpenTelemetry exporter when the package is
  installed and a connection string is set; otherwise the host's own integration (which reads
  APPLICATIONINSIGHTS_CONNECTION_STRING) sends the logs.

`install()` once at startup turns correlation and redaction on for the whole process.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

CORRELATION_FIELDS = ("invocation_id", "stripe_event_id", "subscription_id")

# Read-only default: the fields are only ever replaced (set/reset), never changed in place.
_correlation: ContextVar[Mapping[str, str]] = ContextVar(
    "securemailmerge_log_correlation", default=MappingProxyType({})
)
_inside: ContextVar[bool] = ContextVar("securemailmerge_log_correlation_block", default=False)

# Order matters: whole private keys and tokens go before the narrower patterns that could match inside them.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[redacted private key]",
    ),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9\-._~+/]+=*"), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted jwt]"),
    (re.compile(r"\b((?:sk|rk|pk)_(?:live|test)_)[A-Za-z0-9]+"), r"\1[redacted]"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)([?&#](?:code|client_secret|access_token|refresh_token|id_token|session_state)=)[^&#\s]+"),
        r"\1[redacted]",
    ),
    # Keep the domain: it says which tenant or provider is involved without naming the person.
    (re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})"), r"***@\1"),
)


def redact(text: str) -> str:
    """`text` with secrets, tokens and e-mail local parts replaced."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def correlation(context: Any = None, **ids: Any) -> Iterator[None]:
    """Attach correlation ids to every log record written inside the block.

    `context` is the `func.Context` of the invocation (its `invocation_id` is used); `ids` are
    `stripe_event_id` and/or `subscription_id`. Blocks nest: inner ids add to outer ones.
    """
    fields = dict(_correlation.get())
    invocation_id = getattr(context, "invocation_id", None)
    if invocation_id:
        fields["invocation_id"] = str(invocation_id)
    fields.update(_checked(ids))
    token = _correlation.set(fields)
    inside = _inside.set(True)
    try:
        yield
    finally:
        _inside.reset(inside)
        _correlation.reset(token)


def annotate(**ids: Any) -> None:
    """Add ids learnt part-way through an invocation (e.g. the subscription an event belongs to).

    Lasts until the enclosing `correlation()` block ends; outside a block it does nothing, so ids
    cannot leak from one piece of work into the next one on the same thread.
    """
    checked = _checked(ids)
    if _inside.get():
        _correlation.set({**_correlation.get(), **checked})


def current_correlation() -> dict[str, str]:
    return dict(_correlation.get())


def _checked(ids: Mapping[str, Any]) -> dict[str, str]:
    # A fixed set of names: a typo must not silently drop an id, and nothing else (an e-mail address, a
    # token) should ride along on every record.
    unknown = set(ids) - set(CORRELATION_FIELDS)
    if unknown:
        raise ValueError(f"unknown correlation field(s): {sorted(unknown)}; allowed: {CORRELATION_FIELDS}")
    return {name: str(value) for name, value in ids.items() if value not in (None, "")}


def enrich(record: logging.LogRecord) -> logging.LogRecord:
    """Redact the record's message and exception text and attach the current correlation ids."""
    if getattr(record, "_enriched", False):  # the factory and a RedactingFilter may both see it
        return record
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: leave the record as the caller wrote it
        return record
    fields = _correlation.get()
    for name, value in fields.items():
        setattr(record, name, value)
    if fields:
        message += " [" + " ".join(f"{name}={fields[name]}" for name in CORRELATION_FIELDS if name in fields) + "]"
    # Formatted once here, so every handler (the host's, an exporter's, pytest's) sees the same text.
    record.msg = redact(message)
    record.args = None
    record._enriched = True
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


class RedactingFilter(logging.Filter):
    """Redaction and correlation for one handler, where `install()` is not wanted (e.g. a test handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        enrich(record)
        return True


_installed = False


def install() -> None:
    """Enrich every log record of the process (all loggers, all handlers); safe to call twice.

    A log-record factory rather than a handler filter: the Functions worker and an OpenTelemetry exporter
    add their own handlers, and filters on a logger do not apply to records from its children.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return enrich(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True


_telemetry_mode: str | None = None


def configure_telemetry(settings: Any = None, environ: Mapping[str, str] | None = None) -> str:
    """Start log and trace export to Application Insights; returns how telemetry leaves the process.

    - "off": no APPLICATIONINSIGHTS_CONNECTION_STRING (local development).
    - "host": the Functions host's built-in integration sends the logs (azure-monitor-opentelemetry is not
      in requirements.txt, so this is the case in Azure today).
    - "azure-monitor": the OpenTelemetry distro was found and configured.

    `settings` (services.settings.Settings) only labels the telemetry with its environment.
    """
    global _telemetry_mode
    if _telemetry_mode is not None:
        return _telemetry_mode
    env = os.environ if environ is None else environ
    connection_string = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "")
    if not connection_string:
        _telemetry_mode = "off"
        return _telemetry_mode
    try:
        # Imported here: a heavy package, and optional.
        from azure.monitor.opentelemetry import configure_azure_monitor
    except ImportError:
        _telemetry_mode = "host"
        return _telemetry_mode
    kwargs: dict[str, Any] = {"connection_string": connection_string}
    credential = _ingestion_credential(env)
    if credential is not None:
        kwargs["credential"] = credential
    environment = getattr(settings, "environment", None)
    if environment:
        from opentelemetry.sdk.resources import Resource

        kwargs["resource"] = Resource.create({"deployment.environment": environment})
    configure_azure_monitor(**kwargs)
    _telemetry_mode = "azure-monitor"
    return _telemetry_mode


def _ingestion_credential(env: Mapping[str, str]) -> Any:
    """The managed identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING (local auth is disabled)."""
    match = re.search(r"ClientId=([0-9a-fA-F-]{36})", env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""))
    if not match:
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=match.group(1))


def _reset_for_tests() -> None:
    global _telemetry_mode
    _telemetry_mode = None
