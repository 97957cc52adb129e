"""Invoices by e-mail through the running stack (PRODUCT.md 2.13): the emulator finalizes an invoice and
announces a renewal with signed webhooks, the app under the local host applies them from the queue,
and the mail queue's trigger sends the mails, with the invoice PDF fetched from the emulator through
the real Stripe SDK, into the local outbox. tests/unit/test_invoice_mail.py covers the rules in detail."""

from __future__ import annotations

import base64
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.stripe_gateway import StripeGateway, as_dict
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE
from services import delegation
from services.audit import Actor
from services.checkout import start_checkout
from services.delegate import BILLING_MANAGE, LICENSES_ASSIGN, SUBSCRIPTION_VIEW, Acceptor
from services.fulfilment import fulfil
from services.i18n import format_money
from services.purchase import Interval
from services.subscription import Subscription
from services.unit_of_work import UnitOfWork
from tests.billing_support import own_stack
from tests.conftest import wait_for
from tests.license_fixtures import new_user, person_of, token_for
from tests.licenses_support import call


def _client(stack) -> Any:
    return StripeGateway(stack.settings).client()


# What the buyer types into Checkout (it requires the billing address).
BUYER_DETAILS = {"name": "Contoso Deutschland GmbH", "line1": "Hauptstraße 1", "postal_code": "10115",
                 "city": "Berlin", "country": "DE"}


def _owned(stack, language: str = "en", interval: Interval = "month") -> tuple[Subscription, dict]:
    """A subscription bought through Checkout and paid by card (3 licenses); its owner."""
    user = new_user(stack.identity_provider)
    buyer = person_of(user)
    url = start_checkout(StripeGateway(stack.settings), stack.settings, buyer, 3, "organisation", language,
                         attempt=uuid.uuid4().hex, interval=interval)
    session_id = url.rstrip("/").rsplit("/", 1)[-1]
    stack.emulator_control(f"checkout/{session_id}/pay", {"outcome": "paid", **BUYER_DETAILS})
    result = fulfil(session_id, storage=stack.storage(), stripe=StripeGateway(stack.settings),
                    buyer=(buyer.tid, buyer.oid))
    assert result.subscription is not None, result.outcome
    # The first invoice's event is applied before a test sets the accounting address (else it may be
    # mailed too, depending on which comes first).
    stack.settle()
    for finalized in _events(stack, "invoice.finalized", lambda obj: _subscription_of(obj) == result.subscription.id):
        _applied(stack, finalized["id"])
    return result.subscription, user


@pytest.fixture(scope="module")
def yearly_price(stack) -> str:
    """The annual seat price (same tiers, per year), created in the emulator once if its catalog has none."""
    client = _client(stack)
    key = stack.settings.stripe_yearly_price_lookup_key
    found = client.v1.prices.list(params={"lookup_keys": [key], "active": True, "limit": 1}).data
    if found:
        return str(found[0].id)
    price = client.v1.prices.create(params={
        "product": "securemailmerge", "currency": "eur", "recurring": {"interval": "year"},
        "billing_scheme": "tiered", "tiers_mode": "volume", "lookup_key": key,
        "tiers": [{"up_to": 9, "unit_amount": 6000}, {"up_to": "inf", "unit_amount": 4800}]})
    return str(price.id)


def _delegate(stack, sub: Subscription, owner_user: dict, *permissions: str) -> str:
    """A delegated administrator holding `permissions`; their address."""
    owner, who = person_of(owner_user), person_of(new_user(stack.identity_provider))
    uow = UnitOfWork(stack.storage())
    issued = delegation.invite(uow, stack.settings, Actor(owner.tid, owner.oid, owner.email, owner.name), sub.id,
                               who.email, frozenset(permissions))
    delegation.accept(uow, issued.token, Acceptor(who.tid, who.oid, who.name, who.email,
                                                  frozenset(who.sign_in_names)))
    return who.email


def _mails_to(stack, address: str, subject_part: str = "") -> list[dict]:
    return [m for m in stack.outbox() if m["to"] == address and subject_part in m["subject"]]


def _events(stack, event_type: str, matches) -> list[dict]:
    page = _client(stack).v1.events.list(params={"type": event_type, "limit": 100})
    return [as_dict(e) for e in page.data if matches(as_dict(e)["data"]["object"])]


def _subscription_of(invoice: dict) -> str | None:
    return ((invoice.get("parent") or {}).get("subscription_details") or {}).get("subscription")


def _applied(stack, event_id: str) -> None:
    from adapters.lookup_repository import LookupRepository

    lookups = LookupRepository(stack.storage())
    wait_for(lambda: lookups.event_applied(event_id), timeout=30, message=f"event {event_id} applied")


def _mail_queue_drained(stack) -> None:
    """Every queued mail was taken and sent (a queued mail is sent within a second or two locally)."""
    storage = stack.storage()
    wait_for(lambda: storage.queue_depth(OUTBOUND_EMAIL_QUEUE) == 0, timeout=30, message="mail queue drained")
    time.sleep(2)


def test_a_finalized_invoice_reaches_the_accounting_inbox_with_its_pdf_once(stack):
    sub, owner_user = _owned(stack, language="de")
    accounting = f"buchhaltung-{uuid.uuid4().hex[:8]}@contoso.example"
    status, answer, _ = call(stack.url, "PUT", f"/api/v1/subscriptions/{sub.id}/billing-settings",
                             token_for(stack, owner_user), {"accounting_email": accounting, "po_number": "4500012345"})
    assert status == 200, answer

    stack.emulator_control(f"subscriptions/{sub.id}/renew")  # the next period's invoice is finalized
    [mail] = wait_for(lambda: _mails_to(stack, accounting), timeout=60, message="invoice mail")

    invoice = as_dict(_client(stack).v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0])
    assert invoice["billing_reason"] == "subscription_cycle"
    assert invoice["number"] in mail["subject"]
    assert "Bestellnummer: 4500012345" in mail["text"] and invoice["hosted_invoice_url"] in mail["text"]
    [attachment] = mail["attachments"]
    assert (attachment["name"], attachment["contentType"]) == (f"Rechnung-{invoice['number']}.pdf",
                                                               "application/pdf")
    with urllib.request.urlopen(invoice["invoice_pdf"], timeout=10) as response:
        stripe_pdf = response.read()
    pdf = base64.b64decode(attachment["contentInBase64"])
    assert pdf == stripe_pdf and attachment["size"] == len(pdf) and pdf.startswith(b"%PDF")

    # Stripe delivers the event again: still one mail.
    [finalized] = _events(stack, "invoice.finalized", lambda obj: obj["id"] == invoice["id"])
    stack.emulator_control(f"events/{finalized['id']}/resend")
    stack.settle()
    _mail_queue_drained(stack)
    assert len(_mails_to(stack, accounting)) == 1
    # The first invoice (before the address was set) went to no accounting inbox.
    assert all(invoice["number"] in m["subject"] for m in _mails_to(stack, accounting))


# The seller an e-invoice names (SELLER_* settings); the session's stack runs without them.
SELLER = {"SELLER_LEGAL_NAME": "SecureMailMerge GmbH", "SELLER_STREET": "Beispielweg 2", "SELLER_POSTAL_CODE": "80331",
          "SELLER_CITY": "München", "SELLER_VAT_ID": "DE123456789", "SELLER_REGISTER": "Amtsgericht München, HRB 1",
          "SELLER_PHONE": "+49 89 123456"}


@pytest.fixture(scope="module")
def e_invoicing(identity_provider, tmp_path_factory):
    """An app configured for e-invoices, with its own Azurite and emulator (two hosts on one storage
    would take each other's messages)."""
    with own_stack(identity_provider, tmp_path_factory, **SELLER) as running:
        yield running


def test_with_e_invoices_configured_the_accounting_mail_carries_zugferd_and_xrechnung(e_invoicing):
    from facturx import get_facturx_xml_from_pdf

    stack = e_invoicing
    sub, owner_user = _owned(stack, language="de")
    accounting = f"buchhaltung-{uuid.uuid4().hex[:8]}@contoso.example"
    status, answer, _ = call(stack.url, "PUT", f"/api/v1/subscriptions/{sub.id}/billing-settings",
                             token_for(stack, owner_user), {"accounting_email": accounting})
    assert status == 200, answer

    stack.emulator_control(f"subscriptions/{sub.id}/renew")
    [mail] = wait_for(lambda: _mails_to(stack, accounting), timeout=60, message="invoice mail")
    invoice = as_dict(_client(stack).v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0])
    assert invoice["total_taxes"]  # 19 % German VAT: Stripe Tax with the buyer's address
    number = invoice["number"]
    assert [(a["name"], a["contentType"]) for a in mail["attachments"]] == [
        (f"{number}-xrechnung.xml", "application/xml"), (f"{number}-zugferd.pdf", "application/pdf")]
    xml, pdf = (base64.b64decode(a["contentInBase64"]) for a in mail["attachments"])
    assert number.encode() in xml and b"urn:xeinkauf.de:kosit:xrechnung" in xml
    embedded_name, embedded = get_facturx_xml_from_pdf(pdf)
    assert embedded_name == "factur-x.xml" and number.encode() in embedded
    assert f"Im Anhang: {number}-xrechnung.xml, {number}-zugferd.pdf" in mail["text"]


def test_a_yearly_renewal_reminds_the_owner_and_the_billing_delegates(stack, yearly_price):
    sub, owner_user = _owned(stack, interval="year")
    finance = _delegate(stack, sub, owner_user, BILLING_MANAGE, SUBSCRIPTION_VIEW)
    it = _delegate(stack, sub, owner_user, LICENSES_ASSIGN)
    owner = person_of(owner_user).email

    stack.emulator_control(f"subscriptions/{sub.id}/upcoming")
    reminders = wait_for(lambda: [m for address in (owner, finance) for m in _mails_to(stack, address, "renews")]
                         if all(_mails_to(stack, address, "renews") for address in (owner, finance)) else None,
                         timeout=60, message="renewal reminders")
    [notice] = _events(stack, "invoice.upcoming", lambda obj: _subscription_of(obj) == sub.id)
    upcoming = notice["data"]["object"]
    item = as_dict(_client(stack).v1.subscriptions.retrieve(sub.id))["items"]["data"][0]
    assert item["price"]["recurring"]["interval"] == "year"
    renews_on = datetime.fromtimestamp(item["current_period_end"], tz=UTC).date().isoformat()
    for mail in reminders:
        assert renews_on in mail["subject"] and "3 licenses" in mail["text"]
        assert format_money(upcoming["total"], upcoming["currency"], "en") in mail["text"]
        assert mail["attachments"] == []

    stack.emulator_control(f"events/{notice['id']}/resend")
    stack.settle()
    _mail_queue_drained(stack)
    assert _mails_to(stack, it, "renews") == []  # (it got its invitation)
    assert len(_mails_to(stack, owner, "renews")) == len(_mails_to(stack, finance, "renews")) == 1


def test_a_monthly_subscription_gets_no_renewal_reminder(stack):
    sub, owner_user = _owned(stack)
    stack.emulator_control(f"subscriptions/{sub.id}/upcoming")
    [notice] = wait_for(lambda: _events(stack, "invoice.upcoming", lambda obj: _subscription_of(obj) == sub.id),
                        message="invoice.upcoming sent")
    _applied(stack, notice["id"])
    _mail_queue_drained(stack)
    assert _mails_to(stack, person_of(owner_user).email, "renews") == []
