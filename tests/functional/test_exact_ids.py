"""Ids compare byte for byte on every database.

MySQL's default collations fold case and accents and ignore trailing spaces:
without binary id columns a member of project ``ABC`` (or ``abc ``) would see
the rows of ``abc``, and a create for ``ABC`` would file the consumer under
``abc``'s row. Hypothesis generates an owner id and a near-miss of it (other
case, a trailing space, an accent); the near-miss's member must see nothing of
the owner's rows, on each backend, and two valid ids that differ only in case
are two owners.
"""

from __future__ import annotations

import uuid as uuidlib

import pytest
import sqlalchemy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from guard import exception
from guard.context import RequestContext
from guard.db import api, migration, models
from guard.policy import make_enforcer
from guard.repository import ConsumerRepository

# Ids of the contract's alphabet, with letters so that case matters.
heads = st.from_regex(r"[a-zA-Z][A-Za-z0-9_.@-]{0,11}", fullmatch=True)
ACCENTED = str.maketrans({"a": "á", "e": "é", "o": "ö", "A": "Á", "E": "É", "u": "ü"})
#: What a case- or accent-insensitive, space-padding comparison takes for the id.
NEAR_MISSES = {
    "swapcase": str.swapcase,
    "upper": str.upper,
    "lower": str.lower,
    "trailing space": lambda text: text + " ",
    "trailing spaces": lambda text: text + "  ",
    "accents": lambda text: text.translate(ACCENTED),
}


def unique(head: str) -> str:
    """``head`` made unique: the database is shared by the module's examples."""
    return f"{head}-{uuidlib.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def repo(module_database_url: str):
    migration.upgrade(module_database_url)
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    enforcer = make_enforcer(conf)
    engine = api.create_engine(module_database_url)
    yield ConsumerRepository(engine, enforcer), enforcer, engine
    engine.dispose()


def member(enforcer, project_id: str) -> RequestContext:
    return RequestContext(
        user_id="someone", project_id=project_id, roles=["member", "reader"], enforcer=enforcer
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=heads, near_miss=st.sampled_from(sorted(NEAR_MISSES)))
def test_a_near_miss_project_sees_nothing_of_the_owners_rows(repo, head, near_miss):
    repository, enforcer, _engine = repo
    owner = unique(head)
    intruder_project = NEAR_MISSES[near_miss](owner)
    assume(intruder_project != owner)
    consumer = str(uuidlib.uuid4())
    repository.create(member(enforcer, owner), consumer, project_id=owner, user_id=owner)
    intruder = member(enforcer, intruder_project)
    assert repository.list(intruder, limit=1000).consumers == []
    with pytest.raises(exception.NotFound):
        repository.get(intruder, consumer)
    with pytest.raises(exception.NotFound):
        repository.delete(intruder, consumer)
    # The owner does see its row (so the assertions above could have failed).
    owners_page = repository.list(member(enforcer, owner), limit=1000).consumers
    assert [c.uuid for c in owners_page] == [consumer]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(head=heads)
def test_ids_differing_in_case_are_two_owners(repo, head):
    owner = unique(head)
    other = owner.swapcase()
    assume(other != owner)
    repository, enforcer, engine = repo
    mine, theirs = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    repository.create(member(enforcer, owner), mine, project_id=owner, user_id=owner)
    repository.create(member(enforcer, other), theirs, project_id=other, user_id=other)
    assert repository.get(member(enforcer, owner), mine).project_id == owner
    assert repository.get(member(enforcer, other), theirs).project_id == other
    with pytest.raises(exception.NotFound):
        repository.get(member(enforcer, other), mine)
    with engine.connect() as conn:
        stored = conn.execute(
            sqlalchemy.select(models.Project.external_id).where(
                models.Project.external_id.in_([owner, other])
            )
        ).scalars()
        assert sorted(stored) == sorted([owner, other])
