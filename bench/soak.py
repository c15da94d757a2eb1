"""The soak of issue #14 (1): no false failure under load, external or self-made.

For each mode (embedded: real processes on this host; lab: compose/lab.yaml in
Docker), two phases of `--minutes` each, the same in both but for the hog:

1. quiet: request loops (new-connection GETs, two at a time) through NodePort
   (node 1), ClusterIP and LoadBalancer to one Service's pods, while the cluster
   works hard (bench/_soak_load.py: a label storm, a 5,000-endpoint headless
   Service churning, the bad-input campaign through the SDK);
2. hog: the same with `stress-ng --cpu 8 --hdd 2` beside it (load ~10 on 2
   cores); the phase starts once the 1-min load average reached HOG_LOAD.

Counted over each phase (bench/_soak_watch.py; tallies in kubelab.testing.soak):
false NotReady (a node's heartbeat key deleted, its lease gone, with no kill),
leader changes (terms of the controller election that ended), failed requests
(every request of the loops without the right answer: an echo pod's 200). After
each phase, with the hog still on in the second, node 3's agent is SIGKILLed
(`docker kill` in the lab): detection is the time until its heartbeat is gone
and until no slice of the Service holds a ready endpoint on it (goal <= 3 s).
The node is started again before the next phase.

The load average is printed before the run, at each phase's start and during it
(sampled every LOAD_SAMPLE s). Goals (0 / 0 / 0, detection <= 3 s) are judged
only under the load a phase demands: quiet, the machine quiet before the run
(bench/_conditions.py); hog, a mean load of HOG_LOAD or more. It reports, never
asserts: exit code 0 whatever the figures.

    .venv/bin/python bench/soak.py [--minutes 10] [--mode embedded|lab|both] [--lab]

A full run (both modes, 10-minute phases) takes about 45 minutes. The lab needs
the image kubelab:latest (`make image`) and the lab subnets 172.30.252/253.0/24
($KUBELAB_CHAOS_CLUSTER_NET / $KUBELAB_CHAOS_PUBLIC_NET move them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("KUBELAB_CHAOS_CLUSTER_NET", "172.30.252")
os.environ.setdefault("KUBELAB_CHAOS_PUBLIC_NET", "172.30.253")
sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests.chaos.lab, for the lab

from _conditions import BUSY_LOAD, load_average, started_on
from _soak_load import Workload
from _soak_modes import VICTIM, Embedded, InLab, SoakCluster
from _soak_report import PhaseReport, print_mode
from _soak_watch import Monitor

from kubelab.testing.soak import Demand, Phase, judge

HOG = ("stress-ng", "--cpu", "8", "--hdd", "2")
HOG_LOAD = 8.0  # 1-min load average a hog phase must reach (and keep, on average)
HOG_WARMUP = 180.0  # s, at most, for the load to reach HOG_LOAD
LOAD_SAMPLE = 5.0  # s
DETECT_TIMEOUT = 30.0  # s
ENDPOINTS = 5000
DEMAND = Demand(quiet_below=BUSY_LOAD * (os.cpu_count() or 1), hog_at_least=HOG_LOAD)


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average():5.2f}] {text}", file=sys.stderr)


class Hog:
    """stress-ng in its own session, so stopping it stops its workers too."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*HOG, "--temp-path", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


async def until_load(level: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while load_average() < level and time.monotonic() < deadline:  # noqa: ASYNC110 (nothing to wait on but the kernel's figure)
        await asyncio.sleep(1)


async def run_phase(
    cluster: SoakCluster,
    monitor: Monitor,
    work: Workload,
    *,
    name: str,
    hog: Hog | None,
    seconds: float,
    load_before: float,
) -> PhaseReport:
    if hog is not None:
        hog.start()
        progress(f"{cluster.name} {name}: stress-ng started, waiting for load {HOG_LOAD:g}")
        await until_load(HOG_LOAD, HOG_WARMUP)
    load_start = load_average()
    progress(f"{cluster.name} {name}: {seconds:g} s of loops and work")
    for loop in cluster.loops.values():
        await loop.start()
    work.done.clear()
    work.start()
    start = time.monotonic()
    samples: list[float] = []
    while (now := time.monotonic()) < start + seconds:
        monitor.check()
        await asyncio.sleep(min(LOAD_SAMPLE, start + seconds - now))
        samples.append(load_average())
    end = time.monotonic()
    results = {path: await loop.stop() for path, loop in cluster.loops.items()}
    await work.stop()
    not_ready, changes, transitions = monitor.window(start, end)
    progress(f"{cluster.name} {name}: killing {VICTIM}")
    killed = await cluster.kill()
    try:
        gone, out = await monitor.detected(VICTIM, killed, DETECT_TIMEOUT)
        detection: float | None = max(gone, out)
        detail = f"NotReady {gone:.2f} s, out of the slices {out:.2f} s"
    except TimeoutError as err:
        detection, detail = None, str(err)
    if hog is not None:
        hog.stop()
    progress(f"{cluster.name} {name}: {detail}")
    phase = Phase(
        name=name,
        hog=hog is not None,
        load_before=load_before,
        load_start=load_start,
        load_during=samples,
        false_not_ready=sum(not_ready.values()),
        leader_changes=changes,
        failed=sum(len(failures) for _, failures in results.values()),
        detection=detection,
    )
    return PhaseReport(phase, results, dict(work.done), transitions, detail, end - start)


async def soak_mode(
    cluster: SoakCluster,
    args: argparse.Namespace,
    workdir: Path,
    load_before: float,
    reports: list[PhaseReport],
) -> None:
    """Both phases on `cluster`, each one's report added to `reports` as it ends (so a
    later step that breaks loses nothing measured)."""
    try:
        progress(f"{cluster.name}: starting the cluster")
        await cluster.open()
        monitor = Monitor(cluster.store, cluster.api, cluster.service)
        await monitor.start()
        work = Workload(cluster.api, args.endpoints)
        progress(f"{cluster.name}: preparing the work ({args.endpoints} headless endpoints)")
        await work.prepare()
        try:
            phases: list[tuple[str, Hog | None]] = [("quiet", None)]
            if shutil.which(HOG[0]):
                phases.append(("hog", Hog(workdir)))
            for name, hog in phases:
                if reports:
                    progress(f"{cluster.name}: starting {VICTIM} again")
                    await cluster.revive()
                try:
                    report = await run_phase(
                        cluster,
                        monitor,
                        work,
                        name=name,
                        hog=hog,
                        seconds=args.minutes * 60,
                        load_before=load_before,
                    )
                finally:
                    if hog is not None:
                        hog.stop()
                reports.append(report)
        finally:
            await monitor.stop()
    finally:
        await cluster.close()
        print_mode(cluster.name, reports, cluster.where(), DEMAND)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per phase")
    parser.add_argument("--mode", choices=("embedded", "lab", "both"), default="embedded")
    parser.add_argument("--lab", action="store_true", help="same as --mode both")
    parser.add_argument("--endpoints", type=int, default=ENDPOINTS, help="headless Service")
    parser.add_argument("--image", default="kubelab:latest", help="the lab's image")
    args = parser.parse_args()
    modes = ("embedded", "lab") if args.lab or args.mode == "both" else (args.mode,)
    load = load_average()
    print(started_on(load))
    if shutil.which(HOG[0]) is None:
        print(
            "stress-ng is NOT installed (apt-get install -y stress-ng): the hog phases are "
            "skipped, and the goals are not judged"
        )
    phases: list[Phase] = []
    expected = 2 if shutil.which(HOG[0]) else 1
    for mode in modes:
        workdir = Path(tempfile.mkdtemp(prefix=f"kubelab-soak-{mode}-"))
        cluster: SoakCluster = (
            Embedded(workdir) if mode == "embedded" else InLab(args.image, workdir)
        )
        reports: list[PhaseReport] = []
        try:
            asyncio.run(soak_mode(cluster, args, workdir, load, reports))
        except Exception as err:  # a bench reports what broke and goes on
            traceback.print_exc()
            print(f"\n{mode}: the soak broke off: {type(err).__name__}: {err} (logs: {workdir})")
        ran = [r.phase for r in reports]
        phases += ran
        if len(ran) == expected and all(p.clean and p.detected for p in ran):
            shutil.rmtree(workdir, ignore_errors=True)  # nothing in the logs to explain
        else:
            print(f"{mode}: logs kept in {workdir}")
    verdict = judge(phases, DEMAND)
    if len(phases) < expected * len(modes) and verdict != "MISSED":
        verdict = "not judged (a phase did not run)"
    print(
        f"\ngoals (0 false NotReady / 0 leader changes / 0 failed requests, detection <= 3 s), "
        f"{'+'.join(modes)}, {args.minutes:g}-minute phases: {verdict}"
    )


if __name__ == "__main__":
    main()
