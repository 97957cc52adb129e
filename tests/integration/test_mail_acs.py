"""The production ACS path: the real azure-communication-email client against the local endpoint
that checks the HMAC signature and the payload shape, over HTTPS with a self-signed certificate."""

import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError

from adapters.mail_senders import AcsMailSender, MailTooLarge, sender_for
from adapters.stripe_gateway import StripeGateway, as_dict
from adapters.table_storage import SENT_MAIL
from services import invoice_attachments
from services.mail import MailMessage, compose
from services.mail.delivery import _sent_key, deliver
from services.mail.message import Attachment
from services.mail.render import RenderedMail
from services.settings import load_settings
from standins.acs_email import AcsEmailEndpoint
from standins.identity_provider.cert import ensure_certificate, write_ca_bundle


@pytest.fixture(scope="module")
def acs_cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("acs-certs")


@pytest.fixture(scope="module")
def acs(acs_cert_dir):
    cert, key = ensure_certificate(acs_cert_dir)
    endpoint = AcsEmailEndpoint(cert_file=cert, key_file=key).start()
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def acs_ca_bundle(acs_cert_dir):
    return write_ca_bundle(acs_cert_dir)


@pytest.fixture
def trust_acs(acs, acs_ca_bundle, monkeypatch):
    # This machine's REQUESTS_CA_BUNDLE overrides verify=: point it at a bundle with the local CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(acs_ca_bundle))


def test_queued_mail_is_sent_through_acs_with_a_valid_signature(stack, acs, trust_acs):
    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    sender = sender_for(settings)
    assert isinstance(sender, AcsMailSender)
    message = MailMessage(id="acs-test-welcome", template="welcome", to="bob@contoso.example",
                          params={"organisation": "Contoso"})
    provider_id = deliver(message.model_dump_json().encode(), storage=stack.storage(), sender=sender, settings=settings)
    assert provider_id and not acs.rejections
    sent = acs.messages[-1]
    assert sent["recipients"]["to"] == [{"address": "bob@contoso.example"}]
    assert sent["senderAddress"] == settings.mail_sender
    assert sent["content"]["subject"] == "You have a SecureMailMerge license"
    assert settings.support_email in sent["content"]["plainText"] and "<html" in sent["content"]["html"]


def test_a_wrong_access_key_is_rejected_and_the_mail_stays_unsent(stack, acs, trust_acs):
    wrong_key = base64.b64encode(b"not-the-right-key").decode()
    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": wrong_key})
    message = MailMessage(id="acs-test-wrong-key", template="test", to="bob@contoso.example")
    before = len(acs.messages)
    # The endpoint answers 401: the SDK raises ClientAuthenticationError, an HttpResponseError.
    with pytest.raises(HttpResponseError):
        deliver(message.model_dump_json().encode(), storage=stack.storage(), sender=sender_for(settings),
                settings=settings)
    assert len(acs.messages) == before
    assert acs.rejections[-1] == "signature does not match"
    # The claim was released: a retry with the right key sends it.
    good = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    assert deliver(message.model_dump_json().encode(), storage=stack.storage(), sender=sender_for(good), settings=good)


# The seller an e-invoice names (SELLER_* settings); the shared stack's host runs without them.
SELLER = {"SELLER_LEGAL_NAME": "SecureMailMerge GmbH", "SELLER_STREET": "Beispielweg 2", "SELLER_POSTAL_CODE": "80331",
          "SELLER_CITY": "München", "SELLER_VAT_ID": "DE123456789", "SELLER_REGISTER": "Amtsgericht München, HRB 1",
          "SELLER_PHONE": "+49 89 123456"}


def _german_business_invoice(stack) -> dict:
    """A finalized invoice as Stripe Tax makes it for a German business paying by transfer (19 % VAT)."""
    client = StripeGateway(stack.settings).client()
    customer = client.v1.customers.create(params={
        "name": "Contoso Deutschland GmbH", "email": "rechnungen@contoso.example",
        "address": {"line1": "Hauptstraße 1", "postal_code": "10115", "city": "Berlin", "country": "DE"}})
    price = client.v1.prices.list(params={"lookup_keys": [stack.settings.stripe_price_lookup_key]}).data[0]
    subscription = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id, "quantity": 12}], "collection_method": "send_invoice",
        "days_until_due": 30, "automatic_tax": {"enabled": True}})
    invoice = as_dict(client.v1.invoices.list(params={"subscription": subscription.id, "limit": 1}).data[0])
    assert invoice["status"] == "open" and invoice["total_taxes"], invoice
    return invoice


def _deliver_invoice(stack, settings, invoice: dict, to: str) -> str | None:
    message = compose.invoice(settings, invoice, to=to, language="de", po_number="")
    gateway = StripeGateway(settings)
    return deliver(message.model_dump_json().encode(), storage=stack.storage(), sender=sender_for(settings),
                   settings=settings,
                   attachments=lambda m: invoice_attachments.attachments(gateway, settings, m))


def test_an_invoice_mail_goes_through_acs_with_the_e_invoices_attached(stack, acs, trust_acs):
    from facturx import get_facturx_xml_from_pdf

    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key, **SELLER})
    invoice = _german_business_invoice(stack)
    rejected = len(acs.rejections)
    assert _deliver_invoice(stack, settings, invoice, "ap@contoso.example") and len(acs.rejections) == rejected
    number = invoice["number"]
    [(xml_name, xml_type, xml), (pdf_name, pdf_type, pdf)] = acs.attachments()
    assert (xml_name, xml_type) == (f"{number}-xrechnung.xml", "application/xml")
    assert (pdf_name, pdf_type) == (f"{number}-zugferd.pdf", "application/pdf")
    assert number.encode() in xml and b"urn:xeinkauf.de:kosit:xrechnung" in xml
    embedded_name, embedded = get_facturx_xml_from_pdf(pdf)
    assert embedded_name == "factur-x.xml" and number.encode() in embedded
    assert f"Im Anhang: {xml_name}, {pdf_name}" in acs.messages[-1]["content"]["plainText"]


def test_without_seller_settings_the_invoice_goes_as_stripes_pdf(stack, acs, trust_acs):
    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    invoice = _german_business_invoice(stack)
    assert _deliver_invoice(stack, settings, invoice, "ap@contoso.example")
    [(name, content_type, pdf)] = acs.attachments()
    assert (name, content_type) == (f"Rechnung-{invoice['number']}.pdf", "application/pdf")
    assert pdf == StripeGateway(settings).invoice_pdf(invoice)


def test_a_mail_over_acs_size_limit_is_refused_before_it_is_sent(stack, acs, trust_acs):
    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    message = MailMessage(id=f"acs-too-large-{uuid.uuid4().hex[:8]}", template="test", to="ap@contoso.example",
                          invoice_id="in_1Large")
    big = (Attachment("Invoice-big.pdf", "application/pdf", b"%PDF" + b"0" * 8_000_000),)
    before = len(acs.messages)
    with pytest.raises(MailTooLarge, match="ACS accepts at most"):
        deliver(message.model_dump_json().encode(), storage=stack.storage(), sender=sender_for(settings),
                settings=settings, attachments=lambda m: big)
    assert len(acs.messages) == before
    assert stack.storage().get(SENT_MAIL, *_sent_key(message.id)) is None  # released: the queue's retry may try


@pytest.mark.parametrize("attachment, problem", [
    ({"name": "setup.exe", "contentType": "application/x-msdownload", "contentInBase64": "TVo="},
     "content type ACS does not send"),
    ({"name": "x.pdf", "contentType": "application/pdf", "contentInBase64": "not base64!"}, "not base64"),
    ({"name": "x.pdf", "contentType": "application/pdf"}, "needs contentInBase64"),
])
def test_the_acs_endpoint_refuses_attachments_acs_refuses(stack, acs, trust_acs, attachment, problem):
    sender = AcsMailSender(acs.url, "DoNotReply@securemailmerge.example", acs.access_key)
    mail = RenderedMail(to="ap@contoso.example", subject="x", text="x", html="<p>x</p>")
    with pytest.raises(HttpResponseError):
        sender._email_client().begin_send({
            "senderAddress": "DoNotReply@securemailmerge.example", "recipients": {"to": [{"address": mail.to}]},
            "content": {"subject": mail.subject, "plainText": mail.text}, "attachments": [attachment]})
    assert problem in acs.rejections[-1]


def test_a_throttled_send_is_reported_with_the_wait_acs_asks_for(stack, acs, trust_acs):
    """ACS answers 429 past the domain's quota: the client retries a few times on its own, then the
    adapter reports MailThrottled with Retry-After, so delivery can queue the mail again (nothing sent)."""
    from adapters.mail_senders import MailThrottled

    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    sender = sender_for(settings)
    accepted = len(acs.messages)
    acs.throttle(requests=100, retry_after="1")
    try:
        with pytest.raises(MailThrottled) as info:
            sender.send(RenderedMail(to="bob@contoso.example", subject="Hello", text="Hello", html="<p>Hello</p>"))
    finally:
        acs.throttle(requests=0)
    assert info.value.retry_after == 1.0
    assert acs.throttled >= 2 and len(acs.messages) == accepted  # retried by the client, never accepted


def test_an_accepted_send_whose_status_cannot_be_read_counts_as_sent_and_is_not_sent_again(stack, acs, trust_acs):
    """ACS accepted the mail (202), then its status reads are throttled past the client's retries: the mail
    is in ACS's hands, so it is recorded as sent under its operation id, and a redelivery sends nothing
    (it used to be sent again: twice in the recipient's inbox)."""
    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    storage = stack.storage()
    message = MailMessage(id="acs-test-unreadable-status", template="welcome", to="carol@contoso.example",
                          params={"organisation": "Contoso"})
    body = message.model_dump_json().encode()
    accepted = len(acs.messages)
    acs.unreadable_status(reads=100)
    try:
        provider_id = deliver(body, storage=storage, sender=sender_for(settings), settings=settings)
    finally:
        acs.unreadable_status(reads=0)
    assert len(acs.messages) == accepted + 1
    assert provider_id in acs.operations  # our own Operation-Id, which ACS took
    row = storage.get(SENT_MAIL, *_sent_key(message.id))
    assert row is not None and row["Status"] == "sent" and row["ProviderId"] == provider_id
    assert deliver(body, storage=storage, sender=sender_for(settings), settings=settings) is None
    assert len(acs.messages) == accepted + 1


def test_an_operation_acs_reports_as_failed_is_a_failed_send(stack, acs, trust_acs):
    settings = load_settings({**stack.env, "ACS_ENDPOINT": acs.url, "ACS_ACCESS_KEY": acs.access_key})
    storage = stack.storage()
    message = MailMessage(id="acs-test-failed-operation", template="welcome", to="dave@contoso.example",
                          params={"organisation": "Contoso"})
    acs.failing_operations(sends=1)
    with pytest.raises(RuntimeError, match="could not send"):
        deliver(message.model_dump_json().encode(), storage=storage, sender=sender_for(settings), settings=settings)
    assert storage.get(SENT_MAIL, *_sent_key(message.id)) is None  # claim given back: the queue retries it
