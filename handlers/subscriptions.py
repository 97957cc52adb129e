"""A subscription's overview page and its setup checklist (PRODUCT.md capability 1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from handlers import gate
from handlers.blueprint import new_blueprint
from handlers.web import WebRequest
from services import access, bootstrap, consent, subscription_store
from services.subscription import Subscription

bp = new_blueprint()

ADMIN_CENTER_INTEGRATED_APPS = "https://admin.microsoft.com/#/Settings/IntegratedApps"


def checklist(subscription: Subscription) -> list[dict[str, Any]]:
    """The setup steps in PRODUCT.md's order; `done` where the server can tell."""
    sid = subscription.id
    return [
        {"key": "assign", "done": subscription.assigned_count > 0, "link": f"/api/subscriptions/{sid}/licenses"},
        {"key": "install", "done": False, "link": ADMIN_CENTER_INTEGRATED_APPS},
        {"key": "consent", "done": consent.granted(bootstrap.storage(), subscription.tenant_id) is not None,
         "link": "/api/consent"},
        {"key": "delegates", "done": False, "link": None},
    ]


@bp.route(route="subscriptions/{subscription_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.SUBSCRIPTION_READ)
def subscription_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    grace_days = web.settings.grace_days
    steps = checklist(subscription)
    grace = subscription.grace_ends_at(grace_days)
    return web.render(
        "subscription.html",
        subscription=subscription,
        state=subscription.license_state(grace_days).value,
        grace_until=grace.strftime("%Y-%m-%d") if grace else None,
        checklist_done=steps[0]["done"] and steps[2]["done"],
    )


@bp.route(route="subscriptions/{subscription_id}/setup", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.SUBSCRIPTION_READ)
def setup_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    if subscription.setup_seen_at is None and caller.can(access.OWNER):
        # The owner has seen the checklist: no "finish setup" reminder mail is needed any more.
        now = datetime.now(UTC)
        subscription_store.update(
            bootstrap.storage(),
            subscription.id,
            lambda current: None if current.setup_seen_at else (replace(current, setup_seen_at=now), []),
        )
    return web.render("setup.html", subscription=subscription, steps=checklist(subscription))
