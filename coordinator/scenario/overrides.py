"""``--set KEY=VALUE``: one value of a scenario replaced from the command line.

``KEY`` is a dotted path into the scenario (``target.settings.step_overhead_s``,
``phases.1.users``: a number picks a list's item); ``VALUE`` is read as YAML, so ``0.011`` is a
number, ``true`` a boolean and ``[1, 2]`` a list. Missing mappings along the path are made;
the scenario is then validated as if the file had said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


class OverrideError(ValueError):
    """A ``--set`` that cannot be applied: one line naming it and the fix."""


@dataclass(frozen=True, slots=True)
class Override:
    path: tuple[str, ...]
    value: Any
    text: str  # as given, for messages

    @classmethod
    def parse(cls, text: str) -> Override:
        key, sep, raw = text.partition("=")
        parts = tuple(key.strip().split("."))
        if not sep or not all(parts):
            raise OverrideError(f"--set {text!r}: write KEY=VALUE with a dotted KEY, e.g. phases.0.users=8")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise OverrideError(f"--set {text!r}: the value is not YAML ({exc.__class__.__name__})") from None
        return cls(parts, value, text)

    def apply(self, data: dict[Any, Any]) -> None:
        """Set the value in ``data`` (the scenario's raw mapping), in place."""
        node: Any = data
        for depth, part in enumerate(self.path):
            last = depth == len(self.path) - 1
            where = ".".join(self.path[:depth]) or "the scenario"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise OverrideError(
                        f"--set {self.text}: {where} is a list of {len(node)}; use an index from 0 to {len(node) - 1}"
                    )
                if last:
                    node[int(part)] = self.value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = self.value
                else:
                    node = node.setdefault(part, {})
            else:
                raise OverrideError(f"--set {self.text}: {where} is a value, not a mapping or a list")
