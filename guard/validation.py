"""Validation of the values the contract constrains.

Each function either returns the value in canonical form or raises
:class:`guard.exception.InvalidInput` with a detail that names the field and
the rule it broke, never echoing the rejected value (it may be a secret or
someone else's id pasted by mistake).
"""

from __future__ import annotations

import re
import uuid as uuidlib

from guard.exception import InvalidInput

# Patterns are whole-string patterns: use them with fullmatch() (a "$" would let
# a trailing newline through).
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_INPUT_RE = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})"
)
EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9_.@-]{1,255}")
CONSUMER_TYPE_RE = re.compile(r"[A-Z0-9_]{1,255}")
MIN_LIMIT = 1
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# The generation is a signed 64-bit column; this is its ceiling.
MAX_GENERATION = 2**63 - 1


def normalize_uuid(value: object, field: str = "uuid") -> str:
    """Return ``value`` as a canonical lowercase dashed uuid.

    Uppercase and dash-less (32 hex digits) spellings are accepted, as
    Placement accepts them; anything else is rejected.
    """
    if type(value) is str and UUID_RE.fullmatch(value):
        return value  # canonical already: the common case, without building a UUID
    if not isinstance(value, str) or not _UUID_INPUT_RE.fullmatch(value):
        raise InvalidInput(f"'{field}' must be a UUID (8-4-4-4-12 hexadecimal digits).")
    return str(uuidlib.UUID(hex=value))


def validate_external_id(value: object, field: str) -> str:
    """Check a keystone project or user id: 1..255 of ``[A-Za-z0-9_.@-]``."""
    if not isinstance(value, str) or not EXTERNAL_ID_RE.fullmatch(value):
        raise InvalidInput(f"'{field}' must be 1 to 255 characters of A-Z, a-z, 0-9, '_.@-'.")
    return value


def validate_consumer_type(value: object, field: str = "consumer_type") -> str | None:
    """Check a consumer type: ``^[A-Z0-9_]{1,255}$`` or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or not CONSUMER_TYPE_RE.fullmatch(value):
        raise InvalidInput(f"'{field}' must be null or 1 to 255 characters of A-Z, 0-9 and '_'.")
    return value


def validate_limit(value: object) -> int:
    """Check a page size: an integer (or its decimal string) from 1 to 1000."""
    if isinstance(value, bool):
        raise InvalidInput(f"'limit' must be an integer from {MIN_LIMIT} to {MAX_LIMIT}.")
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,7}", value):
            raise InvalidInput(f"'limit' must be an integer from {MIN_LIMIT} to {MAX_LIMIT}.")
        value = int(value)
    if not isinstance(value, int) or not MIN_LIMIT <= value <= MAX_LIMIT:
        raise InvalidInput(f"'limit' must be an integer from {MIN_LIMIT} to {MAX_LIMIT}.")
    return value


def validate_generation(value: object, field: str = "consumer_generation") -> int:
    """Check a generation: an integer from 0 to 2**63 - 1 (never a bool or a string)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GENERATION:
        raise InvalidInput(f"'{field}' must be an integer from 0 to {MAX_GENERATION}.")
    return value
