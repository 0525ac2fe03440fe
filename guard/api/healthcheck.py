"""``GET /healthcheck``: is the database reachable, and which policy is in force.

oslo.middleware's healthcheck cannot tell an administrator from anyone else,
and the contract shows the details (policy revision, last reload error,
database, decision-log drops) to administrators only; so this is a handler
of the API, behind the guard middleware that knows the caller. Anyone gets
200 ``{"status": "ok"}`` or the 503 ``guard.unavailable`` error.
"""

from __future__ import annotations

from typing import Any, Protocol

import webob

from guard import exception
from guard.api.environ import authenticated_context
from guard.api.jsonio import json_response
from guard.repository import ConsumerRepository

#: The policy rule that says who may read the details.
ADMIN_RULE = "admin"


class PolicyState(Protocol):
    """What the healthcheck reports of the policy engine."""

    revision: str
    last_reload_error: str | None


class DropCounter(Protocol):
    dropped: int


class Healthcheck:
    """The handler; it holds the things it reports on."""

    def __init__(
        self,
        repository: ConsumerRepository,
        policy: PolicyState,
        decision_log: DropCounter | None = None,
    ) -> None:
        self.repository = repository
        self.policy = policy
        self.decision_log = decision_log

    def __call__(self, req: webob.Request) -> webob.Response:
        self.repository.ping()  # raises Unavailable -> 503
        document: dict[str, Any] = {"status": "ok"}
        if self._is_admin(req):
            document["database"] = "ok"
            document["policy"] = {
                "revision": self.policy.revision,
                "last_reload_error": self.policy.last_reload_error,
            }
            document["audit"] = {"dropped": self.decision_log.dropped if self.decision_log else 0}
        return json_response(document)

    @staticmethod
    def _is_admin(req: webob.Request) -> bool:
        try:
            return authenticated_context(req).can(ADMIN_RULE, {}, fatal=False)
        except exception.GuardError:  # Unauthorized for an anonymous caller
            return False
