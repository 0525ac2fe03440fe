"""oslo.policy's ``Rules`` mapping that reports changes made to it in place.

Services (and oslo.policy's own tests) edit ``enforcer.rules`` directly; the
enforcer must then recompile, so every mutating method calls ``on_change``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from oslo_policy import policy


class TrackedRules(policy.Rules):
    """oslo's ``Rules`` that tells its enforcer when it is changed in place."""

    _on_change: Callable[[], None]

    def __init__(
        self, rules: Mapping[str, Any], default_rule: Any, on_change: Callable[[], None]
    ) -> None:
        object.__setattr__(self, "_on_change", on_change)
        super().__init__(dict(rules), default_rule)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        self._on_change()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._on_change()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._on_change()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._on_change()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._on_change()
        return value

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._on_change()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._on_change()
        return item

    def clear(self) -> None:
        super().clear()
        self._on_change()
