import logging
import sys
import types

import pytest

from services import observability
from services.observability import RedactingFilter, annotate, configure_telemetry, correlation, redact


class FakeContext:
    invocation_id = "3f0c1d2e-aaaa-bbbb-cccc-000000000001"


@pytest.fixture
def records():
    """Records as a handler sees them, with the filter the module offers for single handlers."""
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record):
            captured.append(record)

    handler = Capture()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, captured
    logger.removeHandler(handler)


# --- redaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, secret",
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl rejected", "eyJhbGciOiJSUzI1NiJ9"),
        ("stripe key sk_live_51HxYzAbCdEf", "51HxYzAbCdEf"),
        ("stripe key sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
        ("restricted rk_live_abc123", "abc123"),
        ("webhook secrets whsec_old123,whsec_new456", "old123"),
        ("webhook secrets whsec_old123,whsec_new456", "new456"),
        ("redirect https://x/cb?code=0.AAA-secret&state=ok", "0.AAA-secret"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----", "MHcCAQEEIB"),
    ],
)
def test_secrets_are_removed(text, secret):
    assert secret not in redact(text)


def test_prefixes_stay_so_the_kind_of_secret_is_still_visible():
    assert redact("sk_live_51HxYz") == "sk_live_[redacted]"
    assert redact("whsec_abc") == "whsec_[redacted]"
    assert redact("Bearer abc") == "Bearer [redacted]"


def test_email_local_part_is_removed_domain_kept():
    assert redact("welcome mail to Jane.Doe+x@contoso.co.uk queued") == "welcome mail to ***@contoso.co.uk queued"


def test_ordinary_text_is_unchanged():
    text = "seat assigned: subscription sub_123 quantity=5 event evt_1Nx at 2025-01-01T00:00:00Z"
    assert redact(text) == text


def test_log_messages_and_arguments_are_redacted(records):
    logger, captured = records
    logger.info("license check for %s with %s", "a.user@fabrikam.com", "Bearer eyJa.eyJb.c")
    assert captured[0].getMessage() == "license check for ***@fabrikam.com with Bearer [redacted]"


def test_exception_text_is_redacted(records):
    logger, captured = records
    try:
        raise RuntimeError("Stripe rejected sk_live_abcdef")
    except RuntimeError:
        logger.exception("charge failed")
    assert "abcdef" not in captured[0].exc_text
    assert "sk_live_[redacted]" in captured[0].exc_text


# --- correlation ---------------------------------------------------------------------------------


def test_ids_are_attached_as_attributes_and_in_the_message(records):
    logger, captured = records
    with correlation(FakeContext(), stripe_event_id="evt_1", subscription_id="sub_9"):
        logger.info("event applied")
    record = captured[0]
    assert record.invocation_id == FakeContext.invocation_id
    assert record.stripe_event_id == "evt_1"
    assert record.subscription_id == "sub_9"
    assert record.getMessage() == (
        f"event applied [invocation_id={FakeContext.invocation_id} stripe_event_id=evt_1 subscription_id=sub_9]"
    )


def test_ids_end_with_the_block_and_blocks_nest(records):
    logger, captured = records
    with correlation(FakeContext()):
        with correlation(stripe_event_id="evt_2"):
            logger.info("inner")
        logger.info("outer")
    logger.info("after")
    assert captured[0].getMessage().endswith("stripe_event_id=evt_2]")
    assert "stripe_event_id" not in captured[1].getMessage() and "invocation_id=" in captured[1].getMessage()
    assert captured[2].getMessage() == "after" and not hasattr(captured[2], "invocation_id")


def test_annotate_adds_an_id_learnt_later(records):
    logger, captured = records
    with correlation(FakeContext(), stripe_event_id="evt_3"):
        annotate(subscription_id="sub_4")
        logger.info("resolved")
    logger.info("after")
    assert "subscription_id=sub_4" in captured[0].getMessage()
    assert captured[1].getMessage() == "after"


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError):
        with correlation(email="a@b.com"):
            pass


def test_empty_ids_are_left_out(records):
    logger, captured = records
    with correlation(None, stripe_event_id=None, subscription_id=""):
        logger.info("nothing to correlate")
    assert captured[0].getMessage() == "nothing to correlate"


def test_install_covers_every_logger_and_handler(caplog):
    previous = logging.getLogRecordFactory()
    try:
        observability._installed = False
        observability.install()
        observability.install()  # idempotent: one wrapper, not two suffixes
        with caplog.at_level(logging.INFO, logger="services.anything"):
            with correlation(stripe_event_id="evt_5"):
                logging.getLogger("services.anything").info("to %s", "x@y.org")
        assert caplog.records[-1].getMessage() == "to ***@y.org [stripe_event_id=evt_5]"
        RedactingFilter().filter(caplog.records[-1])  # a second pass changes nothing
        assert caplog.records[-1].getMessage() == "to ***@y.org [stripe_event_id=evt_5]"
    finally:
        logging.setLogRecordFactory(previous)
        observability._installed = False


# --- telemetry -----------------------------------------------------------------------------------


@pytest.fixture
def fresh_telemetry():
    observability._reset_for_tests()
    yield
    observability._reset_for_tests()


def test_no_connection_string_means_no_export(fresh_telemetry):
    assert configure_telemetry(environ={}) == "off"


def test_without_the_distro_the_host_integration_is_used(fresh_telemetry, monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)  # import fails
    assert configure_telemetry(environ={"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) == "host"


def test_with_the_distro_azure_monitor_is_configured_with_the_identity(fresh_telemetry, monkeypatch):
    calls = []
    fake = types.ModuleType("azure.monitor.opentelemetry")
    vars(fake)["configure_azure_monitor"] = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", fake)
    client_id = "11111111-2222-3333-4444-555555555555"
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={client_id};Authorization=AAD",
    }
    assert configure_telemetry(environ=env) == "azure-monitor"
    assert calls[0]["connection_string"] == "InstrumentationKey=x"
    assert type(calls[0]["credential"]).__name__ == "ManagedIdentityCredential"
    assert configure_telemetry(environ=env) == "azure-monitor" and len(calls) == 1
