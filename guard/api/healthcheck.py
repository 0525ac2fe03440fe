"""``GET``/``HEAD /healthcheck``, with oslo.middleware's healthcheck conventions.

A load balancer asks it whether this process should get requests. As with
oslo.middleware's ``Healthcheck``, it answers GET and HEAD, and its checks are
oslo.middleware healthcheck backends (``HealthcheckBaseExtension``), asked in
order, the first that says unavailable deciding:

1. ``disable_by_file`` (oslo.middleware's own, when ``[healthcheck]
   disable_by_file_path`` is set): the file exists, the process drains (503);
2. :class:`DatabaseCheck` (guard's): the database answers and its schema is
   at the head revision (a worker on an unmigrated database would answer every
   API call 503; so does its healthcheck, with the fix in the detail).

oslo.middleware's middleware itself is not used: it cannot tell an
administrator from anyone else, and the contract shows the details (policy
revision, last reload error, database, schema, decision-log drops) to
administrators only and answers every error in its JSON with the request id.
So this is a handler of the API, behind the guard middleware that knows the
caller. Anyone gets 200 ``{"status": "ok"}`` or the 503 ``guard.unavailable``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy.exc
import webob
from alembic.script import ScriptDirectory
from oslo_config import cfg
from oslo_middleware.healthcheck import disable_by_file, pluginbase
from sqlalchemy.engine import Engine

from guard import exception
from guard.api.environ import authenticated_context
from guard.api.jsonio import JsonResponse, json_response
from guard.db import migration
from guard.repository import ConsumerRepository

#: The policy rule that says who may read the details.
ADMIN_RULE = "admin"
DRAINING = "The service is draining: it takes no new requests."
SCHEMA_NOT_AT_HEAD = "The database schema is not at the current revision; run guard db upgrade."


class PolicyState(Protocol):
    """What the healthcheck reports of the policy engine."""

    @property
    def revision(self) -> str: ...

    @property
    def last_reload_error(self) -> str | None: ...


class DropCounter(Protocol):
    """What the healthcheck reports of the decision log."""

    @property
    def dropped(self) -> int: ...


class Backend(Protocol):
    """An oslo.middleware healthcheck backend (``HealthcheckBaseExtension``)."""

    def healthcheck(self, server_port: int) -> pluginbase.HealthcheckResult: ...


@functools.cache
def schema_heads() -> frozenset[str]:
    """The head revision(s) of guard's migrations, as shipped."""
    return frozenset(ScriptDirectory.from_config(migration.alembic_config()).get_heads())


class DatabaseCheck(pluginbase.HealthcheckBaseExtension):
    """guard's healthcheck backend: the database answers, at the schema's head revision."""

    def __init__(self, repository: ConsumerRepository, engine: Engine) -> None:
        super().__init__(cfg.ConfigOpts(), {})
        self.repository = repository
        self.engine = engine

    def healthcheck(self, server_port: int) -> pluginbase.HealthcheckResult:
        self.repository.ping()  # raises Unavailable -> 503 (refused, timed out, ...)
        try:
            with self.engine.connect() as connection:
                revisions = migration.current_heads(connection)
        except sqlalchemy.exc.SQLAlchemyError:
            return pluginbase.HealthcheckResult(False, exception.Unavailable.default_detail)
        if revisions != schema_heads():
            return pluginbase.HealthcheckResult(
                False, SCHEMA_NOT_AT_HEAD, ",".join(sorted(revisions))
            )
        return pluginbase.HealthcheckResult(True, "OK", ",".join(sorted(revisions)))


def backends(conf: cfg.ConfigOpts, repository: ConsumerRepository, engine: Engine) -> list[Any]:
    """The checks of a deployment, in order: the drain file (if configured), then the database."""
    checks: list[Any] = []
    if conf.healthcheck.disable_by_file_path:
        checks.append(_DrainFile(conf, {}))
    checks.append(DatabaseCheck(repository, engine))
    return checks


class _DrainFile(disable_by_file.DisableByFileHealthcheck):
    """oslo.middleware's ``disable_by_file``, answering in guard's words."""

    def healthcheck(self, server_port: int) -> pluginbase.HealthcheckResult:
        result = super().healthcheck(server_port)
        if not result.available:
            result.reason = DRAINING
        return result


class Healthcheck:
    """The handler; it holds the things it reports on."""

    def __init__(
        self,
        repository: ConsumerRepository,
        policy: PolicyState,
        decision_log: DropCounter | None = None,
        checks: Sequence[Backend] | None = None,
    ) -> None:
        self.repository = repository
        self.policy = policy
        self.decision_log = decision_log
        # Without a deployment's checks (a bare app in a test): the database ping.
        self.checks = checks

    def __call__(self, req: webob.Request) -> JsonResponse:
        schema = None
        if self.checks is None:
            self.repository.ping()  # raises Unavailable -> 503
        for check in self.checks or ():
            result = check.healthcheck(req.server_port)
            if not result.available:
                raise exception.Unavailable(result.reason)
            if isinstance(check, DatabaseCheck):
                schema = result.details
        document: dict[str, Any] = {"status": "ok"}
        if self._is_admin(req):
            document["database"] = "ok"
            if schema is not None:
                document["schema"] = schema
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
