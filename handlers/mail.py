"""Queue trigger that sends outbound e-mail; failures are retried by the host, then poisoned."""

from __future__ import annotations

import azure.functions as func

from adapters.table_storage import OUTBOUND_EMAIL_QUEUE
from handlers.blueprint import new_blueprint
from services import bootstrap, observability

bp = new_blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=OUTBOUND_EMAIL_QUEUE, connection="AzureWebJobsStorage")
def send_email(msg: func.QueueMessage, context: func.Context) -> None:
    # Rendering (Jinja2) and the ACS client load here, not at cold start.
    from adapters.mail_senders import sender_for
    from services.mail.delivery import deliver

    settings = bootstrap.settings()
    with observability.correlation(context):
        deliver(msg.get_body(), storage=bootstrap.storage(), sender=sender_for(settings), settings=settings)
