"""The dashboard home: "My subscriptions" (owned, administered, and my own licenses), each with the
caller's role and only the actions they may take on it; and purchases still waiting for their payment."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import NotSignedIn, WebRequest
from services import access, bootstrap, delayed_payment, subscription_store

bp = new_blueprint()


def actions(caller: access.Caller, subscription_id: str, kind: str = "organisation") -> list[tuple[str, str]]:
    """(text key, link) of what `caller` may open on the subscription; nothing they would be refused."""
    base = f"/api/subscriptions/{subscription_id}"
    offered = [(access.LICENSES_ASSIGN, "home.action.assign", f"{base}/licenses"),
               (access.LICENSES_READ, "home.action.licenses", f"{base}/licenses"),
               (access.SUBSCRIPTION_VIEW, "home.action.audit", f"{base}/audit"),
               (access.QUANTITY_MANAGE, "home.action.quantity", f"{base}/quantity"),
               (access.BILLING_MANAGE, "home.action.billing", f"{base}/billing"),
               (access.OWNER, "home.action.delegates", f"{base}#delegates")]
    out: list[tuple[str, str]] = []
    for permission, key, link in offered:
        if key == "home.action.quantity" and kind != "organisation":
            continue  # an individual subscription keeps its one license
        if caller.can(permission) and link not in (href for _, href in out):
            out.append((key, link))
    return out


@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    web = WebRequest.of(req)
    try:
        person = web.require_person()
    except NotSignedIn:
        return web.render("welcome.html")
    grace_days = web.settings.grace_days
    storage = bootstrap.storage()
    rows: list[dict[str, Any]] = []
    for sub, _ in subscription_store.for_user(storage, person.tid, person.oid):
        # What the person holds is read from the subscription's partition on every request: a lookup
        # row left behind by a removal shows nothing.
        caller = access.caller_on(storage, sub, person)
        if caller.role is None or not caller.permissions:
            continue
        rows.append({"subscription": sub, "role": caller.role, "state": sub.license_state(grace_days).value,
                     "actions": actions(caller, sub.id, sub.kind)})
    administered = {row["subscription"].id for row in rows}
    rows += [
        {"subscription": sub, "role": "licensee", "state": sub.license_state(grace_days).value, "actions": []}
        for sub in subscription_store.licensed(storage, person.tid, person.oid, person.email)
        if sub.id not in administered
    ]
    # Purchases waiting for a delayed payment (SEPA debit) have no subscription yet: shown apart.
    return web.render("home.html", subscriptions=rows,
                      pending_purchases=delayed_payment.of_person(storage, person.tid, person.oid))
