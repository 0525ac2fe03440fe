"""Property: whatever a log call carries, no secret or id survives, the rest does.

Hypothesis builds log calls with secrets and ids placed in every part of a
record (message, positional and dict arguments, ``extra`` with nested
containers, exception text) in the shapes they take in real logs, with
unicode text around them, and runs them through a real handler carrying
guard's filter.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard import log as guard_log
from guard import logrecords
from guard.logfingerprints import fingerprint
from tests.fixtures.logleak import find_leaks

# Secret values: distinctive, so finding one in the output means it leaked;
# with a digit, as generated secrets have (a bare word after "password " is
# prose to the filter: "password reset for ...").
secret_values = st.text(
    alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789_-", min_size=6, max_size=24
).map(lambda body: f"Zq{body}9")

# The words around: any unicode letter or mark outside ASCII, punctuation that
# cannot glue onto a value, and spaces. They hold no key name and no hex digit,
# so all of it must come out unchanged.
surrounding = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0xA1, max_codepoint=0x2FFF, categories=("L", "M", "N", "P")),
        st.sampled_from(" .!?()/"),
    ),
    max_size=12,
)


def _id_spelling(value: uuid.UUID, spelling: int) -> str:
    return (str(value), str(value).upper(), value.hex, value.hex.upper())[spelling]


# How a secret appears in a line: (template, whether the value is quoted in it).
SECRET_SHAPES = [
    "X-Auth-Token: {v}",
    "x-subject-token={v}",
    "X-Service-Token: {v}",
    "Authorization: Bearer {v}",
    "password={v}",
    "passwd: {v}",
    "pwd={v}",
    "secret = {v}",
    "api_key={v}",
    "apikey: {v}",
    "token={v}",
    "credential={v}",
    "private_key='{v}'",
    '"password": "{v}"',
    "'X-Auth-Token': '{v}'",
    "--os-token {v}",
    "--os-password={v}",
    "postgresql+psycopg://guard:{v}@db.example/guard",
    "gAAAAAB{v}{v}{v}",  # real fernet tokens are 100+ characters
    # The spellings DESIGN.md lists, and those libraries print.
    "password {v}",
    "password: {v}",
    "token {v}",
    "--os-password {v}",
    "password => {v}",
    "'password' => '{v}'",
    "password%3D{v}",
    "auth%5Ftoken%3D{v}",
    "pass={v}",
    "{{'X-Auth-Token': b'{v}'}}",
    "[(b'x-auth-token', b'{v}')]",
    "token=b'{v}'",
    "Cookie: session={v}; theme=dark",
    '{{"auth": {{"passwordCredentials": {{"password": "{v}"}}}}}}',
    '\\"password\\": \\"{v}\\"',
]


@dataclass
class Piece:
    """One secret or id, rendered in its shape, and what it must not leave behind."""

    text: str
    raw: list[str]
    fingerprint: str | None
    separator: str = " "


hex_glue = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=3)


@st.composite
def id_pieces(draw: st.DrawFn) -> Piece:
    """An id in one of the shapes logs carry it."""
    shape = draw(st.sampled_from(["uuid", "glued", "hex64", "query_number", "query_name"]))
    separator = draw(st.sampled_from(["", " "]))
    if shape in ("uuid", "glued"):
        value = uuid.UUID(int=draw(st.integers(min_value=1, max_value=2**128 - 1)), version=4)
        spelling = _id_spelling(value, draw(st.integers(0, 3)))
        # An id ends where the hex digits end: unicode may touch it directly.
        if shape == "uuid":
            return Piece(spelling, [str(value), value.hex], fingerprint(str(value)), separator)
        # Glued inside a longer hex run: the whole run is fingerprinted.
        before, after = draw(hex_glue), draw(st.one_of(st.just(""), hex_glue))
        return Piece(f"{before}{spelling}{after}", [str(value), value.hex], None, separator)
    if shape == "hex64":  # keystone id-mapping ids (LDAP, federation)
        value = draw(st.binary(min_size=32, max_size=32)).hex()
        if draw(st.booleans()):
            value = value.upper()
        return Piece(value, [value], fingerprint(value), separator)
    name = draw(st.sampled_from(["project_id", "user_id"]))
    if shape == "query_number":
        value = str(draw(st.integers(min_value=10**7, max_value=10**12)))
    else:
        value = "acct-" + draw(st.text(alphabet="abcdefghijkmnopqrstuvwxyz._@-", min_size=4))
    text = f"GET /consumers?limit=5&{name}={value}"
    return Piece(text, [value], fingerprint(value), " ")


@st.composite
def pieces(draw: st.DrawFn) -> Piece:
    if draw(st.booleans()):
        return draw(id_pieces())
    value = draw(secret_values)
    shape = draw(st.sampled_from(SECRET_SHAPES))
    # A Cookie header's value runs to the end of its line: masked whole.
    separator = "\n" if shape.startswith("Cookie") else " "
    return Piece(shape.format(v=value), [value], None, separator)


@st.composite
def json_documents(draw: st.DrawFn) -> tuple[Piece, str, str]:
    """A JSON body with a secret under a secret key and a plain field beside it."""
    key = draw(st.sampled_from(["password", "token", "adminPass", "api_key", "secret"]))
    value = draw(secret_values)
    keep = draw(surrounding)
    document = json.dumps({"user": keep, key: value, "project": "p1"}, ensure_ascii=False)
    return Piece(document, [value], None), keep, document


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(guard_log.RedactingFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _everything(record: logging.LogRecord) -> str:
    """All the text a formatter or a structured sink could take from the record."""
    return "\n".join(
        [
            record.getMessage(),
            record.exc_text or "",
            repr({k: v for k, v in record.__dict__.items() if k not in ("msg", "args")}),
        ]
    )


PLACES = ["message", "positional", "dict", "extra", "nested_extra", "exception"]


@settings(
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    piece=pieces(),
    place=st.sampled_from(PLACES),
    before=surrounding,
    after=surrounding,
)
def test_no_secret_or_id_survives_and_the_rest_does(
    piece: Piece, place: str, before: str, after: str
) -> None:
    logger = logging.Logger("guard.property")
    handler = Capture()
    logger.addHandler(handler)
    # Spaces part a secret from the words around it: an unquoted secret value
    # ends at whitespace, so text glued onto it would be masked with it.
    line = f"{before}{piece.separator}{piece.text}{piece.separator}{after}"
    if place == "message":
        logger.info(line)  # no arguments: logging does no %-formatting
    elif place == "positional":
        logger.info("%s|%d", line, 7)
    elif place == "dict":
        logger.info("%(line)s|%(n)d", {"line": line, "n": 7})
    elif place == "extra":
        logger.info("x", extra={"detail": line})
    elif place == "nested_extra":
        logger.info("x", extra={"detail": {"outer": [("k", {"v": line})]}})
    else:
        try:
            raise RuntimeError(line)
        except RuntimeError:
            logger.exception("failed")
    (record,) = handler.records
    text = _everything(record)
    lowered = text.lower()
    for raw in piece.raw:
        assert raw.lower() not in lowered
    if piece.fingerprint:
        assert piece.fingerprint in text
    for words in (before, after):
        assert words in text


@settings(max_examples=500, deadline=None)
@given(document=json_documents(), place=st.sampled_from(["message", "positional", "extra"]))
def test_json_bodies_keep_their_plain_fields_and_stay_json(
    document: tuple[Piece, str, str], place: str
) -> None:
    piece, keep, _ = document
    logger = logging.Logger("guard.property.json")
    handler = Capture()
    logger.addHandler(handler)
    if place == "message":
        logger.info(piece.text.replace("%", "%%"))
    elif place == "positional":
        logger.info("%s", piece.text)
    else:
        logger.info("x", extra={"body": piece.text})
    (record,) = handler.records
    redacted = record.getMessage() if place != "extra" else record.body
    parsed = json.loads(redacted)
    assert parsed["user"] == keep
    assert parsed["project"] == "p1"
    assert piece.raw[0] not in redacted
    assert "***" in parsed.values()


@st.composite
def own_lines(draw: st.DrawFn) -> str:
    """A line as guard composes its own (log_redacted): the access line or a decision."""
    consumer = uuid.UUID(int=draw(st.integers(min_value=1, max_value=2**128 - 1)), version=4)
    request_id = f"req-{uuid.UUID(int=draw(st.integers(1, 2**128 - 1)), version=4)}"
    if draw(st.booleans()):
        return f"GET /consumers/{fingerprint(str(consumer))} 200 211 bytes 37 us {request_id}"
    return json.dumps(
        {"request_id": request_id, "user": fingerprint(str(consumer))},
        separators=(",", ":"),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(pieces(), max_size=2),
    after=st.lists(pieces(), max_size=2),
    glue=st.tuples(*[st.sampled_from([" ", "", "] ", ":", "-", "=", "\t", "_"])] * 2),
    # Hex digits touching the line (a context value's tail, an error summary's head).
    edges=st.tuples(*[st.text(alphabet="0123456789abcdef", max_size=8)] * 2),
    message=own_lines(),
)
def test_the_second_pass_around_guards_own_lines_misses_nothing_the_whole_pass_finds(
    before: list[Piece],
    after: list[Piece],
    glue: tuple[str, str],
    edges: tuple[str, str],
    message: str,
) -> None:
    """What a formatter adds around one of guard's own lines (context values, an
    error summary) is redacted on its own when whitespace sets the line apart;
    nothing the whole text's redaction would hide may survive it."""
    text = (
        " ".join(piece.text for piece in before)
        + glue[0]
        + edges[0]
        + message
        + edges[1]
        + glue[1]
        + " ".join(piece.text for piece in after)
    )
    whole = guard_log.redact(text)
    around = logrecords.redact_around(text, message, guard_log.redact)
    for piece in [*before, *after]:
        for raw in piece.raw:
            assert raw in whole or raw not in around, (raw, around)
    if not find_leaks([whole], set()):  # the leak detector's own patterns agree
        assert not find_leaks([around], set())
    if (glue[0] + edges[0])[-1:].isspace() and (edges[1] + glue[1])[:1].isspace():
        assert message in around  # the line itself is kept as it was
