"""pytest plugin: run oslo.policy's own tests with guard's Enforcer swapped in.

Load it with ``-p tests.oslo_swap`` while running ``--pyargs oslo_policy.tests``:
for the whole of each test (setup, call, teardown) ``oslo_policy.policy.Enforcer``
is ``guard.policy.Enforcer``, so every enforcer a test builds (directly,
through oslo's fixtures or through its tools) is guard's. At the end it prints
how many enforcers of each class the tests built, so that a run in which the
swap did not happen cannot pass for one in which it did.
tests/unit/test_oslo_suite.py runs it and compares the failures with
docs/oslo-compat.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_policy import policy

from guard.policy import Enforcer

STOCK = policy.Enforcer
BUILT: Counter[str] = Counter()
_guard_init = Enforcer.__init__


def _counting_init(self: Enforcer, *args: Any, **kwargs: Any) -> None:
    BUILT["guard"] += 1
    _guard_init(self, *args, **kwargs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Swap the class for the whole protocol of one test."""
    policy.Enforcer = Enforcer
    Enforcer.__init__ = _counting_init  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        policy.Enforcer = STOCK
        Enforcer.__init__ = _guard_init  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"guard enforcers built: {BUILT['guard']}")
