"""The setup checklist's rules against the in-memory storage: what the banner waits for, and the owner's
marks on optional steps (stored on the subscription, audited, nothing written for a repeat)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory_storage import InMemoryStorage
from adapters.subscription_repository import SubscriptionRepository
from services import setup_checklist, subscription_store
from services.audit import Actor
from services.setup_checklist import ASSIGN, CONSENT, DELEGATES, DONE, INSTALL, NOT_NEEDED, InvalidMark
from services.subscription import Subscription
from services.unit_of_work import SubscriptionNotFound, UnitOfWork

OWNER = Actor("tid-1", "oid-owner", "owner@contoso.example", "Owner")


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


def new_subscription(store: InMemoryStorage, assigned: int = 0) -> Subscription:
    sub = Subscription(id="sub_1", kind="organisation", status="active", quantity=5, assigned_count=assigned,
                       tenant_id="tid-1", owner_tid="tid-1", owner_oid="oid-owner", owner_email=OWNER.email,
                       owner_name=OWNER.name, language="en", stripe_customer_id="cus_1", checkout_session_id="cs_1",
                       current_period_end=datetime.now(UTC) + timedelta(days=30))
    assert subscription_store.create(store, sub)
    return sub


def audit_actions(store: InMemoryStorage) -> list[tuple[str, str, object, object]]:
    return [(e.action, e.target, e.before, e.after) for e in SubscriptionRepository(store).audit_entries("sub_1")]


def test_the_steps_in_order_and_what_the_banner_waits_for():
    sub = Subscription(id="s", kind="organisation", status="active", quantity=5, assigned_count=0, tenant_id="t",
                       owner_tid="t", owner_oid="o", owner_email="", owner_name="", language="en",
                       stripe_customer_id="", checkout_session_id="")
    steps = setup_checklist.steps(sub, consent_granted=False, has_delegate=False)
    assert [s.key for s in steps] == [ASSIGN, INSTALL, CONSENT, DELEGATES]
    assert [s.markable for s in steps] == [False, False, True, True]
    assert not setup_checklist.finished(steps)
    licensed = replace(sub, assigned_count=1)
    # Before: only granted consent ended the banner, even where no consent is needed.
    assert not setup_checklist.finished(setup_checklist.steps(licensed, consent_granted=False, has_delegate=True))
    assert setup_checklist.finished(setup_checklist.steps(licensed, consent_granted=True, has_delegate=False))
    for mark in (DONE, NOT_NEEDED):
        marked = replace(licensed, setup_consent=mark)
        assert setup_checklist.finished(setup_checklist.steps(marked, consent_granted=False, has_delegate=False))
    # Marks never stand in for the step the server can tell: licenses must be assigned.
    unlicensed = replace(sub, setup_consent=NOT_NEEDED, setup_delegates=NOT_NEEDED)
    assert not setup_checklist.finished(setup_checklist.steps(unlicensed, consent_granted=True, has_delegate=True))


def test_marking_a_step_stores_it_on_the_subscription_and_audits_it(store):
    new_subscription(store, assigned=2)
    uow = UnitOfWork(store)
    marked = setup_checklist.mark(uow, OWNER, "sub_1", CONSENT, NOT_NEEDED)
    stored = subscription_store.load(store, "sub_1")
    assert stored is not None and stored.setup_consent == NOT_NEEDED == marked.setup_consent
    assert setup_checklist.finished(setup_checklist.steps(stored, consent_granted=False, has_delegate=False))
    assert audit_actions(store)[0] == ("setup.step_marked", CONSENT, {"mark": None}, {"mark": NOT_NEEDED})

    setup_checklist.mark(uow, OWNER, "sub_1", DELEGATES, DONE)
    setup_checklist.mark(uow, OWNER, "sub_1", CONSENT, "")  # taken back
    stored = subscription_store.load(store, "sub_1")
    assert stored is not None and (stored.setup_consent, stored.setup_delegates) == ("", DONE)
    assert audit_actions(store)[0] == ("setup.step_marked", CONSENT, {"mark": NOT_NEEDED}, {"mark": None})


def test_marking_again_as_it_is_writes_nothing(store):
    new_subscription(store)
    uow = UnitOfWork(store)
    setup_checklist.mark(uow, OWNER, "sub_1", DELEGATES, NOT_NEEDED)
    before = subscription_store.load(store, "sub_1")
    setup_checklist.mark(uow, OWNER, "sub_1", DELEGATES, NOT_NEEDED)
    after = subscription_store.load(store, "sub_1")
    assert before is not None and after is not None and before.etag == after.etag
    assert len(audit_actions(store)) == 1


@pytest.mark.parametrize("step, mark, field", [
    (ASSIGN, DONE, "step"),  # the server tells whether licenses are assigned
    (INSTALL, DONE, "step"),
    ("", DONE, "step"),
    (CONSENT, "maybe", "mark"),
    (CONSENT, "DONE", "mark"),
])
def test_a_step_that_cannot_be_marked_or_an_unknown_mark_is_refused_naming_the_field(store, step, mark, field):
    new_subscription(store)
    with pytest.raises(InvalidMark) as refused:
        setup_checklist.mark(UnitOfWork(store), OWNER, "sub_1", step, mark)
    assert refused.value.field == field and refused.value.status == 400
    stored = subscription_store.load(store, "sub_1")
    assert stored is not None and (stored.setup_consent, stored.setup_delegates) == ("", "")
    assert audit_actions(store) == []


def test_an_unknown_subscription(store):
    with pytest.raises(SubscriptionNotFound):
        setup_checklist.mark(UnitOfWork(store), OWNER, "sub_nope", CONSENT, DONE)
