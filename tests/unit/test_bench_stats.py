"""The one percentile the benchmarks report (bench/_stats.py): nearest rank."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

# Loaded by path: bench/ on sys.path would let bench/dns.py shadow dnspython's `dns`.
_SPEC = importlib.util.spec_from_file_location(
    "_stats", Path(__file__).resolve().parents[2] / "bench" / "_stats.py"
)
assert _SPEC is not None and _SPEC.loader is not None
_stats = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_stats)
percentile = _stats.percentile


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([5.0], 0.99, 5.0),
        ([1.0, 2.0], 0.5, 1.0),  # the smaller of two: half the values at or below it
        ([2.0, 1.0], 1.0, 2.0),
        (list(range(1, 101)), 0.99, 99.0),  # the 99th of 100, not the 100th
        (list(range(1, 101)), 0.5, 50.0),
        (list(range(1, 1001)), 0.999, 999.0),
        (list(range(1, 11)), 0.99, 10.0),  # too few for a p99 below the max
    ],
)
def test_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize("q", [0.0, -0.1, 1.5])
def test_q_out_of_range_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], q)


def test_no_values_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1), st.floats(0.01, 1))
def test_a_measured_value_with_at_least_q_at_or_below_it(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    at_or_below = sum(v <= p for v in values)
    assert at_or_below >= q * len(values) - 1e-9
    assert sum(v < p for v in values) < q * len(values)
