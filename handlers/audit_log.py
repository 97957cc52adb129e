"""A subscription's audit log (PRODUCT.md capability 10): the JSON API, the dashboard page and the
CSV export of both. Every route passes the gate (`handlers/gate.py`) with subscription.view.
"""

from __future__ import annotations

import azure.functions as func

from handlers import gate, inputs, licenses_openapi  # noqa: F401 - licenses_openapi describes the API routes
from handlers.blueprint import new_blueprint
from handlers.paging import PAGE_SIZE
from handlers.responses import csv_response, json_response
from handlers.web import WebRequest
from services import access, audit_log, audit_sentences, bootstrap, seat_listing
from services.subscription import Subscription

bp = new_blueprint()


@bp.route(route="v1/subscriptions/{subscription_id}/audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.SUBSCRIPTION_VIEW)
def api_audit(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    continuation = seat_listing.decode_token(inputs.continuation(req.params.get("continuation")))
    entries, token = audit_log.page(bootstrap.storage(), subscription.id, continuation,
                                    inputs.limit(req.params.get("limit")))
    return json_response({"entries": entries, "continuation": seat_listing.encode_token(token)})


@bp.route(route="v1/subscriptions/{subscription_id}/audit.csv", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.api(access.SUBSCRIPTION_VIEW)
def api_export_audit(req: func.HttpRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    return csv_response(audit_log.export_csv(bootstrap.storage(), subscription.id), f"audit-{subscription.id}.csv")


@bp.route(route="subscriptions/{subscription_id}/audit", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.SUBSCRIPTION_VIEW, not_found="licenses.not_found")
def audit_page(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    continuation = web.req.params.get("continuation") or None
    try:
        entries, token = audit_log.page(bootstrap.storage(), subscription.id,
                                        seat_listing.decode_token(inputs.continuation(continuation)), PAGE_SIZE)
    except ValueError:
        entries, token = audit_log.page(bootstrap.storage(), subscription.id, None, PAGE_SIZE)
    shown = [audit_sentences.describe(entry, web.language) for entry in entries]
    return web.render("audit.html", subscription=subscription, entries=shown,
                      continuation=seat_listing.encode_token(token), paged=bool(continuation))


@bp.route(route="subscriptions/{subscription_id}/audit/export.csv", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@gate.page(access.SUBSCRIPTION_VIEW, not_found="licenses.not_found")
def audit_export(web: WebRequest, caller: access.Caller, subscription: Subscription) -> func.HttpResponse:
    return csv_response(audit_log.export_csv(bootstrap.storage(), subscription.id), f"audit-{subscription.id}.csv")
