"""The production Stripe adapter: the real `stripe` SDK, configured from settings.

Locally `STRIPE_API_BASE` points the same SDK at the emulator; nothing else differs. The SDK is
imported on first use so it stays off the license check's cold-start path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from services.settings import Settings

if TYPE_CHECKING:
    import stripe
    from stripe.params import (
        CustomerCreateParams,
        InvoiceCreatePreviewParams,
        InvoiceCreatePreviewParamsSubscriptionDetails,
        InvoiceListParams,
        SubscriptionCreateParams,
        SubscriptionScheduleUpdateParams,
        SubscriptionUpdateParams,
    )
    from stripe.params.billing_portal import ConfigurationCreateParams, ConfigurationCreateParamsFeatures
    from stripe.params.checkout import SessionCreateParams

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")


# Every read of a subscription expands its schedule down to the prices of the phases' items: what
# is planned for the next renewal (services/subscription_schedule.py) comes with the subscription.
SUBSCRIPTION_EXPAND = ["schedule.phases.items.price"]


def as_dict(obj: Any) -> dict[str, Any]:
    """A StripeObject, or a dict parsed from a webhook body, as plain nested dicts."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class StripeUnavailable(RuntimeError):
    """Stripe could not be reached or answered with a server error; try again later."""


class StripeNotFound(LookupError):
    pass


class StripeCardDeclined(RuntimeError):
    """The customer's card declined a charge Stripe tried at once (the payment method must change)."""

    def __init__(self, message: str, decline_code: str | None = None):
        super().__init__(message)
        self.decline_code = decline_code


class StripeIdempotencyConflict(RuntimeError):
    """An idempotency key Stripe saw before with other parameters: a different request reusing it."""


class StripeRejected(RuntimeError):
    """Stripe refused the request (HTTP 400): the object's state does not allow it, or a parameter."""

    def __init__(self, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


class InvalidWebhook(ValueError):
    """A webhook body that is not a Stripe event signed with one of the configured secrets."""


def _header_items(signature: str) -> list[tuple[str, str | None]]:
    """The `name=value` items of a Stripe-Signature header, read as the SDK reads them (no trimming)."""
    items = (item.split("=", 2) for item in signature.split(","))
    return [(parts[0], parts[1] if len(parts) > 1 else None) for parts in items]


def _signed_at(signature: str) -> int:
    """The first `t=` timestamp of a Stripe-Signature header."""
    stamps = [value for name, value in _header_items(signature) if name == "t"]
    try:
        return int(stamps[0] or "")
    except (IndexError, ValueError):
        raise InvalidWebhook("the Stripe-Signature header has no timestamp") from None


def _v1_signatures(signature: str) -> list[str]:
    """The header's `v1=` signatures (Stripe sends more than one while an endpoint secret is rolled)."""
    found = [value for name, value in _header_items(signature) if name == "v1" and value is not None]
    if not found:
        raise InvalidWebhook("the Stripe-Signature header has no v1 signature")
    return found


def _signs(signed_payload: str, secret: str, candidates: list[str]) -> bool:
    """True if one of `candidates` is the HMAC-SHA256 of `signed_payload` under `secret` (constant time)."""
    expected = hmac.new(secret.encode("utf-8"), signed_payload.encode("utf-8"), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates)


@dataclass(frozen=True)
class PriceTier:
    up_to: int | None  # None: and above
    unit_amount: int  # in the currency's smallest unit


@dataclass(frozen=True)
class SeatPrice:
    id: str
    currency: str
    interval: str
    tiers: tuple[PriceTier, ...]

    def unit_amount_for(self, quantity: int) -> int:
        """Volume pricing: the whole quantity is priced at the tier the quantity falls in."""
        for tier in self.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return tier.unit_amount
        raise ValueError("price has no tier for this quantity")

    def total_for(self, quantity: int) -> int:
        return self.unit_amount_for(quantity) * quantity


# The billing-portal configuration (PRODUCT.md capability 5): payment methods, billing address, tax ids and
# invoice history; no quantity change and no cancellation there (those go through this app's own rules).
PORTAL_METADATA_KEY = "securemailmerge_portal"
PORTAL_VERSION = "billing-details-v1"
PORTAL_FEATURES: ConfigurationCreateParamsFeatures = {
    "customer_update": {"enabled": True, "allowed_updates": ["address", "tax_id"]},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": False},
    "subscription_update": {"enabled": False},
}


class StripeGateway:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._client: stripe.StripeClient | None = None
        self._lock = threading.Lock()
        self._portal_configuration: str | None = None
        # Tax rates never change their percentage at Stripe: read once per process (e-invoices).
        self._tax_rates: dict[str, dict[str, Any]] = {}

    def client(self) -> stripe.StripeClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import stripe

                    api_base = self._settings.stripe_api_base
                    self._client = stripe.StripeClient(
                        self._settings.stripe_secret_key,
                        stripe_version=self._settings.stripe_api_version,
                        base_addresses={"api": api_base} if api_base else None,
                        max_network_retries=2,
                    )
        return self._client

    def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        import stripe

        try:
            return fn(*args, **kwargs)
        except stripe.CardError as exc:
            raise StripeCardDeclined(str(exc.user_message or "Your card was declined."),
                                     getattr(exc.error, "decline_code", None)) from exc
        except stripe.IdempotencyError as exc:
            raise StripeIdempotencyConflict(str(exc.user_message or exc)) from exc
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise StripeNotFound(str(exc.user_message or exc)) from exc
            if exc.http_status == 409:
                # Another request with the same idempotency key is still running, or a lock timed out.
                raise StripeUnavailable(str(exc)) from exc
            raise StripeRejected(str(exc.user_message or exc), exc.code, exc.param) from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise StripeUnavailable(str(exc)) from exc
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            log.error("Stripe refused the API key (STRIPE_SECRET_KEY): %s", exc)
            raise StripeUnavailable(str(exc)) from exc
        except stripe.StripeError as exc:  # APIError (5xx) and anything the SDK adds
            raise StripeUnavailable(str(exc)) from exc

    # --- prices ---------------------------------------------------------------------------------

    def seat_price(self, interval: str = "month") -> SeatPrice:
        """The seat price billed monthly, or yearly (`interval="year"`)."""
        v1 = self.client().v1
        lookup_key = (self._settings.stripe_yearly_price_lookup_key if interval == "year"
                      else self._settings.stripe_price_lookup_key)
        prices = self._call(
            v1.prices.list,
            params={"lookup_keys": [lookup_key], "active": True, "expand": ["data.tiers"]},
        )
        if not prices.data:
            raise StripeNotFound(f"no active Stripe price with lookup key {lookup_key!r}")
        price = as_dict(prices.data[0])
        tiers = tuple(
            PriceTier(up_to=t.get("up_to"), unit_amount=int(t.get("unit_amount") or 0))
            for t in (price.get("tiers") or [])
        )
        if not tiers:
            tiers = (PriceTier(up_to=None, unit_amount=int(price.get("unit_amount") or 0)),)
        interval = (price.get("recurring") or {}).get("interval", "month")
        return SeatPrice(id=price["id"], currency=price["currency"], interval=interval, tiers=tiers)

    # --- checkout ----------------------------------------------------------------------------------

    def create_checkout_session(self, params: SessionCreateParams, idempotency_key: str) -> stripe.checkout.Session:
        return self._call(
            self.client().v1.checkout.sessions.create, params=params, options={"idempotency_key": idempotency_key}
        )

    def checkout_session(self, session_id: str) -> Any:
        return self._call(self.client().v1.checkout.sessions.retrieve, session_id, params={"expand": ["subscription"]})

    def completed_checkout_sessions(self, since: int) -> Iterator[Any]:
        page = self._call(
            self.client().v1.checkout.sessions.list,
            params={"status": "complete", "created": {"gte": since}, "limit": 100},
        )
        yield from page.auto_paging_iter()

    # --- purchase by invoice --------------------------------------------------------------------

    def create_customer(self, params: CustomerCreateParams, idempotency_key: str) -> dict[str, Any]:
        return as_dict(self._call(self.client().v1.customers.create, params=params,
                                  options={"idempotency_key": idempotency_key}))

    def create_subscription(self, params: SubscriptionCreateParams, idempotency_key: str) -> dict[str, Any]:
        return as_dict(self._call(self.client().v1.subscriptions.create, params=params,
                                  options={"idempotency_key": idempotency_key}))

    def subscriptions_created_since(self, since: int) -> Iterator[Any]:
        page = self._call(self.client().v1.subscriptions.list,
                          params={"status": "all", "created": {"gte": since}, "limit": 100})
        yield from page.auto_paging_iter()

    # --- subscriptions ---------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> Any:
        """The subscription with its schedule (if any) expanded: its phases with their prices."""
        return self._call(self.client().v1.subscriptions.retrieve, subscription_id,
                          params={"expand": SUBSCRIPTION_EXPAND})

    def all_subscriptions(self) -> Iterator[Any]:
        page = self._call(self.client().v1.subscriptions.list, params={"status": "all", "limit": 100})
        yield from page.auto_paging_iter()

    def change_quantity(self, subscription_id: str, item_id: str, quantity: int, *, idempotency_key: str,
                        proration_date: int | None = None) -> dict[str, Any]:
        """Set the seat item's quantity, billing the prorations at once on an invoice charged now; a
        declined card refuses the whole change (StripeCardDeclined, nothing changed). Returns the
        subscription with `latest_invoice` expanded. The same idempotency key with the same
        parameters changes Stripe once (Stripe replays its first answer for 24 hours)."""
        params: SubscriptionUpdateParams = {
            "items": [{"id": item_id, "quantity": quantity}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "error_if_incomplete",
            "expand": ["latest_invoice"],
        }
        if proration_date is not None:
            params["proration_date"] = proration_date
        return as_dict(self._call(self.client().v1.subscriptions.update, subscription_id, params=params,
                                  options={"idempotency_key": idempotency_key}))

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> dict[str, Any]:
        """Cancel at the end of the paid period, or take that back (before the period ends)."""
        return as_dict(self._call(self.client().v1.subscriptions.update, subscription_id,
                                  params={"cancel_at_period_end": cancel}))

    # --- subscription schedules (a change of the billing interval at the next renewal) --------------

    def create_subscription_schedule(self, subscription_id: str, *, idempotency_key: str) -> dict[str, Any]:
        """A schedule for the subscription as it is: one phase, the current period (Stripe's
        `from_subscription`); it changes nothing until its phases are updated."""
        return as_dict(self._call(self.client().v1.subscription_schedules.create,
                                  params={"from_subscription": subscription_id, "expand": ["phases.items.price"]},
                                  options={"idempotency_key": idempotency_key}))

    def update_subscription_schedule(self, schedule_id: str, phases: list[dict[str, Any]], *, idempotency_key: str,
                                     metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Set the schedule's phases from the current one on (`phases[]` as Stripe takes them); a
        current phase equal to the subscription changes nothing now (`proration_behavior=none`).
        When the last phase ends the schedule lets the subscription go on as it is then."""
        params: SubscriptionScheduleUpdateParams = {
            "phases": cast("Any", phases), "proration_behavior": "none", "end_behavior": "release"}
        if metadata is not None:
            params["metadata"] = metadata
        return as_dict(self._call(self.client().v1.subscription_schedules.update, schedule_id, params=params,
                                  options={"idempotency_key": idempotency_key}))

    def release_subscription_schedule(self, schedule_id: str, *, idempotency_key: str) -> dict[str, Any]:
        """Detach the schedule: the subscription goes on as it is now, nothing planned changes it."""
        return as_dict(self._call(self.client().v1.subscription_schedules.release, schedule_id,
                                  options={"idempotency_key": idempotency_key}))

    def preview_first_invoice(self, customer_id: str, price_id: str, quantity: int, *, start: int, interval: str,
                              automatic_tax: bool) -> dict[str, Any]:
        """`Invoice.create_preview` of a schedule starting at `start` with `quantity` × `price_id` for
        one `interval`: the invoice that period begins with, tax included. Nothing is stored."""
        params: InvoiceCreatePreviewParams = {
            "customer": customer_id, "automatic_tax": {"enabled": automatic_tax},
            "schedule_details": {"phases": [{
                "start_date": start, "items": [{"price": price_id, "quantity": quantity}],
                "duration": {"interval": cast("Any", interval), "interval_count": 1}}]}}
        return as_dict(self._call(self.client().v1.invoices.create_preview, params=params))

    # --- invoices ------------------------------------------------------------------------------------

    def preview_quantity(self, subscription_id: str, customer_id: str, item_id: str, quantity: int, *,
                         proration_behavior: str, proration_date: int | None = None) -> dict[str, Any]:
        """`Invoice.create_preview` of the seat item at `quantity`: with `always_invoice`, the invoice the
        change would bill at once (prorations only); with `none`, the next regular invoice. Nothing is
        stored at Stripe."""
        details: InvoiceCreatePreviewParamsSubscriptionDetails = {
            "items": [{"id": item_id, "quantity": quantity}], "proration_behavior": proration_behavior}
        if proration_date is not None:
            details["proration_date"] = proration_date
        params: InvoiceCreatePreviewParams = {"customer": customer_id, "subscription": subscription_id,
                                              "subscription_details": details}
        return as_dict(self._call(self.client().v1.invoices.create_preview, params=params))

    def invoices(self, subscription_id: str, limit: int, starting_after: str | None = None
                 ) -> tuple[list[dict[str, Any]], bool]:
        """One page of the subscription's invoices, newest first; (invoices, has_more)."""
        params: InvoiceListParams = {"subscription": subscription_id, "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        page = self._call(self.client().v1.invoices.list, params=params)
        return [as_dict(invoice) for invoice in page.data], bool(page.has_more)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """One invoice with all its lines (StripeNotFound when Stripe does not know it)."""
        invoice = as_dict(self._call(self.client().v1.invoices.retrieve, invoice_id))
        lines = invoice.get("lines") or {}
        if lines.get("has_more"):
            page = self._call(self.client().v1.invoices.line_items.list, invoice_id, params={"limit": 100})
            invoice["lines"] = {**lines, "data": [as_dict(line) for line in page.auto_paging_iter()],
                                "has_more": False}
        return invoice

    def tax_rate(self, tax_rate_id: str) -> dict[str, Any]:
        """A tax rate (its percentage), read from Stripe once per process."""
        with self._lock:
            cached = self._tax_rates.get(tax_rate_id)
        if cached is not None:
            return cached
        rate = as_dict(self._call(self.client().v1.tax_rates.retrieve, tax_rate_id))
        with self._lock:
            self._tax_rates[tax_rate_id] = rate
        return rate

    def invoice_pdf(self, invoice: dict[str, Any], timeout: float = 30.0) -> bytes:
        """The PDF Stripe rendered for the invoice (its `invoice_pdf` link); network errors, an answer
        that is not a PDF, or one over 20 MiB are StripeUnavailable."""
        import requests

        url = invoice.get("invoice_pdf")
        if not url:
            raise StripeNotFound(f"invoice {invoice.get('id')} has no PDF (a draft?)")
        limit = 20 * 1024 * 1024
        try:
            with requests.get(str(url), timeout=timeout, stream=True) as response:
                if response.status_code != 200:
                    raise StripeUnavailable(f"the invoice PDF answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        raise StripeUnavailable("the invoice PDF is larger than 20 MiB")
        except requests.RequestException as exc:
            raise StripeUnavailable(f"the invoice PDF could not be downloaded: {exc}") from exc
        if not body.startswith(b"%PDF"):
            raise StripeUnavailable("the invoice PDF link did not answer with a PDF")
        return bytes(body)

    def funding_iban(self, customer_id: str) -> dict[str, str] | None:
        """The IBAN (with BIC and account holder) the customer transfers euros to (Stripe's EU bank
        transfer funding instructions, country DE), or None when Stripe has none for the customer."""
        try:
            found = as_dict(self._call(self.client().v1.customers.funding_instructions.create, customer_id, params={
                "funding_type": "bank_transfer", "currency": "eur",
                "bank_transfer": {"type": "eu_bank_transfer", "eu_bank_transfer": {"country": "DE"}}}))
        except (StripeRejected, StripeNotFound) as exc:
            log.info("no funding instructions for customer %s: %s", customer_id, exc)
            return None
        for address in (found.get("bank_transfer") or {}).get("financial_addresses") or []:
            iban = address.get("iban") or {}
            if address.get("type") == "iban" and iban.get("iban"):
                return {"iban": str(iban["iban"]), "bic": str(iban.get("bic") or ""),
                        "account_holder_name": str(iban.get("account_holder_name") or "")}
        return None

    # --- billing portal --------------------------------------------------------------------------------

    def billing_portal_url(self, customer_id: str, return_url: str, locale: str) -> str:
        """A billing-portal session for the customer under the portal configuration this app keeps
        (payment methods, billing address, tax ids, invoice history; no plan change, no cancel)."""
        session = self._call(self.client().v1.billing_portal.sessions.create, params={
            "customer": customer_id, "configuration": self.portal_configuration_id(), "return_url": return_url,
            "locale": locale if locale in ("en", "de") else "auto"})
        return str(session.url)

    def portal_configuration_id(self) -> str:
        """The portal configuration this app uses: found by its metadata, created once if missing.

        Kept in Stripe rather than in a setting, so a new deployment or a new Stripe account needs no
        step by hand; the id is remembered per process. A configuration whose features differ from
        PORTAL_FEATURES (an older version of this app, or edited in the dashboard) is not used: its
        version in the metadata names the features it was made with."""
        with self._lock:
            if self._portal_configuration is not None:
                return self._portal_configuration
        found = None
        page = self._call(self.client().v1.billing_portal.configurations.list,
                          params={"active": True, "limit": 100})
        for configuration in page.auto_paging_iter():
            if (as_dict(configuration).get("metadata") or {}).get(PORTAL_METADATA_KEY) == PORTAL_VERSION:
                found = str(configuration.id)
                break
        if found is None:
            params: ConfigurationCreateParams = {
                "business_profile": {"headline": "SecureMailMerge: payment method and billing details"},
                "features": PORTAL_FEATURES,
                "metadata": {PORTAL_METADATA_KEY: PORTAL_VERSION},
            }
            # Two instances creating it at once make one configuration (Stripe keeps keys for 24 hours).
            created = self._call(self.client().v1.billing_portal.configurations.create, params=params,
                                 options={"idempotency_key": f"securemailmerge-portal-{PORTAL_VERSION}"})
            found = str(created.id)
        with self._lock:
            self._portal_configuration = found
        return found

    # --- customers -----------------------------------------------------------------------------------

    def update_customer_email(self, customer_id: str, email: str) -> None:
        """Where Stripe sends invoices and receipts (ownership transfer, when the owner chose so)."""
        self._call(self.client().v1.customers.update, customer_id, params={"email": email})

    def set_invoice_custom_fields(self, customer_id: str, fields: list[tuple[str, str]]) -> None:
        """(name, value) pairs Stripe prints on every future invoice of the customer (at most 4; a name
        at most 40, a value at most 140 characters). No fields clears them: "" unsets a list at Stripe."""
        self._call(self.client().v1.customers.update, customer_id, params={"invoice_settings": {
            "custom_fields": [{"name": name, "value": value} for name, value in fields] or ""}})

    def customer_billing_details(self, customer_id: str) -> dict[str, Any]:
        """The customer as invoices show it: name, address, e-mail and tax ids (expanded: Stripe leaves
        `tax_ids` out of a customer otherwise). A deleted customer comes back as `{"deleted": true}`."""
        return as_dict(self._call(self.client().v1.customers.retrieve, customer_id, params={"expand": ["tax_ids"]}))

    # --- webhooks ------------------------------------------------------------------------------------

    def verify_event(self, payload: bytes, signature: str | None, tolerance: int = 300) -> dict[str, Any]:
        """Check Stripe-Signature against each configured secret (several during rotation).

        Verified as Stripe documents it ("verify signatures manually", the same steps as the SDK's
        `WebhookSignature.verify_header`; tests/unit/test_webhook_signature.py compares the two): the
        SDK itself is not imported here, so acknowledging a webhook after a cold start does not wait
        for it (it loads in the queue function that applies the event)."""
        if not signature:
            raise InvalidWebhook("missing Stripe-Signature header")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidWebhook("body is not UTF-8") from exc
        signed_at = _signed_at(signature)
        candidates = _v1_signatures(signature)
        secrets = self._settings.stripe_webhook_secrets
        if not any(_signs(f"{signed_at}.{text}", secret, candidates) for secret in secrets):
            raise InvalidWebhook("signature does not match any configured secret")
        # The tolerance applies both ways (the SDK only refuses old timestamps): one far ahead would
        # stay replayable until it, too, is old.
        if abs(signed_at - time.time()) > tolerance:
            raise InvalidWebhook(f"the signature's timestamp is more than {tolerance} s away from now")
        import json

        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise InvalidWebhook("body is not JSON") from exc
        if (
            not isinstance(event, dict)
            or event.get("object") != "event"
            or not event.get("id")
            or not event.get("type")
        ):
            raise InvalidWebhook("body is not a Stripe event")
        return event
