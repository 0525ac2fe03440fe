"""Input validation follows the contract and never echoes the rejected value."""

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard import exception, validation


@given(st.uuids())
@settings(max_examples=300, deadline=None)
def test_uuid_spellings_normalize_to_canonical(value):
    canonical = str(value)
    for spelling in (canonical, canonical.upper(), value.hex, value.hex.upper()):
        assert validation.normalize_uuid(spelling) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        "{12345678-1234-1234-1234-123456789012}",
        "urn:uuid:12345678-1234-1234-1234-123456789012",
        "12345678-1234-1234-1234-12345678901",
        "12345678-1234-1234-1234-1234567890123",
        "1234567812341234123412345678901",
        "g2345678-1234-1234-1234-123456789012",
        " 12345678-1234-1234-1234-123456789012",
        "12345678-1234-1234-1234-123456789012\n",
        None,
        12,
    ],
)
def test_bad_uuids_are_rejected_without_echo(bad):
    with pytest.raises(exception.InvalidInput) as info:
        validation.normalize_uuid(bad, field="marker")
    assert "marker" in info.value.detail
    if isinstance(bad, str) and bad.strip():
        assert bad.strip() not in info.value.detail
    assert info.value.status == 400 and info.value.code == "guard.invalid_input"


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-",
        min_size=1,
        max_size=255,
    )
)
@settings(max_examples=200, deadline=None)
def test_external_ids_of_allowed_characters_pass(value):
    assert validation.validate_external_id(value, "project_id") == value


@pytest.mark.parametrize(
    "bad", ["", "a" * 256, "a b", "a/b", "ü", "x;drop", "p\n", None, 5, ["p"]]
)
def test_bad_external_ids_are_rejected(bad):
    with pytest.raises(exception.InvalidInput) as info:
        validation.validate_external_id(bad, "user_id")
    assert "user_id" in info.value.detail


def test_consumer_type_pattern():
    assert validation.validate_consumer_type(None) is None
    assert validation.validate_consumer_type("INSTANCE_2") == "INSTANCE_2"
    for bad in ("instance", "", "A" * 256, "A-B", "A\n", 3):
        with pytest.raises(exception.InvalidInput):
            validation.validate_consumer_type(bad)


@pytest.mark.parametrize(("raw", "expected"), [("1", 1), ("1000", 1000), (50, 50), ("0050", 50)])
def test_limits_in_range(raw, expected):
    assert validation.validate_limit(raw) == expected


@pytest.mark.parametrize("bad", ["0", "1001", "-1", "1.5", "ten", "", " 5", True, 0, 1001, None])
def test_limits_out_of_range(bad):
    with pytest.raises(exception.InvalidInput) as info:
        validation.validate_limit(bad)
    assert "limit" in info.value.detail


def test_generation_bounds():
    assert validation.validate_generation(0) == 0
    assert validation.validate_generation(validation.MAX_GENERATION) == 2**63 - 1
    for bad in (-1, 2**63, "1", True, 1.0, None):
        with pytest.raises(exception.InvalidInput):
            validation.validate_generation(bad)


def test_uuid_module_agrees_with_pattern():
    value = str(uuid.uuid4())
    assert validation.UUID_RE.fullmatch(value)
    assert not validation.UUID_RE.fullmatch(value.upper())
    assert not validation.UUID_RE.fullmatch(value + "\n")
