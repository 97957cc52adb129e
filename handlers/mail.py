"""Queue trigger that sends outbound e-mail; failures are retried by the host, then poisoned."""

from __future__ import annotations

import azure.functions as func

from services import bootstrap, observability
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE

bp = func.Blueprint()


@bp.queue_trigger(arg_name="msg", queue_name=OUTBOUND_EMAIL_QUEUE, connection="AzureWebJobsStorage")
def send_email(msg: func.QueueMessage, context: func.Context) -> None:
    # Rendering (Jinja2) and the ACS client load here, not at cold start.
    from services.mail.delivery import deliver
    from adapters.mail_senders import sender_for

    settings = bootstrap.settings()
    with observability.correlation(context):
        deliver(msg.get_body(), storage=bootstrap.storage(), sender=sender_for(settings), settings=settings)
