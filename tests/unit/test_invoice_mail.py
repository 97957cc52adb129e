"""Invoices by e-mail (PRODUCT.md 2.13) against the in-memory storage and a fake Stripe: the accounting
mail on `invoice.finalized` with the invoice's documents attached when it is sent, and the reminder
before an annual renewal on `invoice.upcoming`. tests/integration/test_invoice_mail.py runs the same
path through the local host, the Stripe emulator and the real SDK."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.mail_senders import MAX_REQUEST_BYTES, MailTooLarge, OutboxMailSender
from adapters.memory_storage import InMemoryStorage
from adapters.stripe_gateway import StripeNotFound, StripeUnavailable
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, SENT_MAIL
from services import invoice_attachments, subscription_store
from services.billing_events import Billing, apply
from services.delegate import BILLING_MANAGE, LICENSES_ASSIGN, QUANTITY_MANAGE, SUBSCRIPTION_VIEW, Delegate
from services.mail.delivery import UndeliverableMessage, deliver
from services.mail.message import Attachment, MailMessage
from services.mail.render import RenderedMail
from services.settings import load_settings
from services.subscription import Subscription
from tests.factories import local_values
from tests.mail_support import queued_mails

DAY = 86400
RENEWAL = 1_798_761_600  # 2027-01-01 00:00 UTC
PDF = b"%PDF-1.4\n% the invoice\n"


class FakeStripe:
    """What services/invoice_mail.py calls on adapters.stripe_gateway.StripeGateway."""

    def __init__(self) -> None:
        self.invoices: dict[str, dict[str, Any]] = {}
        self.interval = "year"
        self.unavailable = False
        self.pdf_downloads = 0
        self.subscription_reads = 0

    def _check(self) -> None:
        if self.unavailable:
            raise StripeUnavailable("connection refused")

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        self._check()
        if invoice_id not in self.invoices:
            raise StripeNotFound(f"No such invoice: '{invoice_id}'")
        return copy.deepcopy(self.invoices[invoice_id])

    def invoice_pdf(self, invoice: dict[str, Any], timeout: float = 30.0) -> bytes:
        self._check()
        self.pdf_downloads += 1
        return PDF

    def tax_rate(self, tax_rate_id: str) -> dict[str, Any]:
        self._check()
        return {"id": tax_rate_id, "object": "tax_rate", "percentage": 19.0, "tax_type": "vat"}

    def funding_iban(self, customer_id: str) -> dict[str, str] | None:
        self._check()
        return {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "account_holder_name": "SecureMailMerge"}

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        self._check()
        self.subscription_reads += 1
        return {"id": subscription_id, "object": "subscription", "status": "active",
                "items": {"data": [{"id": "si_1", "quantity": 12,
                                    "price": {"id": "price_1", "recurring": {"interval": self.interval}}}]}}


class RecordingSender:
    def __init__(self) -> None:
        self.mails: list[RenderedMail] = []

    def send(self, mail: RenderedMail) -> str:
        self.mails.append(mail)
        return f"provider-{len(self.mails)}"


@pytest.fixture
def store() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def settings():
    return load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true"))


@pytest.fixture
def stripe() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
def billing(store, stripe, settings) -> Billing:
    return Billing(storage=store, stripe=stripe, settings=settings)


def subscription(store: InMemoryStorage, *, accounting_email: str = "", po_number: str = "",
                 language: str = "de", delegates: tuple[Delegate, ...] = (), **changes: Any) -> Subscription:
    sub = Subscription(id="sub_1", kind="organisation", status="active", quantity=12, assigned_count=0,
                       tenant_id="tid-1", owner_tid="tid-1", owner_oid="oid-owner", owner_email="owner@contoso.example",
                       owner_name="Contoso", language=language, stripe_customer_id="cus_1", checkout_session_id="cs_1",
                       current_period_end=datetime.fromtimestamp(RENEWAL, tz=UTC), accounting_email=accounting_email,
                       po_number=po_number)
    sub = replace(sub, **changes)
    assert subscription_store.create(store, sub, rows=list(delegates))
    loaded = subscription_store.load(store, "sub_1")
    assert loaded is not None
    return loaded


def delegate(email: str, *permissions: str) -> Delegate:
    return Delegate(tid="tid-1", oid=f"oid-{email}", email=email, name=email, permissions=frozenset(permissions),
                    added_at=datetime(2026, 1, 1, tzinfo=UTC))


def stripe_invoice(invoice_id: str = "in_1Abc", *, collection: str = "send_invoice", total: int = 5760,
                   metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": invoice_id, "object": "invoice", "number": "SMM-0007", "status": "open", "currency": "eur",
            "total": total, "amount_due": total, "collection_method": collection,
            "due_date": RENEWAL + 30 * DAY if collection == "send_invoice" else None,
            "customer_name": "Contoso GmbH", "hosted_invoice_url": f"https://invoice.stripe.example/{invoice_id}",
            "invoice_pdf": f"https://invoice.stripe.example/{invoice_id}/pdf",
            "parent": {"type": "subscription_details",
                       "subscription_details": {"subscription": "sub_1", "metadata": metadata or {}}}}


def event(event_type: str, obj: dict[str, Any], event_id: str) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}}).encode()


def send_all(store: InMemoryStorage, stripe: FakeStripe, settings, sender: RecordingSender) -> list[str | None]:
    def documents(message: MailMessage) -> tuple[Attachment, ...]:
        return invoice_attachments.attachments(stripe, settings, message)  # type: ignore[arg-type]

    return [deliver(json.dumps(m).encode(), storage=store, sender=sender, settings=settings, attachments=documents)
            for m in queued_mails(store)]


# --- the accounting mail -----------------------------------------------------------------------------------


def test_a_finalized_invoice_is_mailed_to_the_accounting_address_with_its_pdf(store, stripe, settings, billing):
    subscription(store, accounting_email="buchhaltung@contoso.example", po_number="PO-4711")
    stripe.invoices["in_1Abc"] = stripe_invoice()
    apply(event("invoice.finalized", stripe_invoice(), "evt_final_1"), billing)

    [message] = queued_mails(store)
    assert message["to"] == "buchhaltung@contoso.example" and message["template"] == "invoice"
    assert message["language"] == "de" and message["invoice_id"] == "in_1Abc"
    assert message["params"]["total"] == "57,60 €" and message["params"]["number"] == "SMM-0007"
    assert message["params"]["due_date"] == "2027-01-31" and message["params"]["po_number"] == "PO-4711"
    assert len(json.dumps(message)) < 4096  # names the invoice, carries no document

    sender = RecordingSender()
    send_all(store, stripe, settings, sender)
    [mail] = sender.mails
    assert mail.attachments == (Attachment("Rechnung-SMM-0007.pdf", "application/pdf", PDF),)
    assert "SMM-0007" in mail.subject and "57,60 €" in mail.text
    assert "Bestellnummer: PO-4711" in mail.text and "2027-01-31" in mail.text
    assert "Im Anhang: Rechnung-SMM-0007.pdf" in mail.text
    assert "https://invoice.stripe.example/in_1Abc/pdf" in mail.html


def test_an_invoice_charged_automatically_names_no_due_date(store, stripe, settings, billing):
    subscription(store, accounting_email="ap@contoso.example", language="en")
    stripe.invoices["in_1Abc"] = stripe_invoice(collection="charge_automatically")
    apply(event("invoice.finalized", stripe_invoice(collection="charge_automatically"), "evt_final_1"), billing)
    [message] = queued_mails(store)
    assert message["params"]["due_date"] == "" and message["params"]["total"] == "57.60 €"
    sender = RecordingSender()
    send_all(store, stripe, settings, sender)
    assert "charged to the payment method on file" in sender.mails[0].text
    assert "Purchase order" not in sender.mails[0].text


def test_a_redelivered_invoice_finalized_mails_once(store, stripe, settings, billing):
    subscription(store, accounting_email="buchhaltung@contoso.example")
    stripe.invoices["in_1Abc"] = stripe_invoice()
    body = event("invoice.finalized", stripe_invoice(), "evt_final_1")
    apply(body, billing)
    apply(body, billing)  # the same event again: already applied
    # A crash after queueing and before the event was recorded applies it again under a new delivery.
    apply(event("invoice.finalized", stripe_invoice(), "evt_final_2"), billing)
    assert len({m["id"] for m in queued_mails(store)}) == 1

    sender = RecordingSender()
    assert [r is not None for r in send_all(store, stripe, settings, sender)].count(True) == 1
    assert len(sender.mails) == 1 and stripe.pdf_downloads == 1


def test_no_accounting_address_no_mail(store, stripe, billing):
    subscription(store)
    result = apply(event("invoice.finalized", stripe_invoice(), "evt_final_1"), billing)
    assert "no accounting address" in result
    assert queued_mails(store) == []


def test_the_first_invoice_of_a_purchase_not_stored_yet_uses_the_subscription_metadata(store, billing):
    """Bought by invoice: Stripe finalizes the first invoice while the purchase request still fulfils it."""
    invoice = stripe_invoice(metadata={"accounting_email": "ap@fabrikam.example", "language": "en",
                                       "po_number": "4500012345", "purchase": "invoice"})
    apply(event("invoice.finalized", invoice, "evt_final_1"), billing)
    [message] = queued_mails(store)
    assert message["to"] == "ap@fabrikam.example" and message["language"] == "en"
    assert message["params"]["po_number"] == "4500012345"


# --- attachments at send time ------------------------------------------------------------------------------


def test_stripe_unreachable_when_sending_releases_the_mail_for_the_retry(store, stripe, settings, billing):
    subscription(store, accounting_email="buchhaltung@contoso.example")
    stripe.invoices["in_1Abc"] = stripe_invoice()
    apply(event("invoice.finalized", stripe_invoice(), "evt_final_1"), billing)
    stripe.unavailable = True
    sender = RecordingSender()
    with pytest.raises(StripeUnavailable):
        send_all(store, stripe, settings, sender)
    assert sender.mails == [] and list(store.query(SENT_MAIL)) == []
    stripe.unavailable = False
    assert send_all(store, stripe, settings, sender) == ["provider-1"]
    assert sender.mails[0].attachments[0].content == PDF


def test_an_invoice_stripe_does_not_know_is_undeliverable(store, stripe, settings):
    message = MailMessage(id="invoice-unknown", template="invoice", to="ap@contoso.example", invoice_id="in_nope",
                          params={"number": "X", "organisation": "", "total": "1.00 €", "due_date": "",
                                  "by_transfer": False, "hosted_invoice_url": "", "invoice_pdf": "",
                                  "po_number": ""})
    store.send(OUTBOUND_EMAIL_QUEUE, message.model_dump_json().encode())
    with pytest.raises(UndeliverableMessage):
        send_all(store, stripe, settings, RecordingSender())


def test_a_message_naming_an_invoice_is_not_sent_without_its_documents(store, settings):
    message = MailMessage(id="invoice-unwired", template="test", to="ap@contoso.example", invoice_id="in_1Abc")
    with pytest.raises(ValueError, match="no attachments"):
        deliver(message.model_dump_json().encode(), storage=store, sender=RecordingSender(), settings=settings)


@pytest.mark.parametrize("invoice_id", ["in_", "ii_123", "in_1/../x", "in_1 2"])
def test_invoice_id_must_be_a_stripe_invoice_id(invoice_id):
    with pytest.raises(ValueError):
        MailMessage(id="invoice-bad-id", template="test", to="ap@contoso.example", invoice_id=invoice_id)


SELLER = {"SELLER_LEGAL_NAME": "SecureMailMerge GmbH", "SELLER_STREET": "Beispielweg 2", "SELLER_POSTAL_CODE": "80331",
          "SELLER_CITY": "München", "SELLER_VAT_ID": "DE123456789", "SELLER_REGISTER": "Amtsgericht München, HRB 1",
          "SELLER_PHONE": "+49 89 123456"}


def taxed(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice as Stripe Tax makes it: 19 % German VAT on one line, the buyer's address and e-mail."""
    tax = {"amount": 1094, "tax_behavior": "exclusive", "taxability_reason": "standard_rated", "taxable_amount": 5760,
           "tax_rate_details": {"tax_rate": "txr_1"}}
    return {**invoice, "total": 6854, "total_excluding_tax": 5760, "amount_due": 6854, "amount_remaining": 6854,
            "created": RENEWAL, "customer": "cus_1", "customer_email": "ap@contoso.example",
            "customer_address": {"line1": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin", "country": "DE"},
            "customer_tax_ids": [], "total_taxes": [tax],
            "lines": {"data": [{"amount": 5760, "quantity": 12, "description": "12 × SecureMailMerge license",
                                "taxes": [tax], "period": {"start": RENEWAL, "end": RENEWAL + 365 * DAY}}]}}


def blank_pdf() -> bytes:
    import io

    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_with_e_invoices_configured_the_mail_carries_zugferd_and_xrechnung(store, stripe, billing, monkeypatch):
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true", **SELLER))
    monkeypatch.setattr(stripe, "invoice_pdf", lambda invoice, timeout=30.0: blank_pdf())
    subscription(store, accounting_email="buchhaltung@contoso.example")
    stripe.invoices["in_1Abc"] = taxed(stripe_invoice())
    apply(event("invoice.finalized", taxed(stripe_invoice()), "evt_final_1"), billing)
    sender = RecordingSender()
    send_all(store, stripe, settings, sender)
    [mail] = sender.mails
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("SMM-0007-xrechnung.xml", "application/xml"), ("SMM-0007-zugferd.pdf", "application/pdf")]
    xml, pdf = (a.content for a in mail.attachments)
    assert b"SMM-0007" in xml and b"DE89370400440532013000" in xml
    from facturx import get_facturx_xml_from_pdf

    embedded_name, embedded = get_facturx_xml_from_pdf(pdf)
    assert embedded_name == "factur-x.xml" and b"SMM-0007" in embedded
    assert "Im Anhang: SMM-0007-xrechnung.xml, SMM-0007-zugferd.pdf" in mail.text


def test_stripe_unreachable_while_making_the_e_invoice_is_retried_not_sent_without_it(store, stripe, billing,
                                                                                     monkeypatch):
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true", **SELLER))
    subscription(store, accounting_email="buchhaltung@contoso.example")
    stripe.invoices["in_1Abc"] = taxed(stripe_invoice())
    apply(event("invoice.finalized", taxed(stripe_invoice()), "evt_final_1"), billing)

    def unreachable(tax_rate_id: str) -> dict[str, Any]:
        raise StripeUnavailable("connection reset")

    monkeypatch.setattr(stripe, "tax_rate", unreachable)
    sender = RecordingSender()
    with pytest.raises(StripeUnavailable):
        send_all(store, stripe, settings, sender)
    assert sender.mails == [] and list(store.query(SENT_MAIL)) == []


def test_an_invoice_that_cannot_be_an_e_invoice_goes_as_stripes_pdf(store, stripe, billing):
    settings = load_settings(local_values(AzureWebJobsStorage="UseDevelopmentStorage=true", **SELLER))
    subscription(store, accounting_email="buchhaltung@contoso.example")
    stripe.invoices["in_1Abc"] = stripe_invoice()  # no VAT information (Stripe Tax off)
    apply(event("invoice.finalized", stripe_invoice(), "evt_final_1"), billing)
    sender = RecordingSender()
    send_all(store, stripe, settings, sender)
    assert sender.mails[0].attachments == (Attachment("Rechnung-SMM-0007.pdf", "application/pdf", PDF),)


def rendered(*attachments: Attachment) -> RenderedMail:
    return RenderedMail(to="ap@contoso.example", subject="Invoice", text="see attached\n", html="<p>x</p>",
                        attachments=attachments)


def test_the_outbox_records_each_attachment(tmp_path: Path):
    OutboxMailSender(tmp_path, "noreply@securemailmerge.example").send(
        rendered(Attachment("Invoice-1.pdf", "application/pdf", PDF), Attachment("x.xml", "application/xml", b"<a/>")))
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert [(a["name"], a["contentType"], a["size"]) for a in record["attachments"]] == [
        ("Invoice-1.pdf", "application/pdf", len(PDF)), ("x.xml", "application/xml", 4)]
    assert base64.b64decode(record["attachments"][0]["contentInBase64"]) == PDF


def test_the_outbox_command_lists_and_saves_attachments(tmp_path: Path, monkeypatch, capsys):
    from standins.outbox.__main__ import main

    outbox = tmp_path / "outbox"
    for name, value in local_values(MAIL_OUTBOX_DIR=str(outbox)).items():
        monkeypatch.setenv(name, value)
    OutboxMailSender(outbox, "noreply@securemailmerge.example").send(
        rendered(Attachment("Invoice-1.pdf", "application/pdf", PDF)))
    assert main(["list"]) == 0
    assert f"+ Invoice-1.pdf ({len(PDF)} bytes)" in capsys.readouterr().out
    assert main(["show", "1"]) == 0
    assert "Attachment: Invoice-1.pdf (application/pdf" in capsys.readouterr().out
    assert main(["save", "1", str(tmp_path / "saved")]) == 0
    assert (tmp_path / "saved" / "Invoice-1.pdf").read_bytes() == PDF


def test_a_mail_larger_than_acs_accepts_is_refused_with_a_clear_error(tmp_path: Path):
    # Base64 makes 8 MB of PDF more than 10 MiB of request; 7 MB stays below.
    big = Attachment("Invoice-big.pdf", "application/pdf", b"%PDF" + b"0" * 8_000_000)
    with pytest.raises(MailTooLarge, match=f"at most {MAX_REQUEST_BYTES} bytes"):
        OutboxMailSender(tmp_path, "noreply@securemailmerge.example").send(rendered(big))
    assert list(tmp_path.glob("*.json")) == []
    OutboxMailSender(tmp_path, "noreply@securemailmerge.example").send(
        rendered(Attachment("Invoice-ok.pdf", "application/pdf", b"%PDF" + b"0" * 7_000_000)))


# --- the renewal reminder ----------------------------------------------------------------------------------


def upcoming(interval: str | None = "year", *, period_end: int = RENEWAL, total: int = 69120) -> dict[str, Any]:
    """An `invoice.upcoming` object: a preview without id."""
    line: dict[str, Any] = {"object": "line_item", "amount": total, "quantity": 12,
                            "period": {"start": period_end, "end": period_end + 365 * DAY}}
    if interval is not None:  # pre-2025 shape: the price on the line
        line["price"] = {"id": "price_1", "recurring": {"interval": interval}}
    else:  # current shape: only the price's id
        line["pricing"] = {"type": "price_details", "price_details": {"price": "price_1", "product": "prod_1"}}
    return {"object": "invoice", "currency": "eur", "total": total, "amount_due": total, "period_end": period_end,
            "next_payment_attempt": period_end + 3600, "collection_method": "charge_automatically",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}},
            "lines": {"object": "list", "data": [line]}}


BILLING_TEAM = (delegate("finance@contoso.example", BILLING_MANAGE, SUBSCRIPTION_VIEW),
                delegate("it@contoso.example", LICENSES_ASSIGN, QUANTITY_MANAGE),
                delegate("cfo@contoso.example", BILLING_MANAGE))


def test_a_yearly_renewal_reminds_the_owner_and_the_billing_delegates_only(store, stripe, settings, billing):
    subscription(store, delegates=BILLING_TEAM, accounting_email="buchhaltung@contoso.example")
    apply(event("invoice.upcoming", upcoming(), "evt_upcoming_1"), billing)
    messages = queued_mails(store)
    assert sorted(m["to"] for m in messages) == ["cfo@contoso.example", "finance@contoso.example",
                                                 "owner@contoso.example"]
    assert {m["template"] for m in messages} == {"renewal_reminder"}
    assert {m["params"]["renews_on"] for m in messages} == {"2027-01-01"}
    assert {m["params"]["amount"] for m in messages} == {"691,20 €"}
    assert stripe.subscription_reads == 0  # the interval was on the lines

    sender = RecordingSender()
    send_all(store, stripe, settings, sender)
    assert len(sender.mails) == 3 and all(mail.attachments == () for mail in sender.mails)
    assert "verlängert sich am 2027-01-01" in sender.mails[0].subject and "691,20 €" in sender.mails[0].text


def test_a_redelivered_upcoming_event_reminds_once_per_period(store, stripe, settings, billing):
    subscription(store, delegates=BILLING_TEAM[:1])
    apply(event("invoice.upcoming", upcoming(), "evt_upcoming_1"), billing)
    apply(event("invoice.upcoming", upcoming(), "evt_upcoming_2"), billing)  # Stripe sent it again
    apply(event("invoice.upcoming", upcoming(period_end=RENEWAL + 365 * DAY), "evt_upcoming_3"), billing)  # next year
    sender = RecordingSender()
    send_all(store, stripe, settings, sender)
    assert sorted((m.to, m.subject[-10:]) for m in sender.mails) == [
        ("finance@contoso.example", "2027-01-01"), ("finance@contoso.example", "2028-01-01"),
        ("owner@contoso.example", "2027-01-01"), ("owner@contoso.example", "2028-01-01")]


def test_a_monthly_subscription_gets_no_reminder(store, billing):
    subscription(store, delegates=BILLING_TEAM)
    result = apply(event("invoice.upcoming", upcoming("month"), "evt_upcoming_1"), billing)
    assert "no reminder" in result and queued_mails(store) == []


@pytest.mark.parametrize("interval, mailed", [("year", 3), ("month", 0)])
def test_current_shapes_read_the_interval_from_stripe(store, stripe, billing, interval, mailed):
    subscription(store, delegates=BILLING_TEAM)
    stripe.interval = interval
    apply(event("invoice.upcoming", upcoming(None), "evt_upcoming_1"), billing)
    assert len(queued_mails(store)) == mailed and stripe.subscription_reads == 1


def test_stripe_unreachable_for_the_interval_raises_so_the_event_is_retried(store, stripe, billing):
    subscription(store)
    stripe.unavailable = True
    with pytest.raises(StripeUnavailable):
        apply(event("invoice.upcoming", upcoming(None), "evt_upcoming_1"), billing)
    stripe.unavailable = False
    apply(event("invoice.upcoming", upcoming(None), "evt_upcoming_1"), billing)
    assert [m["to"] for m in queued_mails(store)] == ["owner@contoso.example"]


@pytest.mark.parametrize("changes", [{"cancel_at_period_end": True}, {"status": "canceled"}])
def test_a_subscription_that_does_not_renew_gets_no_reminder(store, billing, changes):
    subscription(store, **changes)
    apply(event("invoice.upcoming", upcoming(), "evt_upcoming_1"), billing)
    assert queued_mails(store) == []
