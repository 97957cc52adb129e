"""Merging individual subscriptions into the organisation subscription through the JSON API
(PRODUCT.md capability 6; the owner alone), and the timer that completes merges left half-done.

Thin: the gate (`handlers/gate.py`) authenticates the bearer token and hands over the subscription the
caller owns; the views parse the request and call services/merge.py. Refusals and Stripe's outages are
answered by billing_api's `refusal` and the gate (one error shape). The OpenAPI description is in
`handlers/merges_openapi.py`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from adapters.stripe_gateway import StripeUnavailable
from handlers import gate, merges_openapi  # noqa: F401 - merges_openapi describes these routes
from handlers.billing_api import billing, preview_json, refusal
from handlers.blueprint import new_blueprint
from handlers.responses import error, json_response
from handlers.seat_changes import actor, request_id
from services import access, merge
from services.merge import Candidate
from services.merge_record import Merge
from services.subscription import Subscription
from services.unit_of_work import Refused, UnitOfWork

log = logging.getLogger(__name__)
bp = new_blueprint()

IDEMPOTENCY_HEADER = "Idempotency-Key"


def candidate_json(candidate: Candidate) -> dict[str, Any]:
    individual = candidate.subscription
    return {
        "subscription_id": individual.id,
        "email": candidate.email,
        "name": candidate.name,
        "status": individual.status,
        "paid_until": candidate.paid_until.isoformat() if candidate.paid_until else None,
        "cancel_at_period_end": individual.cancel_at_period_end,
        "bound": bool(candidate.bound_oid),
        "already_licensed_here": candidate.in_organisation,
    }


def merge_json(subscription_id: str, record: Merge) -> dict[str, Any]:
    return {
        "id": record.id,
        "subscription_id": subscription_id,
        "status": record.status,
        "quantity": record.quantity,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "started_by": record.actor.email or record.actor.name,
        "error": record.error or None,
        "people": [p.as_json() for p in record.people],
        "link": f"/api/v1/subscriptions/{subscription_id}/merges/{record.id}",
    }


def merge_refusal(exc: Refused) -> func.HttpResponse:
    if isinstance(exc, merge.QuantityConfirmationRequired):
        return error(exc.status, exc.code, str(exc), quantity=exc.quantity, needed=exc.needed, free=exc.free,
                     preview=preview_json(exc.preview) if exc.preview else None)
    if isinstance(exc, merge.NotACandidate):
        return error(exc.status, exc.code, str(exc), subscriptions=exc.ids)
    return refusal(exc)


def parse_body(raw: bytes) -> tuple[list[str], int | None, int | None]:
    """`subscriptions` (ids), and optionally the confirmed `quantity` with its preview's `proration_date`."""
    try:
        payload = json.loads(raw or b"null")
    except ValueError:
        raise merge.NothingSelected() from None
    if not isinstance(payload, dict):
        raise merge.NothingSelected()
    ids = payload.get("subscriptions")
    if not isinstance(ids, list) or not ids or len(ids) > merge.MAX_PER_MERGE \
            or not all(isinstance(i, str) and 0 < len(i) <= 100 for i in ids):
        raise merge.NothingSelected()
    numbers = []
    for name in ("quantity", "proration_date"):
        value = payload.get(name)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)  # JSON's 12.0 is the integer 12
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}: the integer from the preview")
        numbers.append(value)
    return ids, numbers[0], numbers[1]


@bp.route(route="v1/subscriptions/{subscription_id}/merge-candidates", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=merge_refusal)
def api_merge_candidates(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                         ) -> func.HttpResponse:
    """Individual subscriptions of people in this subscription's tenant that can be merged into it."""
    found = merge.candidates(UnitOfWork(billing().storage), subscription)
    return json_response({"subscription_id": subscription.id, "quantity": subscription.quantity,
                          "assigned": subscription.assigned_count,
                          "free": max(subscription.quantity - subscription.assigned_count, 0),
                          "candidates": [candidate_json(c) for c in found]})


@bp.route(route="v1/subscriptions/{subscription_id}/merges", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=merge_refusal)
def api_start_merge(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    """Merge the selected individual subscriptions; the Idempotency-Key is the merge's id (the same key
    again resumes a merge that stopped half-way and changes nothing once it is complete)."""
    key = request_id(req.headers.get(IDEMPOTENCY_HEADER), IDEMPOTENCY_HEADER)
    if key is None:
        return error(400, "idempotency_key_required", f"send an {IDEMPOTENCY_HEADER} header (1 to 100 letters, "
                     "digits, '-', '_' or '.'): it names the merge; the same one to retry", field=IDEMPOTENCY_HEADER)
    ids, quantity, proration_date = parse_body(req.get_body())
    context = billing()
    existed = UnitOfWork(context.storage).subscriptions.merge(subscription.id, key) is not None
    try:
        record = merge.start(context, actor(caller), subscription, key, ids, quantity, proration_date)
    except (Refused, StripeUnavailable) as exc:
        started = UnitOfWork(context.storage).subscriptions.merge(subscription.id, key)
        if started is None:
            raise
        # Recorded, then stopped half-way: say so with the progress; the same request again resumes it.
        log.warning("merge %s on %s stopped: %s", key, subscription.id, exc)
        status = exc.status if isinstance(exc, Refused) else 503
        return error(status, "merge_incomplete", f"the merge stopped half-way ({exc}); nobody lost a license. Send "
                     "the same request with the same Idempotency-Key to complete it (a timer also does, within "
                     "minutes)", headers={"Retry-After": "5"}, merge=merge_json(subscription.id, started))
    return json_response(merge_json(subscription.id, record), status=200 if existed else 201)


@bp.route(route="v1/subscriptions/{subscription_id}/merges/{merge_id}", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.OWNER, refusal=merge_refusal)
def api_merge_progress(req: func.HttpRequest, caller: access.Caller, subscription: Subscription
                       ) -> func.HttpResponse:
    """How far a merge got, person by person."""
    merge_id = request_id(req.route_params.get("merge_id"), "merge_id") or ""
    record = merge.load(UnitOfWork(billing().storage), subscription.id, merge_id)
    return json_response(merge_json(subscription.id, record))


@bp.timer_trigger(arg_name="timer", schedule="0 */10 * * * *", run_on_startup=False)
def resume_merges(timer: func.TimerRequest) -> None:
    """Complete merges whose request died or failed half-way (PRODUCT.md capability 6)."""
    resumed = merge.resume_open(billing())
    if resumed:
        log.warning("resumed %d half-done merges: %s", len(resumed), ", ".join(resumed))
