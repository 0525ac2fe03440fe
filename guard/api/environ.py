"""The WSGI environ keys guard's layers hand each other, and how the API reads them.

Also the trusted identity headers as an authenticating proxy sets them, for
guard's own tooling (``guard serve --demo``, ``guard load``) to send.
"""

from __future__ import annotations

from collections.abc import Iterable

import webob

from guard import exception
from guard.context import RequestContext

#: The request id oslo.middleware's request_id (or the guard middleware) made.
ENV_REQUEST_ID = "openstack.request_id"
#: The caller's :class:`guard.context.RequestContext`, set by the guard middleware.
ENV_CONTEXT = "guard.context"
#: ``True`` when the identity headers were trusted (X-Identity-Status: Confirmed).
ENV_AUTHENTICATED = "guard.authenticated"
#: ``True`` when keystone could not check a token of the request (guard.authtoken).
ENV_IDENTITY_UNCHECKED = "guard.identity_unchecked"
#: The body limit :class:`guard.middleware.SizeLimit` hands to the body reader.
ENV_MAX_BODY_SIZE = "guard.max_body_size"
#: The ``X-Identity-Status`` under which the guard middleware trusts identity headers.
TRUSTED_STATUS = "Confirmed"


def identity_headers(user_id: str, project_id: str, roles: Iterable[str]) -> dict[str, str]:
    """The headers of a confirmed identity, as keystonemiddleware or a proxy sets them."""
    return {
        "X-Identity-Status": TRUSTED_STATUS,
        "X-User-Id": user_id,
        "X-Project-Id": project_id,
        "X-Roles": ",".join(roles),
    }


def authenticated_context(req: webob.Request) -> RequestContext:
    """The caller's trusted context; 401 when there is none (fail closed).

    The guard middleware already answers 401 to anonymous callers; this
    keeps the API closed should it ever run without that middleware.
    """
    context = req.environ.get(ENV_CONTEXT)
    if context is None or req.environ.get(ENV_AUTHENTICATED) is not True:
        raise exception.Unauthorized()
    return context
