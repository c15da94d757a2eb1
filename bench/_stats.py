"""The one percentile every benchmark reports.

Nearest rank: the smallest value with at least q of the values at or below it, so p99 of
100 samples is the 99th smallest and p50 of 2 samples is the smaller one; a reported
percentile is always a value that was measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], not {q}")
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])
