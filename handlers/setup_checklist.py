"""The owner marks an optional setup step (admin consent, delegated administrators) done or not needed,
or takes the mark back (services/setup_checklist.py); the checklist itself is handlers/subscriptions.py."""

from __future__ import annotations

import azure.functions as func

from handlers import gate
from handlers.blueprint import new_blueprint
from handlers.seat_changes import actor
from handlers.web import WebRequest
from services import access, bootstrap, setup_checklist
from services.i18n import translator
from services.subscription import Subscription

bp = new_blueprint()


@bp.route(route="subscriptions/{subscription_id}/setup/steps", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def setup_step_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    t = translator(web.language)
    form = web.form()
    try:  # decided before anything is written
        step = setup_checklist.parse_step(form.get("step"))
        mark = setup_checklist.parse_mark(form.get("mark"))
    except setup_checklist.InvalidMark as exc:
        return web.error_page(400, t("setup.mark.invalid.title"), t(f"setup.mark.invalid.{exc.field}"))
    setup_checklist.mark(bootstrap.unit_of_work(), actor(caller), subscription.id, step, mark)
    web.flash("success", t(f"setup.mark.flash.{mark or 'cleared'}", step=t(f"setup.step.{step}.name")))
    return web.redirect(f"/api/subscriptions/{subscription.id}/setup#step-{step}")
