"""The contract's one JSON error format, and the map from HTTP statuses to it.

Every error any layer answers goes through :func:`error_response`, so a body
carries only the fixed title, the stable code and the detail that
:mod:`guard.exception` vouches for (no SQL, paths, policy text or ids).
"""

from __future__ import annotations

import json

import webob

from guard import exception

JSON = "application/json"

_BY_STATUS: dict[int, type[exception.GuardError]] = {
    cls.status: cls
    for cls in (
        exception.InvalidInput,
        exception.Unauthorized,
        exception.Forbidden,
        exception.NotFound,
        exception.TooLarge,
        exception.UnsupportedMediaType,
        exception.Unavailable,
        exception.Internal,
    )
}


def error_for_status(status: int, allowed: list[str] | None = None) -> exception.GuardError:
    """The contract's error for an HTTP status some other layer answered with.

    The other layer's text is dropped: it was not written for a client. A 409
    becomes ``guard.conflict``; an unlisted 4xx becomes ``guard.invalid_input``
    and an unlisted 5xx ``guard.internal``.
    """
    if status == 405:
        return exception.MethodNotAllowed(allowed or [])
    if status == 409:
        return exception.Conflict()
    if status in _BY_STATUS:
        return _BY_STATUS[status]()
    return exception.InvalidInput() if status < 500 else exception.Internal()


def error_response(error: exception.GuardError, request_id: str) -> webob.Response:
    """Render ``error`` as the contract's JSON error response."""
    document = {
        "errors": [
            {
                "status": error.status,
                "title": error.title,
                "detail": error.detail,
                "code": error.code,
                "request_id": request_id,
            }
        ]
    }
    response = webob.Response(
        status=error.status,
        body=json.dumps(document).encode("utf-8"),
        content_type=JSON,
        charset=None,
    )
    if isinstance(error, exception.MethodNotAllowed):
        response.headers["Allow"] = ", ".join(error.allowed)
    return response
