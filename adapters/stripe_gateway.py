"""The production Stripe adapter: the real `stripe` SDK, configured from settings.

Locally `STRIPE_API_BASE` points the same SDK at the emulator; nothing else differs. The SDK is
imported on first use so it stays off the license check's cold-start path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from services.settings import Settings

if TYPE_CHECKING:
    import stripe
    from stripe.params.checkout import SessionCreateParams

_P = ParamSpec("_P")
_T = TypeVar("_T")


def as_dict(obj: Any) -> dict[str, Any]:
    """A StripeObject, or a dict parsed from a webhook body, as plain nested dicts."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class StripeUnavailable(RuntimeError):
    """Stripe could not be reached or answered with a server error; try again later."""


class StripeNotFound(LookupError):
    pass


class InvalidWebhook(ValueError):
    """A webhook body that is not a Stripe event signed with one of the configured secrets."""


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


class StripeGateway:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._client: stripe.StripeClient | None = None
        self._lock = threading.Lock()

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
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise StripeNotFound(str(exc.user_message or exc)) from exc
            raise
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise StripeUnavailable(str(exc)) from exc
        except stripe.APIError as exc:
            raise StripeUnavailable(str(exc)) from exc

    # --- prices ---------------------------------------------------------------------------------

    def seat_price(self) -> SeatPrice:
        v1 = self.client().v1
        prices = self._call(
            v1.prices.list,
            params={"lookup_keys": [self._settings.stripe_price_lookup_key], "active": True, "expand": ["data.tiers"]},
        )
        if not prices.data:
            raise StripeNotFound(f"no active Stripe price with lookup key {self._settings.stripe_price_lookup_key!r}")
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

    # --- subscriptions ---------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> Any:
        return self._call(self.client().v1.subscriptions.retrieve, subscription_id)

    def all_subscriptions(self) -> Iterator[Any]:
        page = self._call(self.client().v1.subscriptions.list, params={"status": "all", "limit": 100})
        yield from page.auto_paging_iter()

    # --- customers -----------------------------------------------------------------------------------

    def update_customer_email(self, customer_id: str, email: str) -> None:
        """Where Stripe sends invoices and receipts (ownership transfer, when the owner chose so)."""
        self._call(self.client().v1.customers.update, customer_id, params={"email": email})

    # --- webhooks ------------------------------------------------------------------------------------

    def verify_event(self, payload: bytes, signature: str | None, tolerance: int = 300) -> dict[str, Any]:
        """Check Stripe-Signature against each configured secret (several during rotation)."""
        import stripe

        if not signature:
            raise InvalidWebhook("missing Stripe-Signature header")
        for secret in self._settings.stripe_webhook_secrets:
            try:
                stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, tolerance)
            except stripe.SignatureVerificationError:
                continue
            except UnicodeDecodeError as exc:
                raise InvalidWebhook("body is not UTF-8") from exc
            break
        else:
            raise InvalidWebhook("signature does not match any configured secret, or the timestamp is too old")
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
