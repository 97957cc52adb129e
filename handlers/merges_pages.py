"""Merging individual subscriptions on the dashboard (PRODUCT.md capability 6; the owner alone).

`subscriptions/{id}/merge`: the candidates with checkboxes and the free licenses; **Merge** posts the
selection with a request id made when the page was rendered (the merge's id: a double click or a
re-sent form merges once). When more licenses are needed, the same page shows the price preview
(services/quantity_change.py) with **Confirm**, which sends the selection again with the preview's
quantity and proration date. After the merge, `?merge=<id>` shows its progress person by person; a
merge that stopped half-way offers **Complete the merge** (the same request again).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from handlers import gate
from handlers.billing_api import billing
from handlers.billing_pages import _preview_context, refusal_text
from handlers.blueprint import new_blueprint
from handlers.seat_changes import InvalidRequestId, actor, request_id
from handlers.web import WebRequest
from services import access, merge
from services.i18n import translator
from services.merge_record import Merge
from services.subscription import Subscription
from services.unit_of_work import Refused, UnitOfWork

log = logging.getLogger(__name__)
bp = new_blueprint()

_SELECTED = "sub_"


def _page(subscription: Subscription) -> str:
    return f"/api/subscriptions/{subscription.id}/merge"


def _render(web: WebRequest, caller: access.Caller, subscription: Subscription, status: int = 200,
            selected: list[str] | None = None, record: Merge | None = None, **extra: Any) -> func.HttpResponse:
    found = merge.candidates(UnitOfWork(billing().storage), subscription)
    rows = [{"candidate": c, "paid_until": c.paid_until.strftime("%Y-%m-%d") if c.paid_until else "",
             "checked": c.subscription.id in (selected or []),
             # As the dashboard names it (Stripe's own status is a code, not a word of the page's language).
             "state": c.subscription.license_state(web.settings.grace_days).value} for c in found]
    people = [{"person": p, "ends_on": p.ends_at.strftime("%Y-%m-%d") if p.ends_at else ""}
              for p in (record.people if record else ())]
    return web.render("merge.html", status=status, subscription=subscription, candidates=rows, record=record,
                      people=people, free=max(subscription.quantity - subscription.assigned_count, 0),
                      request_id=extra.pop("request_id", None) or uuid.uuid4().hex, selected=selected or [],
                      here=_page(subscription).removeprefix("/"), **extra)


@bp.route(route="subscriptions/{subscription_id}/merge", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER)
def merge_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Candidates to select; with `?merge=<id>` the progress of that merge."""
    record = None
    try:
        merge_id = request_id(web.req.params.get("merge"), "merge")
    except InvalidRequestId:
        merge_id = None
    if merge_id:
        record = UnitOfWork(billing().storage).subscriptions.merge(subscription.id, merge_id)
    return _render(web, caller, subscription, record=record)


@bp.route(route="subscriptions/{subscription_id}/merge", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.OWNER, form=True)
def merge_form(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Merge the selected subscriptions (after confirming the price when more licenses are needed)."""
    t = translator(web.language)
    form = web.form()
    selected = [name.removeprefix(_SELECTED) for name, value in form.items()
                if name.startswith(_SELECTED) and value]
    try:
        key = request_id(form.get("request_id"), "request_id")
    except InvalidRequestId:
        key = None
    if not selected or key is None:
        return _render(web, caller, subscription, 400, selected=selected, error=t("merge.error.none_selected"))
    quantity = _number(form.get("quantity"))
    proration_date = _number(form.get("proration_date"))
    context = billing()
    try:
        record = merge.start(context, actor(caller), subscription, key, selected, quantity, proration_date)
    except merge.QuantityConfirmationRequired as exc:
        preview = _preview_context(web, exc.preview) if exc.preview else {}
        preview.pop("request_id", None)
        return _render(web, caller, subscription, 409, selected=selected, request_id=key, confirm=exc,
                       **preview)
    except (Refused, StripeUnavailable) as exc:
        started = UnitOfWork(context.storage).subscriptions.merge(subscription.id, key)
        message = (refusal_text(web, exc, caller) if isinstance(exc, Refused)
                   else t("billing.error.stripe_unavailable"))
        if isinstance(exc, merge.NotACandidate):
            message = t("merge.error.not_a_candidate")
        status = exc.status if isinstance(exc, Refused) else 503
        if started is None:
            return _render(web, caller, subscription, status, selected=selected, error=message)
        log.warning("merge %s on %s stopped: %s", key, subscription.id, exc)
        return _render(web, caller, subscription, 503, record=started, selected=selected, request_id=key,
                       error=t("merge.error.incomplete"), retry=True)
    web.flash("success", t("merge.flash.done", count=len(record.people)))
    return web.redirect(f"{_page(subscription)}?merge={record.id}")


def _number(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() and len(text) <= 12 else None
