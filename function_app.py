"""The Function App: sets up logging and registers one blueprint per area, nothing else.

Heavy SDKs (Stripe, MSAL, the mail client) are imported inside the functions that use them, so this
module's import path stays small for the license check's cold start.
"""

import azure.functions as func

from handlers import (
    assignment_jobs,
    audit_log,
    auth,
    billing,
    billing_api,
    billing_interval_api,
    billing_interval_pages,
    billing_pages,
    billing_settings_api,
    billing_settings_pages,
    consent,
    dashboard,
    delegates_api,
    delegates_pages,
    e_invoice,
    health,
    invitation_timers,
    invitations,
    license,
    license_actions_pages,
    licenses_api,
    licenses_pages,
    mail,
    merges_api,
    merges_pages,
    not_found,
    operations,
    outbox,
    purchase,
    seat_timers,
    setup_checklist,
    subscriptions,
)
from services import observability

# Correlation ids and redaction on every log record; reads only environment variables, no settings.
observability.install()
observability.configure_telemetry()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (
    health.bp,
    mail.bp,
    billing.bp,
    auth.bp,
    dashboard.bp,
    consent.bp,
    purchase.bp,
    subscriptions.bp,
    setup_checklist.bp,
    outbox.bp,
    operations.bp,
    license.bp,
    licenses_api.bp,
    licenses_pages.bp,
    license_actions_pages.bp,
    assignment_jobs.bp,
    audit_log.bp,
    seat_timers.bp,
    delegates_api.bp,
    delegates_pages.bp,
    invitations.bp,
    invitation_timers.bp,
    billing_api.bp,
    billing_pages.bp,
    billing_settings_api.bp,
    billing_settings_pages.bp,
    billing_interval_api.bp,
    billing_interval_pages.bp,
    e_invoice.bp,
    merges_api.bp,
    merges_pages.bp,
    # The catch-all route: on Azure its function's name, not this order, puts it last (handlers/not_found.py).
    not_found.bp,
):
    app.register_functions(blueprint)
