"""Azure Table and Queue Storage: clients, creation at startup, ETag guards, transactions, retries.

One account holds everything (the Functions host's own `AzureWebJobsStorage`): a connection string
locally (Azurite), the account's endpoints and the managed identity in Azure.

The rest of the code sees plain rows (`Row`: a dict with the entity's ETag beside it), neutral
transaction operations (`Op`) and two errors (`ConcurrencyConflict`, `StorageUnavailable`): no SDK
type leaves this module. `adapters.memory_storage.InMemoryStorage` keeps the same contract.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

if TYPE_CHECKING:
    # Loaded where used (`_queue_service`): the license check never touches a queue, and the queue SDK
    # (with `requests` behind it) is a large part of a cold start.
    from azure.storage.queue import QueueClient, QueueServiceClient

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
TENANT_SUBSCRIPTIONS = "TenantSubscriptions"
# Bulk assignment jobs not finished yet (services/assignment_job.py): what the resume timer reads.
OPEN_JOBS = "OpenJobs"
# Where the timers find their work without scanning partitions (adapters/subscription_index.py).
SUBSCRIPTION_INDEX = "SubscriptionIndex"
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
    TENANT_SUBSCRIPTIONS,
    OPEN_JOBS,
    SUBSCRIPTION_INDEX,
)

# Queues; the Functions host moves a message to `<name>-poison` after maxDequeueCount attempts.
STRIPE_EVENTS_QUEUE = "stripe-events"
OUTBOUND_EMAIL_QUEUE = "outbound-email"
# One message per chunk of a bulk assignment job: its seats, lookup rows and welcome mails.
ASSIGNMENT_JOBS_QUEUE = "assignment-jobs"
QUEUES = (STRIPE_EVENTS_QUEUE, OUTBOUND_EMAIL_QUEUE, ASSIGNMENT_JOBS_QUEUE)

# One entity-group transaction (Azure's limit; Azurite accepts more).
MAX_TRANSACTION_OPERATIONS = 100


class StorageUnavailable(RuntimeError):
    """Storage did not answer within its retry budget (answer 503, never a wrong result)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ConcurrencyConflict(RuntimeError):
    """An ETag-guarded write lost against a concurrent writer: re-read and try again."""


class Row(dict[str, Any]):
    """A stored entity's properties, with its ETag (None for a row not read from storage)."""

    etag: str | None = None

    @classmethod
    def of(cls, properties: dict[str, Any], etag: str | None) -> Row:
        row = cls(properties)
        row.etag = etag
        return row


@dataclass(frozen=True)
class Op:
    """One operation of an entity-group transaction.

    create: fails (ConcurrencyConflict) if the row exists; upsert: replace or insert; update:
    replace an existing row; merge: set only the given properties of an existing row; delete. With
    `etag`, update/merge/delete apply only if the row still has it (ConcurrencyConflict otherwise).
    """

    kind: Literal["create", "upsert", "update", "merge", "delete"]
    entity: dict[str, Any]
    etag: str | None = None


class TableStore(Protocol):
    """What the repositories and services need from storage: `Storage` and `InMemoryStorage`."""

    def get(self, table: str, partition_key: str, row_key: str) -> Row | None: ...
    def query(self, table: str, *, partition_key: str | None = None, row_from: str | None = None,
              row_below: str | None = None, where: str = "", parameters: dict[str, Any] | None = None,
              select: list[str] | None = None) -> Iterator[Row]: ...
    def query_page(self, table: str, *, partition_key: str, row_from: str, row_below: str, where: str = "",
                   parameters: dict[str, Any] | None = None, limit: int = 50,
                   continuation: dict[str, Any] | None = None) -> tuple[list[Row], dict[str, Any] | None]: ...
    def insert(self, table: str, entity: dict[str, Any]) -> bool: ...
    def upsert(self, table: str, entity: dict[str, Any]) -> None: ...
    def merge(self, table: str, entity: dict[str, Any], etag: str | None = None) -> bool: ...
    def replace_if_match(self, table: str, entity: dict[str, Any], etag: str) -> None: ...
    def delete(self, table: str, partition_key: str, row_key: str, etag: str | None = None) -> None: ...
    def transact(self, table: str, operations: Iterable[Op]) -> list[str | None]: ...
    def send(self, queue: str, body: bytes, visibility_timeout: int | None = None) -> None: ...
    def queue_depth(self, queue: str) -> int: ...
    def ping(self) -> dict[str, str]: ...


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


def bounded_retry(budget_seconds: float, retries: int = 1) -> RetryProfile:
    """Retries that fit a time budget: `retries` retries, each attempt's timeouts a share of the budget,
    so a call that cannot reach storage raises StorageUnavailable within about `budget_seconds`."""
    per_try = max(budget_seconds / (retries + 2), 0.2)
    return RetryProfile(retry_total=retries, backoff_factor=0.1, backoff_max=0.2, connection_timeout=per_try,
                        read_timeout=per_try)


def hot_path_retry(budget_seconds: float) -> RetryProfile:
    """Retries that fit the license check's time budget (about 2 s, PRODUCT.md section 4)."""
    return bounded_retry(budget_seconds)


# Every other HTTP request (pages, the JSON API, webhooks): a storage call that cannot be answered in
# about this long becomes a 503 with Retry-After, instead of a request hanging for minutes.
REQUEST_BUDGET_SECONDS = 10.0
REQUEST_RETRY = bounded_retry(REQUEST_BUDGET_SECONDS)
# The health probe pings once, briefly: a monitor must get its answer long before its own timeout.
HEALTH_BUDGET_SECONDS = 1.0
HEALTH_RETRY = bounded_retry(HEALTH_BUDGET_SECONDS, retries=0)


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    """SDK errors that retries could not cure become StorageUnavailable (the caller answers 503)."""
    try:
        yield
    except (ConcurrencyConflict, StorageUnavailable):
        raise
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        raise StorageUnavailable(f"{type(exc).__name__} (status {status}): {exc}", status) from exc


def _required(endpoint: str | None) -> str:
    if not endpoint:
        raise StorageUnavailable("no storage endpoint configured (settings validation should have refused this)")
    return endpoint


def _row(entity: Any) -> Row:
    properties = {}
    for name, value in entity.items():
        # Azure Tables returns datetimes as its own TablesEntityDatetime subclass.
        if isinstance(value, datetime):
            value = datetime.fromtimestamp(value.timestamp(), tz=UTC)
        properties[name] = value
    return Row.of(properties, entity.metadata.get("etag"))


def _conditional(etag: str | None) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}


def _sdk_operation(op: Op) -> tuple[Any, ...]:
    entity = dict(op.entity)
    if op.kind == "create":
        return ("create", entity)
    if op.kind == "upsert":
        return ("upsert", entity, {"mode": UpdateMode.REPLACE})
    if op.kind == "update":
        return ("update", entity, {"mode": UpdateMode.REPLACE, **_conditional(op.etag)})
    if op.kind == "merge":
        return ("update", entity, {"mode": UpdateMode.MERGE, **_conditional(op.etag)})
    return ("delete", entity, _conditional(op.etag))


def range_filter(partition_key: str | None, row_from: str | None, row_below: str | None,
                 where: str) -> tuple[str, dict[str, Any]]:
    clauses, parameters = [], {}
    if partition_key is not None:
        clauses.append("PartitionKey eq @pk")
        parameters["pk"] = partition_key
    if row_from is not None:
        clauses.append("RowKey ge @lo")
        parameters["lo"] = row_from
    if row_below is not None:
        clauses.append("RowKey lt @hi")
        parameters["hi"] = row_below
    if where:
        # Spaces around the parentheses: the SDK finds @parameters by splitting the filter on spaces.
        clauses.append(f"( {where} )")
    return " and ".join(clauses), parameters


# Connections kept open per storage service: as many as requests an instance serves at once (the local
# host's threads, the worker's thread pool); requests' default of 10 would open a new connection for
# every call beyond the tenth.
CONNECTIONS_PER_SERVICE = 64


class _HttpSession:
    """The HTTP session under one storage client, with the environment read once.

    `requests` reads the proxy and CA-bundle variables of the whole process environment on every call
    (a measurable part of a license check); they cannot change under a running worker (Azure restarts
    it when app settings change), so they are read when the client is built, with the same meaning.
    """

    def __init__(self) -> None:
        import requests
        from urllib3.util.retry import Retry

        self.session = requests.Session()
        self.session.trust_env = False
        # Retries are the SDK's (RetryProfile); the adapter must not retry underneath them.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=CONNECTIONS_PER_SERVICE,
                                                max_retries=Retry(total=False, redirect=False, raise_on_status=False))
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, adapter)

    def client_kwargs(self, retry: RetryProfile) -> dict[str, Any]:
        """The SDK client's keyword arguments: `retry` and this session (the transport takes the timeouts)."""
        import os

        from azure.core.pipeline.transport import RequestsTransport

        kwargs = retry.client_kwargs()
        kwargs["transport"] = RequestsTransport(session=self.session, session_owner=False, use_env_settings=False,
                                                connection_timeout=retry.connection_timeout,
                                                read_timeout=retry.read_timeout)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            kwargs["connection_verify"] = bundle
        return kwargs

    def route(self, url: str) -> None:
        """Use the proxy the environment names for `url` (HTTP(S)_PROXY, NO_PROXY), as requests would."""
        import requests

        self.session.proxies.update(requests.utils.get_environ_proxies(url))


@dataclass
class Storage:
    """The app's tables and queues in one storage account, built from settings."""

    settings: Settings
    retry: RetryProfile = STANDARD_RETRY
    _tables: dict[str, TableClient] = field(default_factory=dict, init=False, repr=False)
    _queues: dict[str, QueueClient] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def _credential(self) -> Any:
        # Imported here: azure-identity is only needed in Azure, not on a local cold start.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self.settings.storage_client_id)

    @cached_property
    def _table_service(self) -> TableServiceClient:
        http = _HttpSession()
        kwargs = http.client_kwargs(self.retry)
        if self.settings.storage_connection_string:
            service = TableServiceClient.from_connection_string(self.settings.storage_connection_string, **kwargs)
        else:
            service = TableServiceClient(endpoint=_required(self.settings.storage_table_uri),
                                         credential=self._credential, **kwargs)
        http.route(service.url)
        return service

    @cached_property
    def _queue_service(self) -> QueueServiceClient:
        from azure.storage.queue import QueueServiceClient

        http = _HttpSession()
        kwargs = http.client_kwargs(self.retry)
        if self.settings.storage_connection_string:
            service = QueueServiceClient.from_connection_string(self.settings.storage_connection_string, **kwargs)
        else:
            service = QueueServiceClient(account_url=_required(self.settings.storage_queue_uri),
                                         credential=self._credential, **kwargs)
        http.route(service.url)
        return service

    def _table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is None:
            client = self._tables[name] = self._table_service.get_table_client(name)
        return client

    def _queue(self, name: str) -> QueueClient:
        client = self._queues.get(name)
        if client is None:
            from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy

            # The Functions host expects base64 message bodies (host.json messageEncoding default).
            client = self._queues[name] = self._queue_service.get_queue_client(
                name,
                message_encode_policy=BinaryBase64EncodePolicy(),
                message_decode_policy=BinaryBase64DecodePolicy(),
            )
        return client

    def ensure_created(self) -> None:
        """Create every table and queue (and the poison queues) if missing; safe to repeat.

        Runs once per process, so it lists first: two calls on a warm account, not one per table.
        """
        with _unavailable_on_error():
            existing_tables = {t.name for t in self._table_service.list_tables()}
            for name in TABLES:
                if name not in existing_tables:
                    try:
                        self._table_service.create_table(name)
                    except ResourceExistsError:
                        pass
            existing_queues = {q.name for q in self._queue_service.list_queues()}
            for name in QUEUES:
                for queue_name in (name, f"{name}-poison"):
                    if queue_name not in existing_queues:
                        try:
                            self._queue_service.create_queue(queue_name)
                        except ResourceExistsError:
                            pass

    # --- reads ---------------------------------------------------------------------------------

    def get(self, table: str, partition_key: str, row_key: str) -> Row | None:
        with _unavailable_on_error():
            try:
                return _row(self._table(table).get_entity(partition_key, row_key))
            except ResourceNotFoundError:
                return None

    def query(self, table: str, *, partition_key: str | None = None, row_from: str | None = None,
              row_below: str | None = None, where: str = "", parameters: dict[str, Any] | None = None,
              select: list[str] | None = None) -> Iterator[Row]:
        """Rows of one partition (or of the table) in key order; `where` is an OData filter with
        @parameters, added to the key range."""
        query, params = range_filter(partition_key, row_from, row_below, where)
        with _unavailable_on_error():
            entities = self._table(table).query_entities(query, parameters={**params, **(parameters or {})},
                                                         select=select, results_per_page=1000)
            for entity in entities:
                yield _row(entity)

    def query_page(self, table: str, *, partition_key: str, row_from: str, row_below: str, where: str = "",
                   parameters: dict[str, Any] | None = None, limit: int = 50,
                   continuation: dict[str, Any] | None = None) -> tuple[list[Row], dict[str, Any] | None]:
        """One page of a key range and the token for the next (None at the end)."""
        query, params = range_filter(partition_key, row_from, row_below, where)
        with _unavailable_on_error():
            # The Tables SDK's continuation tokens are dicts (next partition and row key), typed as str.
            pages: Any = self._table(table).query_entities(
                query, parameters={**params, **(parameters or {})}, results_per_page=max(1, min(limit, 1000)),
            ).by_page(continuation_token=cast(Any, continuation))
            rows: list[Row] = []
            token = None
            # A filtered query may answer with an empty page and a token: follow it until rows come.
            for page in pages:
                rows.extend(_row(entity) for entity in page)
                token = pages.continuation_token
                if rows or not token:
                    break
            return rows, token

    # --- single writes -------------------------------------------------------------------------

    def insert(self, table: str, entity: dict[str, Any]) -> bool:
        """Insert; False if the row already exists (idempotent creation)."""
        with _unavailable_on_error():
            try:
                self._table(table).create_entity(entity)
                return True
            except ResourceExistsError:
                return False

    def upsert(self, table: str, entity: dict[str, Any]) -> None:
        with _unavailable_on_error():
            self._table(table).upsert_entity(entity, mode=UpdateMode.REPLACE)

    def merge(self, table: str, entity: dict[str, Any], etag: str | None = None) -> bool:
        """Set the given properties of an existing row. Without `etag`: False if the row is gone.
        With `etag`: ConcurrencyConflict unless the row still has it."""
        with _unavailable_on_error():
            try:
                self._table(table).update_entity(entity, mode=UpdateMode.MERGE, **_conditional(etag))
                return True
            except ResourceModifiedError as exc:
                raise ConcurrencyConflict(str(exc)) from exc
            except ResourceNotFoundError as exc:
                if etag:
                    raise ConcurrencyConflict(str(exc)) from exc
                return False

    def replace_if_match(self, table: str, entity: dict[str, Any], etag: str) -> None:
        """Replace `entity` only if it still has `etag`; ConcurrencyConflict otherwise."""
        with _unavailable_on_error():
            try:
                self._table(table).update_entity(entity, mode=UpdateMode.REPLACE, **_conditional(etag))
            except (ResourceModifiedError, ResourceNotFoundError) as exc:
                raise ConcurrencyConflict(str(exc)) from exc

    def delete(self, table: str, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete; a missing row is fine (lookup rows are removed idempotently) unless `etag` is
        given, which must still match (ConcurrencyConflict otherwise)."""
        with _unavailable_on_error():
            try:
                self._table(table).delete_entity(partition_key, row_key, **_conditional(etag))
            except ResourceModifiedError as exc:
                raise ConcurrencyConflict(str(exc)) from exc

    # --- entity-group transactions ---------------------------------------------------------------

    def transact(self, table: str, operations: Iterable[Op]) -> list[str | None]:
        """Submit one entity-group transaction (one partition, at most 100 operations): all or none.

        Returns each operation's new ETag, in order (None for a delete). A failed precondition (an ETag
        that no longer matches, a row that exists for `create` or is missing for a conditional write)
        raises ConcurrencyConflict, and nothing is written.
        """
        kinds = []
        ops = []
        for op in operations:
            kinds.append(op.kind)
            ops.append(_sdk_operation(op))
        if not ops:
            return []
        if len(ops) > MAX_TRANSACTION_OPERATIONS:
            raise ValueError(f"an entity-group transaction holds at most {MAX_TRANSACTION_OPERATIONS} operations")
        with _unavailable_on_error():
            try:
                results = self._table(table).submit_transaction(ops)
                return [None if kind == "delete" else (result or {}).get("etag")
                        for kind, result in zip(kinds, results, strict=False)]
            except TableTransactionError as exc:
                if exc.status_code in (404, 409, 412) or getattr(exc, "error_code", None) in (
                    "UpdateConditionNotSatisfied",
                    "EntityAlreadyExists",
                    "ResourceNotFound",
                ):
                    raise ConcurrencyConflict(str(exc)) from exc
                raise

    # --- queues ----------------------------------------------------------------------------------

    def send(self, queue: str, body: bytes, visibility_timeout: int | None = None) -> None:
        with _unavailable_on_error():
            self._queue(queue).send_message(body, visibility_timeout=visibility_timeout)

    def queue_depth(self, queue: str) -> int:
        with _unavailable_on_error():
            return int(self._queue(queue).get_queue_properties().approximate_message_count or 0)

    def ping(self) -> dict[str, str]:
        """Reach tables and queues once each (health check)."""
        state = {}
        try:
            next(iter(self._table_service.list_tables(results_per_page=1)), None)
            state["tables"] = "ok"
        except AzureError as exc:
            state["tables"] = f"unreachable: {type(exc).__name__}"
        try:
            self._queue(OUTBOUND_EMAIL_QUEUE).get_queue_properties()
            state["queues"] = "ok"
        except ResourceNotFoundError:
            state["queues"] = "missing queue " + OUTBOUND_EMAIL_QUEUE
        except AzureError as exc:
            state["queues"] = f"unreachable: {type(exc).__name__}"
        return state

