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

Billing covered: Checkout (subscription mode; business details: billing address, VAT ID,
automatic tax, customer_update), customers with addresses, invoice custom fields, tax
exemption and tax IDs (``customers.py``, ``tax_ids.py``), customer-balance funding
instructions with a virtual IBAN (``funding.py``), subscriptions and their items with
quantity changes prorated over volume tiers and interval changes (``billing.py``),
subscription schedules that change the price or quantity at a renewal (``schedules.py``),
collection by card or by sent invoice with due dates, overdue handling and bank transfers
(``collection.py``), Stripe Tax for a German seller: VAT, OSS rates, EU reverse charge, tax
rate objects (``tax.py``), ``Invoice.create_preview``, invoice list/retrieve with a hosted
invoice page and a PDF carrying seller, buyer, taxes and payment instructions
(``invoice_page.py``, ``pdf.py``), the renewal notice ``invoice.upcoming``
(``upcoming.py``), billing-portal configurations and sessions with a portal page,
``cancel_at_period_end``, declined charges, the account's clock (``clock.py``) and the
webhooks Stripe sends for all of it. The catalog (``bootstrap.py``): a monthly and a yearly
seat price with the same volume tiers, tax-exclusive. Responses follow the current API
shapes (2025-03-31.basil and later); tests check them against Stripe's published schemas
(tests/standins/stripe_schemas).
"""

from .bootstrap import PRICE_LOOKUP_KEY, TIERS, YEARLY_PRICE_LOOKUP_KEY, YEARLY_TIERS, ensure_catalog
from .emulator import Emulator, Settings
from .launcher import EmulatorProcess, launch
from .server import serve

__all__ = ["Emulator", "EmulatorProcess", "PRICE_LOOKUP_KEY", "Settings", "TIERS",
           "YEARLY_PRICE_LOOKUP_KEY", "YEARLY_TIERS", "ensure_catalog", "launch", "serve"]
