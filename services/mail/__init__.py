"""Outbound e-mail: messages are queued, rendered from templates and sent by a queue trigger."""

from services.mail.message import MailMessage, enqueue, queue_sends

__all__ = ["MailMessage", "enqueue", "queue_sends"]
