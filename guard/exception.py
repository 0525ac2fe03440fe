"""guard's error types, one per HTTP status and stable code of the contract.

Every layer raises these; the edge turns them into the one JSON error format.
A ``detail`` is shown to the client, so it must never carry SQL, a file path,
policy text, a traceback or an id other than the one the client named itself.
"""

from __future__ import annotations


class GuardError(Exception):
    """Base of every error guard reports to a caller."""

    status: int = 500
    title: str = "Internal Server Error"
    code: str = "guard.internal"
    default_detail: str = "The server could not complete the request."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class InvalidInput(GuardError):
    status = 400
    title = "Bad Request"
    code = "guard.invalid_input"
    default_detail = "The request is not valid."


class Unauthorized(GuardError):
    status = 401
    title = "Unauthorized"
    code = "guard.unauthorized"
    default_detail = "Authentication is required."


class Forbidden(GuardError):
    status = 403
    title = "Forbidden"
    code = "guard.forbidden"
    default_detail = "Policy does not allow this request."


class NotFound(GuardError):
    status = 404
    title = "Not Found"
    code = "guard.not_found"
    default_detail = "The resource could not be found."


class MethodNotAllowed(GuardError):
    status = 405
    title = "Method Not Allowed"
    code = "guard.method_not_allowed"
    default_detail = "The method is not allowed for this resource."

    def __init__(self, allowed: list[str], detail: str | None = None) -> None:
        self.allowed = sorted(allowed)
        super().__init__(detail)


class ConcurrentUpdate(GuardError):
    status = 409
    title = "Conflict"
    code = "guard.concurrent_update"
    default_detail = "Another request changed the resource first; retry with its generation."


class Conflict(GuardError):
    status = 409
    title = "Conflict"
    code = "guard.conflict"
    default_detail = "The resource already exists."


class TooLarge(GuardError):
    status = 413
    title = "Request Entity Too Large"
    code = "guard.too_large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(GuardError):
    status = 415
    title = "Unsupported Media Type"
    code = "guard.unsupported_media_type"
    default_detail = "The request body must be application/json."


class Unavailable(GuardError):
    status = 503
    title = "Service Unavailable"
    code = "guard.unavailable"
    default_detail = "The database is unavailable; retry later."


class Internal(GuardError):
    """An unexpected fault; the detail is always the generic text."""
