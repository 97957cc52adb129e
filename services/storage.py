"""Table and queue storage: clients, creation at startup, ETag guards, transactions, retries.

One account holds everything (the Functions host's own `AzureWebJobsStorage`): a connection string
locally (Azurite), the account's endpoints and the managed identity in Azure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient, QueueServiceClient

from services.settings import Settings

log = logging.getLogger(__name__)

# Tables (PRODUCT.md section 4). One partition per subscription in SUBSCRIPTIONS; the rest are
# lookup tables for the other access paths, written idempotently after the partition commit.
SUBSCRIPTIONS = "Subscriptions"
USER_LICENSES = "UserLicenses"
USER_SUBSCRIPTIONS = "UserSubscriptions"
INVITATIONS = "Invitations"
STRIPE_INDEX = "StripeIndex"
STRIPE_EVENTS = "StripeEvents"
TENANT_CONSENT = "TenantConsent"
SESSIONS = "Sessions"
SENT_MAIL = "SentMail"
TABLES = (
    SUBSCRIPTIONS,
    USER_LICENSES,
    USER_SUBSCRIPTIONS,
    INVITATIONS,
    STRIPE_INDEX,
    STRIPE_EVENTS,
    TENANT_CONSENT,
    SESSIONS,
    SENT_MAIL,
)

# Queues; the Functions host moves a message to `<name>-poison` after maxDequeueCount attempts.
STRIPE_EVENTS_QUEUE = "stripe-events"
OUTBOUND_EMAIL_QUEUE = "outbound-email"
QUEUES = (STRIPE_EVENTS_QUEUE, OUTBOUND_EMAIL_QUEUE)


class StorageUnavailable(RuntimeError):
    """Storage did not answer within its retry budget (answer 503, never a wrong result)."""


class ConcurrencyConflict(RuntimeError):
    """An ETag-guarded write lost against a concurrent writer: re-read and try again."""


@dataclass(frozen=True)
class RetryProfile:
    """Retry and timeout settings handed to the Azure SDK's own exponential retry policy."""

    retry_total: int
    backoff_factor: float
    backoff_max: float
    connection_timeout: float
    read_timeout: float

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "retry_total": self.retry_total,
            "retry_backoff_factor": self.backoff_factor,
            "retry_backoff_max": self.backoff_max,
            "connection_timeout": self.connection_timeout,
            "read_timeout": self.read_timeout,
        }


# Background work (queues, timers, dashboard) can wait; throttling (429/503) and timeouts are retried.
STANDARD_RETRY = RetryProfile(retry_total=5, backoff_factor=0.5, backoff_max=8, connection_timeout=5, read_timeout=20)


def hot_path_retry(budget_seconds: float) -> RetryProfile:
    """Retries that fit the license check's time budget (about 2 s, PRODUCT.md section 4)."""
    per_try = max(budget_seconds / 3, 0.2)
    return RetryProfile(retry_total=1, backoff_factor=0.1, backoff_max=0.2, connection_timeout=per_try, read_timeout=per_try)


@dataclass
class Storage:
    """Clients for the app's tables and queues, built from settings."""

    settings: Settings
    retry: RetryProfile = STANDARD_RETRY
    _tables: dict[str, TableClient] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def _credential(self) -> Any:
        # Imported here: azure-identity is only needed in Azure, not on a local cold start.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self.settings.storage_client_id)

    @cached_property
    def table_service(self) -> TableServiceClient:
        kwargs = self.retry.client_kwargs()
        if self.settings.storage_connection_string:
            return TableServiceClient.from_connection_string(self.settings.storage_connection_string, **kwargs)
        return TableServiceClient(endpoint=self.settings.storage_table_uri, credential=self._credential, **kwargs)

    @cached_property
    def queue_service(self) -> QueueServiceClient:
        kwargs = self.retry.client_kwargs()
        if self.settings.storage_connection_string:
            return QueueServiceClient.from_connection_string(self.settings.storage_connection_string, **kwargs)
        return QueueServiceClient(account_url=self.settings.storage_queue_uri, credential=self._credential, **kwargs)

    def table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is None:
            client = self._tables[name] = self.table_service.get_table_client(name)
        return client

    def queue(self, name: str) -> QueueClient:
        # The Functions host expects base64 message bodies (host.json messageEncoding default).
        return self.queue_service.get_queue_client(
            name,
            message_encode_policy=BinaryBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    def ensure_created(self) -> None:
        """Create every table and queue (and the poison queues) if missing; safe to repeat.

        Runs once per process, so it lists first: two calls on a warm account, not one per table.
        """
        existing_tables = {t.name for t in self.table_service.list_tables()}
        for name in TABLES:
            if name not in existing_tables:
                try:
                    self.table_service.create_table(name)
                except ResourceExistsError:
                    pass
        existing_queues = {q.name for q in self.queue_service.list_queues()}
        for name in QUEUES:
            for queue_name in (name, f"{name}-poison"):
                if queue_name not in existing_queues:
                    try:
                        self.queue_service.create_queue(queue_name)
                    except ResourceExistsError:
                        pass

    # --- ETag-guarded writes and entity-group transactions -----------------------------------

    def get(self, table: str, partition_key: str, row_key: str) -> dict[str, Any] | None:
        try:
            return self.table(table).get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None

    def replace_if_match(self, table: str, entity: dict[str, Any], etag: str) -> dict[str, Any]:
        """Replace `entity` only if it still has `etag`; ConcurrencyConflict otherwise."""
        try:
            return self.table(table).update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrencyConflict(str(exc)) from exc

    def insert(self, table: str, entity: dict[str, Any]) -> bool:
        """Insert; False if the row already exists (idempotent creation)."""
        try:
            self.table(table).create_entity(entity)
            return True
        except ResourceExistsError:
            return False

    def upsert(self, table: str, entity: dict[str, Any]) -> None:
        self.table(table).upsert_entity(entity, mode=UpdateMode.REPLACE)

    def delete(self, table: str, partition_key: str, row_key: str) -> None:
        # Deleting a missing row succeeds: lookup rows are removed idempotently.
        self.table(table).delete_entity(partition_key, row_key)

    def transact(self, table: str, operations: Iterable[tuple]) -> None:
        """Submit one entity-group transaction (same partition, at most 100 operations).

        An ETag precondition (`("update", entity, {"etag": ..., "match_condition": ...})`) that fails
        raises ConcurrencyConflict, and nothing in the batch is written.
        """
        ops = list(operations)
        if not ops:
            return
        if len(ops) > 100:
            raise ValueError("an entity-group transaction holds at most 100 operations")
        try:
            self.table(table).submit_transaction(ops)
        except TableTransactionError as exc:
            if exc.status_code in (409, 412) or getattr(exc, "error_code", None) in (
                "UpdateConditionNotSatisfied",
                "EntityAlreadyExists",
            ):
                raise ConcurrencyConflict(str(exc)) from exc
            raise

    def ping(self) -> dict[str, str]:
        """Reach tables and queues once each (health check)."""
        state = {}
        try:
            next(iter(self.table_service.list_tables(results_per_page=1)), None)
            state["tables"] = "ok"
        except AzureError as exc:
            state["tables"] = f"unreachable: {type(exc).__name__}"
        try:
            self.queue(OUTBOUND_EMAIL_QUEUE).get_queue_properties()
            state["queues"] = "ok"
        except ResourceNotFoundError:
            state["queues"] = "missing queue " + OUTBOUND_EMAIL_QUEUE
        except AzureError as exc:
            state["queues"] = f"unreachable: {type(exc).__name__}"
        return state


def update_if_match(entity: dict[str, Any], etag: str) -> tuple:
    """A transaction operation that replaces `entity` only if its ETag is still `etag`."""
    return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified})
