"""Merging individual subscriptions into the organisation subscription (PRODUCT.md capability 6; owner only).

An individual subscription is one person's own license (bought for themselves, its seat bound to them
at purchase: services/fulfilment.py). The owner of an organisation subscription takes such people over:

- **Candidates**: the individual subscriptions indexed under the organisation's tenant (table
  TenantSubscriptions, written by `subscription_store.index` after fulfilment and by reconciliation:
  one partition query, never a scan), checked again against the subscription and its seat: still
  running, not merged, licensing a person of this very tenant (the seat's bound tenant, else the
  buyer's sign-in tenant). Never another tenant's.
- **Start** (`start`): what could refuse is decided before anything is written: every selected
  subscription is a candidate; if the free licenses do not suffice, the quantity is raised first with
  the preview the owner confirmed (services/quantity_change.py, its Stripe idempotency key made from the
  merge id), else `QuantityConfirmationRequired` carries the preview. Then the merge is recorded, a
  row `merge|<id>` in the organisation's partition (the id is the request's Idempotency-Key), with the
  selected people and how far each got.
- **Steps per person** (`run`), each idempotent and recorded when done: (1) a seat in the organisation
  subscription bound to the same (tid, oid) as the old seat, with its lookup row, so the add-in's next
  check is answered from the organisation's license (services/license_check.py prefers it); (2) the
  individual subscription marked `merged_into` (audited there) and set to cancel at the end of its paid
  period in Stripe (services/cancellation.py: no refund logic of our own); its seat stays valid until
  then; (3) a mail to the person in their subscription's language; audit entries on both subscriptions.
- **Resume**: a failure (Stripe, storage) leaves the record `running` with the error; the same request
  again (same Idempotency-Key) or the timer (`resume_open`) continues where it stopped. A completed
  merge run again changes nothing. At no moment is a person without a valid license: the new seat is
  written before the old subscription is touched, and the old one keeps working until its period ends.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from adapters import keys
from adapters.stripe_gateway import StripeUnavailable
from adapters.subscription_repository import PartitionWrites
from adapters.table_storage import ConcurrencyConflict, StorageUnavailable
from services import cancellation, interval_change, quantity_change
from services.audit import Actor, AuditEntry
from services.billing_changes import CHANGEABLE, NotChangeable, stripe_seats
from services.billing_events import Billing, refresh
from services.interval_change import SwitchScheduled
from services.links import subscription_url
from services.mail.message import Language, MailMessage
from services.merge_record import COMPLETED, RUNNING, Merge, MergePerson
from services.quantity_change import QuantityPreview
from services.seat import Seat, normalise_address, same_tenant
from services.seat_change import NoSeatsFree
from services.subscription import Subscription
from services.unit_of_work import AfterCommit, Plan, Refused, SubscriptionNotFound, UnitOfWork

log = logging.getLogger(__name__)

MAX_PER_MERGE = 50  # the merge row holds everyone's progress in one property (64 KiB)
# The timer resumes merges untouched this long (a request still working on one is left alone).
STALE_AFTER = timedelta(minutes=2)


# --- refusals -----------------------------------------------------------------------------------------


class NotOrganisation(Refused):
    code, status = "not_organisation", 409

    def __init__(self) -> None:
        super().__init__("individual subscriptions are merged into an organisation subscription, not into an "
                         "individual one")


class NotACandidate(Refused):
    code, status = "not_a_candidate", 409

    def __init__(self, ids: list[str]):
        super().__init__("these subscriptions cannot be merged here (not an individual subscription of a person "
                         f"in this organisation's tenant, ended, or merged already): {', '.join(ids)}")
        self.ids = ids


class NothingSelected(Refused):
    code, status = "invalid_subscriptions", 400

    def __init__(self) -> None:
        super().__init__(f"subscriptions: a list of 1 to {MAX_PER_MERGE} individual subscription ids from the "
                         "merge candidates")


class MergeConflict(Refused):
    code, status = "idempotency_conflict", 409

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a merge of other subscriptions; send a new key "
                         "for a new merge")


class MergeNotFound(Refused):
    code, status = "merge_not_found", 404

    def __init__(self, merge_id: str) -> None:
        super().__init__(f"no merge {merge_id} on this subscription")


class QuantityConfirmationRequired(Refused):
    """More licenses are needed: confirm the preview (send `quantity` and its `proration_date`)."""

    code, status = "quantity_confirmation_required", 409

    def __init__(self, quantity: int, needed: int, free: int, preview: QuantityPreview | None):
        licenses = "license is" if needed == 1 else "licenses are"
        super().__init__(f"{needed} {licenses} needed but only {free} free: raise the number of licenses to "
                         f"{quantity} (send \"quantity\": {quantity} with the preview's \"proration_date\")")
        self.quantity, self.needed, self.free, self.preview = quantity, needed, free, preview


# --- candidates -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    subscription: Subscription  # the individual subscription
    email: str  # the person's seat
    name: str
    bound_tid: str
    bound_oid: str
    in_organisation: bool  # already holds a seat in the organisation subscription

    @property
    def paid_until(self) -> datetime | None:
        return self.subscription.current_period_end


def _tenant_of(seat: Seat | None, individual: Subscription) -> str:
    return seat.bound_tid if seat is not None and seat.bound else individual.owner_tid


def _candidate(uow: UnitOfWork, organisation: Subscription, individual: Subscription | None) -> Candidate | None:
    """The individual subscription as a candidate of `organisation`, or None if it is not one."""
    if individual is None or individual.kind != "individual" or individual.id == organisation.id:
        return None
    if individual.status not in CHANGEABLE or individual.merged_into not in ("", organisation.id):
        return None
    email = normalise_address(individual.owner_email)
    seat = uow.subscriptions.seat(individual.id, email)
    if not same_tenant(_tenant_of(seat, individual), organisation.tenant_id):
        return None
    in_organisation = uow.subscriptions.seat(organisation.id, email) is not None
    return Candidate(individual, email, individual.owner_name, seat.bound_tid if seat else "",
                     seat.bound_oid if seat else "", in_organisation)


def candidates(uow: UnitOfWork, organisation: Subscription) -> list[Candidate]:
    """Individual subscriptions of people in the organisation's tenant that may be merged into it."""
    if organisation.kind != "organisation":
        return []
    out = []
    for entry in uow.lookups.tenant_subscriptions(organisation.tenant_id, "individual"):
        found = _candidate(uow, organisation, uow.subscriptions.load(entry.subscription_id))
        if found is not None and not found.subscription.merged_into:
            out.append(found)
    return sorted(out, key=lambda c: (c.email, c.subscription.id))


# --- start ----------------------------------------------------------------------------------------------------


def load(uow: UnitOfWork, organisation_id: str, merge_id: str) -> Merge:
    found = uow.subscriptions.merge(organisation_id, merge_id)
    if found is None:
        raise MergeNotFound(merge_id)
    return found


def start(billing: Billing, actor: Actor, organisation: Subscription, merge_id: str, subscription_ids: list[str],
          quantity: int | None = None, proration_date: int | None = None) -> Merge:
    """Record the merge `merge_id` of `subscription_ids` (or find it: the same key again resumes it) and
    run it. Refused, with nothing written, when a subscription is not a candidate or more licenses are
    needed than `quantity` confirms."""
    uow = UnitOfWork(billing.storage)
    ids = list(dict.fromkeys(subscription_ids))
    if not ids or len(ids) > MAX_PER_MERGE:
        raise NothingSelected()
    existing = uow.subscriptions.merge(organisation.id, merge_id)
    if existing is not None:
        if sorted(existing.subscription_ids) != sorted(ids):
            raise MergeConflict()
        return run(billing, organisation.id, merge_id)
    if organisation.kind != "organisation":
        raise NotOrganisation()
    if organisation.status not in CHANGEABLE:
        raise NotChangeable(organisation.status)
    chosen = _chosen(uow, organisation, ids)
    organisation = _ensure_quantity(billing, actor, organisation, merge_id, chosen, quantity, proration_date)
    people = tuple(MergePerson(subscription_id=c.subscription.id, email=c.email, name=c.name,
                               language=c.subscription.language, bound_tid=c.bound_tid, bound_oid=c.bound_oid)
                   for c in chosen)

    def decide(current: Subscription) -> Plan[None]:
        if uow.subscriptions.merge(current.id, merge_id) is not None:
            return Plan(None)  # a concurrent request with the same key recorded it
        record = Merge(id=merge_id, actor=actor, people=people, quantity=current.quantity,
                       proration_date=proration_date)
        audit = AuditEntry(actor, "merge.started", target=f"{len(people)} individual subscriptions",
                           after={"merge": merge_id, "subscriptions": list(record.subscription_ids),
                                  "emails": [p.email for p in people]})
        return Plan(None, PartitionWrites(current, create=[record, audit]))

    uow.change(organisation.id, decide)
    return run(billing, organisation.id, merge_id)


def _chosen(uow: UnitOfWork, organisation: Subscription, ids: list[str]) -> list[Candidate]:
    chosen, refused = [], []
    for subscription_id in ids:
        # An id that cannot be a storage key as it is names no subscription (never a raw key).
        found = (_candidate(uow, organisation, uow.subscriptions.load(subscription_id))
                 if keys.usable(subscription_id) and len(subscription_id) <= 100
                 else None)
        if found is None or found.subscription.merged_into:
            refused.append(subscription_id)
        else:
            chosen.append(found)
    if refused:
        raise NotACandidate(refused)
    return chosen


def _ensure_quantity(billing: Billing, actor: Actor, organisation: Subscription, merge_id: str,
                     chosen: list[Candidate], quantity: int | None, proration_date: int | None) -> Subscription:
    """Raise the organisation's quantity first where its free licenses do not suffice, as the owner
    confirmed (`quantity` with the preview's `proration_date`); else refuse with the preview."""
    needed = sum(1 for c in chosen if not c.in_organisation)
    free = max(organisation.quantity - organisation.assigned_count, 0)
    if needed <= free:
        return organisation
    required = organisation.assigned_count + needed
    seats = stripe_seats(billing, organisation.id)
    if seats.quantity >= required:
        # Raised already (a retry of this merge, or at Stripe directly): the stored state catches up.
        _, after = refresh(organisation.id, billing, "merge")
        return after or organisation
    if quantity is None or quantity < required:
        preview = quantity_change.preview(billing, organisation, required)
        raise QuantityConfirmationRequired(required, needed, free, preview)
    changed = quantity_change.change(billing, actor, organisation, quantity, f"merge-{merge_id}", proration_date)
    return changed.subscription


# --- the steps -----------------------------------------------------------------------------------------------


def run(billing: Billing, organisation_id: str, merge_id: str) -> Merge:
    """Carry the merge as far as it goes; each step is recorded once done, so running it again (a
    retry, the timer, a completed merge) redoes nothing. A failure is recorded and raised."""
    uow = UnitOfWork(billing.storage)
    merge = load(uow, organisation_id, merge_id)
    if merge.status == COMPLETED:
        return merge
    try:
        for person in merge.people:
            if not person.done:
                _person(billing, uow, organisation_id, merge, person)
    except (Refused, StripeUnavailable, StorageUnavailable, ConcurrencyConflict) as exc:
        _record_error(uow, organisation_id, merge_id, f"{type(exc).__name__}: {exc}")
        raise
    return _complete(uow, organisation_id, merge_id)


def _person(billing: Billing, uow: UnitOfWork, organisation_id: str, merge: Merge, person: MergePerson) -> None:
    actor = merge.actor
    if not person.seat:
        _seat(uow, organisation_id, merge, person)
    else:
        # Done before; its lookup row may not have been written (the request died after the commit).
        seat = uow.subscriptions.seat(organisation_id, person.email)
        organisation = uow.load(organisation_id)
        if seat is not None:
            uow.run_after_commit(AfterCommit(put_licenses=[seat.lookup(organisation)]))
    if not person.cancelled:
        individual = _mark_merged(uow, organisation_id, merge, person)
        ends_at = _cancel(billing, actor, individual)
        _progress(uow, organisation_id, merge.id, person.subscription_id,
                  lambda p: replace(p, cancelled=True, ends_at=ends_at))
        person = replace(person, cancelled=True, ends_at=ends_at)
    if not person.mailed:
        organisation = uow.load(organisation_id)
        individual = uow.load(person.subscription_id)
        uow.run_after_commit(AfterCommit(mails=[merged_mail(billing, organisation, individual, person)]))
        _progress(uow, organisation_id, merge.id, person.subscription_id, lambda p: replace(p, mailed=True))


def _seat(uow: UnitOfWork, organisation_id: str, merge: Merge, person: MergePerson) -> None:
    """(1) The person's seat in the organisation subscription, bound as their old seat was; recorded
    in the merge row in the same transaction."""

    def decide(organisation: Subscription) -> Plan[None]:
        current = load(uow, organisation_id, merge.id)
        existing = uow.subscriptions.seat(organisation_id, person.email)
        if current.person(person.subscription_id).seat:
            return Plan(None, after=AfterCommit(put_licenses=[existing.lookup(organisation)] if existing else []))
        progressed = current.with_person(replace(current.person(person.subscription_id), seat=True))
        if existing is not None:
            # Licensed in the organisation already: nothing to add.
            return Plan(None, PartitionWrites(organisation, put=[progressed]),
                        AfterCommit(put_licenses=[existing.lookup(organisation)]))
        free = organisation.quantity - organisation.assigned_count
        if free < 1:
            raise NoSeatsFree(1, max(free, 0))
        sequence = max(organisation.seat_sequence, organisation.assigned_count) + 1
        now = datetime.now(UTC)
        seat = Seat.new(person.email, sequence=sequence, assigned_by=merge.actor.email or merge.actor.name,
                        request_id=merge.id, bound_tid=person.bound_tid, bound_oid=person.bound_oid, at=now)
        updated = replace(organisation, assigned_count=organisation.assigned_count + 1, seat_sequence=sequence,
                          updated_at=now)
        audit = AuditEntry(merge.actor, "license.assigned", target=person.email,
                           after={"merge": merge.id, "from_subscription": person.subscription_id})
        return Plan(None, PartitionWrites(updated, create=[seat, audit], put=[progressed]),
                    AfterCommit(put_licenses=[seat.lookup(updated)]))

    uow.change(organisation_id, decide)


def _mark_merged(uow: UnitOfWork, organisation_id: str, merge: Merge, person: MergePerson) -> Subscription:
    """The individual subscription remembers where it went (audited there); its seat is untouched."""

    def decide(individual: Subscription) -> Plan[Subscription]:
        if individual.merged_into == organisation_id:
            return Plan(individual)
        updated = replace(individual, merged_into=organisation_id, updated_at=datetime.now(UTC))
        audit = AuditEntry(merge.actor, "subscription.merged", target=organisation_id,
                           after={"merge": merge.id, "into": organisation_id, "email": person.email})
        return Plan(updated, PartitionWrites(updated, create=[audit]))

    return uow.change(person.subscription_id, decide)


def _cancel(billing: Billing, actor: Actor, individual: Subscription) -> datetime | None:
    """(2) Cancel at the end of the paid period in Stripe (once: cancelling again changes nothing). A
    switch of billing interval planned for its renewal is moot: withdrawn first (Stripe refuses to cancel a
    subscription its schedule manages)."""
    try:
        try:
            return cancellation.schedule(billing, actor, individual).ends_at
        except SwitchScheduled:
            interval_change.unschedule(billing, actor, individual)
            return cancellation.schedule(billing, actor, individual).ends_at
    except NotChangeable:
        return individual.current_period_end  # ended meanwhile: nothing left to cancel
    except SubscriptionNotFound:
        return individual.current_period_end


def _progress(uow: UnitOfWork, organisation_id: str, merge_id: str, subscription_id: str,
              step: Callable[[MergePerson], MergePerson]) -> None:
    def decide(organisation: Subscription) -> Plan[None]:
        current = load(uow, organisation_id, merge_id)
        person = current.person(subscription_id)
        changed = step(person)
        if changed == person:
            return Plan(None)
        return Plan(None, PartitionWrites(organisation, put=[current.with_person(changed)]))

    uow.change(organisation_id, decide)


def _record_error(uow: UnitOfWork, organisation_id: str, merge_id: str, error: str) -> None:
    def decide(organisation: Subscription) -> Plan[None]:
        current = load(uow, organisation_id, merge_id)
        return Plan(None, PartitionWrites(organisation, put=[replace(current, error=error[:500],
                                                                      updated_at=datetime.now(UTC))]))

    try:
        uow.change(organisation_id, decide)
    except Exception:  # noqa: BLE001 - storage may be what failed; the merge stays running either way
        log.warning("could not record the failure of merge %s on %s", merge_id, organisation_id, exc_info=True)


def _complete(uow: UnitOfWork, organisation_id: str, merge_id: str) -> Merge:
    def decide(organisation: Subscription) -> Plan[Merge]:
        current = load(uow, organisation_id, merge_id)
        if current.status == COMPLETED or not all(p.done for p in current.people):
            return Plan(current)
        done = replace(current, status=COMPLETED, error="", updated_at=datetime.now(UTC))
        audit = AuditEntry(current.actor, "merge.completed", target=f"{len(current.people)} individual subscriptions",
                           after={"merge": merge_id, "subscriptions": list(current.subscription_ids)})
        return Plan(done, PartitionWrites(organisation, create=[audit], put=[done]))

    return uow.change(organisation_id, decide)


def merged_mail(billing: Billing, organisation: Subscription, individual: Subscription,
                person: MergePerson) -> MailMessage:
    """(3) To the person, in their subscription's language: their individual subscription ends on
    `ends_on`, their organisation licenses them now; their invoices stay on their subscription page."""
    language: Language = "de" if individual.language == "de" else "en"
    ends = person.ends_at or individual.current_period_end
    return MailMessage(
        id="merged-" + hashlib.sha256(f"{organisation.id}|{individual.id}".encode()).hexdigest()[:40],
        template="merged",
        to=person.email,
        language=language,
        params={"organisation": organisation.owner_name or organisation.owner_email,
                "ends_on": ends.strftime("%Y-%m-%d") if ends else "",
                "subscription_url": subscription_url(billing.settings, individual.id)},
    )


# --- the timer ---------------------------------------------------------------------------------------------


def resume_open(billing: Billing, now: datetime | None = None) -> list[str]:
    """Continue every merge left running (its request died or failed) that nobody touched for a while."""
    now = now or datetime.now(UTC)
    uow = UnitOfWork(billing.storage)
    resumed = []
    for organisation_id, merge in list(uow.subscriptions.open_merges()):
        if merge.status != RUNNING or now - merge.updated_at < STALE_AFTER:
            continue
        try:
            run(billing, organisation_id, merge.id)
            resumed.append(merge.id)
        except (Refused, StripeUnavailable, StorageUnavailable, ConcurrencyConflict) as exc:
            log.warning("merge %s on %s still not complete: %s", merge.id, organisation_id, exc)
    return resumed
