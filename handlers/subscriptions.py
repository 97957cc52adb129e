"""A subscription's overview page and its setup checklist (PRODUCT.md capability 1); for the owner, the
page holds the delegated administrators (PRODUCT.md capability 4: forms in handlers/delegates_pages.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from handlers import gate
from handlers.blueprint import new_blueprint
from handlers.web import WebRequest
from services import access, bootstrap, consent, delegation, setup_checklist, subscription_store
from services.delegate import DELEGABLE, DELEGATE, OWNER_OFFER
from services.subscription import Subscription

bp = new_blueprint()

ADMIN_CENTER_INTEGRATED_APPS = "https://admin.microsoft.com/#/Settings/IntegratedApps"


def checklist(subscription: Subscription, caller: access.Caller | None = None) -> list[dict[str, Any]]:
    """The setup steps in PRODUCT.md's order (services/setup_checklist.py): `done` where the server can
    tell, the owner's `mark` on optional steps, and whether `caller` may mark them. A step links only
    to what `caller` may use (no caller: every link, as in the reminder mail)."""
    sid = subscription.id

    def may(permission: str) -> bool:
        return caller is None or caller.can(permission)

    links = {
        setup_checklist.ASSIGN: f"/api/subscriptions/{sid}/licenses" if may(access.LICENSES_READ) else None,
        setup_checklist.INSTALL: ADMIN_CENTER_INTEGRATED_APPS,
        setup_checklist.CONSENT: "/api/consent",
        setup_checklist.DELEGATES: f"/api/subscriptions/{sid}#delegates" if may(access.OWNER) else None,
    }
    steps = setup_checklist.steps(
        subscription, consent_granted=consent.granted(bootstrap.storage(), subscription.tenant_id) is not None,
        has_delegate=bool(bootstrap.unit_of_work().subscriptions.delegates(sid)))
    return [{"key": step.key, "done": step.done, "mark": step.mark, "settled": step.settled,
             "markable": step.markable and caller is not None and caller.can(access.OWNER),
             "link": links[step.key]} for step in steps]


def render_subscription(web: WebRequest, caller: access.Caller, subscription: Subscription, status: int = 200,
                        **extra: Any) -> func.HttpResponse:
    """The subscription page as `caller` may use it: links only to what they may open, and for the
    owner the delegated administrators with their forms. `extra`: form errors and entered values,
    or the invitation link shown once after an invitation (handlers/delegates_pages.py)."""
    grace_days = web.settings.grace_days
    steps = checklist(subscription, caller)
    grace = subscription.grace_ends_at(grace_days)
    context: dict[str, Any] = {}
    if caller.can(access.OWNER):
        roster = delegation.roster(bootstrap.unit_of_work(), subscription.id)
        context = {
            "delegates": roster.delegates,
            "invitations": [i for i in roster.invitations if i.kind == DELEGATE],
            "owner_offer": next((i for i in roster.invitations if i.kind == OWNER_OFFER), None),
            "delegable": DELEGABLE,
        }
    return web.render(
        "subscription.html",
        status=status,
        subscription=subscription,
        state=subscription.license_state(grace_days).value,
        grace_until=grace.strftime("%Y-%m-%d") if grace else None,
        checklist_done=all(step["settled"] for step in steps if step["key"] in setup_checklist.BANNER_STEPS),
        can_read_licenses=caller.can(access.LICENSES_READ),
        can_assign=caller.can(access.LICENSES_ASSIGN),
        can_view=caller.can(access.SUBSCRIPTION_VIEW),
        can_manage_delegates=caller.can(access.OWNER),
        can_quantity=caller.can(access.QUANTITY_MANAGE) and subscription.kind == "organisation",
        can_billing=caller.can(access.BILLING_MANAGE),
        can_cancel=caller.can(access.OWNER),
        **context,
        **extra,
    )


@bp.route(route="subscriptions/{subscription_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.SUBSCRIPTION_READ)
def subscription_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    return render_subscription(web, caller, subscription)


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
    return web.render("setup.html", subscription=subscription, steps=checklist(subscription, caller),
                      # Just bought by invoice (handlers/purchase.py): where the invoice went.
                      invoice_sent=web.req.params.get("invoice") == "sent",
                      invoice_days=web.settings.invoice_days_until_due)
