"""A local HTTPS endpoint that checks what Azure Communication Services e-mail would check.

Used by tests to drive the real `azure-communication-email` client (HMAC-signed requests, payload
shape, the long-running send operation) without the cloud.
"""

from standins.acs_email.server import AcsEmailEndpoint

__all__ = ["AcsEmailEndpoint"]
