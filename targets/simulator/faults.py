"""Fault injection: drawn per request at configured rates, or forced by a request header.

``X-Finishline-Fault: VALUE`` forces one fault on that request (it wins over the rates).
Values: ``429``, ``503``, ``500`` (answered at once, never queued), ``reset``, ``cut``,
``malformed`` (strike after ``faults.after_tokens`` output tokens were written, or after
output_tokens - 1 when the output is shorter), ``stall:SECONDS`` (the stream pauses SECONDS
after that many tokens). The exact responses are listed in docs/simulator.md.
"""

from __future__ import annotations

import random

from targets.simulator.config import FAULT_KINDS, Faults

HEADER = "X-Finishline-Fault"
IMMEDIATE = ("429", "503", "500")

IMMEDIATE_RESPONSES: dict[str, tuple[int, str, str]] = {
    # fault -> (status, error type, message)
    "429": (429, "rate_limit_error", "Too many requests (injected fault 429)"),
    "503": (503, "service_unavailable", "Service unavailable (injected fault 503)"),
    "500": (500, "internal_server_error", "Internal server error (injected fault 500)"),
}


class FaultError(ValueError):
    """The fault header's value is not one the simulator knows."""


def kind_of(label: str | None) -> str | None:
    """``"stall:2.5"`` -> ``"stall"``."""
    if label is None:
        return None
    return label.split(":", 1)[0]


def parse_header(value: str) -> tuple[str, float]:
    """The header's fault label and, for a stall, its seconds."""
    value = value.strip().lower()
    if value.startswith("stall:"):
        try:
            seconds = float(value[6:])
        except ValueError:
            seconds = -1.0
        if not 0.0 <= seconds <= 3600.0:
            raise FaultError(f"{HEADER}: stall needs seconds between 0 and 3600, as stall:2.5")
        return f"stall:{seconds:g}", seconds
    if value in FAULT_KINDS and value != "stall":
        return value, 0.0
    raise FaultError(
        f"{HEADER}: unknown value {value!r}; use one of 429, 503, 500, reset, cut, malformed, stall:SECONDS"
    )


class FaultPicker:
    """Draws a fault per request at the configured rates (seeded, so runs repeat)."""

    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.rng = random.Random(seed ^ 0x5EED)
        self.table = [(k, r) for k, r in faults.rates.items() if r > 0]

    def pick(self, header: str | None) -> tuple[str | None, float]:
        if header is not None:
            return parse_header(header)
        if not self.table:
            return None, 0.0
        x = self.rng.random()
        for kind, rate in self.table:
            if x < rate:
                if kind == "stall":
                    return f"stall:{self.faults.stall_seconds:g}", self.faults.stall_seconds
                return kind, 0.0
            x -= rate
        return None, 0.0

    def strike_point(self, label: str | None, target: int) -> int:
        """Output-token count at which the mid-stream fault acts (see ``Sequence.fault_at``)."""
        k = min(self.faults.after_tokens, max(0, target - 1))
        kind = kind_of(label)
        if kind == "stall":
            return k  # stall after k tokens were sampled
        if kind in ("reset", "cut", "malformed"):
            return k + 1  # strike before writing token k + 1
        return -1
