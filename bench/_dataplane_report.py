"""The data-plane table of bench/dataplane.py: every metric, every path, its ratios to
direct and to HAProxy (and the LoadBalancer's to NodePort), the proxy's CPU, and the goals
for kubelab's rows."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Collection, Sequence

from _conditions import started_on, verdict
from _dataplane_measure import METRICS, Result, Results
from _dataplane_paths import Path

PROXIES = ("relay", "nodeport", "clusterip")  # the rows the goals are for
GOAL_KEEPALIVE = 0.9  # x HAProxy
GOAL_NEWCONN = 0.75  # x HAProxy
GOAL_BULK = 0.6  # x direct
GOAL_UDP = 0.5  # x direct
GOAL_ADDED_P50_US = 30.0

PER_OP = {"keepalive": "req", "newconn": "conn", "udp": "dgram"}
THROUGHPUT = tuple(m for m in METRICS if m not in ("p50", "p99"))  # the rates, not latency


def added(result: Result, direct: Result | None) -> float | None:
    """What a path adds to direct's latency: the median over the rounds of (its value
    - direct's value in the same round). Paired by round because on a small VM a round
    trip costs several times more when the processes it wakes sit on another vCPU, and
    the scheduler moves them between rounds: comparing whole-run figures would compare
    placements as much as paths."""
    if direct is None:
        return None
    if result.rounds and len(result.rounds) == len(direct.rounds):
        return statistics.median(a - b for a, b in zip(result.rounds, direct.rounds, strict=True))
    return result.value - direct.value


def paired_ratio(result: Result, base: Result | None) -> float | None:
    """result / base; for latency the median over the rounds of the ratio within a
    round (see `added`)."""
    if base is None or not base.value:
        return None
    if result.rounds and len(result.rounds) == len(base.rounds):
        return statistics.median(a / b for a, b in zip(result.rounds, base.rounds, strict=True))
    return result.value / base.value


def goal(
    metric: str, value: float, direct: float | None, haproxy: float | None, extra: float | None
) -> tuple[str, bool | None]:
    """The goal text for a kubelab row, and whether it is met (None: cannot tell)."""

    def ratio(base: float | None, wanted: float) -> bool | None:
        return None if not base else value / base >= wanted

    if metric == "keepalive":
        return f">= {GOAL_KEEPALIVE:g}x HAProxy", ratio(haproxy, GOAL_KEEPALIVE)
    if metric == "newconn":
        return f">= {GOAL_NEWCONN:g}x HAProxy", ratio(haproxy, GOAL_NEWCONN)
    if metric == "bulk":
        return f">= {GOAL_BULK:g}x direct", ratio(direct, GOAL_BULK)
    if metric == "udp":
        return f">= {GOAL_UDP:g}x direct", ratio(direct, GOAL_UDP)
    if metric == "p50":
        met = None if extra is None else extra <= GOAL_ADDED_P50_US
        return f"added <= {GOAL_ADDED_P50_US:g} µs", met
    return "", None


def cpu_cell(metric: str, result: Result) -> str:
    if result.cpu is None or not result.wall:
        return "-"
    share = f"{result.cpu / result.wall * 100:.0f}%"
    unit = PER_OP.get(metric)
    if unit and result.ops:
        return f"{share}, {result.cpu / result.ops * 1e6:.1f} µs/{unit}"
    return share


def to_nodeport(metric: str, result: Result, nodeport: Result | None) -> str:
    """The LoadBalancer row's figure against NodePort: the cloud-stub hop in front of the
    node proxy. A ratio; for latency what it adds, paired by round as `added` is."""
    if metric in ("p50", "p99"):
        extra = added(result, nodeport)
        return "-" if extra is None else f"{extra:+,.1f} µs"
    ratio = paired_ratio(result, nodeport)
    return "-" if ratio is None else f"{ratio:.2f}x"


def table_rows(paths: Sequence[Path], results: Results, load: float) -> list[list[str]]:
    with_lb = any(p.key == "loadbalancer" for p in paths)
    rows = []
    for metric, label in METRICS.items():
        measured = results.by_metric.get(metric, {})
        if not measured:
            continue
        direct = measured.get("direct")
        haproxy_result = measured.get("haproxy")
        nodeport = measured.get("nodeport")
        first = True
        for path in paths:
            result = measured.get(path.key)
            name = label if first else ""
            first = False
            if result is None:
                why = "n/a: HAProxy has no UDP" if path.key == "haproxy" else "n/a"
                rows.append([name, path.name, why, *[""] * (7 if with_lb else 6)])
                continue
            base = direct.value if direct else None
            theirs = haproxy_result.value if haproxy_result else None
            extra = added(result, direct) if metric in ("p50", "p99") else None
            to_direct = paired_ratio(result, direct)
            to_haproxy = paired_ratio(result, haproxy_result)
            if metric in ("p50", "p99"):
                value = f"{result.value:,.1f}"
                if extra is not None and path.key != "direct":
                    value += f" ({extra:+,.1f})"
            else:
                value = f"{result.value:,.0f}"
            text, met = (
                goal(metric, result.value, base, theirs, extra)
                if path.key in PROXIES
                else ("", None)
            )
            lb_cell = to_nodeport(metric, result, nodeport) if path.key == "loadbalancer" else ""
            rows.append(
                [
                    name,
                    path.name,
                    value,
                    "-" if to_direct is None else f"{to_direct:.2f}x",
                    "-" if to_haproxy is None else f"{to_haproxy:.2f}x",
                    *([lb_cell] if with_lb else []),
                    cpu_cell(metric, result),
                    f"{result.idle_ticks / result.total_ticks * 100:.0f}%"
                    if result.total_ticks
                    else "-",
                    text,
                    "" if met is None else verdict(met, load),
                ]
            )
    return rows


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int]
) -> None:
    """Aligned columns: those numbered in `right` to the right, the rest to the left."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())


def cpu_parts_note(paths: Sequence[Path], results: Results) -> str | None:
    """The LoadBalancer row's proxy CPU by component, per metric (share of one core)."""
    if not any(p.key == "loadbalancer" for p in paths):
        return None
    cells = []
    for metric in THROUGHPUT:
        result = results.by_metric.get(metric, {}).get("loadbalancer")
        if result is None or not result.cpu_parts or not result.wall:
            continue
        split = ", ".join(
            f"{name} {seconds / result.wall * 100:.0f}%"
            for name, seconds in result.cpu_parts.items()
        )
        cells.append(f"{METRICS[metric]} {split}")
    if not cells:
        return None
    return "LoadBalancer proxy CPU by process (share of one core): " + "; ".join(cells)


def print_report(
    args: argparse.Namespace, paths: Sequence[Path], results: Results, pod: str, load: float
) -> None:
    print(
        f"Data plane on loopback: {len(paths)} paths to one kubelab/echo pod ({pod}); "
        f"{args.seconds} s per measurement after {args.warmup} s of warm-up; load generator, "
        "proxy and pod share the machine's cores"
    )
    with_lb = any(p.key == "loadbalancer" for p in paths)
    header = [
        *("metric", "path", "value", "x direct", "x HAProxy"),
        *(["x NodePort"] if with_lb else []),
        *("proxy CPU", "idle", "goal", "met"),
    ]
    numbers = {i for i, title in enumerate(header) if title in ("value", "idle") or "x " in title}
    print(started_on(load))
    print_table(header, table_rows(paths, results, load), numbers)
    print(
        f"Generators: wrk -t1 -c{args.connections} (keep-alive), wrk -t1 "
        f"-c{args.new_connections} -H 'Connection: close' (new connections); bulk: "
        f"{args.bulk / 2**30:g} GiB through the TCP echo and back (echo stream: MB/s counts "
        "one direction, every byte crosses the proxy twice), and one way into and out of the "
        f"pod's bulk port (PUT/GET, workloads/echo/bulk.py), median of {args.bulk_rounds} "
        f"each; UDP: 64-byte datagrams, {args.udp_window} in flight; latency: one GET in "
        f"flight on one keep-alive connection, {args.latency_rounds} interleaved rounds."
    )
    print(
        "proxy CPU: the proxy's processes' user+system time over the measured run, as a share "
        "of one core and per operation (ClusterIP: the three node agents together, since "
        "SO_REUSEPORT spreads connections over them; NodePort: one agent; LoadBalancer: the "
        "cloud-stub and the three node agents it spreads connections over, round robin, a UDP "
        "flow staying on one; all include the agents' other work). idle: the whole machine's "
        "idle share over the run; well above 0 while the proxy is below 100%, the limit was "
        "one core rather than the machine or the proxy (which processes share a core is the "
        "scheduler's choice, and changes from run to run)."
    )
    for path in paths:
        print(f"  {path.name}: {path.about}")
    notes = []
    if with_lb:
        notes.append(
            "x NodePort (LoadBalancer only): what the cloud-stub in front of the node proxy "
            "costs; for latency, what it adds. The goals are for one relay; the LoadBalancer "
            "is two in series, so it has none"
        )
    split = cpu_parts_note(paths, results)
    if split is not None:
        notes.append(split)
    if "bulk_in" in results.by_metric:
        notes.append(
            "bulk: the goal is on the echo stream, where client and pod keep both cores busy "
            "directly; one way, a direct stream runs anywhere from ~3.5 to ~8.5 GB/s here, "
            "depending on whether the scheduler puts its two processes on one vCPU or two, so "
            "those rows show what an upload or download sees, with no goal"
        )
    for metric in THROUGHPUT:
        measured = results.by_metric.get(metric, {})
        if any(r.note for r in measured.values()):
            notes.append(
                f"{METRICS[metric]} in each round: "
                + ", ".join(f"{p.name} {measured[p.key].note}" for p in paths if p.key in measured)
            )
    for metric in ("p50", "p99"):
        spread = [
            f"{p.name} {min(r.rounds):.0f}-{max(r.rounds):.0f}"
            for p in paths
            if (r := results.by_metric.get(metric, {}).get(p.key)) is not None and r.rounds
        ]
        if spread:
            notes.append(f"latency {metric} in each round, µs, min-max: " + ", ".join(spread))
    if "p50" in results.by_metric:
        notes.append(
            "latency: the value is over every round trip; the added latency (in brackets) and "
            "the ratios are medians over the rounds of the same figure within each round"
        )
    for note in notes:
        print(f"  {note}")
