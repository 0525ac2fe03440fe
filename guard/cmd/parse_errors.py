"""waitress's answers to requests it cannot parse, in the contract's JSON.

waitress refuses some requests before any WSGI code runs: a raw non-ASCII
byte in the request line, ``Content-Length: -1``, a control character in a
header, a header block over its limit. Its own answer is plain text without a
request id, so a client that logs ``X-Openstack-Request-Id`` (or parses the
error body, as every other error of guard's allows) gets neither. These
classes make ``guard serve`` answer them as the guard middleware answers any
error: the contract's JSON error of that status (an unlisted 4xx, such as
waitress's 431 for a header block over its limit, as a 400
``guard.invalid_input``), with a fresh request id in the body and the header.
waitress's one 5xx of its own, 501 for a ``Transfer-Encoding`` other than
``chunked``, is the client's framing, not a fault of the server: a 400 that
says so (it was a 500 ``guard.internal``). waitress's choice of closing the
connection is kept.
"""

from __future__ import annotations

from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from guard import exception
from guard.api.errors import error_for_status, error_response
from guard.context import generate_request_id
from guard.middleware import REQUEST_ID_HEADER


class ContractErrorTask(ErrorTask):
    """An answer to an unparsable request, as the contract's JSON error."""

    def execute(self) -> None:
        request_id = generate_request_id()
        code = self.request.error.code
        if code == 501:  # waitress's ServerNotImplemented: a transfer-coding it does not take
            error: exception.GuardError = exception.InvalidInput(
                "Transfer-Encoding other than chunked is not supported."
            )
        else:
            error = error_for_status(code)
        response = error_response(error, request_id)
        self.status = response.status
        self.response_headers.extend(response.headerlist)
        self.response_headers.append((REQUEST_ID_HEADER, request_id))
        self.set_close_on_finish()
        self.content_length = len(response.body)
        self.write(response.body)


class ContractErrorChannel(HTTPChannel):
    """waitress's HTTP channel, answering parse errors with :class:`ContractErrorTask`."""

    error_task_class = ContractErrorTask

    def send_continue(self) -> None:
        """``100 Continue``, except to a request waitress has already refused.

        waitress said ``100 Continue`` to an ``Expect: 100-continue`` request
        whose headers it had refused, and then took the error back: a body
        announced over its limit was read (up to that limit) before the 413,
        and after a ``Content-Length: -1`` it waited for more headers and never
        answered. The refusal now goes out at once, as the final answer.
        """
        if self.request is not None and self.request.error is not None:
            return
        super().send_continue()


def answer_parse_errors_in_json(server: Any) -> None:
    """Make every listener of a ``waitress.create_server`` result use the JSON error task."""
    for listener in (server, *getattr(server, "map", {}).values()):
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = ContractErrorChannel
