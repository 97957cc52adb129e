"""The production ACS path: the real azure-communication-email client against the local endpoint
that checks the HMAC signature and the payload shape, over HTTPS with a self-signed certificate."""

import base64

import pytest
from azure.core.exceptions import HttpResponseError

from adapters.mail_senders import AcsMailSender, sender_for
from services.mail import MailMessage
from services.mail.delivery import deliver
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
