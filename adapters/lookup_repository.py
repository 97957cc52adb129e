"""The lookup tables for the access paths other than "by subscription" (PRODUCT.md section 4).

Written idempotently after the partition commit and repaired by reconciliation: user -> licenses
(what the license check reads), user -> administered subscriptions, Stripe checkout session /
customer -> subscription, buyer -> purchases waiting for a delayed payment, and the ids of Stripe
events already applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters import keys
from adapters.table_storage import (
    INVITATIONS,
    STRIPE_EVENTS,
    STRIPE_INDEX,
    TENANT_SUBSCRIPTIONS,
    USER_LICENSES,
    USER_SUBSCRIPTIONS,
    ConcurrencyConflict,
    Row,
    TableStore,
)
from services.seat import LicenseLookup

if TYPE_CHECKING:
    # The rows of the other access paths: imported where used, off the license check's import path.
    from services.delegate import InvitationLookup
    from services.merge_record import TenantSubscription
    from services.pending_purchase import PendingPurchase


def _partition(lookup: LicenseLookup) -> str:
    return keys.licenses_of_oid(lookup.bound_oid) if lookup.bound_oid else keys.licenses_of_address(lookup.email)


def _lookup(row: Row) -> LicenseLookup:
    partition = row["PartitionKey"]
    bound_oid = keys.oid_of_licenses(partition) if partition.startswith(keys.OID_PREFIX) else ""
    return LicenseLookup(
        subscription_id=row["RowKey"],
        email=row.get("Email") or ("" if bound_oid else keys.address_of_licenses(partition)),
        tenant_id=row.get("TenantId") or "",
        bound_oid=bound_oid,
        over_quantity=bool(row.get("OverQuantity")),
        last_seen_on=row.get("LastSeenOn") or "",
        seat_etag=row.get("SeatETag") or "",
        address_row=bool(row.get("AddressRow")),
        revoked=bool(row.get("Revoked")),
        revoked_at=row.get("RevokedAt") if isinstance(row.get("RevokedAt"), datetime) else None,
        etag=row.etag,
    )


def _license_entity(lookup: LicenseLookup) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": _partition(lookup),
        "RowKey": lookup.subscription_id,
        "Email": lookup.email,
        "TenantId": lookup.tenant_id,
        "OverQuantity": lookup.over_quantity,
    }
    if lookup.last_seen_on:
        entity["LastSeenOn"] = lookup.last_seen_on
    if lookup.seat_etag and not lookup.bound:
        entity["SeatETag"] = lookup.seat_etag
    if lookup.address_row and lookup.bound:
        entity["AddressRow"] = True
    return entity


def _invitation(row: Row) -> InvitationLookup:
    from services.delegate import InvitationLookup

    return InvitationLookup(row["PartitionKey"], row["SubscriptionId"], "owner" if row.get("Kind") == "owner"
                            else "delegate", row.get("Email", ""), row["ExpiresAt"])


def _pending_purchase(row: Row, tid: str, oid: str) -> PendingPurchase:
    from services.pending_purchase import FAILED, PENDING, PendingPurchase

    return PendingPurchase(session_id=keys.decode(row["RowKey"]), buyer_tid=tid, buyer_oid=oid,
                           kind=row.get("Kind") or "organisation", quantity=int(row.get("Quantity") or 0),
                           started_at=row["StartedAt"], state=FAILED if row.get("State") == FAILED else PENDING,
                           failed_at=row.get("FailedAt"))


class LookupRepository:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    # --- user -> licenses --------------------------------------------------------------------------

    def licenses_of_oid(self, oid: str) -> list[LicenseLookup]:
        """Seats bound to this person (tombstones left out)."""
        return [lookup for lookup in self.oid_partition(oid) if not lookup.revoked]

    def oid_partition(self, oid: str) -> list[LicenseLookup]:
        """Every row of the person's partition, tombstones included (one query: the license check's
        steady state)."""
        return [_lookup(r) for r in self.store.query(USER_LICENSES, partition_key=keys.licenses_of_oid(oid))]

    def licenses_of_address(self, address: str) -> list[LicenseLookup]:
        """Seats assigned to this (normalised) address and not bound yet."""
        return [_lookup(r) for r in self.store.query(USER_LICENSES, partition_key=keys.licenses_of_address(address))]

    def licenses_in(self, subscription_id: str) -> list[LicenseLookup]:
        """Every lookup row naming a subscription (reconciliation: a cross-partition scan)."""
        rows = self.store.query(USER_LICENSES, where="RowKey eq @rk", parameters={"rk": subscription_id})
        return [_lookup(r) for r in rows]

    def put_license(self, lookup: LicenseLookup) -> None:
        """Write the row as the seat says it is (replacing a tombstone: the seat exists)."""
        self.store.upsert(USER_LICENSES, _license_entity(lookup))

    def bind_license(self, lookup: LicenseLookup, replacing: LicenseLookup | None = None) -> bool:
        """Create the bound row written by a license check, or replace the tombstone `replacing` (read
        with its ETag) of an earlier revoke. False if a tombstone is there (the seat was revoked since
        it was bound): a bound row is created, never written over, so it cannot outlive a revoke."""
        entity = _license_entity(lookup)
        if replacing is not None and replacing.etag:
            try:
                self.store.replace_if_match(USER_LICENSES, entity, replacing.etag)
                return True
            except ConcurrencyConflict:
                pass
        elif self.store.insert(USER_LICENSES, entity):
            return True
        # Someone was first: a concurrent check of the same person (a live row), or a revoke (a tombstone).
        row = self.store.get(USER_LICENSES, entity["PartitionKey"], entity["RowKey"])
        return row is not None and not row.get("Revoked")

    def delete_license(self, lookup: LicenseLookup) -> None:
        self.store.delete(USER_LICENSES, _partition(lookup), lookup.subscription_id)

    def delete_licenses_of_seat(self, subscription_id: str, email: str, bound_oid: str) -> None:
        """Remove the rows of a seat that is gone: the person's row becomes a tombstone (see
        `bind_license`), the address's row is deleted (a seat may have been bound between a read and
        this, so both are always handled)."""
        if bound_oid:
            self.store.upsert(USER_LICENSES, {"PartitionKey": keys.licenses_of_oid(bound_oid),
                                              "RowKey": subscription_id, "Email": email, "Revoked": True,
                                              "RevokedAt": datetime.now(UTC)})
        self.store.delete(USER_LICENSES, keys.licenses_of_address(email), subscription_id)

    def delete_tombstone(self, lookup: LicenseLookup) -> None:
        """Remove a tombstone once no license check can still be binding its seat (see `bind_license`)."""
        if lookup.revoked and lookup.etag:
            try:
                self.store.delete(USER_LICENSES, _partition(lookup), lookup.subscription_id, etag=lookup.etag)
            except ConcurrencyConflict:
                pass  # rewritten meanwhile: whoever did it owns the row now

    def touch_license(self, oid: str, subscription_id: str, day: str, address: str = "") -> bool:
        """Record the last-seen day on the person's row; with `address`, also remove the `email|` row the
        seat was bound from (see LicenseLookup.address_row)."""
        if address:
            self.store.delete(USER_LICENSES, keys.licenses_of_address(address), subscription_id)
        patch: dict[str, Any] = {"PartitionKey": keys.licenses_of_oid(oid), "RowKey": subscription_id,
                                 "LastSeenOn": day}
        if address:
            patch["AddressRow"] = False
        return self.store.merge(USER_LICENSES, patch)

    # --- user -> administered subscriptions ----------------------------------------------------------

    def put_person_subscription(self, tid: str, oid: str, subscription_id: str, role: str) -> None:
        self.store.upsert(USER_SUBSCRIPTIONS, {"PartitionKey": keys.person(tid, oid), "RowKey": subscription_id,
                                               "Role": role})

    def delete_person_subscription(self, tid: str, oid: str, subscription_id: str) -> None:
        self.store.delete(USER_SUBSCRIPTIONS, keys.person(tid, oid), subscription_id)

    def person_subscriptions(self, tid: str, oid: str) -> list[tuple[str, str]]:
        """(subscription id, role) for every subscription the person owns or administers."""
        rows = self.store.query(USER_SUBSCRIPTIONS, partition_key=keys.person(tid, oid))
        return [(r["RowKey"], r.get("Role", "owner")) for r in rows]

    # --- tenant -> subscriptions licensing its people (merge candidates) ------------------------------

    def put_tenant_subscription(self, entry: TenantSubscription) -> None:
        self.store.upsert(TENANT_SUBSCRIPTIONS, {
            "PartitionKey": keys.tenant(entry.tenant_id), "RowKey": entry.subscription_id, "TenantId": entry.tenant_id,
            "Kind": entry.kind, "Status": entry.status, "OwnerEmail": entry.owner_email, "OwnerName": entry.owner_name,
            "BoundTid": entry.bound_tid, "BoundOid": entry.bound_oid})

    def tenant_subscriptions(self, tenant_id: str, kind: str) -> list[TenantSubscription]:
        """The subscriptions of `kind` indexed under the tenant: one partition query, never a scan."""
        from services.merge_record import TenantSubscription

        rows = self.store.query(TENANT_SUBSCRIPTIONS, partition_key=keys.tenant(tenant_id), where="Kind eq @kind",
                                parameters={"kind": kind})
        return [TenantSubscription(tenant_id=r.get("TenantId") or tenant_id, subscription_id=r["RowKey"],
                                   kind=r.get("Kind", ""), status=r.get("Status", ""),
                                   owner_email=r.get("OwnerEmail", ""), owner_name=r.get("OwnerName", ""),
                                   bound_tid=r.get("BoundTid") or "", bound_oid=r.get("BoundOid") or "")
                for r in rows]

    # --- invitation token hash -> invitation ----------------------------------------------------------

    def put_invitation(self, lookup: InvitationLookup) -> None:
        self.store.upsert(INVITATIONS, {"PartitionKey": lookup.token_hash, "RowKey": keys.INVITATION_LOOKUP_ROW,
                                        "SubscriptionId": lookup.subscription_id, "Kind": lookup.kind,
                                        "Email": lookup.email, "ExpiresAt": lookup.expires_at})

    def invitation(self, token_hash: str) -> InvitationLookup | None:
        row = self.store.get(INVITATIONS, token_hash, keys.INVITATION_LOOKUP_ROW)
        return _invitation(row) if row is not None else None

    def delete_invitation(self, token_hash: str) -> None:
        self.store.delete(INVITATIONS, token_hash, keys.INVITATION_LOOKUP_ROW)

    def expired_invitations(self, now: datetime) -> list[InvitationLookup]:
        return [_invitation(r) for r in self.store.query(INVITATIONS, where="ExpiresAt lt @now",
                                                         parameters={"now": now})]

    # --- Stripe ids -> subscription ----------------------------------------------------------------

    def index_checkout_session(self, session_id: str, subscription_id: str) -> None:
        self.store.upsert(STRIPE_INDEX, {"PartitionKey": keys.CHECKOUT_SESSION, "RowKey": session_id,
                                         "SubscriptionId": subscription_id})

    def index_customer(self, customer_id: str, subscription_id: str) -> None:
        self.store.upsert(STRIPE_INDEX, {"PartitionKey": keys.CUSTOMER, "RowKey": customer_id,
                                         "SubscriptionId": subscription_id})

    def subscription_of_checkout_session(self, session_id: str) -> str | None:
        row = self.store.get(STRIPE_INDEX, keys.CHECKOUT_SESSION, session_id)
        return str(row["SubscriptionId"]) if row is not None else None

    # --- buyer -> purchases waiting for a delayed payment (services/delayed_payment.py) ---------------

    def add_pending_purchase(self, purchase: PendingPurchase) -> None:
        """Record the purchase; one already recorded (pending or failed) stays as it is."""
        self.store.insert(STRIPE_INDEX, {
            "PartitionKey": keys.pending_purchases(purchase.buyer_tid, purchase.buyer_oid),
            "RowKey": keys.encode(purchase.session_id), "Kind": purchase.kind, "Quantity": purchase.quantity,
            "StartedAt": purchase.started_at, "State": purchase.state})

    def fail_pending_purchase(self, tid: str, oid: str, session_id: str, at: datetime) -> None:
        from services.pending_purchase import FAILED

        failed = {"PartitionKey": keys.pending_purchases(tid, oid), "RowKey": keys.encode(session_id),
                  "State": FAILED, "FailedAt": at}
        if not self.store.merge(STRIPE_INDEX, failed):
            self.store.insert(STRIPE_INDEX, {**failed, "StartedAt": at})  # its "pending" never came

    def delete_pending_purchase(self, tid: str, oid: str, session_id: str) -> None:
        self.store.delete(STRIPE_INDEX, keys.pending_purchases(tid, oid), keys.encode(session_id))

    def pending_purchase(self, tid: str, oid: str, session_id: str) -> PendingPurchase | None:
        row = self.store.get(STRIPE_INDEX, keys.pending_purchases(tid, oid), keys.encode(session_id))
        return _pending_purchase(row, tid, oid) if row is not None else None

    def pending_purchases(self, tid: str, oid: str) -> list[PendingPurchase]:
        return [_pending_purchase(r, tid, oid)
                for r in self.store.query(STRIPE_INDEX, partition_key=keys.pending_purchases(tid, oid))]

    # --- Stripe events applied -----------------------------------------------------------------------

    def event_applied(self, event_id: str) -> bool:
        return self.store.get(STRIPE_EVENTS, *keys.stripe_event(event_id)) is not None

    def record_event(self, event_id: str, event_type: str, at: datetime) -> None:
        partition, row = keys.stripe_event(event_id)
        self.store.upsert(STRIPE_EVENTS, {"PartitionKey": partition, "RowKey": row, "Type": event_type,
                                          "AppliedAt": at})
