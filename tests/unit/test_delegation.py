"""Delegated administration through the unit of work, against the in-memory storage (no Azurite).

Invitations, acceptance, management and ownership transfer; the HTTP side (pages, API, the gate)
is tested in tests/integration/test_delegation_api.py and the browser test.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters import keys
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import INVITATIONS, SUBSCRIPTIONS, USER_SUBSCRIPTIONS
from services import delegation, subscription_store
from services.audit import Actor
from services.delegate import (
    BILLING_MANAGE,
    DELEGABLE,
    LICENSES_ASSIGN,
    SUBSCRIPTION_VIEW,
    Acceptor,
    InvalidPermissions,
    parse_permissions,
    token_hash,
)
from services.settings import load_settings
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.factories import local_values
from tests.mail_support import queued_mails

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER_TENANT = "22222222-2222-2222-2222-222222222222"
OWNER = Actor(TENANT, "oid-owner", "owner@contoso.example", "Olivia Owner")
IT = Acceptor(TENANT, "oid-it", "Ian IT", "it@contoso.example", frozenset({"ian@contoso.onmicrosoft.com"}))


@pytest.fixture
def store() -> InMemoryStorage:
    store = InMemoryStorage()
    assert subscription_store.create(store, Subscription(
        id="sub_1", kind="organisation", status="active", quantity=5, assigned_count=0, tenant_id=TENANT,
        owner_tid=TENANT, owner_oid="oid-owner", owner_email="owner@contoso.example", owner_name="Contoso GmbH",
        language="de", stripe_customer_id="cus_1", checkout_session_id="cs_1",
        current_period_end=datetime.now(UTC) + timedelta(days=30)))
    return store


@pytest.fixture
def uow(store: InMemoryStorage) -> UnitOfWork:
    return UnitOfWork(store)


@pytest.fixture
def settings():
    return load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true", INVITATION_DAYS="7"))


def invite_it(uow, settings, permissions=frozenset({LICENSES_ASSIGN, SUBSCRIPTION_VIEW})):
    return delegation.invite(uow, settings, OWNER, "sub_1", "IT@contoso.example", permissions)


def test_permissions_are_checked_before_anything_is_written():
    assert parse_permissions(["licenses.assign", " subscription.view "]) == {LICENSES_ASSIGN, SUBSCRIPTION_VIEW}
    with pytest.raises(InvalidPermissions, match="owner"):
        parse_permissions(["owner"])  # the owner's own powers cannot be delegated
    with pytest.raises(InvalidPermissions):
        parse_permissions([])


def test_an_invitation_stores_only_the_token_hash_and_mails_the_link(store, uow, settings):
    issued = invite_it(uow, settings)
    assert len(issued.token) >= 43 and issued.link == f"{settings.public_base_url}/api/invitations/{issued.token}"
    row = store.get(SUBSCRIPTIONS, "sub_1", keys.invitation_row("delegate", "it@contoso.example"))
    assert row["TokenHash"] == token_hash(issued.token)
    assert issued.token not in json.dumps(row, default=str)
    assert store.get(INVITATIONS, token_hash(issued.token), keys.INVITATION_LOOKUP_ROW)["SubscriptionId"] == "sub_1"
    assert row["ExpiresAt"] - row["CreatedAt"] == timedelta(days=7)
    [mail] = queued_mails(store)
    assert mail["template"] == "invitation" and mail["to"] == "it@contoso.example" and mail["language"] == "de"
    assert mail["params"]["link"] == issued.link and mail["params"]["inviter"] == "Olivia Owner"
    assert mail["params"]["permissions"][0].startswith("Lizenzen zuweisen/entziehen")
    entries = [e.action for e in uow.subscriptions.audit_entries("sub_1")]
    assert entries == ["delegate.invited"]


def test_describing_a_link_changes_nothing(store, uow, settings):
    issued = invite_it(uow, settings)
    before = {k: dict(v) for k, v in store._rows(SUBSCRIPTIONS).items()}
    view = delegation.describe(uow, issued.token)
    assert view.invitation.email == "it@contoso.example" and view.subscription.id == "sub_1"
    assert {k: dict(v) for k, v in store._rows(SUBSCRIPTIONS).items()} == before


def test_accepting_binds_the_person_and_lists_the_subscription_for_them(store, uow, settings):
    issued = invite_it(uow, settings)
    accepted = delegation.accept(uow, issued.token, IT)
    assert accepted.kind == "delegate"
    [delegate] = uow.subscriptions.delegates("sub_1")
    assert (delegate.tid, delegate.oid, delegate.email) == (TENANT, "oid-it", "it@contoso.example")
    assert delegate.permissions == {LICENSES_ASSIGN, SUBSCRIPTION_VIEW}
    assert uow.subscriptions.invitations("sub_1") == []
    assert store.get(INVITATIONS, token_hash(issued.token), keys.INVITATION_LOOKUP_ROW) is None
    assert store.get(USER_SUBSCRIPTIONS, keys.person(TENANT, "oid-it"), "sub_1")["Role"] == "delegate"
    with pytest.raises(delegation.InvitationUnusable) as used:
        delegation.accept(uow, issued.token, IT)
    assert used.value.reason == "invitation_invalid"


def test_a_sign_in_name_other_than_the_mail_address_matches(uow, settings):
    issued = delegation.invite(uow, settings, OWNER, "sub_1", "ian@contoso.onmicrosoft.com",
                               frozenset({SUBSCRIPTION_VIEW}))
    delegation.accept(uow, issued.token, IT)
    assert [d.oid for d in uow.subscriptions.delegates("sub_1")] == ["oid-it"]


def test_another_account_or_another_tenant_cannot_accept(uow, settings):
    issued = invite_it(uow, settings)
    with pytest.raises(delegation.WrongAccount):
        delegation.accept(uow, issued.token, replace(IT, oid="oid-x", email="x@contoso.example",
                                                     sign_in_names=frozenset()))
    with pytest.raises(delegation.WrongTenant):
        delegation.accept(uow, issued.token, replace(IT, tid=OTHER_TENANT))
    assert uow.subscriptions.delegates("sub_1") == []
    delegation.accept(uow, issued.token, IT)  # still usable by the invited account


def test_expired_resent_revoked_and_tampered_links(store, uow, settings):
    issued = invite_it(uow, settings)
    renewed = delegation.resend(uow, settings, OWNER, "sub_1", "it@contoso.example")
    for token in (issued.token, issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"), "short", "a/b" * 20):
        with pytest.raises(delegation.InvitationUnusable):
            delegation.describe(uow, token)
    assert len({m["id"] for m in queued_mails(store)}) == 2  # the resend mailed the new link
    row = store.get(SUBSCRIPTIONS, "sub_1", keys.invitation_row("delegate", "it@contoso.example"))
    store.upsert(SUBSCRIPTIONS, {**row, "ExpiresAt": datetime.now(UTC) - timedelta(seconds=1)})
    with pytest.raises(delegation.InvitationUnusable) as expired:
        delegation.accept(uow, renewed.token, IT)
    assert expired.value.reason == "invitation_expired"
    again = delegation.resend(uow, settings, OWNER, "sub_1", "it@contoso.example")
    delegation.revoke_invitation(uow, OWNER, "sub_1", "it@contoso.example")
    with pytest.raises(delegation.InvitationUnusable):
        delegation.accept(uow, again.token, IT)


def test_two_parallel_accepts_exactly_one_wins(store, settings):
    uow = UnitOfWork(store)
    issued = invite_it(uow, settings)
    other = replace(IT, oid="oid-it-2")  # the same invited address, two sessions of two accounts
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def attempt(who: Acceptor) -> None:
        barrier.wait()
        try:
            outcomes.append(delegation.accept(UnitOfWork(store), issued.token, who))
        except delegation.InvitationUnusable as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(who,)) for who in (IT, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(o, delegation.Accepted) for o in outcomes) == 1
    assert len(uow.subscriptions.delegates("sub_1")) == 1


def test_managing_delegates(store, uow, settings):
    delegation.accept(uow, invite_it(uow, settings).token, IT)
    with pytest.raises(delegation.AlreadyDelegate):
        invite_it(uow, settings)
    with pytest.raises(delegation.IsOwner):
        delegation.invite(uow, settings, OWNER, "sub_1", "owner@contoso.example", frozenset({SUBSCRIPTION_VIEW}))
    delegation.change_permissions(uow, OWNER, "sub_1", "it@contoso.example", frozenset({BILLING_MANAGE}))
    assert uow.subscriptions.delegate("sub_1", TENANT, "oid-it").permissions == {BILLING_MANAGE}
    delegation.remove(uow, OWNER, "sub_1", "it@contoso.example")
    assert uow.subscriptions.delegate("sub_1", TENANT, "oid-it") is None
    assert store.get(USER_SUBSCRIPTIONS, keys.person(TENANT, "oid-it"), "sub_1") is None
    with pytest.raises(delegation.NoSuchDelegate):
        delegation.remove(uow, OWNER, "sub_1", "it@contoso.example")
    actions = [e.action for e in uow.subscriptions.audit_entries("sub_1")]
    assert set(actions) >= {"delegate.invited", "delegate.accepted", "delegate.permissions_changed",
                            "delegate.removed"}


def test_ownership_transfer_keeps_exactly_one_owner(store, uow, settings):
    delegation.accept(uow, invite_it(uow, settings).token, IT)
    offer = delegation.offer_ownership(uow, settings, OWNER, "sub_1", "it@contoso.example", "delegate", False)
    accepted = delegation.accept(uow, offer.token, IT)
    assert accepted.kind == "owner"
    sub = subscription_store.load(store, "sub_1")
    assert (sub.owner_tid, sub.owner_oid, sub.owner_email) == (TENANT, "oid-it", "it@contoso.example")
    # The new owner's delegate row is gone; the former owner is a delegate with every delegable permission.
    former = uow.subscriptions.delegate("sub_1", TENANT, "oid-owner")
    assert former is not None and former.permissions == frozenset(DELEGABLE)
    assert uow.subscriptions.delegate("sub_1", TENANT, "oid-it") is None
    assert store.get(USER_SUBSCRIPTIONS, keys.person(TENANT, "oid-it"), "sub_1")["Role"] == "owner"
    assert store.get(USER_SUBSCRIPTIONS, keys.person(TENANT, "oid-owner"), "sub_1")["Role"] == "delegate"


class FakeStripe:
    def __init__(self) -> None:
        self.updates: list[tuple[str, str]] = []

    def update_customer_email(self, customer_id: str, email: str) -> None:
        self.updates.append((customer_id, email))


def test_a_former_owner_may_leave_and_billing_may_follow(store, uow, settings):
    offer = delegation.offer_ownership(uow, settings, OWNER, "sub_1", "it@contoso.example", "leave", True)
    stripe = FakeStripe()
    delegation.accept(uow, offer.token, IT, stripe)
    assert uow.subscriptions.delegates("sub_1") == []
    assert store.get(USER_SUBSCRIPTIONS, keys.person(TENANT, "oid-owner"), "sub_1") is None
    assert stripe.updates == [("cus_1", "it@contoso.example")]


def test_a_newer_offer_replaces_an_older_one(uow, settings):
    first = delegation.offer_ownership(uow, settings, OWNER, "sub_1", "a@contoso.example", "delegate", False)
    delegation.offer_ownership(uow, settings, OWNER, "sub_1", "it@contoso.example", "delegate", False)
    assert [i.email for i in uow.subscriptions.invitations("sub_1")] == ["it@contoso.example"]
    with pytest.raises(delegation.InvitationUnusable):
        delegation.describe(uow, first.token)


def test_expired_invitations_are_purged(store, uow, settings):
    issued = invite_it(uow, settings)
    kept = delegation.invite(uow, settings, OWNER, "sub_1", "later@contoso.example", frozenset({SUBSCRIPTION_VIEW}))
    assert delegation.purge_expired(uow, datetime.now(UTC) + timedelta(days=8)) == 2
    assert uow.subscriptions.invitations("sub_1") == []
    assert store.get(INVITATIONS, token_hash(issued.token), keys.INVITATION_LOOKUP_ROW) is None
    assert store.get(INVITATIONS, token_hash(kept.token), keys.INVITATION_LOOKUP_ROW) is None
    assert delegation.purge_expired(uow) == 0
