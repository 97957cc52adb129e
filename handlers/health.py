"""Health probe and the API description."""

from __future__ import annotations

import azure.functions as func

from handlers import function_index
from handlers.blueprint import new_blueprint
from handlers.responses import STORAGE_RETRY_AFTER_SECONDS, json_response, when_configured
from services import api_spec, bootstrap
from services.settings import SettingsError

bp = new_blueprint()

api_spec.describe(
    "/health",
    "get",
    {
        "summary": "Service health",
        "description": "200 when storage answers, 503 otherwise.",
        "responses": {
            "200": {"description": "healthy", "content": {"application/json": {"schema": {"type": "object"}}}},
            "503": {"description": "storage unreachable or configuration invalid"},
        },
    },
)


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        # One short attempt per service (adapters/table_storage.HEALTH_BUDGET_SECONDS): a monitor gets
        # its answer in about a second, outage or not.
        state = bootstrap.health_storage().ping()
    except SettingsError as exc:
        # Say which settings are wrong (names only, never values): the operator's first stop.
        return json_response({"status": "misconfigured", "detail": str(exc)}, status=503,
                             headers={"Retry-After": "60"})
    except Exception as exc:  # noqa: BLE001 - any failure to reach storage is "unhealthy", not a 500
        state = {"tables": f"unreachable: {type(exc).__name__}", "queues": "unknown"}
    healthy = all(value == "ok" for value in state.values())
    return json_response({"status": "ok" if healthy else "unavailable", "storage": state},
                         status=200 if healthy else 503,
                         headers=None if healthy else {"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)})


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@when_configured
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    base = bootstrap.settings().public_base_url
    function_index.import_all()  # each module describes its own routes when it is imported
    return json_response(api_spec.document(f"{base}/api"))
