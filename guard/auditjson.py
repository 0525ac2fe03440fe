"""The JSON parts of a decision line, written as ``json.dumps`` writes them.

The decision log's writer (:class:`guard.auditline.LineWriter`) composes each
line itself, from parts it caches, instead of building a dict for
``json.dumps`` (measured need: the dict and ``dumps()`` were a third of the
line). These are those parts: a number, a request id, a redacted text, each as
``json.dumps(..., separators=(",", ":"))`` writes it, ``ensure_ascii``'s
escapes included.

What is cached is bounded in bytes whatever clients send: only texts up to
:data:`CACHED_TEXT_LEN` characters, at most :data:`MAX_CACHED_TEXTS` a cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

from guard.log import redact

# Rule names, branch labels, roles, callers and owners repeat from line to line.
CACHED_TEXT_LEN = 80
MAX_CACHED_TEXTS = 2048
# A request id as guard and oslo.middleware make them: kept readable as is.
_REQUEST_ID_RE = re.compile(r"req-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")
#: Whether a text is a request id of guard's shape (matched whole).
is_request_id = _REQUEST_ID_RE.fullmatch


def json_number(value: Any) -> str:
    """``value`` rounded to a tenth, as ``json.dumps`` writes it."""
    if type(value) is int:  # what the policy engine reports: json.dumps took 2 us of a line
        return int.__repr__(value)
    value = round(value, 1)
    if type(value) is float and value - value == 0:  # finite
        return float.__repr__(value)
    return json.dumps(value)


def json_request_id(value: Any) -> str:
    """The JSON of a request id: readable when it has guard's shape, else redacted."""
    if value is None:
        return "null"
    text = str(value)
    if is_request_id(text):
        return f'"{text}"'  # req-, hex digits and dashes: nothing to escape
    return encode_basestring_ascii(redact(text))


def cached_json(cache: dict[str, str], value: str, safe: Callable[[str], str]) -> str:
    """The JSON string of ``safe(value)``, cached by ``value`` when it is short."""
    done = cache.get(value)
    if done is None:
        done = encode_basestring_ascii(safe(value))
        if len(value) <= CACHED_TEXT_LEN:
            if len(cache) >= MAX_CACHED_TEXTS:
                cache.clear()
            cache[value] = done
    return done
