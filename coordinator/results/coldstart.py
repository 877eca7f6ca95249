"""What a cold-start phase measured (``cold_start.json``): a result, read by the report, the
summary's extras and baselines.

The phase that writes it (``coordinator.docker.coldstart``) and the report section that reads
it (``coordinator.docker.report``) both import this, never each other; baselines and
comparisons read it without importing the Docker feature.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel, ConfigDict, Field, computed_field

RESULT_FILE = "cold_start.json"
STEPS: tuple[str, ...] = ("create", "start", "port_open", "ready", "first_token", "to_ready", "to_first_token")


class StartResult(BaseModel):
    """One cold start: its step durations (s), TTFTs, and how many requests were refused while loading."""

    model_config = ConfigDict(extra="ignore")

    number: int
    steps: dict[str, float | None] = Field(default_factory=dict)
    cold_ttft: float | None = None
    warm_ttft: list[float] = Field(default_factory=list)
    refused_while_loading: int = 0
    refusals: dict[str, int] = Field(default_factory=dict)  # status/error detail -> count
    verdict: str | None = None  # oom / exited / timeout when the start failed
    message: str | None = None


class ColdStartResult(BaseModel):
    """Every start of one cold-start phase, with the distributions the report plots."""

    model_config = ConfigDict(extra="ignore")

    phase: str
    starts: list[StartResult] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> str | None:
        return next((s.verdict for s in self.starts if s.verdict), None)

    def step_values(self, step: str) -> list[float]:
        return [v for s in self.starts if (v := s.steps.get(step)) is not None]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def steps(self) -> dict[str, list[float]]:
        """Each step's values over the starts (s)."""
        return {name: self.step_values(name) for name in STEPS}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cold_ttft(self) -> list[float]:
        return [s.cold_ttft for s in self.starts if s.cold_ttft is not None]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def warm_ttft(self) -> list[float]:
        return [w for s in self.starts for w in s.warm_ttft]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cold_penalty(self) -> float | None:
        """Median first-request TTFT cold minus median warm TTFT (s)."""
        cold, warm = self.cold_ttft, self.warm_ttft
        return statistics.median(cold) - statistics.median(warm) if cold and warm else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def refused_while_loading(self) -> int:
        return sum(s.refused_while_loading for s in self.starts)
