"""The chaos suite's plumbing: a fresh lab per scenario, a row of measurements per
scenario, and the table of rows at the end of the session.

* `lab`: compose/lab.yaml up as a new compose project (`kubelab-chaos-<net>-<random>`), 3 Ready
  nodes, the shop and its LoadBalancer Service applied and answering; always torn down
  (`down -v -t 1`). When a scenario fails, the timeline of what it did and every
  container's last log lines are added to the failure report.
* `row`: the scenario's `Row` (named by its `@pytest.mark.scenario("N. ...")`); saved to
  bench/results/chaos.json whatever the outcome, and printed in the session's table.

Docker (and Compose) missing: with CI=true the scenarios fail, elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from kubelab.testing.docker import BUILD_TIMEOUT, Compose, compose_problem
from tests.chaos.lab import CLUSTER_NET, LAB_FILE, NETWORKS, Lab
from tests.chaos.report import RESULTS, Row, save, scenario_order, text_table
from tests.docker_fixtures import require

HERE = Path(__file__).resolve().parent
# Per subnet: labs on other subnets (KUBELAB_CHAOS_*_NET) are not in the way.
PROJECT_PREFIX = f"kubelab-chaos-{CLUSTER_NET.replace('.', '-')}-"
SCENARIO_TIMEOUT = 240.0  # lab up and down included
STALE = 2 * SCENARIO_TIMEOUT  # a chaos lab this old outlived its session
ROWS = pytest.StashKey[list[Row]]()
RUN = pytest.StashKey[str]()
LAB = pytest.StashKey[Lab]()
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(name): the chaos scenario's row name")
    config.stash[ROWS] = []
    config.stash[RUN] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first = True
    for item in items:
        if HERE not in item.path.parents:
            continue
        # The session's first container test may build the image (the `image` fixture).
        extra = BUILD_TIMEOUT if first else 0.0
        item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT + extra))
        first = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    lab = item.stash.get(LAB, None)
    if report.failed and lab is not None and report.when in ("setup", "call"):
        report.sections.append(("lab: timeline and container logs", lab.logs()))
    return report


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[Row]:
    marker = request.node.get_closest_marker("scenario")
    assert marker is not None, "a chaos scenario needs @pytest.mark.scenario('N. name')"
    started = time.monotonic()
    scenario = Row(str(marker.args[0]))
    yield scenario
    scenario.seconds = time.monotonic() - started
    reports = request.node.stash.get(REPORTS, {})
    failed = [r for r in reports.values() if r.failed]
    skipped = any(r.skipped for r in reports.values())
    if skipped:
        return
    scenario.outcome = "failed" if failed or scenario.misses else "passed"
    if failed and not scenario.misses:  # an error, or a deadline passed
        reason = failed[0].longreprtext.strip().splitlines()
        errors = [line for line in reason if line.startswith("E ")]
        scenario.note(f"FAILED: {(errors or reason or ['?'])[0][:160]}")
    request.config.stash[ROWS].append(scenario)
    save(scenario, request.config.stash[RUN])


@pytest.fixture
async def lab(image: str, row: Row, request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    require("chaos needs Docker Compose", compose_problem())  # Docker: `image` checked it
    # A run killed mid-scenario leaves its lab behind, holding the lab's subnets: gone it
    # goes. A younger one belongs to a session running now, which is not ours to end.
    for leftover, age in (await asyncio.to_thread(Compose.projects, PROJECT_PREFIX)).items():
        if age < STALE:
            pytest.fail(
                f"another chaos lab ({leftover}, {age:.0f} s old) holds the lab subnets: wait"
                " for its session, or set KUBELAB_CHAOS_CLUSTER_NET / KUBELAB_CHAOS_PUBLIC_NET",
                pytrace=False,
            )
        await asyncio.to_thread(Compose(LAB_FILE, leftover, image=image, env=NETWORKS).down)
    project = f"{PROJECT_PREFIX}{uuid.uuid4().hex[:8]}"
    compose = Compose(LAB_FILE, project, image=image, env=NETWORKS)
    lab = Lab(compose)
    request.node.stash[LAB] = lab
    try:
        await lab.start()
        yield lab
    finally:
        await lab.close()
        await asyncio.to_thread(compose.down)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    rows.sort(key=lambda r: scenario_order(r.scenario))
    total = sum(r.seconds for r in rows)
    terminalreporter.write_sep("=", f"chaos scenarios ({len(rows)}, {total:.0f} s)")
    terminalreporter.write_line(text_table(rows))
    terminalreporter.write_line(f"(saved in {RESULTS}; Markdown: python bench/chaos_report.py)")
