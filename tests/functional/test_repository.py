"""The guarded consumer repository on real SQLite files, PostgreSQL and MariaDB servers.

Every test runs on each database. The policy is guard's real default policy
(``guard.policy.make_enforcer``), and decisions go through oslo.policy's
semantics; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from oslo_config import cfg
from oslo_policy import _checks

from guard import exception, validation
from guard.context import RequestContext
from guard.db import api, migration, models
from guard.policy import make_enforcer
from guard.repository import KEEP, Consumer, ConsumerRepository
from tests.functional.support import CONSUMER_KEYS

A, B = "project-a", "project-b"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def db_url(module_database_url: str) -> str:
    """One migrated database per module and backend (tests use distinct uuids)."""
    migration.upgrade(module_database_url)
    return module_database_url


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[sqlalchemy.Engine]:
    eng = api.create_engine(db_url)
    yield eng
    eng.dispose()


def new_enforcer():
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[], default_config_dirs=[])
    return make_enforcer(conf)


@pytest.fixture(scope="module")
def enforcer():
    return new_enforcer()


@pytest.fixture(scope="module")
def repo(engine: sqlalchemy.Engine, enforcer) -> ConsumerRepository:
    return ConsumerRepository(engine, enforcer)


def persona(enforcer, name: str) -> RequestContext:
    """The personas of the matrix, as keystone sends them (implied roles expanded)."""
    project_a = {"project_id": A}
    table = {
        "admin_a": (project_a, ["admin", "member", "reader"]),
        "service": ({"project_id": "service-project"}, ["service"]),
        "member_a": (project_a, ["member", "reader"]),
        "reader_a": (project_a, ["reader"]),
        "member_b": ({"project_id": B}, ["member", "reader"]),
        "reader_b": ({"project_id": B}, ["reader"]),
        "no_role": (project_a, []),
        "system_admin": ({"system_scope": "all"}, ["admin", "member", "reader"]),
    }
    scope, roles = table[name]
    return RequestContext(user_id=f"user-{name}", roles=roles, enforcer=enforcer, **scope)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def admin(enforcer) -> RequestContext:
    return persona(enforcer, "admin_a")


@contextlib.contextmanager
def recorded_statements(engine: sqlalchemy.Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)


def writes(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


# ------------------------------------------ persona x action x ownership matrix

OK, NF, FB = "ok", "not_found", "forbidden"
# (persona, owner of the row) -> expected outcome of get, list, create, update, delete.
# "list" is OK when the row is on the caller's page, NF when the page omits it,
# FB when the list is refused (403). "create" creates a new consumer owned by
# that project. Written out by hand from docs/api.md's default rules.
MATRIX = {
    ("admin_a", A): (OK, OK, OK, OK, OK),
    ("admin_a", B): (OK, OK, OK, OK, OK),
    ("service", A): (OK, OK, OK, OK, OK),
    ("service", B): (OK, OK, OK, OK, OK),
    ("member_a", A): (OK, OK, OK, OK, OK),
    ("member_a", B): (NF, NF, FB, NF, NF),
    ("reader_a", A): (OK, OK, FB, FB, FB),
    ("reader_a", B): (NF, NF, FB, NF, NF),
    ("member_b", A): (NF, NF, FB, NF, NF),
    ("member_b", B): (OK, OK, OK, OK, OK),
    ("reader_b", A): (NF, NF, FB, NF, NF),
    ("reader_b", B): (OK, OK, FB, FB, FB),
    ("no_role", A): (NF, FB, FB, NF, NF),
    ("no_role", B): (NF, FB, FB, NF, NF),
    ("system_admin", A): (NF, FB, FB, NF, NF),
    ("system_admin", B): (NF, FB, FB, NF, NF),
}
ACTIONS = ("get", "list", "create", "update", "delete")


def outcome(call) -> str:
    try:
        call()
    except exception.NotFound:
        return NF
    except exception.Forbidden:
        return FB
    return OK


def run_action(repo, enforcer, ctx, action: str, owner: str) -> str:
    row = repo.create(admin(enforcer), new_uuid(), project_id=owner, user_id="owner-user")
    if action == "get":
        return outcome(lambda: repo.get(ctx, row.uuid))
    if action == "list":
        try:
            page = repo.list(ctx, user_id="owner-user", marker=_just_before(row.uuid), limit=1)
        except exception.Forbidden:
            return FB
        return OK if [c.uuid for c in page.consumers] == [row.uuid] else NF
    if action == "create":
        return outcome(lambda: repo.create(ctx, new_uuid(), project_id=owner, user_id="u"))
    if action == "update":
        return outcome(lambda: repo.update(ctx, row.uuid, generation=0, consumer_type="VM"))
    return outcome(lambda: repo.delete(ctx, row.uuid, generation=0))


def _just_before(uuid: str) -> str:
    """The uuid right before ``uuid``: a marker whose page starts at ``uuid``."""
    return str(uuidlib.UUID(int=uuidlib.UUID(uuid).int - 1))


@pytest.mark.parametrize(("who", "owner"), sorted(MATRIX))
def test_persona_action_ownership_matrix(repo, enforcer, who, owner):
    ctx = persona(enforcer, who)
    got = tuple(run_action(repo, enforcer, ctx, action, owner) for action in ACTIONS)
    assert dict(zip(ACTIONS, got, strict=True)) == dict(
        zip(ACTIONS, MATRIX[(who, owner)], strict=True)
    )


# ---------------------------------------------------------------- visibility


def test_invisible_row_answers_exactly_like_a_missing_one(repo, enforcer):
    row = repo.create(admin(enforcer), new_uuid(), project_id=A, user_id="u")
    outsider = persona(enforcer, "member_b")
    calls = {
        "get": lambda u: repo.get(outsider, u),
        "update": lambda u: repo.update(outsider, u, generation=0),
        "delete": lambda u: repo.delete(outsider, u),
    }
    for name, call in calls.items():
        with pytest.raises(exception.NotFound) as hidden:
            call(row.uuid)
        with pytest.raises(exception.NotFound) as missing:
            call(new_uuid())
        assert (hidden.value.detail, hidden.value.code) == (
            missing.value.detail,
            missing.value.code,
        ), name
        assert A not in hidden.value.detail
    assert repo.get(admin(enforcer), row.uuid).generation == 0  # untouched


def test_uuid_is_normalized(repo, enforcer):
    row_uuid = new_uuid()
    repo.create(admin(enforcer), row_uuid.upper().replace("-", ""), project_id=A, user_id="u")
    assert repo.get(admin(enforcer), row_uuid.upper()).uuid == row_uuid


# ---------------------------------------------------- denied writes send nothing


def test_denied_writes_issue_no_insert_update_or_delete(repo, engine, enforcer):
    row = repo.create(admin(enforcer), new_uuid(), project_id=A, user_id="u")
    reader, member_a = persona(enforcer, "reader_a"), persona(enforcer, "member_a")
    with recorded_statements(engine) as statements, pytest.raises(exception.Forbidden):
        repo.create(reader, new_uuid(), project_id=A, user_id="brand-new-user")
    assert statements == []  # decided before any SQL, not even a BEGIN
    denied = [
        lambda: repo.update(reader, row.uuid, generation=0, consumer_type="VM"),
        lambda: repo.delete(reader, row.uuid),
        # moving into a project the member has no right in
        lambda: repo.update(member_a, row.uuid, generation=0, project_id="project-new"),
    ]
    for call in denied:
        with recorded_statements(engine) as statements, pytest.raises(exception.Forbidden):
            call()
        assert statements, "the row must have been read"
        assert writes(statements) == []
    with recorded_statements(engine) as statements, pytest.raises(exception.NotFound):
        repo.update(persona(enforcer, "member_b"), row.uuid, generation=0)
    assert writes(statements) == []
    assert repo.get(admin(enforcer), row.uuid).generation == 0


def test_invalid_input_raises_before_any_sql(repo, engine, enforcer):
    ctx = admin(enforcer)
    good = new_uuid()
    bad_calls = [
        lambda: repo.get(ctx, "not-a-uuid"),
        lambda: repo.create(ctx, good, project_id="bad id", user_id="u"),
        lambda: repo.create(ctx, good, project_id=A, user_id="u" * 256),
        lambda: repo.create(ctx, good, project_id=A, user_id="u", consumer_type="lower"),
        lambda: repo.update(ctx, good, generation=-1),
        lambda: repo.update(ctx, good, generation=True),
        lambda: repo.update(ctx, good, generation=validation.MAX_GENERATION + 1),
        lambda: repo.delete(ctx, good, generation="1"),
        lambda: repo.list(ctx, limit=0),
        lambda: repo.list(ctx, limit=1001),
        lambda: repo.list(ctx, marker="zzz"),
        lambda: repo.list(ctx, project_id=""),
    ]
    for call in bad_calls:
        with recorded_statements(engine) as statements, pytest.raises(exception.InvalidInput):
            call()
        assert statements == []


# ------------------------------------------------------------ updates and moves


def test_update_is_a_compare_and_swap_on_the_generation(repo, enforcer):
    ctx = persona(enforcer, "member_a")
    row = repo.create(ctx, new_uuid(), project_id=A, user_id="u", consumer_type="INSTANCE")
    updated = repo.update(ctx, row.uuid, generation=0, user_id="u2")
    assert (updated.generation, updated.user_id, updated.consumer_type) == (1, "u2", "INSTANCE")
    with pytest.raises(exception.ConcurrentUpdate) as stale:
        repo.update(ctx, row.uuid, generation=0, user_id="u3")
    assert stale.value.detail == "Expected generation 0, but the consumer is at generation 1."
    cleared = repo.update(ctx, row.uuid, generation=1, consumer_type=None)
    assert (cleared.generation, cleared.consumer_type) == (2, None)
    kept = repo.update(ctx, row.uuid, generation=2, consumer_type=KEEP)
    stored = repo.get(ctx, row.uuid)
    assert stored == kept
    assert (stored.generation, stored.user_id, stored.consumer_type) == (3, "u2", None)


def test_generation_ceiling_refuses_instead_of_wrapping(repo, engine, enforcer):
    ctx = admin(enforcer)
    row = repo.create(ctx, new_uuid(), project_id=A, user_id="u")
    top = validation.MAX_GENERATION
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.update(models.Consumer)
            .where(models.Consumer.uuid == row.uuid)
            .values(generation=top - 1)
        )
    assert repo.update(ctx, row.uuid, generation=top - 1).generation == top
    with recorded_statements(engine) as statements, pytest.raises(exception.Conflict) as ceiling:
        repo.update(ctx, row.uuid, generation=top)
    assert str(top) in ceiling.value.detail
    assert writes(statements) == []
    assert repo.get(ctx, row.uuid).generation == top
    repo.delete(ctx, row.uuid, generation=top)  # a consumer at the ceiling can still go


def test_move_needs_update_on_old_and_create_on_new_owner(repo, enforcer):
    row = repo.create(admin(enforcer), new_uuid(), project_id=A, user_id="u")
    with pytest.raises(exception.Forbidden):
        repo.update(persona(enforcer, "member_a"), row.uuid, generation=0, project_id=B)
    moved = repo.update(admin(enforcer), row.uuid, generation=0, project_id=B)
    assert (moved.project_id, moved.generation) == (B, 1)
    with pytest.raises(exception.NotFound):
        repo.get(persona(enforcer, "member_a"), row.uuid)
    assert repo.get(persona(enforcer, "reader_b"), row.uuid).project_id == B


def test_a_change_of_owner_or_type_checks_the_create_rule(repo, engine):
    """A policy where callers may update anything but create nothing."""
    enforcer = new_enforcer()
    enforcer.set_rules(
        {
            "guard:consumers:create": _checks.FalseCheck(),
            "guard:consumers:update": _checks.TrueCheck(),
        },
        overwrite=False,
        use_conf=False,
    )
    guarded = ConsumerRepository(engine, enforcer)
    ctx = persona(enforcer, "admin_a")
    row = ConsumerRepository(engine, new_enforcer()).create(
        ctx, new_uuid(), project_id=A, user_id="u"
    )
    # nothing changes but the generation: update on the stored row is enough
    assert guarded.update(ctx, row.uuid, generation=0, user_id="u").generation == 1
    # any change of owner or type needs create on the row as it will be
    for change in ({"user_id": "someone-else"}, {"project_id": B}, {"consumer_type": "VM"}):
        with recorded_statements(engine) as statements, pytest.raises(exception.Forbidden):
            guarded.update(ctx, row.uuid, generation=1, **change)
        assert writes(statements) == []


# ---------------------------------------------------------- create and delete


def test_duplicate_create_is_a_concurrent_update_whoever_owns_the_uuid(repo, enforcer):
    row = repo.create(admin(enforcer), new_uuid(), project_id=A, user_id="u")
    for who, owner in (("member_a", A), ("member_b", B)):
        with pytest.raises(exception.ConcurrentUpdate) as duplicate:
            repo.create(persona(enforcer, who), row.uuid, project_id=owner, user_id="u")
        assert A not in duplicate.value.detail and B not in duplicate.value.detail
    # the rule comes first: a reader learns nothing about the uuid
    with pytest.raises(exception.Forbidden):
        repo.create(persona(enforcer, "reader_b"), row.uuid, project_id=B, user_id="u")
    assert repo.get(admin(enforcer), row.uuid).project_id == A


def test_racing_creates_of_one_uuid_give_one_winner_and_no_error(repo, enforcer):
    contested = new_uuid()
    results = _race(
        16, lambda i: repo.create(admin(enforcer), contested, project_id=f"race-{i}", user_id="u")
    )
    assert sum(isinstance(r, Consumer) for r in results) == 1
    assert all(isinstance(r, Consumer | exception.ConcurrentUpdate) for r in results), results


def test_racing_creates_share_new_owner_rows(repo, engine, enforcer):
    project = f"fresh-{new_uuid()}"
    results = _race(
        12,
        lambda i: repo.create(
            admin(enforcer), new_uuid(), project_id=project, user_id=project, consumer_type="RACE"
        ),
    )
    assert all(isinstance(r, Consumer) for r in results), results
    with engine.connect() as conn:
        projects = conn.execute(
            sqlalchemy.select(sqlalchemy.func.count())
            .select_from(models.Project)
            .where(models.Project.external_id == project)
        ).scalar_one()
    assert projects == 1
    page = repo.list(admin(enforcer), project_id=project, limit=100)
    assert len(page.consumers) == 12


def _race(threads: int, call) -> list[object]:
    """Run ``call(i)`` in ``threads`` threads released at once; results or errors."""
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except exception.GuardError as error:
            results[i] = error

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def test_delete_with_and_without_generation(repo, enforcer):
    ctx = persona(enforcer, "member_a")
    row = repo.create(ctx, new_uuid(), project_id=A, user_id="u")
    with pytest.raises(exception.ConcurrentUpdate):
        repo.delete(ctx, row.uuid, generation=5)
    repo.delete(ctx, row.uuid, generation=0)
    with pytest.raises(exception.NotFound):
        repo.delete(ctx, row.uuid)
    other = repo.create(ctx, new_uuid(), project_id=A, user_id="u")
    repo.update(ctx, other.uuid, generation=0)
    repo.delete(ctx, other.uuid)
    with pytest.raises(exception.NotFound):
        repo.get(ctx, other.uuid)


def test_consumer_json(repo, enforcer):
    repo.ping()  # the database answers
    row = repo.create(admin(enforcer), new_uuid(), project_id=A, user_id="u")
    body = repo.get(admin(enforcer), row.uuid).to_dict()
    assert set(body) == CONSUMER_KEYS
    assert (body["consumer_type"], body["generation"]) == (None, 0)
    assert body["created_at"] == row.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(body["created_at"]) == 20 and body["updated_at"].endswith("Z")


# ---------------------------------------------------------------- lists


@pytest.fixture(scope="module")
def listing(repo, enforcer) -> dict[str, object]:
    """Seven consumers in a project of their own (two types), two in another."""
    project, other = f"list-{new_uuid()}", f"list-{new_uuid()}"
    ctx = admin(enforcer)
    types = {}
    for i in range(7):
        kind = "EVEN" if i % 2 == 0 else "ODD"
        created = repo.create(ctx, new_uuid(), project_id=project, user_id="lister",
                              consumer_type=kind)  # fmt: skip
        types[created.uuid] = kind
    for _ in range(2):
        repo.create(ctx, new_uuid(), project_id=other, user_id="lister")
    return {"project": project, "other": other, "mine": sorted(types), "types": types}


def member_of(enforcer, project: str) -> RequestContext:
    return RequestContext(
        user_id="someone", project_id=project, roles=["member", "reader"], enforcer=enforcer
    )


def all_pages(repo, ctx, **filters) -> tuple[list[str], list[int]]:
    uuids, sizes, marker = [], [], None
    while True:
        page = repo.list(ctx, marker=marker, **filters)
        uuids += [c.uuid for c in page.consumers]
        sizes.append(len(page.consumers))
        if page.next_marker is None:
            return uuids, sizes
        assert page.next_marker == page.consumers[-1].uuid
        marker = page.next_marker


def test_list_pages_show_only_the_callers_rows(repo, enforcer, listing):
    ctx = member_of(enforcer, listing["project"])
    uuids, sizes = all_pages(repo, ctx, limit=3)
    assert uuids == listing["mine"]
    assert sizes == [3, 3, 1]
    # exactly a page's worth: no next marker
    exact = repo.list(ctx, limit=7)
    assert [c.uuid for c in exact.consumers] == listing["mine"]
    assert exact.next_marker is None
    # another project's filter is an empty page, not an error
    assert repo.list(ctx, project_id=listing["other"]).consumers == []


def test_list_filters(repo, enforcer, listing):
    ctx = admin(enforcer)
    project = listing["project"]
    odd, sizes = all_pages(repo, ctx, project_id=project, consumer_type="ODD", limit=2)
    assert odd == [u for u in listing["mine"] if listing["types"][u] == "ODD"]
    assert sizes == [2, 1]
    by_user, _ = all_pages(repo, ctx, project_id=project, user_id="lister")
    assert by_user == listing["mine"]
    assert repo.list(ctx, project_id=project, user_id="nobody").consumers == []
    assert repo.list(ctx, project_id=project, consumer_type="NONE_SUCH").consumers == []


def test_list_is_forbidden_only_when_no_row_can_be_allowed(repo, enforcer, listing):
    assert repo.can_list(member_of(enforcer, "anything"))
    for who in ("no_role", "system_admin"):
        ctx = persona(enforcer, who)
        assert not repo.can_list(ctx)
        with pytest.raises(exception.Forbidden):
            repo.list(ctx)


def test_list_falls_back_to_per_row_for_a_custom_check(repo, engine, listing, caplog):
    """A check SQL cannot express: the rows are still exactly the allowed ones."""
    enforcer = new_enforcer()
    wanted = set(listing["mine"][::3])
    enforcer.set_rules(
        {"guard:consumers:list": UuidInCheck("uuid_in", ",".join(sorted(wanted)))},
        overwrite=False,
        use_conf=False,
    )
    guarded = ConsumerRepository(engine, enforcer)
    ctx = member_of(enforcer, listing["project"])
    with caplog.at_level(logging.WARNING, logger="guard.repository"):
        page = guarded.list(ctx, project_id=listing["project"], limit=2)
    assert [c.uuid for c in page.consumers] == sorted(wanted)[:2]
    assert page.next_marker == sorted(wanted)[1]
    warnings = [r for r in caplog.records if r.name == "guard.repository"]
    assert len(warnings) == 1
    assert "guard:consumers:list" in warnings[0].getMessage()
    rest = guarded.list(ctx, project_id=listing["project"], marker=page.next_marker)
    assert [c.uuid for c in rest.consumers] == sorted(wanted)[2:]
    assert rest.next_marker is None


class UuidInCheck(_checks.Check):
    """A custom check (as a plugin would register): the target uuid is in a list."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        return target["uuid"] in self.match.split(",")

    def __str__(self) -> str:
        return "uuid_in:..."


# ------------------------------------------------------------ faults


def test_database_fault_is_unavailable_naming_nothing(enforcer, tmp_path: Path, db_url: str):
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'missing-dir' / 'guard.sqlite'}"
    elif db_url.startswith("mysql"):
        url = "mysql+pymysql://secretuser:secretpw@127.0.0.1:1/nodb"
    else:
        url = "postgresql+psycopg://secretuser:secretpw@127.0.0.1:1/nodb"
    engine = api.create_engine(url)
    repo = ConsumerRepository(engine, enforcer)
    for call in (
        repo.ping,
        lambda: repo.get(admin(enforcer), new_uuid()),
        lambda: repo.create(admin(enforcer), new_uuid(), project_id=A, user_id="u"),
    ):
        with pytest.raises(exception.Unavailable) as unavailable:
            call()
        detail = unavailable.value.detail
        assert detail == exception.Unavailable.default_detail
        for secret in ("127.0.0.1", "secretuser", "secretpw", "missing-dir", "SELECT"):
            assert secret not in detail


def test_a_failing_statement_rolls_the_whole_call_back(repo, engine, enforcer, db_url):
    """A trigger makes the consumer INSERT fail after the owner rows were written."""
    doomed = new_uuid()
    project = f"doomed-{new_uuid()}"
    with engine.begin() as conn:
        if db_url.startswith("sqlite"):
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON consumers "
                f"WHEN NEW.uuid = '{doomed}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        elif db_url.startswith("mysql"):
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON consumers FOR EACH ROW BEGIN "
                f"IF NEW.uuid = '{doomed}' THEN SIGNAL SQLSTATE '45000' "
                "SET MESSAGE_TEXT = 'refused'; END IF; END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.uuid = '{doomed}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON consumers "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
    try:
        with pytest.raises((exception.Unavailable, exception.Conflict)) as fault:
            repo.create(admin(enforcer), doomed, project_id=project, user_id=project)
        assert "refused" not in fault.value.detail
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "DROP TRIGGER refuse"
                + (" ON consumers" if db_url.startswith("postgresql") else "")
            )
    with engine.connect() as conn:
        owners = conn.execute(
            sqlalchemy.select(models.Project.id).where(models.Project.external_id == project)
        ).all()
    assert owners == []  # the project row written first was rolled back too
    with pytest.raises(exception.NotFound):
        repo.get(admin(enforcer), doomed)
