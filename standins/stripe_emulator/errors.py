"""Stripe's error envelope, raised anywhere and turned into a response by the server."""


class StripeError(Exception):
    """An API error rendered as ``{"error": {...}}`` with Stripe's HTTP status.

    The SDK picks its exception class from ``error.type`` and the status, so both must be
    what real Stripe would send for the same mistake.
    """

    def __init__(self, status, message, *, type="invalid_request_error", code=None,
                 param=None, decline_code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code

    def body(self, request_log_url=None):
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if request_log_url:
            error["request_log_url"] = request_log_url
        return {"error": error}


def missing(kind, object_id, param=None):
    """Stripe answers an unknown id with 404 resource_missing (400 when it came as a parameter)."""
    return StripeError(404 if param is None else 400, f"No such {kind}: '{object_id}'",
                       code="resource_missing", param=param or "id")


def invalid(message, param=None, code="parameter_invalid_empty"):
    return StripeError(400, message, code=code, param=param)
