"""The Function App: sets up logging and registers one blueprint per area, nothing else.

Heavy SDKs (Stripe, MSAL, the mail client) are imported inside the functions that use them, so this
module's import path stays small for the license check's cold start.
"""

import azure.functions as func

from services import observability
from handlers import auth, billing, consent, dashboard, health, license, licenses, mail, operations, outbox, purchase, subscriptions

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
    outbox.bp,
    operations.bp,
    license.bp,
    licenses.bp,
):
    app.register_functions(blueprint)
