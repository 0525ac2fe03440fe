"""The patterns of what :mod:`guard.log` redacts: secrets in their spellings, and ids.

Kept apart from the filter so that each stays small. Every pattern here runs
in time linear in its text's length: a log line can be long and hostile (a
client-chosen header or path) and Python's re has no timeout. So every
repetition is possessive (``*+``, ``++``) or bounded, and cannot overlap the
next attempt's text; an attempt that gets past its keyword consumes what it
scanned; a quoted value without its closing quote runs to the end of the line
(masked, fail closed) instead of being searched for again from every later
position. ``guard bench`` measures it on hostile text.

Stdlib only, like guard.log.
"""

from __future__ import annotations

import functools
import re

MASK = "***"

# Keys whose values are secrets: oslo.utils' _SANITIZE_KEYS plus api keys,
# credentials, cookies and the Authorization header, grouped by a lowercase
# stem that every key of the group contains. Keys match as parts of longer
# names, so "auth_token" and "X-Auth-Token" are covered by "token"; a bare
# "pass" only as a word of its own ("pass=x", not "passed").
_SECRET_KEYS_BY_STEM = {
    "pass": r"pass(?:word|wd|phrase)|admin_?pass|new_?pass|(?<![a-z])pass(?![a-z])",
    "pwd": r"pwd",
    "pswd": r"pswd",
    "secret": r"secret",
    "token": r"token",
    "credential": r"credential",
    "key": r"api[_-]?key|private[_-]?key|encrypted_key|fernetkey|sslkey|octaviaheartbeatkey"
    r"|cephmanilaclientkey|pacemakerremoteauthkey|designaterndckey|cephadminkey"
    r"|heatauthencryptionkey|cephclientkey|cephrgwkey|migrationsshkey|cephmdskey|cephmonkey",
    "authoriz": r"authorization",
    "configdrive": r"configdrive",
    "cookie": r"cookie",
    "fsid": r"cephclusterfsid",
    "suffix": r"swifthashsuffix",
    "kek": r"barbicansimplecryptokek",
}
SECRET_NAME_RE = re.compile("|".join(_SECRET_KEYS_BY_STEM.values()), re.IGNORECASE)
# Cheap substring hints, checked on the lowercased text before the secret
# patterns run: most log lines hold none of them.
_URL_HINT, _CLI_HINT, _FERNET_HINT, _JWS_HINT, _QID_HINT = "://", "--", "gaaaa", "eyj", "id="
HINTS = (*_SECRET_KEYS_BY_STEM, _URL_HINT, _CLI_HINT, _FERNET_HINT, _JWS_HINT, _QID_HINT)
# Whether any hint is present, in one scan (cheaper than the "in" tests when
# none is, which is most lines).
ANY_HINT = re.compile("|".join(re.escape(hint) for hint in HINTS))

# A word of prose after a weak separator ("token in cache", "validate token:
# Could not find"): not a value. Checked by lookahead, so prose costs no call.
_WORD = r"(?!(?:bearer|basic|digest|negotiate)\s)[a-z](?-i:[a-z]++)(?:'(?-i:[a-z]++))?"
_QUOTED = r"""b?"(?:[^"\\\n]|\\.)*+"?|b?'(?:[^'\\\n]|\\.)*+'?"""
_URL_ALTERNATIVE = r"(?P<url>://[^\s:/@]{0,256}+:(?P<url_pw>(?:[^\s/@]*+@)++))"
# command lines: --os-token X, --os-password=X
_CLI_ALTERNATIVE = (
    r"(?P<cli>--(?:[a-z0-9]++[_-])*+(?:{keys})[\w-]{0,40}+(?:=|\s++)"
    rf"(?P<cli_val>{_QUOTED}|[^\s\"']++))"
)
# key=value, key => value, key%3Dvalue, "key": "value", 'key', 'value',
# X-Auth-Token: v, Authorization: Bearer v, escaped JSON (\"key\": \"value\"),
# bytes reprs (b'v'). A value after a quoted key is masked as a quoted string,
# so JSON stays JSON. After an unquoted key, ":" and a space are weak
# separators: prose ("validate token: Could not find ...") is left alone.
_KV_ALTERNATIVE = (
    r"(?P<kv>(?:{keys})[\w.-]{0,32}+(?P<kq>\\?[\"'])?"
    r"(?:\s*+(?:=>|=|%3d|%3a)\s*+|(?(kq)\s*+[:,]\s*+|(?:[ \t]*+:[ \t]*+(?!" + _WORD + r" [a-z])"
    r"|[ \t]++(?!" + _WORD + r"(?![^\s\"',;&{}\[\]()<>])))))"
    r"(?P<scheme>(?:bearer|basic|digest|negotiate)\s++)?"
    r"(?P<kv_val>\\\"(?:[^\\\"\n]|\\[^\"\n])*+(?:\\\")?|" + _QUOTED + r""
    r"|(?(kq)[^\s,{}\[\])\\\"']++|[^\s\"',;&{}\[\]()<>]++)))"
)
# Cookie: session=...; theme=... (the whole header value).
_COOKIE_ALTERNATIVE = (
    r"(?P<cookie>(?P<cookie_key>(?<![\w-])(?:set-)?cookie[ \t]*+:[ \t]*+)[^\r\n\"']++)"
)
# Identity-bearing query parameters: any value, numeric ones too.
_QID_ALTERNATIVE = (
    r"(?P<qid>(?P<qid_key>(?<![\w.-])(?:project|user|tenant|domain)_?id=)(?!<id:)"
    r"(?P<qid_val>[^\s&#\"',;]++))"
)
_FERNET_ALTERNATIVE = r"(?P<fernet>(?<![\w-])gAAAA[\w-]{20,}+={0,2})"
_JWS_ALTERNATIVE = r"(?P<jws>(?<![\w-])eyJ[\w-]{8,}+\.[\w-]{8,}+\.[\w-]*+)"

# Ids: uuids (dashed or not, any case) and runs of 32 or more hex digits
# (keystone's 32-hex and 64-hex ids), each also glued inside a longer hex run,
# bounded by non-hex characters. Explicit classes rather than IGNORECASE:
# measurably faster in CPython's re. A request id "req-<uuid>" stays. No
# lookbehind for the left bound: the possessive runs make a match start at
# the first digit of its run anyway, and a pattern that starts with a
# character class lets re skip ahead to candidates.
ID_PATTERN = re.compile(
    r"(?:[0-9a-fA-F]{8,}+(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12,}+"
    r"|[0-9a-fA-F]{32,}+)"
)
REQUEST_ID_RE = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)
# A run of 8 hex digits, the least an id needs: the prefilter of ID_PATTERN.
HEX_RUN = re.compile(r"[0-9a-fA-F]{8}")
HEX_ID_RE = re.compile(r"[0-9a-fA-F-]{32,}+")


def has_hint(text: str) -> bool:
    """Whether ``text`` holds a word after which redaction would mask a value."""
    return ANY_HINT.search(text.lower()) is not None


def masked_like(value: str, key_quote: str | None) -> str:
    """``***`` quoted as the value was (or as its key was), so JSON stays JSON."""
    if value.startswith('\\"'):
        return '\\"' + MASK + '\\"'
    if value[0] in "\"'":
        return value[0] + MASK + value[0]
    if value[0] == "b" and value[1:2] in ("'", '"'):
        return "b" + value[1] + MASK + value[1]
    if key_quote:
        return key_quote + MASK + key_quote
    return MASK


@functools.lru_cache(maxsize=64)
def secret_pattern(hints: tuple[str, ...]) -> re.Pattern[str]:
    """The combined secret pattern for the hints a text holds, compiled once.

    Only the key groups whose stem is present take part: a 30-way keyword
    alternation tried at every position costs ~30 microseconds a line, one
    or two keywords about one.
    """
    keys = "|".join(_SECRET_KEYS_BY_STEM[hint] for hint in hints if hint in _SECRET_KEYS_BY_STEM)
    alternatives = []
    if _URL_HINT in hints:
        alternatives.append(_URL_ALTERNATIVE)
    if keys and _CLI_HINT in hints:
        alternatives.append(_CLI_ALTERNATIVE.replace("{keys}", keys))
    if "cookie" in hints:
        alternatives.append(_COOKIE_ALTERNATIVE)
    if keys:
        alternatives.append(_KV_ALTERNATIVE.replace("{keys}", keys))
    if _QID_HINT in hints:
        alternatives.append(_QID_ALTERNATIVE)
    if _FERNET_HINT in hints:
        alternatives.append(_FERNET_ALTERNATIVE)
    if _JWS_HINT in hints:
        alternatives.append(_JWS_ALTERNATIVE)
    return re.compile("|".join(alternatives) or "(?!)", re.IGNORECASE | re.DOTALL)
