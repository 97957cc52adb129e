"""Outbound e-mail: messages are queued, rendered from templates and sent by a queue trigger."""

from services.mail.message import MailMessage, enqueue

__all__ = ["MailMessage", "enqueue"]
