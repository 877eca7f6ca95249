"""Service-level objectives as users declare them (the scenario's ``slo``, milliseconds).

What makes a request *good* is :class:`loadgen.metrics.SloRule` (seconds), the one rule the
summary and the bridge apply; a declaration converts to it once, with :meth:`Slo.rule`. The
summary keeps the declaration as written (``summary.json`` ``slo``) and judges each threshold
at the declared ``percentile``.
"""

from __future__ import annotations

from pydantic import Field

from loadgen.declaration import Spec
from loadgen.metrics import SloRule


class Slo(Spec):
    """Service-level objectives: a request is *good* when it succeeded and met every threshold."""

    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, lt=100, description="percentile the verdict is judged at")
    enforce: bool = Field(
        default=False,
        exclude_if=lambda v: v is False,  # summaries written before it existed stay as they were
        description="a missed SLO fails the run (exit 5); else it is reported only",
    )

    def rule(self) -> SloRule:
        """Which requests are good, in seconds."""
        return SloRule.from_ms(self.ttft_ms, self.tpot_ms, self.e2e_ms)

    def limits_ms(self) -> list[tuple[str, float]]:
        """``(metric, limit_ms)`` of every threshold declared, in the rule's order."""
        return [(limit.metric, getattr(self, f"{limit.metric}_ms")) for limit in self.rule().limits()]
