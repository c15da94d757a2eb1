"""The machine a benchmark ran on, and whether its goals can be judged there.

Figures taken on a busy machine say more about the other work than about
kubelab. Every benchmark prints the load average it started with
(`started_on`) and judges a goal only when the machine was quiet
(`verdict`): on a busy one a goal is reported "not judged", never "met".
"Busy" is a load average (1 min) above `BUSY_LOAD` per core: the benchmark's
own processes are not running yet when it is read.
"""

from __future__ import annotations

import os

BUSY_LOAD = 0.5  # per core, before the benchmark starts


def load_average() -> float:
    return os.getloadavg()[0]


def is_busy(load: float) -> bool:
    return load > BUSY_LOAD * (os.cpu_count() or 1)


def started_on(load: float) -> str:
    cores = os.cpu_count() or 1
    state = "busy: goals are not judged" if is_busy(load) else "quiet"
    return f"load average before the run: {load:.2f} on {cores} cores ({state})"


def verdict(met: bool, load: float) -> str:
    """'met' / 'MISSED', or 'not judged' when the machine was busy."""
    if is_busy(load):
        return f"not judged (load {load:.2f})"
    return "met" if met else "MISSED"
