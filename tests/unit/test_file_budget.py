"""The node proxy's file budget: how many listeners a limit allows, and whether one
Service's fit beside the others' (all or nothing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.logic.file_budget import BASE_RESERVE, FileBudget, admit, file_budget


@pytest.mark.parametrize(
    ("limit", "listeners"),
    [
        pytest.param(1024, 512, id="small-limit-keeps-half"),
        pytest.param(4096, 4096 - BASE_RESERVE - 1024, id="quarter-plus-base-reserved"),
        pytest.param(20000, 20000 - BASE_RESERVE - 5000, id="20000-leaves-no-room-for-20000"),
        pytest.param(1048576, 1048576 - BASE_RESERVE - 262144, id="a-million"),
        pytest.param(0, 0, id="no-files"),
        pytest.param(-1, 0, id="nonsense-limit"),
    ],
)
def test_file_budget(limit: int, listeners: int) -> None:
    budget = file_budget(limit)
    assert budget.listeners == listeners
    assert budget.reserved == max(limit, 0) - listeners


BUDGET = FileBudget(limit=4096, listeners=100)


@pytest.mark.parametrize(
    ("needed", "used_by_others", "available"),
    [
        pytest.param(60, 40, None, id="fits-exactly"),
        pytest.param(61, 40, 60, id="one-too-many"),
        pytest.param(20000, 0, 100, id="more-than-the-whole-budget"),
        pytest.param(1, 100, 0, id="others-took-everything"),
        pytest.param(1, 150, 0, id="others-hold-more-than-the-budget"),
        pytest.param(0, 150, None, id="nothing-needed-always-fits"),
    ],
)
def test_admit(needed: int, used_by_others: int, available: int | None) -> None:
    refusal = admit(BUDGET, needed=needed, used_by_others=used_by_others)
    if available is None:
        assert refusal is None
        return
    assert refusal is not None
    assert (refusal.needed, refusal.available) == (needed, available)
    assert f"needs {needed} listeners" in str(refusal)
    assert "RLIMIT_NOFILE 4096" in str(refusal)


@given(st.integers(min_value=0, max_value=1 << 22))
def test_the_budget_leaves_a_reserve_and_serves_something(limit: int) -> None:
    budget = file_budget(limit)
    assert 0 <= budget.listeners <= limit
    assert budget.reserved >= limit // 2 or budget.reserved >= BASE_RESERVE + limit // 4
    assert budget.listeners >= limit // 2


@given(
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.integers(min_value=0, max_value=3_000), max_size=20),
)
def test_admitting_in_turn_never_exceeds_the_budget(limit: int, services: list[int]) -> None:
    budget = file_budget(limit)
    used = 0
    for needed in services:
        if admit(budget, needed=needed, used_by_others=used) is None:
            used += needed
        assert used <= budget.listeners
