"""Merging individual subscriptions into the organisation subscription (issue 13, PRODUCT.md capability 6),
through real HTTP against the running app: identity-provider tokens, the Stripe emulator's checkouts
(individual purchases are real `kind=individual` checkouts), license checks through `GET /api/license`.
"""

from __future__ import annotations

import uuid

import pytest

from adapters.stripe_gateway import StripeGateway, StripeUnavailable
from adapters.table_storage import SUBSCRIPTIONS, USER_LICENSES
from services import delegation, merge, subscription_store
from services.audit import Actor
from services.billing_events import Billing
from services.delegate import DELEGABLE, Acceptor
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from services.web_session import Person
from tests.builders import purchased_subscription
from tests.conftest import wait_for
from tests.license_fixtures import CONTOSO_ID, FABRIKAM_ID, check, new_user, token_for
from tests.licenses_support import call


def _person(user: dict) -> Person:
    return Person(tid=user["tenant_id"], oid=user["oid"], name=user["name"],
                  email=user.get("email") or user["preferred_username"])


def _individuals(stack, tenant: str, count: int, language: str = "en") -> list[tuple[dict, Subscription]]:
    out = []
    for _ in range(count):
        user = new_user(stack.identity_provider, tenant)
        out.append((user, purchased_subscription(stack, _person(user), quantity=1, kind="individual",
                                                 language=language)))
    return out


def _licensed_by(stack, user: dict) -> tuple[bool, str | None]:
    answer = check(stack.url, token_for(stack, user))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["valid"], (body.get("subscription") or {}).get("id")


def _merge(stack, token: str, sub_id: str, key: str, body: dict) -> tuple[int, dict]:
    status, answer, _ = call(stack.url, "POST", f"/api/v1/subscriptions/{sub_id}/merges", token, body,
                             headers={"Idempotency-Key": key})
    return status, answer


def _snapshot(stack, ids: list[str]) -> list:
    storage = stack.storage()
    rows = [(r["PartitionKey"], r["RowKey"], r.etag) for sub_id in ids
            for r in storage.query(SUBSCRIPTIONS, partition_key=sub_id)]
    lookups = [(r["PartitionKey"], r["RowKey"], r.etag) for sub_id in ids
               for r in storage.query(USER_LICENSES, where="RowKey eq @s", parameters={"s": sub_id})]
    return sorted(rows) + sorted(lookups)


@pytest.fixture
def owner_user(stack) -> dict:
    return new_user(stack.identity_provider, CONTOSO_ID)


def test_merge_three_individuals_of_the_tenant(stack, owner_user):
    owner = _person(owner_user)
    token = token_for(stack, owner_user)
    organisation = purchased_subscription(stack, owner, quantity=2)
    ours = _individuals(stack, CONTOSO_ID, 3, language="de")
    (foreign_user, foreign), = _individuals(stack, FABRIKAM_ID, 1)
    our_ids = sorted(sub.id for _, sub in ours)

    # Candidates: our three, never the other tenant's.
    status, body, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{organisation.id}/merge-candidates", token)
    assert status == 200, body
    offered = {c["subscription_id"]: c for c in body["candidates"]}
    assert set(our_ids) <= set(offered)
    assert foreign.id not in offered
    assert all(c["status"] == "active" and c["paid_until"] for c in offered.values())
    assert {offered[s.id]["email"] for _, s in ours} == {s.owner_email.lower() for _, s in ours}

    # Before: each is licensed by their own individual subscription.
    for user, sub in ours:
        assert _licensed_by(stack, user) == (True, sub.id)

    # Two licenses free at most, three needed: the preview first, nothing written.
    key = f"merge-{uuid.uuid4().hex[:8]}"
    before = _snapshot(stack, [organisation.id, *our_ids])
    status, refused = _merge(stack, token, organisation.id, key, {"subscriptions": our_ids})
    assert status == 409 and refused["error"] == "quantity_confirmation_required", refused
    assert refused["quantity"] == 3 and refused["needed"] == 3 and refused["free"] == 2
    assert refused["preview"]["quantity"] == {"current": 2, "new": 3}
    assert _snapshot(stack, [organisation.id, *our_ids]) == before

    # Another tenant's subscription is refused outright.
    status, bad = _merge(stack, token, organisation.id, f"bad-{uuid.uuid4().hex[:6]}",
                         {"subscriptions": [*our_ids, foreign.id]})
    assert status == 409 and bad["error"] == "not_a_candidate" and bad["subscriptions"] == [foreign.id]

    # Confirmed: quantity raised, everyone merged.
    status, done = _merge(stack, token, organisation.id, key, {
        "subscriptions": our_ids, "quantity": 3, "proration_date": refused["preview"]["proration_date"]})
    assert status == 201, done
    assert done["status"] == "completed" and all(p["done"] for p in done["people"])

    gateway = StripeGateway(stack.settings)
    assert gateway.subscription(organisation.id)["items"]["data"][0]["quantity"] == 3
    for user, sub in ours:
        # Licensed through the organisation now (the individual one is ending) ...
        assert _licensed_by(stack, user) == (True, organisation.id)
        # ... which cancels at the end of its paid period in Stripe.
        assert gateway.subscription(sub.id)["cancel_at_period_end"] is True
        stored = subscription_store.load(stack.storage(), sub.id)
        assert stored is not None and stored.merged_into == organisation.id
    assert _licensed_by(stack, foreign_user) == (True, foreign.id)

    # Each person is told in their language, once.
    for _user, sub in ours:
        def merge_mails(owner_email: str = sub.owner_email) -> list[dict]:
            return [m for m in stack.outbox() if m["to"] == owner_email and "lizenziert dich jetzt" in m["subject"]]

        mails = wait_for(merge_mails, timeout=30, message=f"merge mail to {sub.owner_email}")
        assert len(mails) == 1

    # Audit on both sides.
    status, audit, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{organisation.id}/audit", token)
    assert status == 200, audit
    assert {"merge.started", "merge.completed", "license.assigned"} <= {e["action"] for e in audit["entries"]}
    individual_audit = [e.action for e in UnitOfWork(stack.storage()).subscriptions.audit_entries(ours[0][1].id)]
    assert "subscription.merged" in individual_audit and "cancellation.scheduled" in individual_audit

    # The former buyer keeps their own subscription, with its invoices.
    first_user, first_sub = ours[0]
    status, invoices, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{first_sub.id}/invoices",
                               token_for(stack, first_user))
    assert status == 200 and invoices["invoices"], invoices

    # Running it again changes nothing; merging the same people under a new key is refused.
    stack.settle()
    settled = _snapshot(stack, [organisation.id, *our_ids])
    status, again = _merge(stack, token, organisation.id, key, {"subscriptions": our_ids})
    assert status == 200 and again["status"] == "completed"
    status, other = _merge(stack, token, organisation.id, f"again-{uuid.uuid4().hex[:6]}", {"subscriptions": our_ids})
    assert status == 409 and other["error"] == "not_a_candidate"
    assert _snapshot(stack, [organisation.id, *our_ids]) == settled
    status, progress, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{organisation.id}/merges/{key}", token)
    assert status == 200 and progress["status"] == "completed" and len(progress["people"]) == 3
    status, candidates, _ = call(stack.url, "GET", f"/api/v1/subscriptions/{organisation.id}/merge-candidates", token)
    assert not set(our_ids) & {c["subscription_id"] for c in candidates["candidates"]}


class _FailingStripe(StripeGateway):
    """The real gateway, with the individual subscriptions' cancellation failing from the third on; checks
    every merged person's license over HTTP before each cancellation (no gap between the steps)."""

    def __init__(self, stack, users: list[dict], fail_from: int):
        super().__init__(stack.settings)
        self.stack, self.users, self.fail_from, self.calls = stack, users, fail_from, 0
        self.checks: list[list[tuple[bool, str | None]]] = []

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool):
        self.checks.append([_licensed_by(self.stack, u) for u in self.users])
        self.calls += 1
        if self.calls >= self.fail_from:
            raise StripeUnavailable("injected: Stripe is down")
        return super().set_cancel_at_period_end(subscription_id, cancel)


def test_merge_failing_after_the_second_person_resumes_without_a_gap(stack, owner_user):
    owner = _person(owner_user)
    token = token_for(stack, owner_user)
    organisation = purchased_subscription(stack, owner, quantity=5)
    ours = _individuals(stack, CONTOSO_ID, 3)
    users = [u for u, _ in ours]
    ids = [s.id for _, s in ours]
    key = f"resume-{uuid.uuid4().hex[:8]}"

    failing = _FailingStripe(stack, users, fail_from=3)
    billing = Billing(storage=stack.storage(), stripe=failing, settings=stack.settings)
    actor = Actor(owner.tid, owner.oid, owner.email, owner.name)
    with pytest.raises(StripeUnavailable):
        merge.start(billing, actor, organisation, key, ids)
    assert all(valid for step in failing.checks for valid, _ in step), failing.checks

    half = merge.load(UnitOfWork(stack.storage()), organisation.id, key)
    assert half.status == "running" and "injected" in half.error
    assert [p.cancelled for p in half.people] == [True, True, False]
    assert all(p.seat for p in half.people)  # the third's new license came before its cancellation
    gateway = StripeGateway(stack.settings)
    assert [gateway.subscription(i)["cancel_at_period_end"] for i in ids] == [True, True, False]
    for user in users:
        assert _licensed_by(stack, user) == (True, organisation.id)

    # The same request again completes it.
    status, done = _merge(stack, token, organisation.id, key, {"subscriptions": ids})
    assert status == 200 and done["status"] == "completed", done
    assert [gateway.subscription(i)["cancel_at_period_end"] for i in ids] == [True, True, True]
    for user in users:
        assert _licensed_by(stack, user) == (True, organisation.id)
    seats = {s.email: s for s in UnitOfWork(stack.storage()).subscriptions.seats(organisation.id)}
    for user, sub in ours:
        seat = seats[sub.owner_email.lower()]
        assert (seat.bound_tid, seat.bound_oid) == (user["tenant_id"], user["oid"])
    assert subscription_store.load(stack.storage(), organisation.id).assigned_count == 3
    stack.settle()
    settled = _snapshot(stack, [organisation.id, *ids])
    status, again = _merge(stack, token, organisation.id, key, {"subscriptions": ids})
    assert status == 200 and _snapshot(stack, [organisation.id, *ids]) == settled


def test_the_timer_completes_a_half_done_merge(stack, owner_user):
    owner = _person(owner_user)
    organisation = purchased_subscription(stack, owner, quantity=3)
    ours = _individuals(stack, CONTOSO_ID, 2)
    ids = [s.id for _, s in ours]
    key = f"timer-{uuid.uuid4().hex[:8]}"
    failing = _FailingStripe(stack, [], fail_from=1)
    actor = Actor(owner.tid, owner.oid, owner.email, owner.name)
    with pytest.raises(StripeUnavailable):
        merge.start(Billing(stack.storage(), failing, stack.settings), actor, organisation, key, ids)
    billing = Billing(stack.storage(), StripeGateway(stack.settings), stack.settings)
    from datetime import UTC, datetime
    resumed = merge.resume_open(billing, now=datetime.now(UTC) + merge.STALE_AFTER * 2)
    assert key in resumed
    assert merge.load(UnitOfWork(stack.storage()), organisation.id, key).status == "completed"


def test_a_delegate_with_every_permission_cannot_merge(stack, owner_user):
    owner = _person(owner_user)
    organisation = purchased_subscription(stack, owner, quantity=3)
    (user, individual), = _individuals(stack, CONTOSO_ID, 1)
    delegate_user = new_user(stack.identity_provider, CONTOSO_ID)
    who = _person(delegate_user)
    uow = UnitOfWork(stack.storage())
    issued = delegation.invite(uow, stack.settings, Actor(owner.tid, owner.oid, owner.email), organisation.id,
                               who.email, frozenset(DELEGABLE))
    delegation.accept(uow, issued.token, Acceptor(who.tid, who.oid, who.name, who.email,
                                                  frozenset({who.email.lower()})))
    token = token_for(stack, delegate_user)
    before = _snapshot(stack, [organisation.id, individual.id])
    attempts = (("GET", "merge-candidates", None), ("POST", "merges", {"subscriptions": [individual.id]}))
    for method, path, body in attempts:
        status, answer, _ = call(stack.url, method, f"/api/v1/subscriptions/{organisation.id}/{path}", token, body,
                                 headers={"Idempotency-Key": "delegate-try"})
        assert status == 403 and answer["permission"] == "owner", answer
    assert _snapshot(stack, [organisation.id, individual.id]) == before
    assert _licensed_by(stack, user) == (True, individual.id)


def test_merging_an_individual_with_a_planned_annual_switch_withdraws_the_switch(stack, owner_user):
    owner = _person(owner_user)
    organisation = purchased_subscription(stack, owner, quantity=2)
    (user, individual), = _individuals(stack, CONTOSO_ID, 1)
    status, planned, _ = call(stack.url, "PUT", f"/api/v1/subscriptions/{individual.id}/billing-interval",
                              token_for(stack, user), {"interval": "year"},
                              headers={"Idempotency-Key": f"annual-{uuid.uuid4().hex[:8]}"})
    assert status == 200, planned
    gateway = StripeGateway(stack.settings)
    assert gateway.subscription(individual.id)["schedule"]

    status, done = _merge(stack, token_for(stack, owner_user), organisation.id, f"merge-{uuid.uuid4().hex[:8]}",
                          {"subscriptions": [individual.id]})
    assert status == 201 and done["status"] == "completed", done
    ending = gateway.subscription(individual.id)
    assert ending["cancel_at_period_end"] is True and not ending["schedule"]  # no switch for an ending one
    assert _licensed_by(stack, user) == (True, organisation.id)
