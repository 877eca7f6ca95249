"""A phase's ``requests`` split over the workers and spent ticket by ticket (``loadgen.budget``)."""

from __future__ import annotations

import pytest

from coordinator.run.master import shares
from loadgen.budget import BudgetSpent, PhaseBudgets


@pytest.mark.parametrize(
    ("total", "workers", "expected"), [(1600, 3, [534, 533, 533]), (5, 2, [3, 2]), (1, 4, [1, 0, 0, 0]), (0, 2, [0, 0])]
)
def test_shares_add_up_to_the_phase_s_requests(total: int, workers: int, expected: list[int]) -> None:
    assert shares(total, workers) == expected and sum(expected) == total


def test_a_phase_begins_exactly_its_share_and_other_phases_keep_their_own() -> None:
    budgets = PhaseBudgets()
    budgets.set("steady", 2)
    assert budgets.left("open") is None  # a phase without a limit
    for _ in range(1000):
        budgets.take("open")
    budgets.take("steady")
    budgets.take("steady")
    assert budgets.left("steady") == 0
    with pytest.raises(BudgetSpent):
        budgets.take("steady")
    budgets.set("next", 1)
    with pytest.raises(BudgetSpent):  # a unit still of the old phase gets no ticket of the new one
        budgets.take("steady")
    budgets.take("next")
    budgets.set("next", None)
    budgets.take("next")
