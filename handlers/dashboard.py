"""The dashboard home: "My subscriptions" (owned, administered, and my own licenses)."""

from __future__ import annotations

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import when_configured
from handlers.web import NotSignedIn, WebRequest
from services import bootstrap, subscription_store

bp = new_blueprint()


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
    roles = subscription_store.for_user(storage, person.tid, person.oid)
    administered = {sub.id for sub, _ in roles}
    roles += [
        (sub, "licensee")
        for sub in subscription_store.licensed(storage, person.tid, person.oid, person.email)
        if sub.id not in administered
    ]
    rows = [{"subscription": sub, "role": role, "state": sub.license_state(grace_days).value} for sub, role in roles]
    return web.render("home.html", subscriptions=rows)
