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
    from services import invoice_attachments
    from services.mail.delivery import deliver
    from services.mail.message import Attachment, MailMessage

    settings = bootstrap.settings()

    def documents(message: MailMessage) -> tuple[Attachment, ...]:
        # An invoice's documents are fetched from Stripe now: the queued message only names the invoice.
        return invoice_attachments.attachments(bootstrap.stripe(), settings, message)

    with observability.correlation(context):
        deliver(msg.get_body(), storage=bootstrap.storage(), sender=sender_for(settings), settings=settings,
                attachments=documents)
