"""gunicorn's answers to requests it cannot parse, in the contract's JSON.

gunicorn refuses some requests before any WSGI code runs: a request line or
method it cannot read, a header without a colon or with a control character,
a request line or header block over its limits, an unknown
``Transfer-Encoding``. Its worker answered them with an HTML page that
quoted the offending text back (a raw consumer uuid of the path included)
and carried no request id. :func:`install` (run by
:func:`guard.gunicorn_conf.post_worker_init`, so by every worker class and by
``guard serve --workers``) makes a worker answer them as the guard middleware
answers any error: the contract's JSON error with a fresh request id in the
body and the header, a fixed detail per kind of fault (nothing of the
request), and the connection closed as gunicorn closes it.

Statuses, the same as ``guard serve``'s waitress answers
(:mod:`guard.cmd.parse_errors`): every parse fault is 400
``guard.invalid_input`` (gunicorn's 414 and 431 are not codes of the
contract; the detail says which limit), a PROXY-protocol header from an
address not allowed to send one is 403 ``guard.forbidden``, and anything else
(the application's own fault, gunicorn's configuration) is 500
``guard.internal`` with the generic text.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from gunicorn import util
from gunicorn.http import errors

from guard import exception
from guard.api.errors import error_response
from guard.context import generate_request_id
from guard.middleware import REQUEST_ID_HEADER

#: Per kind of parse fault, the detail a client gets (first match wins): what
#: was wrong, never the text that was.
_DETAILS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((errors.LimitRequestLine,), "The request line is too long."),
    ((errors.LimitRequestHeaders,), "The request's headers are too many or too large."),
    (
        (errors.InvalidRequestLine, errors.InvalidRequestMethod, errors.InvalidHTTPVersion),
        "The request line is not valid HTTP.",
    ),
    (
        (errors.InvalidHeader, errors.InvalidHeaderName, errors.ObsoleteFolding),
        "A request header is not valid HTTP.",
    ),
    ((errors.UnsupportedTransferCoding,), "The request's Transfer-Encoding is not supported."),
    (
        (errors.InvalidChunkSize, errors.ChunkMissingTerminator, errors.InvalidChunkExtension),
        "The request's chunked body is not valid.",
    ),
    ((errors.InvalidProxyLine,), "The PROXY protocol header is not valid."),
    ((ssl.SSLError,), "The TLS connection failed."),
)

#: gunicorn's errors that are the server's or the application's fault, not the
#: client's, although they derive from its parse errors (the response-header
#: ones are newer than gunicorn 22, guard's floor).
_NOT_THE_CLIENTS: tuple[type[BaseException], ...] = (
    errors.ConfigurationProblem,
    *(
        getattr(errors, name)
        for name in ("InvalidResponseHeader", "InvalidResponseHeaderName")
        if hasattr(errors, name)
    ),
)


def error_for(exc: BaseException) -> exception.GuardError:
    """The contract's error for an exception a gunicorn worker hands to ``handle_error``."""
    if isinstance(exc, _NOT_THE_CLIENTS):
        return exception.Internal()
    if isinstance(exc, errors.ForbiddenProxyRequest):
        return exception.Forbidden("PROXY protocol headers are not accepted from this address.")
    for kinds, detail in _DETAILS:
        if isinstance(exc, kinds):
            return exception.InvalidInput(detail)
    if isinstance(exc, errors.ParseException):
        return exception.InvalidInput("The request is not valid HTTP.")
    return exception.Internal()


def response_bytes(error: exception.GuardError, request_id: str) -> bytes:
    """The whole HTTP/1.1 answer: the JSON error, its request id, ``Connection: close``."""
    response = error_response(error, request_id)
    head = [f"HTTP/1.1 {response.status}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in response.headerlist]
    head.append(f"{REQUEST_ID_HEADER}: {request_id}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


def handle_error(worker: Any, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
    """gunicorn's ``Worker.handle_error``, answering in the contract's JSON.

    Logs one line on gunicorn's error log with the client's address, the
    status, the code, the request id the client got and the kind of fault
    (its class name: gunicorn's message quotes the request). A fault that is
    not the client's is logged with its traceback, as gunicorn logs it.
    gunicorn's access log line for the refused request is not written (guard
    turns gunicorn's access log off: it prints raw paths).
    """
    request_id = generate_request_id()
    error = error_for(exc)
    ip = addr[0] if isinstance(addr, tuple) and addr else "unix socket"
    line = "Refused a request from %s: %d %s (%s): %s"
    args = (ip, error.status, error.code, request_id, type(exc).__name__)
    if isinstance(error, exception.Internal):
        worker.log.exception(line, *args)
    else:
        worker.log.warning(line, *args)
    try:
        util.write_nonblock(client, response_bytes(error, request_id))
    except Exception:  # the client has gone, as gunicorn's own write_error tolerates
        worker.log.debug("Failed to send error message.")


def install(worker: Any) -> None:
    """Make ``worker`` (any gunicorn worker class) answer with :func:`handle_error`."""
    worker.handle_error = functools.partial(handle_error, worker)
