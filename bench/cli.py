"""How long a `kubelab get svc` takes, beside the floor of any Python CLI and kubectl.

    .venv/bin/python bench/cli.py [--runs 30]

Starts a real etcd and apiserver with the seed's Service and two more, then times whole
commands, interleaved run by run so the machine's state is shared: `python -c pass` (the
interpreter's own start, the floor for a CLI written in Python), `kubelab get svc` (the
installed entry point, against the apiserver), `kubelab --help` (start and imports alone,
no call) and, if it is installed, `kubectl version --client` (a Go CLI that talks to
nobody). Prints median and p90 wall-clock per command and the ratio to `python -c pass`;
the goal (the quality issue): `kubelab get svc` median <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _conditions import load_average, started_on, verdict
from _stats import percentile

from kubelab.client import Client
from kubelab.core import manifests
from kubelab.testing.processes import ApiServerProcess, EtcdServer

GOAL_MS = 150.0
HERE = Path(__file__).resolve().parent
SEED = HERE.parent / "examples" / "shop-service.yaml"


def timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()[-500:]}")
    return took


async def seed(address: str) -> None:
    async with Client(address) as api:
        for loaded in manifests.load_manifest_files([str(SEED)]):
            await api.apply(loaded.object)
        for name in ("db", "cache"):
            svc = manifests.load_manifests(
                f'{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}"}}, '
                f'"spec": {{"ports": [{{"port": 80}}], "selector": {{"app": "{name}"}}}}}}'
            )[0].object
            await api.apply(svc)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    load = load_average()
    kubelab = shutil.which("kubelab", path=str(Path(sys.executable).parent)) or "kubelab"
    work = Path(tempfile.mkdtemp(prefix="kubelab-bench-cli-"))
    etcd = EtcdServer(work / "etcd")
    etcd.start()
    apiserver = ApiServerProcess(etcd.endpoint, work)
    try:
        apiserver.start()
        asyncio.run(seed(apiserver.address))
        env = {**os.environ, "KUBELAB_SERVER": apiserver.address, "KUBELAB_HOME": str(work)}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "kubelab get svc": [kubelab, "get", "svc"],
            "kubelab --help": [kubelab, "--help"],
        }
        if shutil.which("kubectl"):
            commands["kubectl version --client"] = ["kubectl", "version", "--client"]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():  # warm the page cache
            timed(command, env)
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(timed(command, env))
    finally:
        apiserver.stop()
        etcd.stop()
        shutil.rmtree(work, ignore_errors=True)

    floor = statistics.median(times["python -c pass"])
    print(f"Whole commands, {args.runs} interleaved runs each (wall clock)")
    print(started_on(load))
    print(f"{'command':<26} {'median ms':>10} {'p90 ms':>8} {'x python -c pass':>17}  goal")
    for name, values in times.items():
        median = statistics.median(values)
        goal = ""
        if name == "kubelab get svc":
            goal = f"<= {GOAL_MS:g} ms: {verdict(median * 1000 <= GOAL_MS, load)}"
        print(
            f"{name:<26} {median * 1000:>10.1f} {percentile(values, 0.9) * 1000:>8.1f} "
            f"{median / floor:>16.2f}x  {goal}"
        )


if __name__ == "__main__":
    main()
