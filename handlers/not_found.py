"""The portal's own "not found" for every address under /api that no other function serves: a page in
the person's language, or for the JSON API (`/api/v1/...`) a JSON 404; `/api` itself leads to the
dashboard.

It is an ordinary HTTP function with a catch-all route, so Azure serves it unchanged. Azure tries the
routes in the order of the functions' names (the host sorts functions by name, case-insensitive, and
takes the first route whose template and methods match; there is no route precedence by specificity:
local_host/routing.py imitates it). So this function's name must sort after every other one, or it
would answer for theirs; tests/unit/test_route_order.py checks that every route still reaches its
own function in that order.

`/` itself is outside every function's reach while host.json's routePrefix is "api" (a function's
route always starts with the prefix); there the Functions host answers with its own start page.
The portal's address is /api/dashboard (README).
"""

from __future__ import annotations

import azure.functions as func

from handlers.blueprint import new_blueprint
from handlers.responses import error, when_configured
from handlers.web import WebRequest
from services.i18n import translator

bp = new_blueprint()

# Sorts after every other function's name ("zz" > any name starting with another letter).
FUNCTION_NAME = "zz_not_found"
DASHBOARD = "/api/dashboard"


def is_api_path(path: str) -> bool:
    """Whether `path` (after /api/) belongs to the JSON API, whose clients read JSON errors."""
    first = path.strip("/").split("/", 1)[0].lower()
    return first == "v1"


@bp.function_name(FUNCTION_NAME)
@bp.route(route="{*path}", auth_level=func.AuthLevel.ANONYMOUS)  # every method (another on a page: 404)
@when_configured
def not_found(req: func.HttpRequest) -> func.HttpResponse:
    path = req.route_params.get("path") or ""
    if is_api_path(path):
        return error(404, "not_found", f"no API endpoint {req.method} /api/{path.strip('/')}; "
                     "the API is described at /api/openapi.json")
    web = WebRequest.of(req)
    if not path.strip("/") and req.method in ("GET", "HEAD"):
        return web.redirect(DASHBOARD, status=302)
    t = translator(web.language)
    return web.render("not_found.html", status=404, title=t("not_found.title"))
