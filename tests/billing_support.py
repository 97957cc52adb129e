"""A stack of its own for the quantity and billing tests, and what they compute independently.

"Half-way through the period" needs the Stripe emulator's clock moved forward (its clock is global, and
moving it far enough renews every subscription on it). So these tests get their own emulator, and with
it their own Azurite and app host (two hosts on one storage would take each other's Stripe events and
ask the wrong emulator); the identity provider is the session's.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.stripe_gateway import StripeGateway
from local_host import launch as launch_host
from local_host.azurite import start_azurite
from services.settings import load_settings
from tests.conftest import REPO_ROOT, STRIPE_KEY, WEBHOOK_SECRET, Stack, app_values

# The seat price as the product defines it (README: 1-9 licenses 6.00 €, 10 and more 4.80 € per month,
# volume pricing: the whole quantity at the tier it falls in), written down here, not read from Stripe.
TIERS = ((9, 600), (None, 480))


def volume_total(quantity: int) -> int:
    unit = next(amount for up_to, amount in TIERS if up_to is None or quantity <= up_to)
    return unit * quantity


def prorated(amount: int, remaining: int, period: int) -> int:
    """amount × remaining / period, rounded to the cent (halves away from zero), as Stripe prorates."""
    magnitude = (2 * abs(amount) * remaining + period) // (2 * period)
    return -magnitude if amount < 0 else magnitude


@contextmanager
def own_stack(identity_provider: Any, tmp_path_factory: Any, **settings: str) -> Iterator[Stack]:
    """`settings`: app settings for this stack's host (by name), over the test defaults."""
    from standins.stripe_emulator import launch as launch_emulator
    from standins.stripe_emulator.bootstrap import client_for, ensure_catalog

    azurite = start_azurite(in_memory=True)
    emulator = launch_emulator(port=0, webhook_secret=WEBHOOK_SECRET)
    host = None
    try:
        ensure_catalog(client_for(STRIPE_KEY, emulator.url))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base_url = f"http://localhost:{port}"
        outbox_dir = tmp_path_factory.mktemp("outbox-billing")
        env = app_values(azurite, identity_provider, emulator, outbox_dir, base_url, **settings)
        host = launch_host(REPO_ROOT, env=env, port=port)
        stack = Stack(url=base_url, env=env, settings=load_settings(env), azurite=azurite,
                      identity_provider=identity_provider, stripe_emulator=emulator, outbox_dir=outbox_dir, host=host)
        stack.emulator_control("config", {"webhook_url": f"{base_url}/api/stripe/webhook",
                                          "webhook_secret": WEBHOOK_SECRET})
        yield stack
    finally:
        if host is not None:
            host.stop()
        emulator.stop()
        azurite.stop()


def stripe_subscription(stack: Stack, subscription_id: str) -> dict[str, Any]:
    return StripeGateway(stack.settings).subscription(subscription_id).to_dict()


def seat_item(stack: Stack, subscription_id: str) -> dict[str, Any]:
    item: dict[str, Any] = stripe_subscription(stack, subscription_id)["items"]["data"][0]
    return item


def advance_to_half_way(stack: Stack, subscription_id: str) -> tuple[int, int]:
    """Move the emulator's clock to the middle of the subscription's current period; (start, end)."""
    item = seat_item(stack, subscription_id)
    start, end = item["current_period_start"], item["current_period_end"]
    now = stack.emulator_control("clock/advance", {"seconds": 0})["now"]
    stack.emulator_control("clock/advance", {"seconds": max(0, start + (end - start) // 2 - now)})
    return start, end


def expected_due_now(before: int, after: int, proration_date: int, start: int, end: int) -> int:
    """Credit for the rest of the period at the old total, charge at the new one (each at its tier)."""
    remaining, period = end - proration_date, end - start
    return prorated(volume_total(after), remaining, period) - prorated(volume_total(before), remaining, period)


def invoices_of(stack: Stack, subscription_id: str) -> list[dict[str, Any]]:
    page = StripeGateway(stack.settings).client().v1.invoices.list(
        params={"subscription": subscription_id, "limit": 100})
    return [invoice.to_dict() for invoice in page.data]
