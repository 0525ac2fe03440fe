"""Routing: the contract's route table, and the WSGI app that dispatches on it.

Three routes with at most one variable segment do not need a routing
library; a small table keeps the order of checks plain to read: an unknown
path is 404, a known path with another method is 405 with ``Allow``, and only
then does a handler validate its input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import webob

from guard import exception
from guard.api.environ import ENV_REQUEST_ID
from guard.api.errors import error_response

#: A WSGI application answering one request: a handler's answer.
Answer = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: A handler takes the request and the path's variable segments.
Handler = Callable[..., Answer]


@dataclass(frozen=True)
class Route:
    """One path pattern and the handler of each method it answers."""

    pattern: re.Pattern[str]
    methods: dict[str, Handler]


class Router:
    """Find the handler of a request, or raise 404 / 405 as the contract says."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def resolve(self, path: str, method: str) -> tuple[Handler, dict[str, str]]:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            handler = route.methods.get(method)
            if handler is None:
                raise exception.MethodNotAllowed(list(route.methods))
            return handler, match.groupdict()
        raise exception.NotFound()


class RoutedApp:
    """A WSGI app that answers through a :class:`Router`.

    A :class:`guard.exception.GuardError` from a handler becomes the JSON
    error; anything else propagates to the guard middleware, which logs it
    and answers the generic 500.
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        req = webob.Request(environ)
        try:
            handler, path_args = self.router.resolve(req.path_info, req.method)
            response: Answer = handler(req, **path_args)
        except exception.GuardError as error:
            response = error_response(error, environ.get(ENV_REQUEST_ID, ""))
        return response(environ, start_response)
