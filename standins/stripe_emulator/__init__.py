"""A local, stateful Stripe emulator for development and tests.

The production Stripe adapter (the real ``stripe`` SDK) talks to it unchanged once its base
URL points here, either globally::

    stripe.api_key = "sk_test_anything"
    stripe.api_base = "http://127.0.0.1:12111"          # no trailing slash, no /v1

or per client (stripe-python >= 8)::

    stripe.StripeClient("sk_test_anything", base_addresses={"api": "http://127.0.0.1:12111"})

Run it with ``python -m standins.stripe_emulator serve --port 12111 [--webhook-url URL
--webhook-secret whsec_...] [--state-file .data/stripe.json]``; start it from tests with
``launch()``. Control endpoints live under ``/_emulator/`` (see ``control.py``).

Billing covered: Checkout (subscription mode), customers, subscriptions and their items with
quantity changes prorated over volume tiers (``billing.py``), ``Invoice.create_preview``,
invoice list/retrieve with a hosted invoice page and PDF, billing-portal configurations and
sessions with a portal page, ``cancel_at_period_end``, declined charges and the webhooks
Stripe sends for all of it. Responses follow the current API shapes (2025-03-31.basil and
later); tests check them against Stripe's published schemas (tests/standins/stripe_schemas).
"""

from .bootstrap import PRICE_LOOKUP_KEY, TIERS, ensure_catalog
from .emulator import Emulator, Settings
from .launcher import EmulatorProcess, launch
from .server import serve

__all__ = ["Emulator", "EmulatorProcess", "PRICE_LOOKUP_KEY", "Settings", "TIERS",
           "ensure_catalog", "launch", "serve"]
