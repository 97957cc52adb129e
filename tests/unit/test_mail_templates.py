"""Every mail exists in English and German, renders, and names the support contact."""

from typing import get_args

import pytest

from services.mail.message import Language, MailMessage, Template
from services.mail.render import TEMPLATE_DIR, render

SAMPLE_PARAMS = {
    "organisation": "Contoso Ltd",
    "quantity": 12,
    "setup_url": "http://localhost:7071/api/subscriptions/sub_1/setup",
    "subscription_url": "http://localhost:7071/api/subscriptions/sub_1",
    "grace_until": "2026-12-08",
    "trial_end": "2026-12-01",
    "over": 2,
    "assigned": 12,
    "inviter": "Olivia Owner",
    "kind": "delegate",
    "link": "http://localhost:7071/api/invitations/tok",
    "permissions": ["Assign/revoke licenses"],
    "expires": "2026-12-05 10:00 UTC",
    "scheduled": True,
    "ends_on": "2026-12-24",
    "before": 8,
    "number": "SMM-0007",
    "total": "57.60 €",
    "due_date": "2026-12-31",
    "by_transfer": True,
    "hosted_invoice_url": "https://invoice.stripe.example/in_1",
    "invoice_pdf": "https://invoice.stripe.example/in_1/pdf",
    "po_number": "PO-4711",
    "renews_on": "2027-01-01",
    "amount": "691.20 €",
}


def test_every_english_file_has_a_german_twin_and_back():
    files = {p.name for p in TEMPLATE_DIR.iterdir()}
    for name in files:
        for a, b in ((".en.", ".de."), (".de.", ".en.")):
            if a in name:
                assert name.replace(a, b) in files, f"{name} has no {b.strip('.')} version"


@pytest.mark.parametrize("template", get_args(Template))
@pytest.mark.parametrize("language", get_args(Language))
def test_template_renders_with_support_contact(template, language):
    mail = render(
        MailMessage(id=f"test-{template}-{language}", template=template, to="alice@contoso.example", language=language,
                    params=SAMPLE_PARAMS),
        support_email="help@securemailmerge.example",
        base_url="http://localhost:7071",
    )
    assert mail.subject and "{{" not in mail.subject
    for body in (mail.text, mail.html):
        assert "help@securemailmerge.example" in body
        assert "{{" not in body
    assert f'lang="{language}"' in mail.html


def test_html_escapes_parameters():
    mail = render(
        MailMessage(id="escape-test", template="welcome", to="a@b.example",
                    params={"organisation": "<script>x</script>"}),
        support_email="s@x.example",
        base_url="http://localhost:7071",
    )
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html


@pytest.mark.parametrize("address", ["", "no-at-sign", "a@b", "a b@c.example", "<a@b.example>"])
def test_malformed_recipient_is_refused(address):
    with pytest.raises(ValueError):
        MailMessage(id="bad-recipient", template="test", to=address)
