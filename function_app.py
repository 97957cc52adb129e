"""The Function App: sets up logging and registers one blueprint per area, nothing else.

A cold start imports this module, and what it imports decides how long the first license check waits
(issue 14): the license check's own module is imported and registered as it is; every other function is
registered as a stub that imports its module on its first call (handlers/function_index.py), as long as
the function index matches the code. Heavy SDKs (Stripe, MSAL, the mail and queue clients) are imported
inside the functions that use them.
"""

import importlib
import logging

import azure.functions as func

from handlers import function_index, license
from services import observability

# Correlation ids and redaction on every log record; reads only environment variables, no settings.
observability.install()
observability.configure_telemetry()

# One blueprint per area, as `handlers.<module>.bp`.
AREAS = (
    "health",
    "mail",
    "billing",
    "auth",
    "dashboard",
    "consent",
    "purchase",
    "subscriptions",
    "setup_checklist",
    "outbox",
    "operations",
    "license",
    "licenses_api",
    "licenses_pages",
    "license_actions_pages",
    "assignment_jobs",
    "audit_log",
    "seat_timers",
    "delegates_api",
    "delegates_pages",
    "invitations",
    "invitation_timers",
    "billing_api",
    "billing_pages",
    "billing_settings_api",
    "billing_settings_pages",
    "billing_interval_api",
    "billing_interval_pages",
    "e_invoice",
    "merges_api",
    "merges_pages",
    # The catch-all route: on Azure its function's name, not this order, puts it last (handlers/not_found.py).
    "not_found",
)
# Registered as they are, never as stubs: the hot path.
HOT_PATH = (license,)


def new_app() -> func.FunctionApp:
    return func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def eager_app() -> func.FunctionApp:
    """Every area's blueprint, each module imported (what the function index is written from)."""
    app = new_app()
    for area in AREAS:
        app.register_functions(importlib.import_module(f"handlers.{area}").bp)
    return app


def _app() -> func.FunctionApp:
    indexed = function_index.current()
    if indexed is None:
        return eager_app()
    hot = {module.__name__ for module in HOT_PATH}
    try:
        stubs = function_index.stub_blueprint(e for e in indexed if e["module"] not in hot)
    except Exception:  # an index this code cannot read: the slower start, never no start
        logging.getLogger(__name__).exception("the function index is unusable; importing every handler module")
        return eager_app()
    app = new_app()
    for module in HOT_PATH:
        app.register_functions(module.bp)
    app.register_functions(stubs)
    return app


app = _app()
