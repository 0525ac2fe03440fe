"""JSON in and out: the request body reader and the success response.

The reader applies the contract's checks in its order: content type (415),
size (413), then UTF-8, JSON and "an object" (400). The size limit is the
one oslo.middleware's ``sizelimit`` option configures; the
:class:`guard.middleware.SizeLimit` filter hands it down in the environ.
"""

from __future__ import annotations

import http
import json
from collections.abc import Callable
from typing import Any

import webob
import webob.exc

from guard import exception
from guard.api.environ import ENV_MAX_BODY_SIZE
from guard.api.errors import JSON

#: The contract's limit, used when no SizeLimit filter is in the pipeline.
DEFAULT_MAX_BODY_SIZE = 65536


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _DuplicateKey(ValueError):
    """A key given twice in one JSON object."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key would let two parsers (a proxy's and ours) disagree on
    # the value; refuse it.
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKey("duplicate key")
    return document


def is_json_utf8(content_type: str | None) -> bool:
    """Whether a Content-Type header is ``application/json`` in UTF-8.

    The media type and the charset are matched case-insensitively (RFC 9110);
    a charset other than utf-8 is refused rather than decoded as UTF-8 anyway.
    """
    if not content_type:
        return False
    media_type, *params = content_type.split(";")
    if media_type.strip().lower() != JSON:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def read_json_object(req: webob.Request) -> dict[str, Any]:
    """Return the request body as a JSON object, or raise the contract's error."""
    content_type = req.environ.get("CONTENT_TYPE")
    if not is_json_utf8(content_type):
        if content_type and content_type.split(";")[0].strip().lower() == JSON:
            # application/json in another charset ("utf8", "latin-1"): say that is the fault.
            raise exception.UnsupportedMediaType(
                "The request body must be application/json in UTF-8 (charset utf-8, or none)."
            )
        raise exception.UnsupportedMediaType()
    # A compressed body is not UTF-8 JSON either: refused, never read as if plain.
    if req.environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower() != "identity":
        raise exception.UnsupportedMediaType("The request body must not be content-encoded.")
    # gunicorn undoes "chunked" and hands on the rest ("gzip, chunked"): the body a proxy
    # would read differs from the one read here. waitress refuses it before the app.
    codings = req.environ.get("HTTP_TRANSFER_ENCODING", "").lower().split(",")
    if any(coding.strip() not in ("", "chunked") for coding in codings):
        raise exception.InvalidInput("Transfer-Encoding other than chunked is not supported.")
    limit = req.environ.get(ENV_MAX_BODY_SIZE, DEFAULT_MAX_BODY_SIZE)
    too_large = exception.TooLarge(f"The request body is larger than {limit} bytes.")
    if req.content_length is not None and req.content_length > limit:
        raise too_large
    try:
        # Read one byte past the limit, never more, whatever the client claims.
        raw = req.body_file.read(limit + 1)
    except webob.exc.HTTPRequestEntityTooLarge:
        raise too_large from None
    except Exception:  # the server's stream: gunicorn raises its parse errors from read()
        # A chunked body whose chunk sizes do not parse (gunicorn's
        # InvalidChunkSize, ...), or a client gone mid-body, was a 500.
        raise exception.InvalidInput("The request body could not be read as sent.") from None
    if len(raw) > limit:
        raise too_large
    try:
        text = raw.decode("utf-8")
        document = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant
        )
    except _DuplicateKey:
        # Valid JSON, refused by guard: "not valid UTF-8 JSON" sent the client hunting
        # for an encoding error. The key is not named (it is the client's text).
        raise exception.InvalidInput("The request body gives a key more than once.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise exception.InvalidInput("The request body is not valid UTF-8 JSON.") from None
    if not isinstance(document, dict):
        raise exception.InvalidInput("The request body must be a JSON object.")
    return document


_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in http.HTTPStatus}


class JsonResponse:
    """A JSON success answer as plain WSGI: the status, two headers and the body.

    What ``webob.Response(body=..., content_type=JSON, charset=None)`` sends,
    without building one. Measured need: a webob Response per answer, made
    and then called, was a tenth of the API's own time for a GET.
    """

    __slots__ = ("body", "headerlist", "status")

    def __init__(self, document: object, status: int = 200) -> None:
        self.body = json.dumps(document).encode("utf-8")
        self.status = _STATUS_LINES[status]
        self.headerlist = [("Content-Type", JSON), ("Content-Length", str(len(self.body)))]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(self.status, self.headerlist)
        # HEAD: the headers GET would send (its Content-Length too), no body.
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]


def json_response(document: object, status: int = 200) -> JsonResponse:
    """A success response with ``document`` as its JSON body."""
    return JsonResponse(document, status)
