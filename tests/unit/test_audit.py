"""guard.audit.DecisionLog: JSON lines with fingerprints, never blocking, drops counted."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_context import context as oslo_context

from guard import audit
from guard import log as guard_log
from guard.auditline import list_branch
from guard.auditvalues import MAX_ROLES
from guard.logfingerprints import fingerprint
from guard.logscope import request_scope


class Sink(logging.Handler):
    """A real handler with guard's filter; it can be made to hang or to fail."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(guard_log.RedactingFilter())
        self.lines: list[str] = []
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.fail = False

    def emit(self, record: logging.LogRecord) -> None:
        self.entered.set()
        self.open.wait()
        if self.fail:
            raise OSError("disk full")
        self.lines.append(self.format(record))


@pytest.fixture
def sink() -> Iterator[Sink]:
    handler = Sink()
    yield handler
    handler.open.set()


def make_log(sink: Sink, maxsize: int = audit.DEFAULT_QUEUE_SIZE) -> audit.DecisionLog:
    logger = logging.Logger("guard.audit.test")
    logger.addHandler(sink)
    return audit.DecisionLog(logger, maxsize=maxsize)


def decide(decision_log: audit.DecisionLog, **overrides: Any) -> None:
    values: dict[str, Any] = {
        "action": "guard:consumers:show",
        "allowed": False,
        "branch": "rule:project_reader",
        "creds": {"user_id": "u1", "project_id": "p1", "roles": ["reader"]},
        "target": {"project_id": "p2", "user_id": "u2"},
        "revision": "rev-1",
        "microseconds": 12.34,
        "request_id": f"req-{uuid.uuid4()}",
        "global_request_id": None,
    }
    values.update(overrides)
    decision_log.record(**values)


def test_a_decision_is_one_json_line_with_fingerprints(sink: Sink) -> None:
    decision_log = make_log(sink)
    user, project, owner = (str(uuid.uuid4()) for _ in range(3))
    context = oslo_context.RequestContext(
        user_id=user, project_id=project, roles=["reader", "member"], overwrite=False
    )
    request_id, global_id = f"req-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
    decide(
        decision_log,
        creds=context,
        target={"project_id": owner, "user_id": "bob"},
        allowed=True,
        request_id=request_id,
        global_request_id=global_id,
    )
    assert decision_log.flush()
    decision_log.close()
    (line,) = sink.lines
    entry = json.loads(line)
    fp = fingerprint
    assert entry == {
        "time": entry["time"],
        "request_id": request_id,
        "global_request_id": global_id,
        "action": "guard:consumers:show",
        "allowed": True,
        "branch": "rule:project_reader",
        "user": fp(user),
        "project": fp(project),
        "target_project": fp(owner),
        "target_user": fp("bob"),
        "roles": ["reader", "member"],
        "revision": "rev-1",
        "microseconds": 12.3,
    }
    assert entry["time"].endswith("+00:00")
    for raw in (user, project, owner, "bob"):
        assert raw not in line


def test_a_role_spelled_like_the_callers_own_value_is_fingerprinted(sink: Sink) -> None:
    """A role equal to the caller's id or name is that value: scrubbed as on its other lines."""
    decision_log = make_log(sink)
    creds = {"user_id": "demo-alice", "project_id": "p1", "roles": ["member", "demo-alice"]}
    with request_scope({"user_id": "demo-alice", "project_id": "p1"}):
        decide(decision_log, creds=creds)
    decide(decision_log, creds={**creds, "user_id": "demo-bob"})  # another caller's request
    assert decision_log.flush()
    mine, other = (json.loads(line) for line in sink.lines)
    assert mine["roles"] == ["member", fingerprint("demo-alice")]
    assert "demo-alice" not in sink.lines[0]
    assert other["roles"] == ["member", "demo-alice"]  # a role, for a caller it is not


def test_a_role_holding_the_callers_own_value_as_a_word_is_scrubbed(sink: Sink) -> None:
    """A role naming the caller's id or name inside it ("p1-admin") shows that value:
    scrubbed as the request's other lines scrub it, the rest of the role kept."""
    decision_log = make_log(sink)
    roles = ["member", "p1-admin", "demo-alice.ops", "Acme_Corp:owner", "p1x"]
    creds = {"user_id": "demo-alice", "project_id": "p1", "roles": roles}
    scope = {"user_id": "demo-alice", "project_id": "p1", "project_name": "Acme_Corp"}
    with request_scope(scope):
        decide(decision_log, creds=creds)
    assert decision_log.flush()
    (line,) = sink.lines
    assert json.loads(line)["roles"] == [
        "member",
        fingerprint("p1") + "-admin",
        fingerprint("demo-alice") + ".ops",
        fingerprint("Acme_Corp") + ":owner",
        "p1x",  # a longer word: not the caller's id
    ]
    for raw in ("demo-alice", "Acme_Corp", '"p1-'):
        assert raw not in line


def test_the_default_logger_is_guard_audit() -> None:
    decision_log = audit.DecisionLog()
    try:
        assert decision_log._lines.logger.name == "guard.audit"
    finally:
        decision_log.close()


def test_ids_in_a_rule_branch_are_fingerprinted_and_the_line_stays_json(sink: Sink) -> None:
    decision_log = make_log(sink)
    project = str(uuid.uuid4())
    decide(decision_log, branch=f"project_id:{project}", creds={"user_id": None})
    decision_log.close()
    entry = json.loads(sink.lines[0])
    assert entry["branch"] == f"project_id:{fingerprint(project)}"
    assert entry["user"] is None and entry["roles"] == []


def test_a_hung_sink_never_blocks_a_request_and_drops_are_counted(sink: Sink) -> None:
    decision_log = make_log(sink, maxsize=5)
    sink.open.clear()  # the sink hangs
    decide(decision_log)
    assert sink.entered.wait(timeout=30)  # the writer holds it, stuck in the sink
    requests = threading.Thread(target=lambda: [decide(decision_log) for _ in range(50)])
    requests.start()
    requests.join(timeout=30)
    assert not requests.is_alive(), "record() blocked on a full queue"
    assert decision_log.dropped == 50 - 5  # five fit in the queue
    assert decision_log.flush(timeout=0.05) is False
    sink.open.set()
    assert decision_log.flush()
    assert len(sink.lines) == 6
    decision_log.close()


def test_record_never_raises(sink: Sink) -> None:
    class Hostile:
        @property
        def roles(self) -> list[str]:
            raise RuntimeError("boom")

    decision_log = make_log(sink)
    decide(decision_log, creds=Hostile())
    assert decision_log.dropped == 1
    decide(decision_log)
    decision_log.close()
    assert len(sink.lines) == 1


def test_the_writer_survives_a_failing_sink(sink: Sink) -> None:
    decision_log = make_log(sink)
    sink.fail = True
    decide(decision_log)
    assert decision_log.flush()
    assert decision_log.dropped == 1
    sink.fail = False
    decide(decision_log, action="guard:consumers:list")
    decision_log.close()
    assert [json.loads(line)["action"] for line in sink.lines] == ["guard:consumers:list"]


def test_close_writes_what_is_queued_and_drops_what_comes_after(sink: Sink) -> None:
    decision_log = make_log(sink)
    for _ in range(20):
        decide(decision_log)
    decision_log.close()
    assert len(sink.lines) == 20
    assert not decision_log._thread.is_alive()
    decide(decision_log)
    assert decision_log.dropped == 1
    decision_log.close()  # twice is harmless


def test_the_policy_engine_reports_each_decision(sink: Sink, tmp_path: Path) -> None:
    from oslo_config import cfg

    from guard import policy

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("{}\n")
    conf = cfg.ConfigOpts()
    conf([], project="guard", default_config_files=[])
    enforcer = policy.make_enforcer(conf, str(policy_file))
    decision_log = make_log(sink)
    enforcer.decision_log = decision_log
    user, project = str(uuid.uuid4()), str(uuid.uuid4())
    context = oslo_context.RequestContext(
        user_id=user, project_id=project, roles=["reader"], overwrite=False
    )
    target = {"project_id": project, "user_id": user}
    assert enforcer.authorize("guard:consumers:show", target, context, do_raise=False)
    assert not enforcer.authorize("guard:consumers:delete", target, context, do_raise=False)
    decision_log.close()
    show, delete = (json.loads(line) for line in sink.lines)
    assert (show["action"], show["allowed"]) == ("guard:consumers:show", True)
    assert (delete["action"], delete["allowed"]) == ("guard:consumers:delete", False)
    assert show["request_id"] == context.request_id
    assert show["user"] == fingerprint(user)
    assert show["target_project"] == fingerprint(project)
    assert show["revision"] == enforcer.revision
    assert show["roles"] == ["reader"]
    assert user not in "".join(sink.lines) and project not in "".join(sink.lines)


def test_free_text_fields_are_redacted_before_the_line_is_composed(sink: Sink) -> None:
    """The line skips the handlers' second pass, so its own parts must be safe."""
    decision_log = make_log(sink)
    raw = str(uuid.uuid4())
    token = "gAAAAA" + "x" * 40
    decide(
        decision_log,
        action=f"custom:{raw}",
        creds={"user_id": "u1", "project_id": "p1", "roles": [f"role-{raw}", f"token={token}"]},
        request_id=f"rid {raw}",
        global_request_id=f"req-{uuid.uuid4()}",
        revision=raw.replace("-", ""),
    )
    decision_log.close()
    (line,) = sink.lines
    assert raw not in line and raw.replace("-", "") not in line and token not in line
    entry = json.loads(line)
    assert entry["roles"] == [f"role-{fingerprint(raw)}", "token=***"]
    assert entry["global_request_id"].startswith("req-")  # a request id stays readable


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(
        st.text(alphabet=st.sampled_from("0123456789abcdef-:=_ gAtokenpasswrd\"'"), max_size=60),
        min_size=4,
        max_size=4,
    )
)
def test_every_field_is_redacted_as_the_filter_would(texts: list[str]) -> None:
    sink = Sink()
    decision_log = make_log(sink)
    action, branch, role, revision = texts
    decide(
        decision_log,
        action=action,
        branch=branch,
        creds={"user_id": None, "roles": [role]},
        revision=revision,
    )
    decision_log.close()
    entry = json.loads(sink.lines[0])
    assert entry["action"] == guard_log.redact(action)
    assert entry["branch"] == guard_log.redact(branch)
    assert entry["roles"] == [guard_log.redact(role)]
    assert entry["revision"] == guard_log.redact(revision)


@pytest.mark.parametrize(
    ("kind", "allowed", "outcome"),
    [("allow", True, "all rows"), ("condition", True, "filtered"), ("deny", False, "denied")],
)
def test_a_list_request_is_one_line_naming_its_outcome_and_rule(
    sink: Sink, kind: str, allowed: bool, outcome: str
) -> None:
    decision_log = make_log(sink)
    branch = list_branch(kind, "(rule:admin or rule:project_reader)")
    decide(decision_log, action="guard:consumers:list", allowed=allowed, branch=branch)
    decision_log.close()
    (line,) = sink.lines
    document = json.loads(line)
    assert document["action"] == "guard:consumers:list"
    assert document["allowed"] is allowed
    assert document["branch"] == f"list {outcome}: (rule:admin or rule:project_reader)"


def test_flush_all_writes_what_every_live_log_holds(sink: Sink) -> None:
    logs = [make_log(sink) for _ in range(3)]
    sink.open.clear()  # the writers wait on the sink until flush_all runs
    for decision_log in logs:
        decide(decision_log)
    sink.open.set()
    assert audit.flush_all(timeout=10)
    assert len(sink.lines) == 3
    for decision_log in logs:
        decision_log.close()


def test_sigterm_flushes_then_stops_as_sigterm_would(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.Logger("guard.audit.sigterm")
    logger.addHandler(sink)
    decision_log = audit.DecisionLog(logger, interval=3600)  # the writer would wait an hour
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        audit.flush_on_sigterm()
        decide(decision_log)
        with pytest.raises(SystemExit) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs between bytecodes of this thread
        assert stopped.value.code == 128 + signal.SIGTERM
        assert len(sink.lines) == 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        decision_log.close()


def test_cached_redactions_follow_a_new_fingerprint_key(sink: Sink, isolated_install: Any) -> None:
    decision_log = make_log(sink)
    raw = str(uuid.uuid4())
    guard_log.install(key="first key")
    decide(decision_log, creds={"user_id": "u1", "roles": [f"r-{raw}"]})
    decision_log.flush()
    guard_log.install(key="second key")
    decide(decision_log, creds={"user_id": "u1", "roles": [f"r-{raw}"]})
    decision_log.close()
    first, second = (json.loads(line)["roles"][0] for line in sink.lines)
    assert first != second
    assert second == f"r-{fingerprint(raw)}"


def test_what_waits_in_the_queue_is_bounded_in_bytes_whatever_the_caller_sends(
    sink: Sink,
) -> None:
    """The queue is bounded in decisions; each decision must be bounded in
    bytes too, or 10,000 decisions of 20,000 roles each hold gigabytes while
    the writer catches up (roles and ids are whatever the identity headers say)."""
    import tracemalloc

    decision_log = make_log(sink, maxsize=200)
    roles = [f"role{i:06d}" for i in range(20_000)]
    long_user = "u" * 100_000
    sink.open.clear()  # the sink hangs: everything recorded waits in the queue
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):  # each request parses its own headers: fresh strings
            creds = {
                "user_id": "u" * 100_000,
                "project_id": "p1",
                "roles": list(map(str.upper, roles)),
            }
            decide(decision_log, creds=creds)
            del creds
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 10_000_000, f"{held} bytes held by 100 queued decisions"
    sink.open.set()
    assert decision_log.flush()
    decision_log.close()
    entry = json.loads(sink.lines[-1])
    assert entry["user"] == fingerprint(long_user)  # the same id, the same fingerprint
    assert entry["roles"][:MAX_ROLES] == [role.upper() for role in roles[:MAX_ROLES]]
    assert entry["roles"][MAX_ROLES:] == [f"(+{20_000 - MAX_ROLES} more)"]


_ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from('"\\\n\t\x00é€'),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(
    texts=st.lists(_ANY_TEXT, min_size=4, max_size=4),
    roles=st.lists(_ANY_TEXT, max_size=5),
    request_id=st.none() | _ANY_TEXT,
    allowed=st.booleans(),
    microseconds=st.floats(min_value=0, max_value=1e9) | st.integers(0, 10**6),
)
def test_the_composed_line_is_what_json_dumps_writes(
    texts: list[str], roles: list[str], request_id: str | None, allowed: bool, microseconds: Any
) -> None:
    """The writer composes the line itself: it must be exactly json.dumps's object."""
    sink = Sink()
    decision_log = make_log(sink)
    action, branch, revision, user = texts
    creds = {"user_id": user, "project_id": "p1", "roles": roles}
    decide(
        decision_log,
        action=action,
        allowed=allowed,
        branch=branch,
        creds=creds,
        revision=revision,
        microseconds=microseconds,
        request_id=request_id,
    )
    decision_log.close()
    (line,) = sink.lines
    entry = json.loads(line)
    redacted = guard_log.redact
    expected = {
        "time": entry["time"],
        "request_id": None if request_id is None else redacted(request_id),
        "global_request_id": None,
        "action": redacted(action),
        "allowed": allowed,
        "branch": redacted(branch),
        "user": fingerprint(user) if user else None,
        "project": fingerprint("p1"),
        "target_project": fingerprint("p2"),
        "target_user": fingerprint("u2"),
        "roles": [redacted(role) for role in roles],
        "revision": redacted(revision),
        "microseconds": round(microseconds, 1),
    }
    assert line == json.dumps(expected, separators=(",", ":"))


def test_the_time_is_the_decisions_in_utc_to_the_microsecond(sink: Sink) -> None:
    from datetime import datetime

    decision_log = make_log(sink)
    before = time.time()
    decide(decision_log)
    after = time.time()
    decision_log.close()
    stamp = json.loads(sink.lines[0])["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", stamp)
    assert before - 1e-6 <= datetime.fromisoformat(stamp).timestamp() <= after + 1e-6


def test_every_decision_is_its_own_line_in_the_order_recorded(sink: Sink) -> None:
    """Many threads record at once; each thread's decisions come out in its order, none lost."""
    decision_log = make_log(sink)
    decision_log._interval = 0.001  # the writer drains while the threads record

    def requests(thread: int) -> None:
        for number in range(300):
            decide(decision_log, action=f"t{thread}", microseconds=number)

    threads = [threading.Thread(target=requests, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decision_log.close()
    entries = [json.loads(line) for line in sink.lines]
    assert len(entries) == 1200 and decision_log.dropped == 0
    for thread in range(4):
        numbers = [e["microseconds"] for e in entries if e["action"] == f"t{thread}"]
        assert numbers == [float(n) for n in range(300)]


def test_repeated_decisions_share_their_json_but_never_with_another_decision(sink: Sink) -> None:
    """The writer caches a decision's JSON: a field that differs must show, and a raw
    id that reads like a fingerprint is not taken for the long id it fingerprints."""
    decision_log = make_log(sink)
    long_user = "u" * 1000
    decide(decision_log, creds={"user_id": long_user, "roles": ["reader"]})
    decide(decision_log, creds={"user_id": fingerprint(long_user), "roles": ["reader"]})
    decide(decision_log, creds={"user_id": long_user, "roles": ["reader"]})
    decide(decision_log, creds={"user_id": long_user, "roles": ["reader"]}, allowed=True)
    decide(decision_log, creds={"user_id": long_user, "roles": ["admin"]})
    decision_log.close()
    entries = [json.loads(line) for line in sink.lines]
    printed = fingerprint(long_user)
    assert [entry["user"] for entry in entries] == [
        printed,
        fingerprint(printed),
        printed,
        printed,
        printed,
    ]
    assert [entry["allowed"] for entry in entries] == [False, False, False, True, False]
    assert [entry["roles"] for entry in entries][-1] == ["admin"]
