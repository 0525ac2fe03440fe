"""The consumers API application: the route table wired to its handlers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from guard.api import root
from guard.api.consumers import ConsumerHandlers
from guard.api.healthcheck import Backend, DropCounter, Healthcheck, PolicyState
from guard.api.router import Route, RoutedApp, Router
from guard.repository import ConsumerRepository


def make_app(
    repository: ConsumerRepository,
    policy: PolicyState,
    decision_log: DropCounter | None = None,
    health_checks: Sequence[Backend] | None = None,
) -> RoutedApp:
    """The WSGI app of the contract's routes (to run below the guard middleware).

    ``health_checks`` are the healthcheck's backends (see
    :func:`guard.api.healthcheck.backends`); without them it pings the database.
    """
    consumers = ConsumerHandlers(repository)
    healthcheck = Healthcheck(repository, policy, decision_log, health_checks)
    return RoutedApp(
        Router(
            [
                Route(re.compile(r"/"), {"GET": root.version_document}),
                Route(re.compile(r"/healthcheck"), {"GET": healthcheck, "HEAD": healthcheck}),
                Route(re.compile(r"/consumers"), {"GET": consumers.list}),
                Route(
                    re.compile(r"/consumers/(?P<uuid>[^/]+)"),
                    {"GET": consumers.show, "PUT": consumers.put, "DELETE": consumers.delete},
                ),
            ]
        )
    )
