"""The access line: one line per answered request on ``guard.access``, at INFO.

``GET /consumers/<id:1a2b3c4d> 200 211 bytes 845 us req-... [global req-...]``:
the method (checked), the target with every id, value and unknown word
fingerprinted (:func:`loggable_target`), the status, the body's size, the
time spent below the guard middleware, the request id and the caller's
global request id. Every part is a checked word, a fingerprint, a number or
a request id of the contract's pattern, so the line is logged as redacted
(:func:`guard.log.log_redacted`) without the filter's second scan.

It runs once per request: its composition is kept cheap (see the measured
needs in the comments), within the two log lines' budget of 40 us of CPU.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from typing import Any

from guard import log as guard_log
from guard import logfingerprints
from guard.api.environ import ENV_CONTEXT
from guard.logscope import holds_word

ACCESS_LOG = logging.getLogger("guard.access")
#: The environ key of the request's logging context, copied inside its
#: redaction scope: the access line is logged in it (oslo.log's formatters
#: add the caller's context to the line, which is then scrubbed by value).
ENV_LOG_SCOPE = "guard.log_scope"
#: The environ key of the caller's own ids, names and tokens (what the request's
#: redaction scope scrubs by value): a path segment or value equal to one of
#: them is fingerprinted even where a route word would be logged as it is.
ENV_CALLER_VALUES = "guard.caller_values"
#: The contract's pattern of a request id (oslo's, matched whole).
REQUEST_ID_RE = re.compile(r"req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
# A path segment logged as it is: a route word of guard's or of any service
# the filter is pasted in front of (``consumers``, ``v2.1``, ``os-hypervisors``).
# A segment that is id-shaped (a run of 8 hex digits: uuids dashed or not,
# keystone ids; or digits only) or not word-shaped (percent-decoded junk,
# long probes) is fingerprinted, so no id reaches the access log raw.
_ROUTE_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9._~-]{0,63}")
_ID_SHAPED_RE = re.compile(r"[0-9a-fA-F]{8}")
_route_word = _ROUTE_WORD_RE.fullmatch
_id_shaped = _ID_SHAPED_RE.search
# Query parameter names the API defines, logged as they are (values are not).
_QUERY_NAMES = frozenset(
    {"project_id", "user_id", "consumer_type", "limit", "marker", "consumer_generation"}
)
# Parameters whose plain-number values stay readable: the API's but the ids',
# spelled exactly (``project%5Fid`` is ``project_id`` to the API: an id).
_NUMBER_PARAMS = _QUERY_NAMES - {"project_id", "user_id"}
_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_DIGITS_RE = re.compile(r"[0-9]{1,20}")
_QUERY_SEPARATOR_RE = re.compile(r"([&;])")
# The "METHOD target" of recent requests, by method, path and query: one
# caller's requests repeat them (polling a consumer, paging a list). Only
# short ones are kept, at most this many, so what is cached is bounded in
# bytes whatever clients send; they are made again when the fingerprint key
# changes. Measured need: checking the method and splitting, matching and
# fingerprinting the path was 1.7 us of the line's 4 us of composition.
_CACHED_REQUEST_CHARS = 256
_MAX_CACHED_REQUESTS = 1024
_requests: tuple[logfingerprints.Fingerprinter | None, dict[tuple[str, str, str], str]]
_requests = (None, {})


def loggable_target(path: str, query: str, caller: tuple[str, ...] = ()) -> str:
    """The path and query with every id, value and unknown word fingerprinted.

    Only route words (of guard's API or of any service the filter wraps), the
    API's parameter names and plain numbers as values of its non-identity
    parameters (limits, generations) stay readable, unless equal to one of
    the ``caller``'s own values (a segment: or holding one); any other value
    is fingerprinted, numbers too.
    ``path`` and ``query`` may be raw (undecoded) WSGI strings: they are only
    split and hashed, never decoded here.
    """
    fingerprint = logfingerprints.fingerprint
    # A segment is logged as it is when it is a route word (see _ROUTE_WORD_RE),
    # else as its fingerprint.
    logged = "/".join(
        [
            segment
            if not segment
            or (
                _route_word(segment)
                and not _id_shaped(segment)
                # not the caller's own value, nor a word holding it ("<name>.x")
                # where the request's other lines scrub it (not inside a word)
                and not (caller and any(holds_word(segment, value) for value in caller))
            )
            else fingerprint(segment)
            for segment in path.split("/")
        ]
    )
    if not query:
        return logged
    # Pairs as the API reads them (webob splits on "&" and ";"), each
    # separator kept where it stood.
    parts = _QUERY_SEPARATOR_RE.split(query)
    for index in range(0, len(parts), 2):
        name, _, value = parts[index].partition("=")
        readable = name in _NUMBER_PARAMS and _DIGITS_RE.fullmatch(value) and value not in caller
        safe_value = value if readable else fingerprint(value)
        safe_name = name if name in _QUERY_NAMES else fingerprint(name)
        parts[index] = f"{safe_name}={safe_value}"
    return f"{logged}?{''.join(parts)}"


def loggable_method(environ: dict[str, Any]) -> str:
    """The request's method when it is a plain word of capitals, else ``?``."""
    method = environ.get("REQUEST_METHOD", "")
    return method if _METHOD_RE.fullmatch(method) else "?"


def loggable_request(environ: dict[str, Any]) -> str:
    """``METHOD target`` as the access line shows them (cached when short)."""
    method = environ.get("REQUEST_METHOD", "")
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    global _requests
    fingerprinter, cache = _requests
    if fingerprinter is not (current := logfingerprints.fingerprinter()):  # cached texts are stale
        cache = {}
        _requests = (current, cache)
    key = (method, path, query)
    text = cache.get(key)
    if text is None:
        text = f"{loggable_method(environ)} {loggable_target(path, query)}"
        if len(method) + len(path) + len(query) <= _CACHED_REQUEST_CHARS:
            if len(cache) >= _MAX_CACHED_REQUESTS:
                cache.clear()
            cache[key] = text
    caller = environ.get(ENV_CALLER_VALUES)
    if caller:
        for value in caller:
            if value in text:  # maybe a word of the target: made again, uncached
                return f"{loggable_method(environ)} {loggable_target(path, query, caller)}"
    return text


def log_access(
    environ: dict[str, Any],
    status: str,
    headers: list[tuple[str, str]],
    body: list[bytes],
    started: float,
    request_id: str,
) -> None:
    """Write the access line of one answered request (``guard.access``, INFO)."""
    if not ACCESS_LOG.isEnabledFor(logging.INFO):
        return
    length = None
    for name, value in headers:  # the first Content-Length, as a number
        if len(name) == 14 and name.lower() == "content-length":
            length = int(value) if _DIGITS_RE.fullmatch(value) else None
            break
    if length is None:
        length = sum(map(len, body))
    # Every part is a checked method, a fingerprinted target, a number or
    # a request id of the contract's pattern: logged as redacted.
    if not REQUEST_ID_RE.fullmatch(request_id):
        request_id = logfingerprints.fingerprint(request_id)
    # The caller's global request id too (the context's, checked against
    # the contract's pattern), so one request can be followed across
    # services whatever the log format.
    global_request_id = getattr(environ.get(ENV_CONTEXT), "global_request_id", None)
    global_id = f" global {global_request_id}" if global_request_id else ""
    elapsed_us = int((time.perf_counter() - started) * 1_000_000)
    message = (
        f"{loggable_request(environ)} {status[:3]} {length} bytes {elapsed_us} us "
        f"{request_id}{global_id}"
    )
    scope = environ.get(ENV_LOG_SCOPE)  # oslo.log's formatters add the caller's context
    if isinstance(scope, contextvars.Context):
        scope.run(guard_log.log_redacted, ACCESS_LOG, logging.INFO, message)
    else:
        guard_log.log_redacted(ACCESS_LOG, logging.INFO, message)
