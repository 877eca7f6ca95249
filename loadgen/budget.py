"""How many requests a worker may still begin in each phase: what makes ``requests: N`` exact.

The master gives each worker its share of a phase's ``requests`` (``PhaseCommand.requests``).
A request takes a ticket of the phase it belongs to (its :class:`~loadgen.request.Scheduling`'s
``phase``) before it begins; with none left it is not sent and raises :class:`BudgetSpent`,
which ends the unit it belongs to (a session's later turns, a chain's later steps). An open-loop
unit takes its first request's ticket when it is scheduled, so the dispatcher stops scheduling
when the phase's share is spent; a closed-loop user idles. In-flight requests finish, so the
phase ends with exactly ``requests`` records, as GuideLLM's ``max_requests``.
"""

from __future__ import annotations


class BudgetSpent(Exception):
    """The phase's share of requests is spent: this request is not sent and makes no record."""


class PhaseBudgets:
    """Per phase: the tickets left (a phase without a ``requests`` limit is not here: unlimited).

    Only this worker's greenlets use it, and they switch only at I/O, so no lock is needed."""

    def __init__(self) -> None:
        self._left: dict[str, int] = {}

    def set(self, phase: str, requests: int | None) -> None:
        """The phase begins with ``requests`` tickets (``None``: no limit)."""
        if requests is None:
            self._left.pop(phase, None)
        else:
            self._left[phase] = requests

    def left(self, phase: str) -> int | None:
        """Tickets left in ``phase``; ``None`` when it has no limit."""
        return self._left.get(phase)

    def take(self, phase: str) -> None:
        """One ticket of ``phase``, or :class:`BudgetSpent`."""
        left = self._left.get(phase)
        if left is None:
            return
        if left <= 0:
            raise BudgetSpent(phase)
        self._left[phase] = left - 1
