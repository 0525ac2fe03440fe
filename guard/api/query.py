"""Query strings: only the parameters a route defines, each at most once."""

from __future__ import annotations

import re

import webob

from guard import exception

_DECIMAL_RE = re.compile(r"[0-9]{1,20}")


def parse_query(req: webob.Request, allowed: frozenset[str]) -> dict[str, str]:
    """Return the query as a dict, or 400 for an unknown or repeated parameter.

    The detail lists the allowed names and never echoes what the client sent.
    """
    if not req.environ.get("QUERY_STRING"):
        return {}  # most requests: no need to build webob's parsed query
    try:
        items = list(req.GET.items())
    except UnicodeDecodeError:
        raise exception.InvalidInput("The query string is not valid UTF-8.") from None
    params: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise exception.InvalidInput(f"Unknown query parameter; this path allows: {names}.")
        if name in params:
            raise exception.InvalidInput(f"Query parameter '{name}' may be given only once.")
        params[name] = value
    return params


def decode_generation(value: str) -> int | str:
    """A generation from a query string: its integer when it is decimal digits.

    Anything else is returned as given, for the repository to reject with
    the field's rule (values are validated in one place).
    """
    return int(value) if _DECIMAL_RE.fullmatch(value) else value
