"""bench/api.py's printed rows for the Kubernetes HTTP API's reads, the watch fan-out and
the security rows, each goal judged only on a quiet machine (`_conditions.verdict`)."""

from __future__ import annotations

from _conditions import verdict
from _rest_reads import ReadFigures
from _stats import percentile
from _tls_rows import MODES, TlsFigures
from _watch_fanout import FanoutFigures

KUBECTL_GOAL_MS = 150.0  # `kubectl get svc`, median wall time
WATCH_GOAL_MS = 25.0  # 100 HTTP watchers see a change, p99
TLS_GOAL_RATIO = 0.8  # TLS + authorization on, of the same rows off (the security issue)


def print_reads(reads: ReadFigures, load: float) -> None:
    grpc_ms = reads.list_ms["gRPC List"]
    print(f"List of 1,000 Services (JSON: {reads.list_bytes / 1e6:.2f} MB), median wall time:")
    for name, ms in reads.list_ms.items():
        print(f"  {name:<20} {ms:8.1f} ms  {grpc_ms / ms:5.2f}x gRPC's rate")
    met = reads.kubectl_ms <= KUBECTL_GOAL_MS
    print(
        f"kubectl get svc (5 Services, discovery cached): median {reads.kubectl_ms:.0f} ms "
        f"(goal <= {KUBECTL_GOAL_MS:.0f} ms: {verdict(met, load)}); "
        f"kubectl version --client alone: {reads.kubectl_version_ms:.0f} ms "
        f"({reads.kubectl_version})"
    )
    p50 = percentile(reads.watch_latencies, 0.50) * 1000
    p99 = percentile(reads.watch_latencies, 0.99) * 1000
    print(
        f"{len(reads.watch_latencies)} HTTP watch events (watchers x changes), each watcher "
        f"opening its watch-list just before the POST: p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
        f"apiserver CPU per event delivered: {reads.watch_cpu_ms:.3f} ms"
    )


def print_fanout(fanout: FanoutFigures, watchers: int, load: float) -> None:
    """The issue's goal row: concurrent watchers, already watching, see a change."""
    p50 = percentile(fanout.latencies, 0.50) * 1000
    p99 = percentile(fanout.latencies, 0.99) * 1000
    print(
        f"{len(fanout.latencies)} HTTP watch events to {watchers} watchers already open, "
        f"after a POST: p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal p99 <= {WATCH_GOAL_MS:.0f} "
        f"ms: {verdict(p99 <= WATCH_GOAL_MS, load)}); apiserver CPU per event delivered: "
        f"{fanout.cpu_ms:.3f} ms"
    )


def print_security(figures: TlsFigures, watchers: int, load: float) -> None:
    """TLS, client certificates and RBAC on against off (#17's goal: >= 0.8x)."""
    plain, secure = MODES
    print("TLS + client certificates + RBAC, against the same apiserver plain (one etcd):")
    for front in ("gRPC Create", "HTTP POST"):
        ratio = figures.median_rate(front, secure) / figures.median_rate(front, plain)
        print(
            f"  {front:<12} {figures.median_rate(front, plain):6.0f} -> "
            f"{figures.median_rate(front, secure):6.0f} creates/s = {ratio:.2f}x "
            f"(goal >= {TLS_GOAL_RATIO:.1f}x: {verdict(ratio >= TLS_GOAL_RATIO, load)}); "
            f"apiserver CPU per create {figures.median_cpu(front, plain):.2f} -> "
            f"{figures.median_cpu(front, secure):.2f} ms"
        )
    off, on = figures.fanout[plain], figures.fanout[secure]
    ratio = off.cpu_ms / on.cpu_ms  # events per CPU second, secured against plain
    print(
        f"  watch fan-out to {watchers} open watchers: p99 "
        f"{percentile(off.latencies, 0.99) * 1000:.1f} -> "
        f"{percentile(on.latencies, 0.99) * 1000:.1f} ms; apiserver CPU per event "
        f"{off.cpu_ms:.3f} -> {on.cpu_ms:.3f} ms = {ratio:.2f}x the events per CPU second "
        f"(goal >= {TLS_GOAL_RATIO:.1f}x: {verdict(ratio >= TLS_GOAL_RATIO, load)})"
    )
    extra = figures.kubectl_ms[secure] - figures.kubectl_ms[plain]
    print(
        f"  kubectl get svc (a new process, so a new connection, per call): median "
        f"{figures.kubectl_ms[plain]:.0f} -> {figures.kubectl_ms[secure]:.0f} ms: the TLS "
        f"handshake and the certificate check cost {extra:+.0f} ms per kubectl call"
    )
