"""guard.audit.DecisionLog: JSON lines with fingerprints, never blocking, drops counted."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_context import context as oslo_context

from guard import audit
from guard import log as guard_log


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
    fp = guard_log.fingerprint
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


def test_the_default_logger_is_guard_audit() -> None:
    decision_log = audit.DecisionLog()
    try:
        assert decision_log._logger.name == "guard.audit"
    finally:
        decision_log.close()


def test_ids_in_a_rule_branch_are_fingerprinted_and_the_line_stays_json(sink: Sink) -> None:
    decision_log = make_log(sink)
    project = str(uuid.uuid4())
    decide(decision_log, branch=f"project_id:{project}", creds={"user_id": None})
    decision_log.close()
    entry = json.loads(sink.lines[0])
    assert entry["branch"] == f"project_id:{guard_log.fingerprint(project)}"
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
    assert show["user"] == guard_log.fingerprint(user)
    assert show["target_project"] == guard_log.fingerprint(project)
    assert show["revision"] == enforcer.revision
    assert show["roles"] == ["reader"]
    assert user not in "".join(sink.lines) and project not in "".join(sink.lines)
