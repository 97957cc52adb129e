"""Mail relay by churn is closed (issue 18, item 5): welcome and invitation mails are limited per
recipient and per subscription, and an assignment spreading over many unfamiliar domains needs
confirmation. The rules (README "Mail limits"):

- a welcome mail at most once per address and subscription per UTC day (assign, revoke, assign again:
  one mail), and at most `2 x quantity + 10` welcome mails per subscription per day;
- an invitation mail (a delegate's or a new owner's link) at most 3 times per address and subscription
  per day, at most 20 per subscription per day; beyond that the link is still shown to the owner, just
  not mailed;
- one assignment may add addresses of at most 3 domains new to the subscription (other than the owner's
  own domain) unless the request confirms them (`confirm_domains`).

Against the in-memory storage, through the services and the real delivery (the outbox sender).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.mail_senders import OutboxMailSender
from adapters.memory_storage import InMemoryStorage
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE
from services import delegation, seat_assignment, seat_revocation
from services.assignment_limits import DOMAINS_WITHOUT_CONFIRMATION, DomainsNeedConfirmation, check_domains
from services.mail.delivery import deliver
from services.seat_change import Context
from services.settings import load_settings
from services.unit_of_work import UnitOfWork
from tests.factories import local_values
from tests.unit.test_seat_changes import ADMIN, subscription

OUTSIDER = "outsider@elsewhere.example"


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def ctx(store: InMemoryStorage) -> Context:
    return Context(UnitOfWork(store), load_settings(local_values()), ADMIN)


def send_queued(store: InMemoryStorage, ctx: Context, outbox: Path) -> list[dict]:
    """Deliver every queued mail (as the queue trigger would); the mails that went out."""
    sender = OutboxMailSender(outbox, "noreply@securemailmerge.example")
    for body, _ in store.queues.pop(OUTBOUND_EMAIL_QUEUE, []):
        deliver(body, storage=store, sender=sender, settings=ctx.settings)
    return [json.loads(p.read_text()) for p in sorted(outbox.glob("*.json"))]


def test_assign_and_revoke_five_times_sends_one_welcome(store, ctx, tmp_path):
    subscription(store)
    for _ in range(5):
        seat_assignment.assign(ctx, "sub_1", [OUTSIDER])
        seat_revocation.revoke(ctx, "sub_1", OUTSIDER)
    sent = send_queued(store, ctx, tmp_path)
    assert [m["to"] for m in sent] == [OUTSIDER]


def test_reassigning_back_and_forth_welcomes_each_address_once_a_day(store, ctx, tmp_path):
    subscription(store)
    seat_assignment.assign(ctx, "sub_1", ["a@contoso.example"])
    for _ in range(3):
        seat_revocation.reassign(ctx, "sub_1", "a@contoso.example", OUTSIDER)
        seat_revocation.reassign(ctx, "sub_1", OUTSIDER, "a@contoso.example")
    sent = send_queued(store, ctx, tmp_path)
    assert sorted(m["to"] for m in sent) == ["a@contoso.example", OUTSIDER]


def test_welcomes_per_subscription_are_capped_by_its_quantity(store, ctx, tmp_path):
    subscription(store, quantity=2)  # at most 2 x 2 + 10 = 14 welcome mails a day
    for i in range(10):
        seat_assignment.assign(ctx, "sub_1", [f"u{i}a@contoso.example", f"u{i}b@contoso.example"])
        for address in (f"u{i}a@contoso.example", f"u{i}b@contoso.example"):
            seat_revocation.revoke(ctx, "sub_1", address)
    sent = send_queued(store, ctx, tmp_path)
    assert len(sent) == 14


def test_invitation_mails_are_limited_per_recipient_but_links_keep_working(store, ctx, tmp_path):
    subscription(store)
    links = []
    issued = delegation.invite(ctx.uow, ctx.settings, ADMIN, "sub_1", "it@contoso.example",
                               frozenset({"subscription.view"}))
    links.append(issued.link)
    for _ in range(5):
        links.append(delegation.resend(ctx.uow, ctx.settings, ADMIN, "sub_1", "it@contoso.example").link)
    sent = send_queued(store, ctx, tmp_path)
    assert len(sent) == 3 and {m["to"] for m in sent} == {"it@contoso.example"}
    assert len(set(links)) == 6  # every resend made a fresh link, shown to the owner


def test_a_suppressed_mail_is_not_retried_into_sending(store, ctx, tmp_path):
    subscription(store)
    delegation.invite(ctx.uow, ctx.settings, ADMIN, "sub_1", "it@contoso.example", frozenset({"subscription.view"}))
    for _ in range(4):
        delegation.resend(ctx.uow, ctx.settings, ADMIN, "sub_1", "it@contoso.example")
    queued = list(store.queues.get(OUTBOUND_EMAIL_QUEUE, []))
    assert len(send_queued(store, ctx, tmp_path)) == 3
    store.queues[OUTBOUND_EMAIL_QUEUE] = queued  # the queue delivers the same messages again
    assert len(send_queued(store, ctx, tmp_path)) == 3


# --- distinct domains -----------------------------------------------------------------------------------


def test_more_new_domains_than_the_threshold_need_confirmation(store, ctx):
    sub = subscription(store, quantity=20)
    many = [f"user@domain{i}.example" for i in range(DOMAINS_WITHOUT_CONFIRMATION + 1)]
    with pytest.raises(DomainsNeedConfirmation) as refused:
        check_domains(ctx.uow, sub, many + ["colleague@contoso.example"], confirmed=False)
    assert refused.value.domains == [f"domain{i}.example" for i in range(DOMAINS_WITHOUT_CONFIRMATION + 1)]
    assert refused.value.status == 409 and refused.value.code == "confirm_domains"
    check_domains(ctx.uow, sub, many, confirmed=True)
    # The owner's own domain and a few others need nothing.
    check_domains(ctx.uow, sub, many[:DOMAINS_WITHOUT_CONFIRMATION] + ["x@contoso.example"], confirmed=False)


def test_domains_already_in_the_subscription_are_familiar(store, ctx):
    sub = subscription(store, quantity=20)
    many = [f"user@domain{i}.example" for i in range(DOMAINS_WITHOUT_CONFIRMATION + 2)]
    seat_assignment.assign(ctx, "sub_1", many[:2])
    check_domains(ctx.uow, replace(sub, assigned_count=2), many, confirmed=False)
